"""The sensors inside the agent: they run beside the loop, so a collector stuck for seconds does not
hold telemetry back, and the check-in carries their health."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from garrison.agent.collectors.base import COLLECTORS, AgentContext, Collector
from garrison.agent.runner import Agent
from garrison.agent.spool import Spool, iter_documents
from garrison.config import AgentConfig
from tests.agent.harness import Server, wait_for

RELEASE = threading.Event()
STARTED = threading.Event()


class Stuck(Collector):
    name = "test_stuck"
    kinds: ClassVar[tuple[str, ...]] = ("device",)
    interval = 3600

    def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
        STARTED.set()
        RELEASE.wait(60)  # a collector that takes long (a slow package manager, say)
        return []


def _spooled_markers(state: Path, marker: str) -> int:
    spool = Spool(state / "spool.db")
    try:
        return sum(1 for doc in iter_documents(spool) if doc["kind"] == "events"
                   for e in doc["payload"]["events"] if marker in e.get("ProcessCommandLine", ""))
    finally:
        spool.close()


@pytest.mark.slow
def test_a_stuck_collector_does_not_hold_telemetry_back(audit_lock: None, shared_server: Server,
                                                        tmp_path: Path) -> None:
    COLLECTORS.add(Stuck.name, Stuck)
    RELEASE.clear()
    STARTED.clear()
    state = tmp_path / "agent"
    cfg = AgentConfig(server=shared_server.url, enroll_secret=shared_server.secret, state_dir=state,
                      fingerprint=shared_server.fingerprint, checkin_interval=1,
                      collectors_enabled=[Stuck.name], sensors={"enabled": True, "file_paths": []}).validate()
    agent = Agent(cfg, explicit_enroll=True)
    runner = threading.Thread(target=agent.run_forever, daemon=True)
    runner.start()
    marker = f"while-stuck-{os.getpid()}"
    try:
        assert STARTED.wait(60), "the collector never ran"
        wait_for(lambda: agent.sensors is not None and "audit" in agent.sensors.sensors, 30, "the sensors")
        subprocess.run(["/bin/sh", "-c", f"/bin/true {marker}; exit 0"], check=True)
        # The loop is blocked in the collector; the sensor spools on its own thread.
        wait_for(lambda: _spooled_markers(state, marker) == 1, 30, "the event in the spool")
        assert not RELEASE.is_set() and runner.is_alive()
        health = agent.sensors.health() if agent.sensors else {}
        assert health["sensor.audit"].ok and health["sensor.snapshot"].ok
    finally:
        RELEASE.set()
        agent.stop()
        runner.join(60)
        COLLECTORS.remove(Stuck.name)
    assert not runner.is_alive()
    assert agent.sensors is None  # stopped with the agent (rules removed, threads joined)
