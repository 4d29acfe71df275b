"""The agent endpoints: enrollment, check-in, idempotent batches, the action channel."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import tracemalloc
import zlib

from garrison.core import access
from garrison.store.models.core import AgentBatch, Device
from tests.server.conftest import Env, device_headers, device_report, enroll, upload


def test_enroll_gives_identity_and_reenroll_keeps_the_record(env: Env) -> None:
    first = enroll(env.client, env.a.enroll_secret, "k" * 16, "box")
    assert len(first["device_id"]) == 40 and first["tenant"] == "alpha"
    again = enroll(env.client, env.a.enroll_secret, "k" * 16, "box")
    assert again["device_id"] == first["device_id"]
    assert again["credential"] != first["credential"]
    # the old credential no longer works, the new one does
    old = env.client.post("/agent/v1/checkin", headers=device_headers(first), json={"agent_version": "0.1.0"})
    assert old.status_code == 401
    new = env.client.post("/agent/v1/checkin", headers=device_headers(again), json={"agent_version": "0.1.0"})
    assert new.status_code == 200
    with env.store.system() as s:
        assert s.query(Device).count() == 1
        assert s.get(Device, first["device_id"]).credential_hash != again["credential"]  # stored hashed


def test_reinstalled_agent_starts_its_sequence_again(env: Env) -> None:
    first = enroll(env.client, env.a.enroll_secret, "r" * 16, "box")
    assert upload(env.client, first, "device", device_report("box"), seq=1).json()["status"] == "accepted"
    again = enroll(env.client, env.a.enroll_secret, "r" * 16, "box")  # new install, new spool
    assert upload(env.client, again, "device", device_report("box"), seq=1).json()["status"] == "accepted"


def test_enrollment_secret_expiry_and_use_count(env: Env) -> None:
    with env.store.system() as s:
        _r, one_use = access.create_enrollment_secret(s, env.a.id, uses=1)
        _r, expired = access.create_enrollment_secret(s, env.a.id, expires=dt.timedelta(seconds=-1))
    body = {"machine_key": "x" * 16, "hostname": "h", "agent_version": "1"}
    assert env.client.post("/agent/v1/enroll", json={**body, "secret": one_use}).status_code == 200
    r = env.client.post("/agent/v1/enroll", json={**body, "secret": one_use, "machine_key": "y" * 16})
    assert r.status_code == 401 and "used up" in r.json()["error"]["message"]
    r = env.client.post("/agent/v1/enroll", json={**body, "secret": expired})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    r = env.client.post("/agent/v1/enroll", json={**body, "secret": "ge_000000000000_nope"})
    assert r.status_code == 401
    r = env.client.post("/agent/v1/enroll", json={**body, "secret": one_use, "extra": 1})
    assert r.status_code == 422


def test_batches_are_idempotent_on_device_and_sequence(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    r1 = upload(env.client, dev, "device", device_report("web-1"), seq=7)
    assert r1.json() == {"seq": 7, "status": "accepted"}
    r2 = upload(env.client, dev, "device", device_report("web-1"), seq=7)
    assert r2.json() == {"seq": 7, "status": "duplicate"}
    with env.store.system() as s:
        assert s.query(AgentBatch).filter_by(device_id=dev["device_id"]).count() == 1
    m = env.client.get(f"/api/machines/{dev['device_id']}", headers=env.a.headers("analyst")).json()
    assert m["computerDnsName"] == "web-1.corp.example"
    assert m["lastIpAddress"] == "10.20.30.40"
    assert m["osArchitecture"] == "64-bit"
    assert m["lastExternalIpAddress"] == "testclient" or m["lastExternalIpAddress"]


def test_invalid_payloads_are_refused_with_a_clear_error(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    r = upload(env.client, dev, "device", {"hostname": "x" * 5000})
    assert r.status_code == 422 and "hostname" in r.json()["error"]["message"]
    r = upload(env.client, dev, "nonsense", {})
    assert r.status_code == 422 and "unknown upload kind" in r.json()["error"]["message"]
    r = env.client.post("/agent/v1/batches", headers=device_headers(dev), content=b"{not json")
    assert r.status_code == 422
    # nothing was recorded for refused batches: the same sequence numbers are still free
    with env.store.system() as s:
        assert s.query(AgentBatch).count() == 0


def test_gzip_bodies_and_size_limits(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    body = json.dumps({"seq": 1, "kind": "device", "created_at": "2026-11-24T00:00:00Z",
                       "payload": device_report("gz-host")}).encode()
    r = env.client.post("/agent/v1/batches", content=gzip.compress(body),
                        headers={**device_headers(dev), "Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    # a gzip bomb: small on the wire, over the limit once inflated
    limit = env.app.state.settings.agent_max_body_bytes
    bomb = gzip.compress(b"{" + b" " * (limit + 10) + b"}")
    r = env.client.post("/agent/v1/batches", content=bomb, headers={**device_headers(dev), "Content-Encoding": "gzip"})
    assert r.status_code == 413
    r = env.client.post("/api/deviceGroups", content=b"x" * (2 * 1024 * 1024), headers=env.a.headers())
    assert r.status_code == 413


def spaces_member(n_bytes: int) -> bytes:
    """One gzip member of ``n_bytes`` spaces (about 1000:1 on the wire)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * (1 << 20)
    return b"".join([c.compress(chunk) for _ in range(n_bytes >> 20)] + [c.flush()])


def test_every_gzip_member_counts_against_one_limit(env: Env) -> None:
    """A valid batch followed by a second gzip member of 100 MB of spaces: refused, and never inflated."""
    dev = enroll(env.client, env.a.enroll_secret)
    body = json.dumps({"seq": 1, "kind": "device", "created_at": "2026-11-24T00:00:00Z",
                       "payload": device_report("gz-host")}).encode()
    limit = env.app.state.settings.agent_max_body_bytes
    bomb = gzip.compress(body) + spaces_member(100 << 20)
    assert len(bomb) < limit // 100  # small on the wire
    tracemalloc.start()
    try:
        r = env.client.post("/agent/v1/batches", content=bomb,
                            headers={**device_headers(dev), "Content-Encoding": "gzip"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 413, r.text
    assert peak < 2 * limit + (8 << 20)  # the inflating stopped at the limit (+ one copy), not at 100 MB
    # two members within the limit are one body (RFC 1952); data after the last member is refused
    half = len(body) // 2
    two = gzip.compress(body[:half]) + gzip.compress(body[half:])
    r = env.client.post("/agent/v1/batches", content=two, headers={**device_headers(dev), "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    for tail in (b"garbage", b"\x1f\x8b"):
        r = env.client.post("/agent/v1/batches", content=gzip.compress(body.replace(b'"seq": 1', b'"seq": 2')) + tail,
                            headers={**device_headers(dev), "Content-Encoding": "gzip"})
        assert r.status_code == 400 and "bad gzip body" in r.json()["error"]["message"], tail
    truncated = gzip.compress(body.replace(b'"seq": 1', b'"seq": 3'))[:-8]  # the trailer is missing
    r = env.client.post("/agent/v1/batches", content=truncated, headers={**device_headers(dev), "Content-Encoding": "gzip"})
    assert r.status_code == 400
    with env.store.system() as s:
        assert [b.seq for b in s.query(AgentBatch)] == [1]


def test_device_authentication(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    for header in ("", "Device nobody:nothing", f"Device {dev['device_id']}:wrong", "Bearer x"):
        r = env.client.post("/agent/v1/checkin", headers={"Authorization": header}, json={"agent_version": "1"})
        assert r.status_code == 401, header


def test_action_channel_round_trip(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    h = env.a.headers("security_operator")
    created = env.client.post(f"/api/machines/{dev['device_id']}/collectInventory", json={"Comment": "now"}, headers=h)
    assert created.status_code == 201 and created.json()["status"] == "Pending"
    dup = env.client.post(f"/api/machines/{dev['device_id']}/collectInventory", json={}, headers=h)
    assert dup.status_code == 409
    reply = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "0.1.0"}).json()
    assert [a["type"] for a in reply["actions"]] == ["CollectInventory"]
    action_id = reply["actions"][0]["id"]
    assert env.client.get(f"/api/machineactions/{action_id}", headers=h).json()["status"] == "InProgress"
    # handed out again until its result arrives (a lost reply must not lose the action)
    again = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "0.1.0"}).json()
    assert [a["id"] for a in again["actions"]] == [action_id]
    r = env.client.post(f"/agent/v1/actions/{action_id}/result", headers=device_headers(dev),
                        json={"id": action_id, "status": "Succeeded", "result": {"packages": 3}})
    assert r.status_code == 200
    got = env.client.get(f"/api/machineactions/{action_id}", headers=h).json()
    assert got["status"] == "Succeeded" and got["result"] == {"packages": 3}
    after = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "0.1.0"}).json()
    assert after["actions"] == []
    # cancelling a finished action is refused; a pending one can be cancelled
    assert env.client.post(f"/api/machineactions/{action_id}/cancel", json={}, headers=h).status_code == 409
    other = env.client.post(f"/api/machines/{dev['device_id']}/runConfigurationAssessment", json={}, headers=h).json()
    c = env.client.post(f"/api/machineactions/{other['id']}/cancel", json={"Comment": "no"}, headers=h)
    assert c.json()["status"] == "Cancelled"


def test_offboarding_tells_the_agent_to_stop(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    r = env.client.post(f"/api/machines/{dev['device_id']}/offboard", json={"Comment": "retired"},
                        headers=env.a.headers("admin"))
    assert r.status_code == 201 and r.json()["type"] == "Offboard"
    reply = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "1"}).json()
    assert [a["type"] for a in reply["actions"]] == ["Offboard"]
    m = env.client.get(f"/api/machines/{dev['device_id']}", headers=env.a.headers()).json()
    assert m["onboardingStatus"] == "Offboarded" and m["healthStatus"] == "Inactive"
    reply = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "1"}).json()
    assert reply["offboard"] is True
    # Its credential can no longer write: no renaming the device, no inventory.
    r = upload(env.client, dev, "device", device_report("renamed-by-attacker"))
    assert r.status_code == 200 and r.json()["status"] == "discarded"
    m = env.client.get(f"/api/machines/{dev['device_id']}", headers=env.a.headers()).json()
    assert m["computerDnsName"] != "renamed-by-attacker.corp.example"


def test_actions_time_out(env: Env) -> None:
    from garrison.core.actions import expire_actions
    from garrison.store.models.core import MachineAction

    dev = enroll(env.client, env.a.enroll_secret)
    h = env.a.headers("security_operator")
    a = env.client.post(f"/api/machines/{dev['device_id']}/collectInventory", json={}, headers=h).json()
    with env.store.tenant(env.a.id) as s:
        row = s.get(MachineAction, a["id"])
        row.expires_at = row.creation_time - dt.timedelta(seconds=1)
    expire_actions(env.store)
    assert env.client.get(f"/api/machineactions/{a['id']}", headers=h).json()["status"] == "TimeOut"
    reply = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "1"}).json()
    assert reply["actions"] == []
