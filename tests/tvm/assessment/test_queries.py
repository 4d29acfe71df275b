"""Rows for the API and the hunting tables, and the whole path from agent to score."""

from __future__ import annotations

from pathlib import Path

from garrison.agent.collectors.assessment import AssessmentCollector
from garrison.checks import builtin_checks
from garrison.protocol.assessment import AssessmentReport
from garrison.store.db import run_sql
from garrison.tvm.assessment import (
    assessment_by_machine,
    device_assessment,
    devices_for_check,
    failed_checks_for_recommendations,
    ingest_assessment,
    secure_configuration_assessment_rows,
    secure_configuration_kb_rows,
    secure_score,
)
from tests.agent.assessment.test_evaluator import debian_tree
from tests.agent.assessment.tree import Tree
from tests.tvm.assessment.conftest import NOW, Fleet, make_fleet, report

EXPORT_FIELDS = {
    "DeviceId",
    "DeviceName",
    "OSPlatform",
    "RbacGroupName",
    "ConfigurationId",
    "ConfigurationName",
    "ConfigurationCategory",
    "ConfigurationSubcategory",
    "ConfigurationImpact",
    "IsCompliant",
    "IsApplicable",
    "IsExpectedUserImpact",
    "Timestamp",
}
RESULTS = {
    "kernel.aslr": "pass",
    "net.firewall-active": "fail",
    "ssh.permit-root-login": "not_applicable",
    "acct.uid0-only-root": "error",
}


def loaded(fleet: Fleet) -> Fleet:
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(
            s,
            fleet.devices["web1"],
            report(
                RESULTS,
                evidence={
                    "net.firewall-active": {"value": "none", "message": "no host firewall is configured"}
                },
            ),
            now=NOW,
        )
        ingest_assessment(s, fleet.devices["db1"], report({"kernel.aslr": "fail"}), now=NOW)
    return fleet


def test_export_assessment_by_machine(fleet: Fleet) -> None:
    loaded(fleet)
    with fleet.store.tenant(fleet.tenant) as s:
        rows = assessment_by_machine(s)
        assert len(rows) == 5 and all(set(r) == EXPORT_FIELDS for r in rows)
        web = {r["ConfigurationId"]: r for r in assessment_by_machine(s, [fleet.devices["web1"]])}
    assert set(web) == set(RESULTS)
    fw = web["net.firewall-active"]
    assert (fw["DeviceName"], fw["OSPlatform"], fw["RbacGroupName"]) == ("web1.acme.test", "Debian", "web")
    assert (fw["ConfigurationCategory"], fw["ConfigurationSubcategory"], fw["ConfigurationImpact"]) == (
        "Network",
        "Firewall",
        9,
    )
    assert (fw["IsCompliant"], fw["IsApplicable"], fw["Timestamp"]) == (False, True, "2026-03-02T12:00:00Z")
    assert (web["kernel.aslr"]["IsCompliant"], web["kernel.aslr"]["IsApplicable"]) == (True, True)
    assert (web["ssh.permit-root-login"]["IsCompliant"], web["ssh.permit-root-login"]["IsApplicable"]) == (
        False,
        False,
    )
    assert (web["acct.uid0-only-root"]["IsCompliant"], web["acct.uid0-only-root"]["IsApplicable"]) == (
        False,
        True,
    )


def test_device_and_check_views(fleet: Fleet) -> None:
    loaded(fleet)
    with fleet.store.tenant(fleet.tenant) as s:
        dev = {r["checkId"]: r for r in device_assessment(s, fleet.devices["web1"])}
        assert dev["net.firewall-active"]["evidence"] == {
            "value": "none",
            "message": "no host firewall is configured",
        }
        assert dev["net.firewall-active"]["title"] == builtin_checks().get("net.firewall-active").title
        per_check = devices_for_check(s, "kernel.aslr")
        assert {(r["DeviceName"], r["status"]) for r in per_check} == {
            ("web1.acme.test", "pass"),
            ("db1.acme.test", "fail"),
        }
        assert [r["DeviceName"] for r in devices_for_check(s, "kernel.aslr", ["fail"])] == ["db1.acme.test"]


def test_hunting_tables_as_functions_and_sql_views(fleet: Fleet) -> None:
    loaded(fleet)
    other = make_fleet(fleet.store, "globex")
    with other.store.tenant(other.tenant) as s:
        ingest_assessment(s, other.devices["web1"], report({"kernel.aslr": "fail"}), now=NOW)
    with fleet.store.tenant(fleet.tenant) as s:
        rows = secure_configuration_assessment_rows(s)
        assert len(rows) == 5  # the other tenant's row is not here
        fw = next(r for r in rows if r["ConfigurationId"] == "net.firewall-active")
        assert fw["Context"]["value"] == "none" and fw["IsCompliant"] is False
        kb = secure_configuration_kb_rows(s)
        assert len(kb) == len(builtin_checks())
        aslr = next(r for r in kb if r["ConfigurationId"] == "kernel.aslr")
        assert aslr["RelatedMitreTechniques"] == list(builtin_checks().get("kernel.aslr").mitre_techniques)
        assert aslr["ConfigurationName"] and aslr["RiskDescription"]

        # The SQL views (hunting queries run on them) give the same rows on SQLite and PostgreSQL.
        view = run_sql(  # hand-written SQL in a tenant session goes through the tenant guard's helper
            s,
            'SELECT "DeviceName", "ConfigurationId", "ConfigurationCategory", "ConfigurationImpact", '
            '"IsCompliant", "IsApplicable", "Timestamp" FROM "DeviceTvmSecureConfigurationAssessment" '
            'WHERE "TenantId" = :tenant ORDER BY "DeviceName", "ConfigurationId"',
        ).all()
        assert len(view) == 5
        as_dict = {(r[0], r[1]): r for r in view}
        row = as_dict[("web1.acme.test", "net.firewall-active")]
        assert (row[2], row[3], bool(row[4]), bool(row[5])) == ("Network", 9, False, True)
        assert bool(as_dict[("web1.acme.test", "ssh.permit-root-login")][5]) is False
        n_kb = run_sql(s, 'SELECT count(*) FROM "DeviceTvmSecureConfigurationAssessmentKB"').scalar()
        assert n_kb == len(builtin_checks())
        impact = run_sql(
            s, 'SELECT "ConfigurationImpact" FROM "DeviceTvmSecureConfigurationAssessmentKB" WHERE "ConfigurationId" = :c',
            {"c": "kernel.aslr"},
        ).scalar()
        assert impact == builtin_checks().get("kernel.aslr").impact


def test_agent_to_secure_score(fleet: Fleet, tmp_path: Path) -> None:
    """The collector's uploads, ingested as the server would, give the score of that device."""
    root = tmp_path / "root"
    root.mkdir()
    tree = debian_tree(Tree(root))
    ctx = tree.ctx()
    col = AssessmentCollector()
    dev = fleet.devices["web1"]
    ((kind, payload),) = col.collect(ctx)
    assert kind == "assessment"
    with fleet.store.tenant(fleet.tenant) as s:
        assert ingest_assessment(s, dev, payload).applied
        before = secure_score(s)
        recs = {r.check_id: r for r in failed_checks_for_recommendations(s)}
    assert before["devices"] == 1 and 0 < before["overall"] < 100
    assert "ssh.permit-root-login" in recs and recs["ssh.permit-root-login"].exposed_device_ids == [dev]

    cfg = tree.p("/etc/ssh/sshd_config")
    cfg.write_text("PermitRootLogin no\n" + cfg.read_text())
    ((_, delta),) = col.collect(ctx)
    assert AssessmentReport.model_validate(delta).mode == "delta"
    with fleet.store.tenant(fleet.tenant) as s:
        assert ingest_assessment(s, dev, delta).applied
        after = secure_score(s)
    gain = recs["ssh.permit-root-login"].config_score_impact
    assert (
        abs(after["overall"] - (before["overall"] + gain)) < 0.02
    )  # configScoreImpact is what fixing it gives
