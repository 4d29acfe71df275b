"""Agent → server → event store, for real: the agent process with its sensor, a server killed mid-stream."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from garrison.agent.runner import status
from garrison.agent.spool import Spool
from tests.agent.harness import Server, start_agent, wait_for, write_agent_config


def _sent_through(state: Path, seq: int) -> bool:
    spool = Spool(state / "spool.db")
    try:
        first = spool.pending(limit=1)
    finally:
        spool.close()
    return not first or first[0].seq > seq


def _spawn(marker: str, first: int, n: int) -> None:
    script = f"i={first}; while [ $i -lt {first + n} ]; do /bin/true {marker} $i; i=$((i+1)); done"
    subprocess.run(["/bin/sh", "-c", script], check=True, timeout=60)


@pytest.mark.slow
def test_process_events_reach_the_event_store_once_across_a_server_crash(
        audit_lock: None, make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server("srv")
    state = tmp_path / "agent"
    config = write_agent_config(tmp_path / "agent.toml", srv, state, checkin_interval=1,
                                sensors={"enabled": True, "file_paths": []})
    agent = start_agent(config, tmp_path / "agent.log")
    marker = f"e2e-{os.getpid()}"
    try:
        wait_for(lambda: status(state)["last"].get("last_checkin"), 120, "the first check-in")
        _spawn(marker, 0, 100)
        srv.kill()  # SIGKILL while the agent sends: acknowledged batches are stored, the others re-sent
        _spawn(marker, 100, 100)  # recorded while the server is down: they wait in the spool
        srv.start()
        _spawn(marker, 200, 1)
        time.sleep(2.5)  # the sensor spools at least every second: every marker is in a batch by now
        target = status(state)["last_seq"]
        # Everything up to that batch acknowledged (the spool is never empty for long: the machine is busy).
        wait_for(lambda: _sent_through(state, target), 180, "the marked batches to be acknowledged")
    finally:
        agent.terminate()
        agent.wait(30)
        srv.stop()
    log = (tmp_path / "agent.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    device_id = status(state)["device_id"]
    db = duckdb.connect(str(srv.data_dir / "events.duckdb"), read_only=True)
    try:
        rows = db.execute(
            'SELECT "ProcessCommandLine", "DeviceId", "DeviceName", "SHA256", "InitiatingProcessFileName" '
            'FROM "DeviceProcessEvents" WHERE "ProcessCommandLine" LIKE ?', [f"/bin/true {marker} %"]).fetchall()
    finally:
        db.close()
    numbers = sorted(int(r[0].rsplit(" ", 1)[1]) for r in rows)
    assert numbers == list(range(201)), f"{len(numbers)} rows, missing {set(range(201)) - set(numbers)}"
    assert {r[1] for r in rows} == {device_id} and all(r[2] and r[3] for r in rows)
    # The check-ins carried the sensor's health and drop counters to the device record.
    with sqlite3.connect(srv.data_dir / "garrison.db") as sdb:
        health, drops = sdb.execute("SELECT collector_health, drop_counters FROM devices WHERE id = ?",
                                    (device_id,)).fetchone()
    assert json.loads(health)["sensor.audit"]["ok"] is True, health
    assert not {k: v for k, v in json.loads(drops).items() if k.startswith("events")}, drops
