"""Custom indicators: Defender's /api/indicators (validated per type, submit-or-update, delete), matched at
ingest against the events' hashes, remote IPs, domains and URLs — an alert with detectionSource CustomerTI —,
Allowed raises nothing, a group-scoped indicator only on its groups' devices."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from garrison.core import access
from garrison.store.models.core import Device
from tests.edr.conftest import UTC, Env, conn, enroll, post_events, proc

SHA = "A" * 64
URL = "/api/indicators"


def _submit(env: Env, **body: Any) -> Any:
    return env.client.post(URL, json={"action": "Alert", "title": "bad thing", "severity": "High", **body},
                           headers=env.a.headers("security_operator"))


def _device(env: Env, host: str) -> dict[str, Any]:
    return enroll(env.client, env.a.enroll_secret, machine_key=f"{host}-key-00000000", hostname=host)


def _ti_alerts(env: Env) -> list[dict[str, Any]]:
    r = env.client.get("/api/alerts", params={"$filter": "detectionSource eq 'CustomerTI'", "$expand": "evidence"},
                       headers=env.a.headers("analyst"))
    assert r.status_code == 200, r.text
    return r.json()["value"]


def test_indicators_api_validates_and_updates(env: Env) -> None:
    assert env.client.post(URL, json={"indicatorValue": SHA, "indicatorType": "FileSha256", "action": "Alert",
                                      "title": "x"}, headers=env.a.headers("analyst")).status_code == 403
    for bad in ({"indicatorValue": "abc", "indicatorType": "FileSha256"},
                {"indicatorValue": "300.1.1.1", "indicatorType": "IpAddress"},
                {"indicatorValue": "not a domain", "indicatorType": "DomainName"},
                {"indicatorValue": SHA, "indicatorType": "Registry"},
                {"indicatorValue": SHA, "indicatorType": "FileSha256", "action": "Explode"},
                {"indicatorValue": SHA, "indicatorType": "FileSha256", "rbacGroupIds": [999999]}):
        assert _submit(env, **bad).status_code == 400, bad
    first = _submit(env, indicatorValue=SHA, indicatorType="FileSha256")
    assert first.status_code == 200, first.text
    assert first.json()["indicatorValue"] == SHA.lower()
    again = _submit(env, indicatorValue=SHA.lower(), indicatorType="FileSha256", title="renamed").json()
    assert again["id"] == first.json()["id"] and again["title"] == "renamed"  # same type and value: an update
    listed = env.client.get(URL, params={"$filter": "indicatorType eq 'FileSha256'"},
                            headers=env.a.headers("analyst")).json()["value"]
    assert [i["title"] for i in listed] == ["renamed"]
    assert env.client.get(URL, headers=env.b.headers("admin")).json()["value"] == []
    assert env.client.delete(f"{URL}/{again['id']}", headers=env.b.headers("admin")).status_code == 404
    assert env.client.delete(f"{URL}/{again['id']}", headers=env.a.headers("security_operator")).status_code == 204
    assert env.client.get(URL, headers=env.a.headers("analyst")).json()["value"] == []


def test_indicators_match_events_ingested_after_them(env: Env) -> None:
    assert _submit(env, indicatorValue=SHA, indicatorType="FileSha256", title="dropper").status_code == 200
    assert _submit(env, indicatorValue="203.0.113.9", indicatorType="IpAddress", title="c2").status_code == 200
    assert _submit(env, indicatorValue="Evil.Example", indicatorType="DomainName", title="phish").status_code == 200
    assert _submit(env, indicatorValue="good.example", indicatorType="DomainName", action="Allowed",
                   title="ok").status_code == 200
    dev = _device(env, "lin-1")
    t0 = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    events = [proc(t0, 10, "dropper", 1, SHA256=SHA.lower()), conn(t0, "203.0.113.9", 443, pid=10),
              {**conn(t0, "198.51.100.1", 443), "RemoteUrl": "https://www.evil.example/login"},
              {**conn(t0, "198.51.100.2", 443), "RemoteUrl": "good.example"},
              proc(t0, 11, "ls", 1)]
    assert post_events(env, dev, 1, events).status_code == 200
    found = {a["title"]: a for a in _ti_alerts(env)}
    assert set(found) == {f"dropper (FileSha256 {SHA.lower()})", "c2 (IpAddress 203.0.113.9)",
                          "phish (DomainName evil.example)"}  # a subdomain matches; good.example is Allowed
    dropper = found[f"dropper (FileSha256 {SHA.lower()})"]
    assert dropper["severity"] == "High" and dropper["machineId"] == dev["device_id"]
    assert any(e.get("sha256") == SHA.lower() for e in dropper["evidence"])


def test_a_group_scoped_indicator_matches_only_its_groups(env: Env) -> None:
    web, db = _device(env, "web-1"), _device(env, "db-1")
    with env.store.tenant(env.a.id) as s:
        group = access.create_group(s, "web", 1, {"name": "web-*"})
        for d in s.scalars(select(Device)):
            access.assign_group(s, d)
    assert _submit(env, indicatorValue="203.0.113.7", indicatorType="IpAddress", title="web c2",
                   rbacGroupIds=[group.id]).status_code == 200
    t0 = dt.datetime.now(UTC).replace(microsecond=0)
    for dev in (web, db):
        assert post_events(env, dev, 1, [conn(t0, "203.0.113.7", 443)]).status_code == 200
    assert [a["machineId"] for a in _ti_alerts(env)] == [web["device_id"]]
