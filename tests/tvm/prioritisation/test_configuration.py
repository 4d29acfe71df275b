"""Configuration recommendations from the configuration assessment (agent `assessment` uploads of
the shipped checks): ConfigurationChange recommendations, exposure, exceptions raising the
configuration score, remediation confirmed by a passing check, timeline and export."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from garrison.tvm.prioritisation import derive_events
from tests.server.conftest import upload
from tests.tvm.prioritisation.conftest import Agent, Env, api, recompute

FIREWALL = "scid-net.firewall-active"


def assess(agent: Agent, results: dict[str, str], generation: int) -> None:
    r = upload(agent.env.client, agent.enrolled, "assessment", {
        "mode": "full", "generation": generation, "assessed_at": dt.datetime.now(dt.UTC).isoformat(),
        "checks_version": "test", "os_family": "debian",
        "results": [{"check_id": c, "status": s, "evidence": {"message": f"{c}: {s}"}} for c, s in results.items()]})
    assert r.status_code == 200, r.text


def test_failed_checks_are_configuration_recommendations(env: Env) -> None:
    web = Agent(env, "web-1")
    web.inventory([])
    assess(web, {"net.firewall-active": "fail", "kernel.aslr": "pass"}, 1)
    recompute(env)
    rec = api(env, "GET", f"/api/recommendations/{FIREWALL}")
    assert rec["remediationType"] == "ConfigurationChange" and rec["recommendationCategory"] == "Network"
    assert rec["recommendationName"] == "Turn on a host firewall" and rec["severityScore"] == 9
    assert rec["configScoreImpact"] > 0 and rec["exposedMachinesCount"] == 1 and rec["exposureImpact"] > 0
    assert rec["remediation"]
    ex = api(env, "GET", f"/api/machines/{web.id}/exposure")
    [item] = ex["contributions"]
    assert item["recommendationId"] == FIREWALL and item["hazard"] == pytest.approx(0.09)
    assert ex["computedScore"] == pytest.approx(100 * (1 - 2.718281828459045 ** (-0.09 / 2.4)), abs=0.01)
    assert [m["id"] for m in api(env, "GET", f"/api/recommendations/{FIREWALL}/machineReferences")["value"]] == [web.id]

    score = api(env, "GET", "/api/configurationScore")
    assert 0 < score["score"] < 100
    api(env, "POST", "/api/recommendationExceptions", role="security_operator", expect=201, json={
        "recommendationId": FIREWALL, "justification": "ThirdPartyControl", "scope": "DeviceGroups",
        "rbacGroupIds": [api(env, "GET", f"/api/machines/{web.id}")["rbacGroupId"]]})
    assert api(env, "GET", "/api/configurationScore")["score"] > score["score"]
    assert api(env, "GET", f"/api/machines/{web.id}")["exposureScore"] == 0

    due = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).isoformat()
    task = api(env, "POST", "/api/remediationTasks", role="security_operator", expect=201,
               json={"recommendationId": FIREWALL, "dueOn": due})
    assert task["category"] == "SecurityConfiguration" and task["scid"] == "net.firewall-active"
    assess(web, {"net.firewall-active": "pass", "kernel.aslr": "pass"}, 2)
    recompute(env)
    done = api(env, "GET", f"/api/remediationTasks/{task['id']}")
    assert done["status"] == "Completed" and done["completedBy"] == "System confirmation"
    api(env, "GET", f"/api/recommendations/{FIREWALL}", expect=404)


def test_configuration_timeline_and_export(env: Env) -> None:
    web = Agent(env, "web-1")
    web.inventory([])
    assess(web, {"net.firewall-active": "pass", "kernel.aslr": "pass"}, 1)
    derive_events(env.store, env.a.id)
    assess(web, {"net.firewall-active": "fail", "kernel.aslr": "pass"}, 2)
    derive_events(env.store, env.a.id)
    evs = api(env, "GET", "/api/eventTimeline", params={"eventType": "NewConfigurationAssessment"})["value"]
    assert [(e["scid"], e["originallyImpactedDevices"]) for e in evs] == [("net.firewall-active", 1)]
    assert evs[0]["recommendationId"] == FIREWALL and evs[0]["severity"] == "Critical"
    r = env.client.get("/api/machines/SecureConfigurationsAssessmentExport", headers=env.a.headers())
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(x) for x in r.text.splitlines()]
    assert {(x["ConfigurationId"], x["IsCompliant"]) for x in rows} >= {("net.firewall-active", False),
                                                                        ("kernel.aslr", True)}
