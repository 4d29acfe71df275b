"""POST /agent/v1/events: device-authenticated, validated, durable before the ack, idempotent on (device, seq)."""

from __future__ import annotations

import datetime as dt
import gzip
import json

from tests.edr.conftest import UTC, Env, conn, device_headers, enroll, post_events, proc


def _timeline(env: Env, tenant: int, device: str) -> list[dict]:
    now = dt.datetime.now(UTC)
    return env.app.state.events.store.scope(tenant).timeline(device, now - dt.timedelta(days=2), now + dt.timedelta(days=1),
                                                             top=1000)


def test_events_are_stored_enriched_and_acknowledged_once(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret, hostname="web-1")
    now = dt.datetime.now(UTC).replace(microsecond=0)
    events = [proc(now, 100, "bash", ppid=1), proc(now + dt.timedelta(seconds=1), 101, "curl", ppid=100, cmd="curl -s x"),
              conn(now + dt.timedelta(seconds=2), "93.184.216.34", 443, pid=101)]
    r = post_events(env, dev, 1, events)
    assert r.status_code == 200, r.text
    assert r.json() == {"seq": 1, "status": "accepted", "stored": 3}
    # the same seq again (a lost ack): nothing stored twice
    again = post_events(env, dev, 1, events)
    assert again.json() == {"seq": 1, "status": "duplicate", "stored": 0}
    rows = _timeline(env, env.a.id, dev["device_id"])
    assert [r["Table"] for r in rows] == ["DeviceNetworkEvents", "DeviceProcessEvents", "DeviceProcessEvents"]
    net = rows[0]
    assert net["DeviceName"] == "web-1" and net["DeviceId"] == dev["device_id"]
    assert net["RemoteIPType"] == "Public" and net["LocalIPType"] == "Private"
    # process tree links filled at ingest from the creations seen before
    assert net["InitiatingProcessFileName"] == "curl" and net["InitiatingProcessParentFileName"] == "bash"
    assert rows[1]["InitiatingProcessFileName"] == "bash"
    assert len({r["ReportId"] for r in rows}) == 3
    # another tenant sees none of it
    assert _timeline(env, env.b.id, dev["device_id"]) == []


def test_gzip_bodies_are_accepted_and_bounded(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    now = dt.datetime.now(UTC)
    body = gzip.compress(json.dumps({"seq": 5, "events": [proc(now, 7, "sh")]}).encode())
    r = env.client.post("/agent/v1/events", content=body,
                        headers={**device_headers(dev), "Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    bomb = gzip.compress(b"[" + b" " * (40 * 1024 * 1024) + b"]")
    r = env.client.post("/agent/v1/events", content=bomb,
                        headers={**device_headers(dev), "Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 413
    r = env.client.post("/agent/v1/events", content=b"not gzip",
                        headers={**device_headers(dev), "Content-Encoding": "gzip"})
    assert r.status_code in (400, 422)


def test_untrusted_batches_are_refused_without_storing_anything(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    now = dt.datetime.now(UTC)
    good = proc(now, 1, "ok")
    cases = [
        ({"seq": 1, "events": [good, {**good, "DeviceId": "someone-else"}]}, "events.1"),
        ({"seq": 1, "events": [good, {**good, "RemotePort": 1}]}, "events.1"),
        ({"seq": 1, "device_id": "other-device", "events": [good]}, "device_id"),
        ({"seq": 1, "events": [good, {**good, "Timestamp": (now + dt.timedelta(days=3)).isoformat()}]},
         "events.1.Timestamp"),
        ({"seq": -1, "events": [good]}, "seq"),
    ]
    for body, where in cases:
        r = env.client.post("/agent/v1/events", headers=device_headers(dev), json=body)
        assert r.status_code == 422, (body, r.text)
        assert where in r.json()["error"]["message"]
    assert _timeline(env, env.a.id, dev["device_id"]) == []
    r = env.client.post("/agent/v1/events", headers={"Authorization": f"Device {dev['device_id']}:wrong-credential"},
                        json={"seq": 1, "events": [good]})
    assert r.status_code == 401
    r = env.client.post("/agent/v1/events", json={"seq": 1, "events": [good]})
    assert r.status_code == 401


def test_an_offboarded_device_is_discarded(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    r = env.client.post(f"/api/machines/{dev['device_id']}/offboard", headers=env.a.headers("admin"),
                        json={"Comment": "gone"})
    assert r.status_code in (200, 201), r.text
    r = post_events(env, dev, 1, [proc(dt.datetime.now(UTC), 1, "x")])
    assert r.status_code == 200 and r.json()["status"] == "discarded"
    assert _timeline(env, env.a.id, dev["device_id"]) == []
