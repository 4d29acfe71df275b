"""Check-in heartbeats, buffered and written in one transaction every few seconds.

A fleet checks in all the time; writing each heartbeat in its own transaction would make
the state store's write lock the bottleneck (SQLite has one). The check-in path only reads
(pending actions) and notes the heartbeat here; a flusher writes the latest heartbeat of
every device at once. ``interval=0`` writes through (tests, tiny deployments).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.exc import DBAPIError

from garrison.protocol import CheckinRequest
from garrison.store.db import Store
from garrison.store.models.core import Device

log = logging.getLogger("garrison.heartbeats")


@dataclass
class Beat:
    at: dt.datetime
    agent_version: str
    health: dict[str, Any]
    drops: dict[str, int]
    transport_errors: int
    source_ip: str


def sensor_state(health: dict[str, Any], new_drops: int, recent_transport_errors: bool) -> str:
    """``new_drops``: uploads the agent dropped since its previous heartbeat (its counters are
    cumulative, so a drop long ago must not mark the device impaired for ever)."""
    enabled = [h for h in health.values() if not h.get("disabled")]
    no_data = bool(enabled) and not any(h.get("ok") for h in enabled)
    impaired = recent_transport_errors or new_drops > 0
    if no_data and impaired:
        return "NoSensorDataImpairedCommunication"
    if no_data:
        return "NoSensorData"
    if impaired:
        return "ImpairedCommunication"
    return "Active"


class HeartbeatBuffer:
    def __init__(self, store: Store, interval: float = 2.0) -> None:
        self.store, self.interval = store, interval
        self._beats: dict[str, Beat] = {}
        self._drops_seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Other small periodic chores of the server process, run by the same thread after each flush.
        self.hooks: list[Callable[[], None]] = []

    def note(self, device_id: str, req: CheckinRequest, source_ip: str, at: dt.datetime) -> None:
        beat = Beat(at, req.agent_version, {k: v.model_dump(mode="json") for k, v in req.health.items()},
                    dict(req.drops), req.transport_errors, source_ip)
        with self._lock:
            self._beats[device_id] = beat
        if self.interval <= 0:
            self.flush()

    def flush(self) -> int:
        with self._lock:
            beats, self._beats = self._beats, {}
            new_drops = {}
            for device_id, b in beats.items():
                total = sum(b.drops.values())
                previous = self._drops_seen.get(device_id)
                new_drops[device_id] = total - previous if previous is not None and total > previous else 0
                self._drops_seen[device_id] = total
        if not beats:
            return 0
        rows = [{
            "did": device_id, "last_seen": b.at, "agent_version": b.agent_version, "collector_health": b.health,
            "drop_counters": b.drops, "last_external_ip_address": b.source_ip,
            "health_state": sensor_state(b.health, new_drops[device_id], b.transport_errors > 0),
        } for device_id, b in beats.items()]
        stmt = (update(Device.__table__).where(Device.__table__.c.id == bindparam("did"))
                .values(last_seen=bindparam("last_seen"), agent_version=bindparam("agent_version"),
                        collector_health=bindparam("collector_health"), drop_counters=bindparam("drop_counters"),
                        last_external_ip_address=bindparam("last_external_ip_address"),
                        health_state=bindparam("health_state")))
        errors = [{"did": d, "at": b.at} for d, b in beats.items() if b.transport_errors]
        try:
            self._write(stmt, rows, errors)
        except DBAPIError:
            # One device's row must never cost the others theirs: each row again on its own.
            log.exception("heartbeat write of %d devices failed; writing them one by one", len(rows))
            failed = 0
            error_of = {e["did"]: [e] for e in errors}
            for row in rows:
                try:
                    self._write(stmt, [row], error_of.get(row["did"], []))
                except DBAPIError as exc:
                    failed += 1
                    log.warning("heartbeat of device %s refused: %s", row["did"], exc.orig)
            return len(rows) - failed
        return len(rows)

    def _write(self, stmt: Any, rows: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
        # One write for the devices of every tenant: a system session, by name.
        with self.store.system() as s:
            conn = s.connection()
            conn.execute(stmt, rows)
            if errors:
                conn.execute(update(Device.__table__).where(Device.__table__.c.id == bindparam("did"))
                             .values(last_error_at=bindparam("at")), errors)

    def start(self) -> None:
        if self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="garrison-heartbeats", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:
                log.exception("heartbeat flush failed")
            for hook in self.hooks:
                try:
                    hook()
                except Exception:
                    log.exception("periodic task %s failed", hook)
