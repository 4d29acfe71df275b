"""Configuration assessment end to end: the real evaluator on this machine, uploaded through the
agent endpoint, read back through Defender's export-assessment API."""

from __future__ import annotations

from pathlib import Path

from garrison.agent.collectors.base import AgentContext, load_all
from tests.server.conftest import Env, device_report, enroll, upload


def _assessment_payload(tmp_path: Path) -> dict:
    collectors = load_all()
    ctx = AgentContext(state_dir=tmp_path, agent_version="0.1.0")
    uploads = collectors["assessment"]().collect(ctx)
    kinds = [k for k, _ in uploads]
    assert kinds == ["assessment"]
    return uploads[0][1]


def test_export_assessment_by_machine(env: Env, tmp_path: Path) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    assert upload(env.client, dev, "device", device_report("cfg-host")).status_code == 200
    payload = _assessment_payload(tmp_path)
    r = upload(env.client, dev, "assessment", payload)
    assert r.status_code == 200, r.text
    h = env.a.headers("analyst")
    rows = env.client.get("/api/machines/SecureConfigurationsAssessmentByMachine", headers=h,
                          params={"$filter": f"DeviceId eq '{dev['device_id']}'"}).json()["value"]
    assert len(rows) == len(payload["results"])
    row = rows[0]
    for f in ["DeviceId", "DeviceName", "OSPlatform", "ConfigurationId", "ConfigurationCategory",
              "ConfigurationSubcategory", "ConfigurationImpact", "IsCompliant", "IsApplicable", "Timestamp"]:
        assert f in row, f
    by_id = {r["ConfigurationId"]: r for r in rows}
    for result in payload["results"]:
        got = by_id[result["check_id"]]
        assert got["IsCompliant"] == (result["status"] == "pass")
        assert got["IsApplicable"] == (result["status"] != "not_applicable")
    mine = env.client.get(f"/api/machines/{dev['device_id']}/configurationAssessment", headers=h).json()["value"]
    assert {m["checkId"] for m in mine} == set(by_id)
    failing = next(r["check_id"] for r in payload["results"] if r["status"] == "fail")
    refs = env.client.get(f"/api/configurationChecks/{failing}/machineReferences", headers=h).json()["value"]
    assert [x["DeviceId"] for x in refs] == [dev["device_id"]] and refs[0]["status"] == "fail"
    # another tenant sees none of it
    hb = env.b.headers("analyst")
    assert env.client.get(f"/api/configurationChecks/{failing}/machineReferences", headers=hb).json()["value"] == []
    assert env.client.get("/api/machines/SecureConfigurationsAssessmentByMachine", headers=hb).json()["value"] == []
    bad = env.client.get("/api/machines/SecureConfigurationsAssessmentByMachine", headers=h,
                         params={"$filter": "ConfigurationId eq 'x'"})
    assert bad.status_code == 400
