"""The device inventory API: Defender's Machine fields, OData queries, tags, value, groups, health."""

from __future__ import annotations

import datetime as dt

from garrison.core import access
from garrison.store.models.core import Device
from tests.server.conftest import Env, device_headers, device_report, enroll, upload


def _fleet(env: Env) -> dict[str, dict]:
    devs = {}
    for i, name in enumerate(["web-1", "web-2", "db-1"]):
        d = enroll(env.client, env.a.enroll_secret, f"{name:x<16}", name)
        report = device_report(name, ip_addresses=[f"10.0.0.{i + 1}"])
        assert upload(env.client, d, "device", report).status_code == 200
        env.client.post("/agent/v1/checkin", headers=device_headers(d), json={
            "agent_version": "0.1.0", "health": {"device": {"ok": True}}})
        devs[name] = d
    return devs


def test_machine_fields_match_defender(env: Env) -> None:
    _fleet(env)
    value = env.client.get("/api/machines", headers=env.a.headers("analyst")).json()
    assert value["@odata.context"].endswith("/api/$metadata#Machines")
    m = value["value"][0]
    for f in ["id", "computerDnsName", "firstSeen", "lastSeen", "osPlatform", "osVersion", "osProcessor",
              "osArchitecture", "osBuild", "version", "lastIpAddress", "lastExternalIpAddress", "ipAddresses",
              "healthStatus", "onboardingStatus", "rbacGroupId", "rbacGroupName", "riskScore", "exposureLevel",
              "deviceValue", "machineTags", "agentVersion"]:
        assert f in m, f
    assert m["healthStatus"] == "Active" and m["riskScore"] == "None" and m["exposureLevel"] == "None"
    assert m["rbacGroupName"] == access.DEFAULT_GROUP


def test_odata_filter_order_page_select(env: Env) -> None:
    _fleet(env)
    h = env.a.headers("analyst")
    got = env.client.get("/api/machines", headers=h, params={
        "$filter": "startswith(computerDnsName,'web') and healthStatus eq 'Active'",
        "$orderby": "computerDnsName desc", "$select": "id,computerDnsName"}).json()["value"]
    assert [m["computerDnsName"] for m in got] == ["web-2.corp.example", "web-1.corp.example"]
    assert set(got[0]) == {"id", "computerDnsName"}
    page = env.client.get("/api/machines", headers=h, params={"$top": 1, "$skip": 1,
                                                               "$orderby": "computerDnsName"}).json()["value"]
    assert [m["computerDnsName"] for m in page] == ["web-1.corp.example"]
    bad = env.client.get("/api/machines", headers=h, params={"$filter": "nosuchfield eq 1"})
    assert bad.status_code == 400 and "nosuchfield" in bad.json()["error"]["message"]


def test_tags_single_and_batch_find_by_tag_and_ip(env: Env) -> None:
    devs = _fleet(env)
    h = env.a.headers("security_operator")
    web1 = devs["web-1"]["device_id"]
    r = env.client.post(f"/api/machines/{web1}/tags", json={"Value": "prod", "Action": "Add"}, headers=h)
    assert r.json()["machineTags"] == ["prod"]
    ids = [devs["web-2"]["device_id"], devs["db-1"]["device_id"]]
    r = env.client.post("/api/machines/AddOrRemoveTagForMultipleMachines",
                        json={"Value": "prod", "Action": "Add", "MachineIds": ids}, headers=h)
    assert r.status_code == 200
    found = env.client.get("/api/machines/findbytag", params={"tag": "prod"}, headers=h).json()["value"]
    assert len(found) == 3
    env.client.post(f"/api/machines/{web1}/tags", json={"Value": "prod", "Action": "Remove"}, headers=h)
    found = env.client.get("/api/machines/findbytag", params={"tag": "pro", "useStartsWithFilter": "true"},
                           headers=h).json()["value"]
    assert sorted(m["id"] for m in found) == sorted(ids)
    any_tag = env.client.get("/api/machines", params={"$filter": "machineTags/any(t: t eq 'prod')"},
                             headers=h).json()["value"]
    assert sorted(m["id"] for m in any_tag) == sorted(ids)
    byip = env.client.get("/api/machines/findbyip(ip='10.0.0.1')", headers=h).json()["value"]
    assert [m["id"] for m in byip] == [web1]
    assert env.client.get("/api/machines/findbyip(ip='nonsense')", headers=h).status_code == 400


def test_device_value_and_logon_users(env: Env) -> None:
    devs = _fleet(env)
    d = devs["db-1"]["device_id"]
    h = env.a.headers("security_operator")
    assert env.client.post(f"/api/machines/{d}/setDeviceValue", json={"DeviceValue": "High"},
                           headers=h).json()["deviceValue"] == "High"
    assert env.client.post(f"/api/machines/{d}/setDeviceValue", json={"DeviceValue": "Huge"},
                           headers=h).status_code == 400
    users = env.client.get(f"/api/machines/{d}/logonusers", headers=h).json()["value"]
    assert users[0]["accountName"] == "alice" and users[0]["logonTypes"] == "Interactive"


def test_health_status_states(env: Env) -> None:
    devs = _fleet(env)
    h = env.a.headers("analyst")
    d = devs["db-1"]
    env.client.post("/agent/v1/checkin", headers=device_headers(d), json={
        "agent_version": "0.1.0", "health": {"device": {"ok": False, "error": "boom"}}})
    assert env.client.get(f"/api/machines/{d['device_id']}", headers=h).json()["healthStatus"] == "NoSensorData"
    env.client.post("/agent/v1/checkin", headers=device_headers(d), json={
        "agent_version": "0.1.0", "health": {"device": {"ok": True}}, "drops": {"device": 2}})
    assert env.client.get(f"/api/machines/{d['device_id']}",
                          headers=h).json()["healthStatus"] == "ImpairedCommunication"
    # the agent's counters are cumulative: no new drop since the last heartbeat → healthy again
    env.client.post("/agent/v1/checkin", headers=device_headers(d), json={
        "agent_version": "0.1.0", "health": {"device": {"ok": True}}, "drops": {"device": 2}})
    assert env.client.get(f"/api/machines/{d['device_id']}", headers=h).json()["healthStatus"] == "Active"
    with env.store.tenant(env.a.id) as s:
        s.get(Device, devs["web-2"]["device_id"]).last_seen -= dt.timedelta(days=8)
    inactive = env.client.get("/api/machines", params={"$filter": "healthStatus eq 'Inactive'"},
                              headers=h).json()["value"]
    assert [m["id"] for m in inactive] == [devs["web-2"]["device_id"]]


def test_device_groups_scope_what_a_key_sees(env: Env) -> None:
    devs = _fleet(env)
    h = env.a.headers("admin")
    group = env.client.post("/api/deviceGroups", json={"name": "Web servers", "rank": 1,
                                                       "rules": {"name": "web-*"}}, headers=h).json()
    names = {m["computerDnsName"]: m["rbacGroupName"] for m in
             env.client.get("/api/machines", headers=h).json()["value"]}
    assert names["web-1.corp.example"] == "Web servers" and names["db-1.corp.example"] == access.DEFAULT_GROUP
    scoped = env.client.post("/api/apiKeys", json={"role": "analyst", "deviceGroupIds": [group["id"]]},
                             headers=h).json()["key"]
    sh = {"Authorization": f"Bearer {scoped}"}
    seen = sorted(m["computerDnsName"] for m in env.client.get("/api/machines", headers=sh).json()["value"])
    assert seen == ["web-1.corp.example", "web-2.corp.example"]
    assert env.client.get(f"/api/machines/{devs['db-1']['device_id']}", headers=sh).status_code == 404
    bad = env.client.post("/api/deviceGroups", json={"name": "x", "rules": {"color": "red"}}, headers=h)
    assert bad.status_code == 400


def test_an_admin_limited_to_some_groups_cannot_widen_its_reach(env: Env) -> None:
    h = env.a.headers("admin")
    group = env.client.post("/api/deviceGroups", json={"name": "Web", "rank": 1, "rules": {"name": "web-*"}},
                            headers=h).json()
    limited = env.client.post("/api/apiKeys", json={"role": "admin", "deviceGroupIds": [group["id"]]},
                              headers=h).json()["key"]
    lh = {"Authorization": f"Bearer {limited}"}
    attempts = [
        ("POST", "/api/apiKeys", {"role": "admin", "deviceGroupIds": None}),  # a key for every group
        ("POST", "/api/users", {"username": "mallory", "password": "a long enough password 1!", "role": "admin"}),
        ("PATCH", f"/api/deviceGroups/{group['id']}", {"rules": {"name": "*"}, "rank": 0}),  # pull in every device
        ("DELETE", f"/api/deviceGroups/{group['id']}", None),
        ("POST", "/api/enrollmentSecrets", {}),
    ]
    for method, path, body in attempts:
        r = env.client.request(method, path, json=body, headers=lh)
        assert r.status_code == 403 and "every device group" in r.text, (method, path, r.text)
    assert env.client.get("/api/deviceGroups", headers=lh).status_code == 200  # reading stays allowed


def test_audit_log_records_state_changes(env: Env) -> None:
    devs = _fleet(env)
    h = env.a.headers("security_operator")
    env.client.post(f"/api/machines/{devs['web-1']['device_id']}/setDeviceValue", json={"DeviceValue": "Low"},
                    headers=h, )
    entries = env.client.get("/api/auditLogs", headers=env.a.headers("admin")).json()["value"]
    e = next(e for e in entries if e["action"] == "set_device_value")
    assert e["actor"].startswith("apikey:") and devs["web-1"]["device_id"] in e["target"]
    assert e["statusCode"] == 200 and e["sourceIp"] and e["method"] == "POST"
    assert any(x["action"] == "enroll_device" for x in entries)
    # analysts cannot read the audit log
    assert env.client.get("/api/auditLogs", headers=env.a.headers("analyst")).status_code == 403


def test_a_user_name_taken_in_another_tenant_is_a_clear_conflict(env: Env) -> None:
    body = {"username": "alice", "password": "a long enough password 1!", "role": "analyst"}
    assert env.client.post("/api/users", json=body, headers=env.a.headers("admin")).status_code == 201
    r = env.client.post("/api/users", json=body, headers=env.b.headers("admin"))
    assert r.status_code == 409 and "not available" in r.text  # not a 500
    r = env.client.post("/api/users", json=body, headers=env.a.headers("admin"))
    assert r.status_code == 409 and "not available" in r.text
