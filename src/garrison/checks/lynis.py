"""Read a Lynis report (``/var/log/lynis-report.dat``, optionally ``/var/log/lynis.log``) and give
Lynis's verdict for the controls a check maps to (``lynis:`` references in the check data).

Used to compare Garrison's results with Lynis on the same machine (docs/lynis-comparison.md,
``bench/bench_assessment.py --lynis``). Reference forms:

* ``TEST-ID``: fail when Lynis reported a warning, suggestion or detail for the test;
* ``TEST-ID:text``: the same, limited to findings that mention ``text`` (a sysctl key, an SSH
  option, a path);
* ``report:key=value``: pass when the report has ``key=value``;
* ``log:TEST-ID:text``: pass when the log lines of that test contain ``text``;
* ``logfail:TEST-ID:text``: fail when they do (per-file or per-option outcomes that the
  report file does not itemise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from garrison.checks.schema import CheckDef

Verdict = Literal["pass", "fail", "skipped", "unknown"]
_LOG_TEST = re.compile(r"Performing test ID (\S+)")


@dataclass(frozen=True)
class Finding:
    kind: str  # warning, suggestion, details
    test: str
    text: str


@dataclass
class LynisReport:
    values: dict[str, list[str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    executed: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    log: dict[str, list[str]] = field(default_factory=dict)


def parse_report(text: str, log_text: str | None = None) -> LynisReport:
    rep = LynisReport()
    for line in text.splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.removesuffix("[]")
        rep.values.setdefault(key, []).append(value)
        if key in ("warning", "suggestion", "details"):
            parts = value.split("|")
            rep.findings.append(Finding(key, parts[0].split(":")[0], "|".join(parts[1:])))
        elif key == "tests_executed":
            rep.executed |= {t for t in value.split("|") if t}
        elif key == "tests_skipped":
            rep.skipped |= {t for t in value.split("|") if t}
    if log_text:
        rep.log = parse_log(log_text)
    return rep


def parse_log(text: str) -> dict[str, list[str]]:
    """Log lines grouped by the test that was running."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = _LOG_TEST.search(line)
        if m:
            current = m.group(1)
            out.setdefault(current, [])
            continue
        if "Skipped test" in line or line.rstrip().endswith("===="):
            current = None
        if current:
            out[current].append(line)
    return out


def _mentions(finding: Finding, needle: str) -> bool:
    return re.search(r"(?<![\w.])" + re.escape(needle) + r"(?![\w.])", finding.text) is not None


def ref_verdict(rep: LynisReport, ref: str) -> Verdict:
    if ref.startswith("report:"):
        key, _, want = ref[len("report:") :].partition("=")
        if key not in rep.values:
            return "unknown"
        return "pass" if want in rep.values[key] else "fail"
    if ref.startswith(("log:", "logfail:")):
        kind, _, rest = ref.partition(":")
        test, _, needle = rest.partition(":")
        if test not in rep.log:
            return "skipped" if test in rep.skipped else "unknown"
        logged = any(needle in line for line in rep.log[test])
        if kind == "log":
            return "pass" if logged else "fail"
        return "fail" if logged else "pass"
    test, _, needle = ref.partition(":")
    if test not in rep.executed:
        return "skipped" if test in rep.skipped else "unknown"
    hits = [f for f in rep.findings if f.test == test and f.kind in ("warning", "suggestion", "details")]
    if needle:
        hits = [f for f in hits if _mentions(f, needle)]
    return "fail" if hits else "pass"


def check_verdict(rep: LynisReport, check: CheckDef) -> Verdict | None:
    """Lynis's verdict on the controls of ``check``; None when the check has no Lynis reference."""
    if not check.lynis:
        return None
    verdicts = [ref_verdict(rep, r) for r in check.lynis]
    if "fail" in verdicts:
        return "fail"
    if "pass" in verdicts:
        return "pass"
    if all(v == "skipped" for v in verdicts):
        return "skipped"
    return "unknown"


def agrees(ours: str, theirs: Verdict) -> bool:
    """Whether a Garrison status and a Lynis verdict say the same thing."""
    return (ours, theirs) in {("pass", "pass"), ("fail", "fail"), ("not_applicable", "skipped")}
