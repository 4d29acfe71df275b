"""Secure Score for Devices: the formula of docs/secure-score.md, worked by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from garrison.checks import builtin_checks
from garrison.tvm.assessment import (
    configuration_score,
    device_secure_score,
    failed_checks_for_recommendations,
    ingest_assessment,
    record_daily_history,
    secure_score,
    secure_score_history,
)
from tests.tvm.assessment.conftest import NOW, Fleet, report

# Impacts of the checks used below, as shipped (the test stops if the data changes them).
IMPACT = {"kernel.aslr": 8, "acct.uid0-only-root": 9, "net.firewall-active": 9, "ssh.permit-root-login": 8}
ALL_FAIL = {k: "fail" for k in IMPACT}


@pytest.fixture
def scored(fleet: Fleet) -> Fleet:
    for cid, impact in IMPACT.items():
        assert builtin_checks().get(cid).impact == impact, cid
    d = fleet.devices
    with fleet.store.tenant(fleet.tenant) as s:
        ingest_assessment(
            s,
            d["web1"],
            report(
                {
                    "kernel.aslr": "pass",
                    "acct.uid0-only-root": "pass",
                    "net.firewall-active": "fail",
                    "ssh.permit-root-login": "not_applicable",
                }
            ),
            now=NOW,
        )
        ingest_assessment(
            s,
            d["db1"],
            report(
                {
                    "kernel.aslr": "fail",
                    "acct.uid0-only-root": "pass",
                    "net.firewall-active": "error",
                    "ssh.permit-root-login": "pass",
                }
            ),
            now=NOW,
        )
        ingest_assessment(s, d["lab1"], report({"kernel.aslr": "pass"}), now=NOW)
        # Neither counts: one offboarded, one not assessed for 40 days.
        ingest_assessment(s, d["gone"], report(ALL_FAIL), now=NOW)
        ingest_assessment(s, d["stale"], report(ALL_FAIL, at=NOW - dt.timedelta(days=40)), now=NOW)
    return fleet


def test_organisation_score_and_categories(scored: Fleet) -> None:
    # web1: 8+9 of 26, db1: 9+8 of 34 (the error counts as not passed), lab1: 8 of 8 -> 42/68.
    with scored.store.tenant(scored.tenant) as s:
        score = secure_score(s, now=NOW)
    assert score["overall"] == round(100 * 42 / 68, 2) == 61.76
    assert (score["points"], score["max_points"], score["devices"]) == (42, 68, 3)
    assert score["categories"] == {
        "OS": round(100 * 16 / 24, 2),  # kernel.aslr on 3 devices, 1 failing
        "Accounts": 100.0,
        "Network": round(100 * 8 / 26, 2),  # firewall fail + error (9 + 9), PermitRootLogin pass (8)
        "Application": None,  # nothing applicable assessed
        "SecurityControls": None,
    }


def test_device_group_and_device_scores(scored: Fleet) -> None:
    with scored.store.tenant(scored.tenant) as s:
        web = secure_score(s, [scored.groups["web"]], now=NOW)
        assert (web["overall"], web["devices"]) == (round(100 * 17 / 26, 2), 1)  # gone/stale excluded
        both = secure_score(s, [scored.groups["web"], scored.groups["db"]], now=NOW)
        assert both["overall"] == round(100 * 34 / 60, 2)
        assert device_secure_score(s, scored.devices["db1"], now=NOW)["overall"] == 50.0
        assert device_secure_score(s, scored.devices["lab1"], now=NOW)["categories"]["OS"] == 100.0


def test_risk_reducing_exceptions_count_as_passed(scored: Fleet) -> None:
    with scored.store.tenant(scored.tenant) as s:
        everywhere = secure_score(s, excepted_check_ids={"net.firewall-active": None}, now=NOW)
        assert everywhere["overall"] == round(100 * 60 / 68, 2)
        db_only = secure_score(s, excepted_check_ids={"net.firewall-active": [scored.groups["db"]]}, now=NOW)
        assert db_only["overall"] == round(100 * 51 / 68, 2)  # covers db1's error, not web1's fail
        unrelated = secure_score(s, excepted_check_ids={"kernel.aslr": [scored.groups["web"]]}, now=NOW)
        assert unrelated["overall"] == 61.76  # web1 passes aslr anyway; db1 is not in the scope


def test_configuration_score_api_shape(scored: Fleet) -> None:
    with scored.store.tenant(scored.tenant) as s:
        org = configuration_score(s, now=NOW)
        assert org["time"] == "2026-03-02T12:00:00Z"
        assert (org["score"], org["rbacGroupName"], org["rbacGroupId"]) == (61.76, None, None)
        web = configuration_score(s, [scored.groups["web"]], now=NOW)
        assert (web["rbacGroupName"], web["rbacGroupId"]) == ("web", scored.groups["web"])


def test_daily_history(scored: Fleet) -> None:
    day1, day2 = NOW.date(), NOW.date() + dt.timedelta(days=1)
    with scored.store.tenant(scored.tenant) as s:
        rows = record_daily_history(s, day1, now=NOW)
        assert [r.scope for r in rows] == [
            "org",
            f"group:{scored.groups['web']}",
            f"group:{scored.groups['db']}",
        ]
    with scored.store.tenant(scored.tenant) as s:  # db1 fixes its ASLR setting the next day
        ingest_assessment(
            s,
            scored.devices["db1"],
            report({"kernel.aslr": "pass"}, mode="delta", generation=2, base=1),
            now=NOW + dt.timedelta(days=1),
        )
        record_daily_history(s, day2, now=NOW + dt.timedelta(days=1))
        record_daily_history(s, day2, now=NOW + dt.timedelta(days=1))  # re-running a day replaces it
    with scored.store.tenant(scored.tenant) as s:
        org = secure_score_history(s)
        assert [(h["date"], h["score"]) for h in org] == [
            ("2026-03-02", 61.76),
            ("2026-03-03", round(100 * 50 / 68, 2)),
        ]
        assert org[1]["categories"]["OS"] == 100.0
        db = secure_score_history(s, scored.groups["db"], since=day2)
        assert [(h["date"], h["score"]) for h in db] == [("2026-03-03", round(100 * 25 / 34, 2))]


def test_failed_checks_become_configuration_recommendations(scored: Fleet) -> None:
    with scored.store.tenant(scored.tenant) as s:
        recs = failed_checks_for_recommendations(s, now=NOW)
    assert [r.check_id for r in recs] == ["net.firewall-active", "kernel.aslr"]
    fw, aslr = recs
    assert fw.exposed_device_ids == [scored.devices["web1"]]
    assert fw.error_device_ids == [scored.devices["db1"]]
    assert fw.config_score_impact == round(100 * 9 / 68, 2)
    assert (fw.total_device_count, fw.severity_score, fw.remediation_type) == (2, 9, "ConfigurationChange")
    assert fw.category == "Network" and "ufw" in fw.remediation
    assert aslr.exposed_device_ids == [scored.devices["db1"]] and aslr.exposed_machines_count == 1
    assert aslr.config_score_impact == round(100 * 8 / 68, 2)
    # Fixing what a recommendation names raises the score by its configScoreImpact.
    with scored.store.tenant(scored.tenant) as s:
        ingest_assessment(
            s,
            scored.devices["db1"],
            report({"kernel.aslr": "pass"}, mode="delta", generation=2, base=1),
            now=NOW,
        )
        assert secure_score(s, now=NOW)["overall"] == pytest.approx(
            61.76 + aslr.config_score_impact, abs=0.02
        )  # rounding


def test_empty_tenant(fleet: Fleet) -> None:
    with fleet.store.tenant(fleet.tenant) as s:
        score = secure_score(s, now=NOW)
        assert (score["overall"], score["devices"]) == (None, 0)
        assert configuration_score(s, now=NOW)["score"] == 0.0
        assert failed_checks_for_recommendations(s, now=NOW) == []


def test_exceptions_in_force_are_read_from_the_exceptions_engine(scored: Fleet) -> None:
    """Without an explicit mapping the score uses the recommendations' exceptions (their tables)."""
    from garrison.store.models.prioritisation import RecommendationException, RecommendationExceptionGroup
    from garrison.tvm.assessment.score import risk_reduced_exceptions

    later = NOW + dt.timedelta(days=30)
    with scored.store.tenant(scored.tenant) as s:
        accepted = RecommendationException(
            recommendation_id="scid-net.firewall-active",
            justification="RiskAccepted",
            scope="Global",
            expires_at=later,
        )
        s.add(accepted)
        s.flush()
        assert secure_score(s, now=NOW)["overall"] == 61.76  # risk accepted changes no score
        accepted.status = "Cancelled"
        grouped = RecommendationException(
            recommendation_id="scid-net.firewall-active",
            justification="AlternateMitigation",
            scope="DeviceGroups",
            expires_at=later,
        )
        s.add(grouped)
        s.flush()
        s.add(
            RecommendationExceptionGroup(
                exception_id=grouped.id, group_id=scored.groups["db"], group_name="db"
            )
        )
        s.flush()
        assert risk_reduced_exceptions(s, NOW) == {"net.firewall-active": [scored.groups["db"]]}
        assert secure_score(s, now=NOW)["overall"] == round(100 * 51 / 68, 2)
        s.add(
            RecommendationException(
                recommendation_id="scid-net.firewall-active",
                justification="ThirdPartyControl",
                scope="Global",
                expires_at=later,
            )
        )
        s.flush()
        assert secure_score(s, now=NOW)["overall"] == round(100 * 60 / 68, 2)
        assert secure_score(s, excepted_check_ids={}, now=NOW)["overall"] == 61.76  # explicitly none
        # An expired exception no longer counts.
        assert risk_reduced_exceptions(s, later + dt.timedelta(seconds=1)) == {}
