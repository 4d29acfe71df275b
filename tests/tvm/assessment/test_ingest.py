"""Ingest of assessment uploads: full sets, deltas, resync, change events, tenant isolation."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from garrison.checks import builtin_checks
from garrison.store.models.assessment import (
    AssessmentCheck,
    AssessmentEvent,
    DeviceAssessmentResult,
    DeviceAssessmentState,
)
from garrison.tvm.assessment import (
    assessment_events,
    devices_needing_resync,
    ingest_assessment,
    resync_kinds,
    sync_check_kb,
)
from tests.tvm.assessment.conftest import NOW, Fleet, make_fleet, report

BASE = {
    "kernel.aslr": "pass",
    "acct.uid0-only-root": "pass",
    "net.firewall-active": "fail",
    "ssh.permit-root-login": "not_applicable",
}


def rows(fleet: Fleet, device: str) -> dict[str, str]:
    with fleet.store.tenant(fleet.tenant) as s:
        q = select(DeviceAssessmentResult).where(DeviceAssessmentResult.device_id == fleet.devices[device])
        return {r.check_id: r.status for r in s.scalars(q)}


def test_full_report_stores_results_and_state(fleet: Fleet) -> None:
    ev = {"net.firewall-active": {"value": "none", "message": "no host firewall is configured"}}
    with fleet.store.tenant(fleet.tenant) as s:
        res = ingest_assessment(s, fleet.devices["web1"], report(BASE, evidence=ev), now=NOW)
    assert (res.applied, res.resync_needed, res.generation, res.changed, res.new_checks) == (
        True,
        False,
        1,
        [],
        [],
    )
    assert rows(fleet, "web1") == BASE
    with fleet.store.tenant(fleet.tenant) as s:
        st = s.get(DeviceAssessmentState, fleet.devices["web1"])
        assert (st.generation, st.checks_version, st.os_family) == (1, "test", "debian")
        assert st.counts == {"pass": 2, "fail": 1, "not_applicable": 1}
        assert st.assessed_at == NOW
        fw = s.get(DeviceAssessmentResult, (fleet.devices["web1"], "net.firewall-active"))
        assert fw.evidence == {"value": "none", "message": "no host firewall is configured"}
        # The first assessment is the baseline: no change events, no "check added" flood.
        assert s.scalars(select(AssessmentEvent)).all() == []
        # The knowledge base was synced from the shipped checks.
        assert s.get(AssessmentCheck, "kernel.aslr").impact == builtin_checks().get("kernel.aslr").impact


def test_delta_changes_results_and_records_events(fleet: Fleet) -> None:
    dev = fleet.devices["web1"]
    later = NOW + dt.timedelta(hours=4)
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(s, dev, report(BASE), now=NOW)
    with fleet.store.tenant(fleet.tenant) as s:
        res = ingest_assessment(
            s,
            dev,
            report(
                {"net.firewall-active": "pass", "kernel.aslr": "fail"},
                mode="delta",
                generation=2,
                base=1,
                at=later,
                evidence={"kernel.aslr": {"value": "0", "file": "/proc/sys/kernel/randomize_va_space"}},
            ),
            now=later,
        )
    assert res.applied and sorted(res.changed) == ["kernel.aslr", "net.firewall-active"]
    assert rows(fleet, "web1") == {**BASE, "net.firewall-active": "pass", "kernel.aslr": "fail"}
    with fleet.store.tenant(fleet.tenant) as s:
        events = assessment_events(s, device_id=dev)
        assert {(e["checkId"], e["oldStatus"], e["newStatus"]) for e in events} == {
            ("kernel.aslr", "pass", "fail"),
            ("net.firewall-active", "fail", "pass"),
        }
        assert all(
            e["eventType"] == "NewConfigurationAssessment" and e["reason"] == "status_changed" for e in events
        )
        aslr = next(e for e in events if e["checkId"] == "kernel.aslr")
        assert aslr["evidence"]["value"] == "0"
        assert s.get(DeviceAssessmentState, dev).assessed_at == later


def test_delta_on_the_wrong_generation_asks_for_a_resync(fleet: Fleet) -> None:
    dev = fleet.devices["web1"]
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(s, dev, report(BASE), now=NOW)
    with fleet.store.tenant(fleet.tenant) as s:
        res = ingest_assessment(
            s, dev, report({"kernel.aslr": "fail"}, mode="delta", generation=5, base=4), now=NOW
        )
        assert (res.applied, res.resync_needed) == (False, True)
        assert resync_kinds(s, dev) == ["assessment"]
        assert devices_needing_resync(s) == [dev]
    assert rows(fleet, "web1")["kernel.aslr"] == "pass"  # nothing applied
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(s, dev, report({**BASE, "kernel.aslr": "fail"}, generation=6), now=NOW)
        assert resync_kinds(s, dev) == []
    assert rows(fleet, "web1")["kernel.aslr"] == "fail"


def test_delta_for_a_device_never_seen_asks_for_a_resync(fleet: Fleet) -> None:
    with fleet.store.tenant(fleet.tenant) as s:
        res = ingest_assessment(
            s,
            fleet.devices["db1"],
            report({"kernel.aslr": "pass"}, mode="delta", generation=2, base=1),
            now=NOW,
        )
        assert res.resync_needed and resync_kinds(s, fleet.devices["db1"]) == ["assessment"]


def test_checks_leave_with_full_sets_and_delta_removals(fleet: Fleet) -> None:
    dev = fleet.devices["web1"]
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(s, dev, report(BASE), now=NOW)
        ingest_assessment(
            s,
            dev,
            report(
                {"kernel.aslr": "pass", "acct.uid0-only-root": "pass", "net.firewall-active": "fail"},
                generation=2,
            ),
            now=NOW,
        )
    assert "ssh.permit-root-login" not in rows(fleet, "web1")
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(
            s, dev, report({}, mode="delta", generation=3, base=2, removed=["kernel.aslr"]), now=NOW
        )
    assert set(rows(fleet, "web1")) == {"acct.uid0-only-root", "net.firewall-active"}


def test_a_check_new_to_the_tenant_is_an_event(fleet: Fleet) -> None:
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(s, fleet.devices["web1"], report(BASE), now=NOW)
        res = ingest_assessment(
            s, fleet.devices["db1"], report({**BASE, "kernel.suid-dumpable": "fail"}), now=NOW
        )
        assert res.new_checks == ["kernel.suid-dumpable"]
        (event,) = assessment_events(s, check_id="kernel.suid-dumpable")
        assert (event["reason"], event["deviceId"], event["newStatus"]) == ("check_added", None, "fail")
        # A third device reporting it again is no news.
        res = ingest_assessment(s, fleet.devices["lab1"], report({"kernel.suid-dumpable": "pass"}), now=NOW)
        assert res.new_checks == []


def test_reports_are_validated(fleet: Fleet) -> None:
    with fleet.store.tenant(fleet.tenant) as s:
        with pytest.raises(ValidationError):
            ingest_assessment(
                s,
                fleet.devices["web1"],
                {
                    "mode": "full",
                    "generation": 1,
                    "assessed_at": NOW,
                    "results": [{"check_id": "x; DROP TABLE", "status": "pass"}],
                },
            )
        with pytest.raises(ValidationError):
            ingest_assessment(
                s, fleet.devices["web1"], {"mode": "delta", "generation": 2, "assessed_at": NOW}
            )
        with pytest.raises(ValidationError):
            ingest_assessment(
                s,
                fleet.devices["web1"],
                {
                    "mode": "full",
                    "generation": 1,
                    "assessed_at": NOW,
                    "results": [{"check_id": "kernel.aslr", "status": "ok"}],
                },
            )


def test_tenants_are_isolated(fleet: Fleet) -> None:
    other = make_fleet(fleet.store, "globex")
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(s, fleet.devices["web1"], report(BASE), now=NOW)
    with fleet.store.tenant(other.tenant) as s:
        assert s.scalars(select(DeviceAssessmentResult)).all() == []
        with pytest.raises(LookupError):
            ingest_assessment(s, fleet.devices["web1"], report(BASE), now=NOW)


def test_kb_sync_marks_removed_checks(fleet: Fleet) -> None:
    from garrison.checks import CheckSet

    full = builtin_checks()
    smaller = CheckSet({k: v for k, v in full.checks.items() if k != "kernel.aslr"}, version="v2")
    with fleet.store.system() as s:
        sync_check_kb(s, full)
        sync_check_kb(s, smaller)
        assert s.get(AssessmentCheck, "kernel.aslr").removed_at is not None
        assert s.get(AssessmentCheck, "acct.uid0-only-root").removed_at is None
        sync_check_kb(s, full)
        assert s.get(AssessmentCheck, "kernel.aslr").removed_at is None
