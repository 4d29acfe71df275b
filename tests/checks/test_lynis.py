"""Reading a real Lynis 3.0.8 report of this Debian 12 machine (tests/data/assessment/lynis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.checks import builtin_checks
from garrison.checks.lynis import LynisReport, agrees, check_verdict, parse_report, ref_verdict

DATA = Path(__file__).resolve().parents[1] / "data" / "assessment" / "lynis"


@pytest.fixture(scope="module")
def report() -> LynisReport:
    return parse_report((DATA / "lynis-report.dat").read_text(), (DATA / "lynis.log").read_text())


def test_report_values_and_findings(report: LynisReport) -> None:
    assert report.values["lynis_version"] == ["3.0.8"]
    assert report.values["os_name"] == ["Debian"]
    assert "KRNL-6000" in report.executed and "SSH-7408" in report.skipped
    kinds = {f.kind for f in report.findings}
    assert {"warning", "suggestion", "details"} <= kinds


def test_sysctl_details_per_key(report: LynisReport) -> None:
    assert ref_verdict(report, "KRNL-6000:kernel.randomize_va_space") == "pass"
    assert ref_verdict(report, "KRNL-6000:kernel.kptr_restrict") == "fail"
    # 'all' and 'default' variants are told apart.
    assert ref_verdict(report, "KRNL-6000:net.ipv4.conf.all.accept_source_route") == "pass"
    assert ref_verdict(report, "KRNL-6000:net.ipv4.conf.default.accept_source_route") == "fail"


def test_suggestions_with_text(report: LynisReport) -> None:
    assert ref_verdict(report, "FILE-6310:/tmp") == "fail"
    assert ref_verdict(report, "AUTH-9286:maximum") == "fail"
    assert ref_verdict(report, "AUTH-9204") == "pass"
    assert ref_verdict(report, "SSH-7408:PermitRootLogin") == "skipped"  # no SSH daemon on this machine


def test_report_facts_and_log(report: LynisReport) -> None:
    assert ref_verdict(report, "report:cpu_nx=1") == "pass"
    assert ref_verdict(report, "report:audit_daemon_running=1") == "fail"
    assert ref_verdict(report, "report:no_such_key=1") == "unknown"
    assert (
        ref_verdict(report, "logfail:FILE-6374:Could not find mount option noexec on file system /dev/shm")
        == "fail"
    )
    assert ref_verdict(report, "logfail:FILE-7524:permissions of file /etc/passwd are not") == "pass"
    assert ref_verdict(report, "log:MACF-6290:found implemented MAC framework") == "fail"


def test_every_reference_in_the_checks_is_understood(report: LynisReport) -> None:
    refs = [(c.id, r) for c in builtin_checks() for r in c.lynis]
    assert len(refs) > 60
    unknown = [(cid, r) for cid, r in refs if ref_verdict(report, r) == "unknown"]
    assert unknown == []
    for c in builtin_checks():
        if c.lynis:
            assert check_verdict(report, c) in ("pass", "fail", "skipped")


def test_agreement_rules() -> None:
    assert agrees("pass", "pass") and agrees("fail", "fail") and agrees("not_applicable", "skipped")
    assert not agrees("pass", "fail") and not agrees("error", "fail")
