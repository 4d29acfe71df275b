"""CVSS v3.0/v3.1 base score from a vector string, and qualitative severity ratings.

Feeds such as OSV carry only the vector (``CVSS:3.1/AV:N/AC:L/...``); the base score is computed
here with the formulas of the FIRST CVSS v3.1 specification (section 7). CVSS v4 scores are taken
as given by the feed (NVD); v4 vectors without a score are stored without one.
"""

from __future__ import annotations

import math

_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
# Privileges Required weighs more when the scope changes.
_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}
_BASE = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")
# Temporal and environmental metrics may follow; they do not change the base score.
_OTHER = {
    "E": "XUPFH", "RL": "XOTWU", "RC": "XURC",
    "CR": "XLMH", "IR": "XLMH", "AR": "XLMH",
    "MAV": "XNALP", "MAC": "XLH", "MPR": "XNLH", "MUI": "XNR", "MS": "XUC",
    "MC": "XNLH", "MI": "XNLH", "MA": "XNLH",
}


class CvssError(ValueError):
    pass


def parse_v3(vector: str) -> tuple[str, dict[str, str]]:
    """Split and validate a v3 vector; returns (version, metrics)."""
    if not isinstance(vector, str) or len(vector) > 256:
        raise CvssError("not a CVSS v3 vector string")
    parts = vector.strip().split("/")
    head = parts[0]
    if head not in ("CVSS:3.0", "CVSS:3.1"):
        raise CvssError(f"unsupported CVSS version prefix {head[:16]!r}")
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep or key in metrics:
            raise CvssError(f"malformed or repeated metric {part[:16]!r}")
        allowed = _WEIGHTS.get(key) or ({"N": 0, "L": 0, "H": 0} if key == "PR" else None)
        if key == "S":
            allowed = {"U": 0, "C": 0}
        if allowed is not None:
            if value not in allowed:
                raise CvssError(f"invalid value {value[:8]!r} for {key}")
        elif key in _OTHER:
            if len(value) != 1 or value not in _OTHER[key]:
                raise CvssError(f"invalid value {value[:8]!r} for {key}")
        else:
            raise CvssError(f"unknown metric {key[:8]!r}")
        metrics[key] = value
    missing = [k for k in _BASE if k not in metrics]
    if missing:
        raise CvssError(f"missing base metrics {','.join(missing)}")
    return head[5:], metrics


def _roundup_31(value: float) -> float:
    # v3.1 Roundup (Appendix A): avoids floating-point artefacts such as 4.0000000001 -> 4.1.
    as_int = round(value * 100000)
    if as_int % 10000 == 0:
        return as_int / 100000.0
    return (math.floor(as_int / 10000) + 1) / 10.0


def _roundup_30(value: float) -> float:
    return math.ceil(value * 10) / 10.0


def base_score_v3(vector: str) -> float:
    """The CVSS v3 base score of ``vector``; raises CvssError for an invalid vector."""
    version, m = parse_v3(vector)
    roundup = _roundup_31 if version == "3.1" else _roundup_30
    scope_changed = m["S"] == "C"
    iss = 1 - (1 - _WEIGHTS["C"][m["C"]]) * (1 - _WEIGHTS["I"][m["I"]]) * (1 - _WEIGHTS["A"][m["A"]])
    if scope_changed:
        impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    else:
        impact = 6.42 * iss
    exploitability = (
        8.22 * _WEIGHTS["AV"][m["AV"]] * _WEIGHTS["AC"][m["AC"]] * _PR[m["S"]][m["PR"]] * _WEIGHTS["UI"][m["UI"]]
    )
    if impact <= 0:
        return 0.0
    if scope_changed:
        return roundup(min(1.08 * (impact + exploitability), 10))
    return roundup(min(impact + exploitability, 10))


def severity_from_score(score: float | None) -> str:
    """CVSS qualitative rating (v3 and v4 use the same bands)."""
    if score is None:
        return "Unknown"
    if score <= 0:
        return "None"
    if score < 4.0:
        return "Low"
    if score < 7.0:
        return "Medium"
    if score < 9.0:
        return "High"
    return "Critical"


# Textual severities of feeds: GHSA (MODERATE), Ubuntu priorities (negligible), Bitnami, NVD baseSeverity.
_TEXT = {
    "critical": "Critical",
    "high": "High",
    "important": "High",
    "moderate": "Medium",
    "medium": "Medium",
    "low": "Low",
    "negligible": "Low",
    "none": "None",
}


def severity_from_text(value: str | None) -> str | None:
    if not value or not isinstance(value, str):
        return None
    return _TEXT.get(value.strip().lower())
