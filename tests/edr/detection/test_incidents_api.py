"""Incidents: alerts of one device within the correlation window are grouped into one incident (severity the
highest, a multi-stage name), other devices get their own; /api/incidents lists, shows the alerts with their
linking reason, and updates (assigning or resolving an incident does the same to its alerts); tenant and
device-group scope."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from garrison.core import access
from garrison.store.models.core import Device
from tests.edr.conftest import UTC, Env, enroll, post_events, proc

SHADOW = "Copy Passwd Or Shadow From TMP Path"
MINER = "Linux Crypto Mining Indicators"


def _device(env: Env, host: str, commands: list[str]) -> str:
    _ = env.app.state.detection.detector  # the shipped ruleset compiled before the events arrive
    t0 = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
    dev = enroll(env.client, env.a.enroll_secret, machine_key=f"{host}-key-00000000", hostname=host)
    events = [proc(t0 + dt.timedelta(seconds=i), 100 + i, cmd.split()[0], 1, cmd=cmd) for i, cmd in enumerate(commands)]
    assert post_events(env, dev, 1, events).status_code == 200
    return str(dev["device_id"])


def _incidents(env: Env, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    r = env.client.get("/api/incidents", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["value"]


def test_alerts_of_a_device_form_one_incident(env: Env) -> None:
    web = _device(env, "web-1", ["cp /etc/shadow /tmp/s", "xmrig --donate-level=0 -o pool.example:3333"])
    db = _device(env, "db-1", ["cp /etc/passwd /tmp/p"])
    h = env.a.headers("analyst")
    found = {i["machineId"]: i for i in _incidents(env, h)}
    assert set(found) == {web, db}
    multi = env.client.get(f"/api/incidents/{found[web]['incidentId']}", headers=h).json()
    titles = {a["title"] for a in multi["alerts"]}
    assert {SHADOW, MINER} <= titles
    assert multi["severity"] == "High" and multi["status"] == "Active" and multi["incidentName"].startswith(
        "Multi-stage incident")
    assert all(a["linkReason"] == "Proximate time: same device" and a["incidentId"] == multi["incidentId"]
               for a in multi["alerts"])
    single = env.client.get(f"/api/incidents/{found[db]['incidentId']}", headers=h).json()
    assert [a["title"] for a in single["alerts"]] == [SHADOW] and single["incidentName"] == f"{SHADOW} on one endpoint"
    alert = env.client.get("/api/alerts", params={"$filter": f"machineId eq '{db}'"}, headers=h).json()["value"][0]
    assert alert["incidentId"] == single["incidentId"]
    assert [i["incidentId"] for i in _incidents(env, h, **{"$filter": "computerDnsName eq 'db-1'"})] == [
        single["incidentId"]]


def test_assigning_and_resolving_an_incident_updates_its_alerts(env: Env) -> None:
    web = _device(env, "web-1", ["cp /etc/shadow /tmp/s", "xmrig --donate-level=0 -o pool.example:3333"])
    incident = _incidents(env, env.a.headers("analyst"), **{"$filter": f"machineId eq '{web}'"})[0]
    url = f"/api/incidents/{incident['incidentId']}"
    assert env.client.patch(url, json={"status": "Resolved"}, headers=env.a.headers("analyst")).status_code == 403
    assert env.client.patch(url, json={"status": "Resolved"}, headers=env.b.headers("admin")).status_code == 404
    op = env.a.headers("security_operator")
    for bad in ({"status": "Closed"}, {"classification": "FalsePositive", "determination": "Malware"},
                {"tags": [""]}, {"incidentName": "x"}):
        assert env.client.patch(url, json=bad, headers=op).status_code in (400, 422), bad
    r = env.client.patch(url, json={"assignedTo": "ana@example.test", "tags": ["miner", "linux"],
                                    "classification": "TruePositive", "determination": "Malware",
                                    "comment": "isolating"}, headers=op)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tags"] == ["linux", "miner"] and body["comments"][0]["comment"] == "isolating"
    assert {a["assignedTo"] for a in body["alerts"]} == {"ana@example.test"}
    done = env.client.patch(url, json={"status": "Resolved"}, headers=op).json()
    assert done["status"] == "Resolved" and {a["status"] for a in done["alerts"]} == {"Resolved"}


def test_incidents_are_scoped_to_tenant_and_device_groups(env: Env) -> None:
    web = _device(env, "web-1", ["cp /etc/shadow /tmp/s"])
    db = _device(env, "db-1", ["cp /etc/shadow /tmp/s"])
    assert _incidents(env, env.b.headers("admin")) == []
    with env.store.tenant(env.a.id) as s:
        group = access.create_group(s, "web", 1, {"name": "web-*"})
        for d in s.scalars(select(Device)):
            access.assign_group(s, d)
        _row, key = access.create_api_key(s, env.a.id, "security_operator", "web only", "test", group_ids=[group.id])
    web_only = {"Authorization": f"Bearer {key}"}
    assert [i["machineId"] for i in _incidents(env, web_only)] == [web]
    other = next(i for i in _incidents(env, env.a.headers("analyst")) if i["machineId"] == db)
    assert env.client.get(f"/api/incidents/{other['incidentId']}", headers=web_only).status_code == 404
    assert env.client.get("/api/incidents/not-a-number", headers=web_only).status_code == 404
