"""CVSS base scores from vector strings, qualitative severity ratings, and where a CVE's severity
comes from.

Feeds such as OSV carry only the vector (``CVSS:3.1/AV:N/AC:L/...``); the v3 base score is computed
here with the formulas of the FIRST CVSS v3.1 specification (section 7), the v4 base score with the
maintained ``cvss`` library (FIRST's v4.0 MacroVector lookup). NVD gives both scores itself.

Severity order (one place: :func:`pick_severity`, used when records are merged): a CVE's severity is
the CVSS rating of the best-ranked source that scored it — NVD (v3.1/v3.0, else v4.0), then the CVSS
in an OSV record (GHSA, PYSEC, a distro's OSV feed) — and only when no source gave a CVSS, the
words of the feeds: an advisory database's rating (GHSA "MODERATE"), then the distribution's own
priority or urgency (Ubuntu priority, Debian tracker urgency). :func:`severity_source` names the
source for the API and console ("NVD CVSS v3.1", "OSV CVSS v3.1", "Distribution priority"…).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cvss import CVSS4, CVSS4Error  # type: ignore[import-untyped]

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


def base_score_v4(vector: str) -> float:
    """The CVSS v4.0 base score of ``vector`` (``cvss`` library); raises CvssError for an invalid vector."""
    if not isinstance(vector, str) or len(vector) > 512 or not vector.startswith("CVSS:4.0/"):
        raise CvssError("not a CVSS v4.0 vector string")
    try:
        return float(CVSS4(vector).base_score)
    except (CVSS4Error, ValueError, KeyError, TypeError) as exc:
        raise CvssError(f"invalid CVSS v4.0 vector: {str(exc)[:120]}") from None


# Ranks (garrison.tvm.kb.records): NVD 30, advisory databases (GHSA, PYSEC…) 20, distributions 10.
_RANK_NVD, _RANK_PACKAGE_DB, _RANK_DISTRO = 30, 20, 10


def pick_score(row: Mapping[str, Any]) -> tuple[str, float] | None:
    """The CVSS that rates a vulnerability row: the best-ranked source's; v3 before v4 from one source.
    Returns ("v3"|"v4", score)."""
    ranks = row.get("info_ranks") or {}
    found: list[tuple[int, bool, str, float]] = []
    for v in ("v3", "v4"):
        score = row.get(f"cvss_{v}_score")
        if score is not None:
            found.append((int(ranks.get(f"cvss_{v}", 0) or 0), v == "v3", v, float(score)))
    if not found:
        return None
    _rank, _v3, version, best = max(found)
    return version, best


def severity_source(row: Mapping[str, Any]) -> str:
    """Human name of the source of a vulnerability's severity: "NVD CVSS v3.1", "OSV CVSS v4.0",
    "Advisory rating", "Distribution priority", or "None" when nothing rated it."""
    ranks = row.get("info_ranks") or {}
    picked = pick_score(row)
    if picked is not None:
        version, _score = picked
        vector = str(row.get(f"cvss_{version}_vector") or "")
        label = vector.split("/", 1)[0].replace("CVSS:", "v") if vector.startswith("CVSS:") else version
        origin = "NVD" if int(ranks.get(f"cvss_{version}", 0) or 0) >= _RANK_NVD else "OSV"
        return f"{origin} CVSS {label}"
    if row.get("severity") in (None, "", "Unknown"):
        return "None"
    rank = int(ranks.get("severity", 0) or 0)
    if rank >= _RANK_PACKAGE_DB:
        return "Advisory rating"
    if rank >= _RANK_DISTRO:
        return "Distribution priority"
    return "Advisory rating"
