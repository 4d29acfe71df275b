"""The console's device list and page show NoSensorData for a device whose sensors send no telemetry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest

from garrison.core import access
from tests.web.conftest import http_session, start_console


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    from tests.pg import create_database

    return create_database(request.getfixturevalue("pg_base_url"))


def test_console_lists_and_shows_no_sensor_data(tmp_path: Path, db_url: str | None) -> None:
    console, srv = start_console(tmp_path, seed=False, db_url=db_url)
    try:
        with console.store.system() as s:
            _row, secret = access.create_enrollment_secret(s, console.tenant_id)
        started = {"quiet": dt.datetime.now(dt.UTC) - dt.timedelta(hours=3), "fresh": dt.datetime.now(dt.UTC)}
        ids = {}
        with httpx.Client(base_url=console.url, timeout=30) as agent:
            for name, at in started.items():
                body = agent.post("/agent/v1/enroll", json={"secret": secret, "machine_key": f"{name:0<16}",
                                                            "hostname": name, "agent_version": "0.1.0"}).json()
                ids[name] = body["device_id"]
                r = agent.post("/agent/v1/checkin", headers={"Authorization": f"Device {body['device_id']}:{body['credential']}"},
                               json={"agent_version": "0.1.0", "health": {
                                   "device": {"ok": True}, "sensor.audit": {"ok": True, "last_run": at.isoformat()}}})
                assert r.status_code == 200, r.text
        console.app.state.heartbeats.flush()
        client = http_session(console, "analyst")
        listed = client.get("/console/devices", params={"health": "NoSensorData"}).text
        assert "quiet" in listed and "fresh" not in listed and "No sensor data" in listed
        page = client.get(f"/console/devices/{ids['quiet']}").text
        assert "health-nosensordata" in page and ">NoSensorData<" in page
        assert ">Active<" in client.get(f"/console/devices/{ids['fresh']}").text
    finally:
        srv.stop()
        console.store.dispose()
