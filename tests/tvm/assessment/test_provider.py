"""What the prioritisation engine takes from the assessment: failed checks, catalog, failing
devices, timeline change records and the export rows."""

from __future__ import annotations

import datetime as dt

from garrison.tvm.assessment import (
    assessment_changes,
    check_catalog,
    export_assessments,
    failed_checks,
    failing_devices_stmt,
    ingest_assessment,
    secure_score,
)
from tests.tvm.assessment.conftest import NOW, Fleet, report

WEB = {"kernel.aslr": "pass", "net.firewall-active": "fail", "acct.uid0-only-root": "error"}


def load(fleet: Fleet) -> Fleet:
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(s, fleet.devices["web1"], report(WEB), now=NOW)
        ingest_assessment(
            s, fleet.devices["db1"], report({"kernel.aslr": "fail", "net.firewall-active": "fail"}), now=NOW
        )
        ingest_assessment(s, fleet.devices["gone"], report({"kernel.aslr": "fail"}), now=NOW)  # offboarded
    return fleet


def test_failed_checks_and_catalog(fleet: Fleet) -> None:
    load(fleet)
    d = fleet.devices
    with fleet.store.tenant(fleet.tenant) as s:
        rows = failed_checks(s, now=NOW)
        assert sorted(rows) == sorted(
            [
                (d["web1"], "net.firewall-active", 9),
                (d["db1"], "kernel.aslr", 8),
                (d["db1"], "net.firewall-active", 9),
            ]
        )
        cat = check_catalog(s, ["net.firewall-active", "kernel.aslr"], now=NOW)
        assert cat["net.firewall-active"]["name"] == "Turn on a host firewall"
        assert (cat["net.firewall-active"]["impact"], cat["net.firewall-active"]["category"]) == (
            9,
            "Network",
        )
        assert cat["net.firewall-active"]["scoreImpact"] > cat["kernel.aslr"]["scoreImpact"] > 0
        assert check_catalog(s, []) == {}
        failing = {r[0] for r in s.execute(failing_devices_stmt("net.firewall-active"))}
        assert failing == {d["web1"], d["db1"]}
        assert secure_score(s, None)["score"] == secure_score(s, None)["overall"]


def test_changes_for_the_timeline(fleet: Fleet) -> None:
    load(fleet)
    d = fleet.devices
    later = NOW + dt.timedelta(hours=1)
    with fleet.store.tenant(fleet.tenant) as s:
        assert assessment_changes(s, 0) == []  # the baseline is no news
        ingest_assessment(
            s,
            d["web1"],
            report({"kernel.aslr": "fail"}, mode="delta", generation=2, base=1, at=later),
            now=later,
        )
        ingest_assessment(
            s,
            d["db1"],
            report({"kernel.aslr": "pass"}, mode="delta", generation=2, base=1, at=later),
            now=later,
        )
        ingest_assessment(
            s, d["lab1"], report({"kernel.aslr": "pass", "kernel.suid-dumpable": "fail"}), now=later
        )
        changes = assessment_changes(s, 0)
        real = [c for c in changes if c["kind"] != "none"]
        assert [(c["kind"], c["check_id"], c["device_ids"]) for c in real] == [
            ("status_changed", "kernel.aslr", [d["web1"]]),  # db1's fix is not a timeline event
            ("check_added", "kernel.suid-dumpable", [d["lab1"]]),
        ]
        cursor = max(c["id"] for c in changes)
        assert assessment_changes(s, cursor) == []


def test_export_rows_scope_and_since(fleet: Fleet) -> None:
    load(fleet)
    with fleet.store.tenant(fleet.tenant) as s:
        everything = list(export_assessments(s))
        assert len(everything) == 6
        web_only = list(export_assessments(s, (fleet.groups["web"],)))
        assert {r["DeviceName"] for r in web_only} == {"web1.acme.test", "gone.acme.test"}
        assert list(export_assessments(s, None, NOW + dt.timedelta(minutes=1))) == []
        assert len(list(export_assessments(s, None, NOW))) == 6


def test_the_prioritisation_adapter_sees_it(fleet: Fleet) -> None:
    from garrison.tvm.prioritisation import config

    now = dt.datetime.now(dt.UTC)  # the adapter asks about "now"
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(s, fleet.devices["web1"], report(WEB, at=now), now=now)
    assert config.available() and config.has_secure_score()
    with fleet.store.tenant(fleet.tenant) as s:
        assert config.failed_checks(s) == [(fleet.devices["web1"], "net.firewall-active", 9.0)]
        assert config.check_catalog(s, ["net.firewall-active"])["net.firewall-active"]["scoreImpact"] > 0
        assert config.secure_score(s, None)["score"] == round(100 * 8 / 26, 2)
