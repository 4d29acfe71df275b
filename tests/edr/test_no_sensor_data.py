"""NoSensorData in the machine list: a device whose behaviour sensors run but send no telemetry, or fail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.edr.conftest import UTC, Env, device_headers, enroll, post_events, proc


def _checkin(env: Env, dev: dict[str, Any], health: dict[str, Any]) -> None:
    r = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "0.1.0", "health": health})
    assert r.status_code == 200, r.text


def test_silent_or_failed_sensors_show_no_sensor_data_in_the_machine_list(env: Env) -> None:
    now = dt.datetime.now(UTC)
    long_ago, just_now = (now - dt.timedelta(hours=2)).isoformat(), now.isoformat()
    devs = {name: enroll(env.client, env.a.enroll_secret, f"{name:k<16}", name)
            for name in ("quiet", "fresh", "busy", "nosensor", "broken")}
    post_events(env, devs["busy"], 1, [proc(now, 100, "bash", ppid=1)])
    _checkin(env, devs["quiet"], {"device": {"ok": True}, "sensor.audit": {"ok": True, "last_run": long_ago}})
    _checkin(env, devs["fresh"], {"device": {"ok": True}, "sensor.audit": {"ok": True, "last_run": just_now}})
    _checkin(env, devs["busy"], {"device": {"ok": True}, "sensor.audit": {"ok": True, "last_run": long_ago}})
    _checkin(env, devs["nosensor"], {"device": {"ok": True}})  # an agent without sensors: none expected
    _checkin(env, devs["broken"], {"device": {"ok": True}, "sensor.audit": {"ok": False, "error": "no audit"},
                                    "sensor.dns": {"ok": False, "disabled": True}})
    h = env.a.headers("analyst")
    listed = env.client.get("/api/machines", headers=h, params={"$filter": "healthStatus eq 'NoSensorData'"}).json()
    assert sorted(m["computerDnsName"] for m in listed["value"]) == ["broken", "quiet"]
    active = env.client.get("/api/machines", headers=h, params={"$filter": "healthStatus eq 'Active'"}).json()
    assert sorted(m["computerDnsName"] for m in active["value"]) == ["busy", "fresh", "nosensor"]
    quiet = devs["quiet"]["device_id"]
    assert env.client.get(f"/api/machines/{quiet}", headers=h).json()["healthStatus"] == "NoSensorData"
    # the timeline's sensor health says the same as the list
    assert env.client.get(f"/api/machines/{quiet}/sensorHealth", headers=h).json()["healthStatus"] == "NoSensorData"
    nosensor = devs["nosensor"]["device_id"]
    assert env.client.get(f"/api/machines/{nosensor}/sensorHealth", headers=h).json()["healthStatus"] == "Active"
    # telemetry arrives: Active again at the next check-in; with new drops too: ImpairedCommunication
    post_events(env, devs["quiet"], 1, [proc(now, 200, "sh", ppid=1)])
    _checkin(env, devs["quiet"], {"device": {"ok": True}, "sensor.audit": {"ok": True, "last_run": long_ago}})
    assert env.client.get(f"/api/machines/{quiet}", headers=h).json()["healthStatus"] == "Active"
    r = env.client.post("/agent/v1/checkin", headers=device_headers(devs["broken"]), json={
        "agent_version": "0.1.0", "transport_errors": 3,
        "health": {"device": {"ok": True}, "sensor.audit": {"ok": False, "error": "no audit"}}})
    assert r.status_code == 200
    broken = devs["broken"]["device_id"]
    assert env.client.get(f"/api/machines/{broken}", headers=h).json()["healthStatus"] == \
        "NoSensorDataImpairedCommunication"


def test_the_writer_keeps_the_last_receipt_per_device_and_reseeds_it_after_a_restart(tmp_path: Any) -> None:
    """The heartbeat flush asks every 2 s when each device last sent telemetry: the event writer answers from
    memory (updated as batches are stored), reading the store's ledger once per tenant — also after a restart."""
    from garrison.edr.events import open_event_store
    from garrison.edr.events.ingest import EventWriter
    from garrison.edr.events.store import BatchIn, EventStore
    from tests.edr.test_store_conformance import proc as stored_proc

    reads: list[int] = []

    class Counted(EventStore):
        def scope(self, tenant_id: int, device_ids: Any = None) -> Any:
            reads.append(tenant_id)
            return super().scope(tenant_id, device_ids)

    url = f"duckdb:///{tmp_path / 'events.duckdb'}"
    t1 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    store = open_event_store(url)
    writer = EventWriter(store)  # not started: a batch is stored in submit()
    assert writer.submit(BatchIn(1, "dev-a", "a", 1, [stored_proc(t1, 10, "bash")], received_at=t1)).result().status == "accepted"
    assert writer.last_received(1, ["dev-a", "dev-b"]) == {"dev-a": t1}
    store.close()

    store = open_event_store(url)  # a restarted server: a new writer, seeded from the ledger once
    store.__class__ = Counted
    writer = EventWriter(store)
    assert writer.last_received(1, ["dev-a"]) == {"dev-a": t1}
    assert writer.last_received(2, ["dev-a"]) == {}  # another tenant's device is not answered
    assert reads == [1, 2]
    t2 = t1 + dt.timedelta(minutes=5)
    writer.submit(BatchIn(1, "dev-a", "a", 2, [stored_proc(t2, 11, "sh")], received_at=t2)).result()
    writer.submit(BatchIn(1, "dev-a", "a", 2, [stored_proc(t2, 11, "sh")], received_at=t2 + dt.timedelta(1))).result()
    for _ in range(3):
        assert writer.last_received(1, ["dev-a"]) == {"dev-a": t2}  # the re-sent batch 2 is no new receipt
    assert reads == [1, 2]  # no store read after the seed
    store.close()
