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
