"""Fixtures of the sensor tests: the real audit sensor on this machine's kernel.

Only one process can be the audit daemon, so tests that start the audit sensor take a
machine-wide lock (they serialise across pytest-xdist workers and worktrees).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.sensors.manager import SensorManager
from garrison.protocol.events import EventBatch

LOCK = "/tmp/garrison-audit-sensor.lock"
Row = dict[str, Any]


class Recorder:
    """A spool stand-in that keeps every event row the sink spools."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def put(self, kind: str, payload: dict[str, Any]) -> int:
        assert kind == "events"
        EventBatch(seq=1, events=payload["events"])  # every batch is valid on the wire (the server's model)
        with self.lock:
            self.batches.append({"kind": kind, **payload})
            return len(self.batches)

    def rows(self, table: str | None = None) -> list[Row]:
        with self.lock:
            return [e for b in self.batches for e in b.get("events", [])
                    if table is None or e["Table"] == table]

    def wait_for(self, pred: Callable[[Row], bool], table: str | None = None, count: int = 1,
                 timeout: float = 20.0) -> list[Row]:
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.rows(table) if pred(r)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


class Running:
    def __init__(self, manager: SensorManager, recorder: Recorder) -> None:
        self.manager = manager
        self.recorder = recorder


@pytest.fixture
def audit_lock() -> Iterator[None]:
    assert os.geteuid() == 0, "the sensor tests use the real audit interface: run them as root"
    with open(LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture
def start_sensor(audit_lock: None, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[SensorManager] = []

    def start(settings: dict[str, Any] | None = None, self_pids: set[int] | None = None,
              state_dir: str = "", enabled: tuple[str, ...] | list[str] = ("audit",)) -> Running:
        rec = Recorder()
        s = {"file_paths": [], "rate_limit": 100000, "burst": 100000, **(settings or {})}
        mgr = SensorManager(rec.put, settings=s, enabled=list(enabled), state_dir=state_dir,
                            self_pids=self_pids if self_pids is not None else {-1})
        mgr.sink.flush_interval = 0.1
        mgr.start()
        started.append(mgr)
        assert "audit" in mgr.sensors, mgr.failed
        return Running(mgr, rec)

    yield start
    for mgr in started:
        mgr.stop()
