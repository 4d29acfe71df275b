"""Sensor exclusions set on the server (/api/settings/sensorExclusions) reach the agent at check-in and the
real audit sensor does not record the excluded activity: it never reaches the event store."""

from __future__ import annotations

import datetime as dt
import os
import subprocess

from garrison.protocol import CheckinResponse
from tests.server.conftest import Env, device_headers, enroll, env  # noqa: F401

URL = "/api/settings/sensorExclusions"


def test_exclusions_from_the_settings_api_stop_the_sensor_recording(env: Env, start_sensor) -> None:
    marker, kept = f"srvexcl-{os.getpid()}", f"/bin/true keep-{os.getpid()}"
    admin = env.a.headers("admin")
    r = env.client.put(URL, headers=admin, json={"exclusions": [
        {"table": "DeviceProcessEvents", "column": "ProcessCommandLine", "op": "contains", "value": marker}]})
    assert r.status_code == 200, r.text
    dev = enroll(env.client, env.a.enroll_secret, "s" * 16, "sensor-host")
    other = enroll(env.client, env.b.enroll_secret, "t" * 16, "other-tenant")

    # The real check-in path, then what the agent's runner does with the answer.
    answer = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "0.1.0"})
    response = CheckinResponse.model_validate(answer.json())
    assert response.sensor_exclusions is not None and len(response.sensor_exclusions) == 1
    run = start_sensor()
    run.manager.apply_server_settings([e.model_dump() for e in response.sensor_exclusions])
    subprocess.run(["/bin/sh", "-c", f"/bin/true {marker}; {kept}"], check=True)
    assert run.recorder.wait_for(lambda row: row["ProcessCommandLine"] == kept,
                                 "DeviceProcessEvents")
    # Everything the sensor spooled goes to the server as the transport would send it.
    for seq, batch in enumerate(run.recorder.batches, 1):
        sent = env.client.post("/agent/v1/events", headers=device_headers(dev), json={"seq": seq, "events": batch["events"]})
        assert sent.status_code == 200, sent.text
    now = dt.datetime.now(dt.UTC)
    stored = env.app.state.events.store.scope(env.a.id).timeline(
        dev["device_id"], now - dt.timedelta(hours=1), now + dt.timedelta(hours=1), search=str(os.getpid()), top=1000)
    lines = [row["ProcessCommandLine"] for row in stored if row["Table"] == "DeviceProcessEvents"]
    assert kept in lines
    assert f"/bin/true {marker}" not in lines
    assert run.manager.sink.excluded >= 1

    # Another tenant's device gets none of them; clearing them sends an empty list (the agent drops its own).
    theirs = env.client.post("/agent/v1/checkin", headers=device_headers(other), json={"agent_version": "0.1.0"})
    assert theirs.json()["sensor_exclusions"] == []
    assert env.client.put(URL, headers=admin, json={"exclusions": []}).status_code == 200
    cleared = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "0.1.0"})
    assert cleared.json()["sensor_exclusions"] == []
