"""Check-in heartbeats, buffered and written in one transaction every few seconds.

A fleet checks in all the time; writing each heartbeat in its own transaction would make
the state store's write lock the bottleneck (SQLite has one). The check-in path only reads
(pending actions) and notes the heartbeat here; a flusher writes the latest heartbeat of
every device at once. ``interval=0`` writes through (tests, tiny deployments).
"""

from __future__ import annotations

import contextlib
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
    tenant_id: int = 0


# Behaviour sensors report their health at check-in as ``sensor.<name>`` (see garrison.agent.sensors).
SENSOR_PREFIX = "sensor."
# A device whose sensors run but whose telemetry has not reached the event store for this long
# (counted from the later of the sensors' start and the last batch received) has NoSensorData.
SILENT_AFTER = dt.timedelta(hours=1)
# (tenant, device ids) → device id → when its last event batch was received (absent: never)
LastTelemetry = Callable[[int, list[str]], dict[str, dt.datetime]]


def sensors_started(health: dict[str, Any]) -> dt.datetime | None:
    """When the device's enabled behaviour sensors started (the latest start), or None when it expects
    none: no ``sensor.*`` entry (an agent without sensors) or all of them disabled."""
    starts: list[dt.datetime] = []
    expected = False
    for key, h in health.items():
        if key.startswith(SENSOR_PREFIX) and not h.get("disabled"):
            expected = True
            with contextlib.suppress(TypeError, ValueError):
                starts.append(_aware(dt.datetime.fromisoformat(h["last_run"])))
    if not expected:
        return None
    return max(starts) if starts else dt.datetime.min.replace(tzinfo=dt.UTC)


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def telemetry_silent(started: dt.datetime, last_received: dt.datetime | None, now: dt.datetime) -> bool:
    since = max(started, _aware(last_received)) if last_received else started
    return _aware(now) - since > SILENT_AFTER


def sensor_state(health: dict[str, Any], new_drops: int, recent_transport_errors: bool, silent: bool = False) -> str:
    """``new_drops``: uploads the agent dropped since its previous heartbeat (its counters are
    cumulative, so a drop long ago must not mark the device impaired for ever).

    NoSensorData: every enabled collector fails; or the device runs behaviour sensors (``sensor.*``
    entries) and none of them works; or they work but sent nothing for SILENT_AFTER (``silent``)."""
    enabled = [h for h in health.values() if not h.get("disabled")]
    sensors = [h for k, h in health.items() if k.startswith(SENSOR_PREFIX) and not h.get("disabled")]
    no_data = (bool(enabled) and not any(h.get("ok") for h in enabled)) or \
        (bool(sensors) and (silent or not any(h.get("ok") for h in sensors)))
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
        # Set by the server to the event store's "last batch received" (NoSensorData when silent).
        self.last_telemetry: LastTelemetry | None = None

    def note(self, device_id: str, req: CheckinRequest, source_ip: str, at: dt.datetime, tenant_id: int = 0) -> None:
        beat = Beat(at, req.agent_version, {k: v.model_dump(mode="json") for k, v in req.health.items()},
                    dict(req.drops), req.transport_errors, source_ip, tenant_id)
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
        silent = self._silent(beats)
        rows = [{
            "did": device_id, "last_seen": b.at, "agent_version": b.agent_version, "collector_health": b.health,
            "drop_counters": b.drops, "last_external_ip_address": b.source_ip,
            "health_state": sensor_state(b.health, new_drops[device_id], b.transport_errors > 0,
                                         device_id in silent),
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

    def _silent(self, beats: dict[str, Beat]) -> set[str]:
        """The devices whose running sensors have sent no telemetry for SILENT_AFTER."""
        started = {d: t for d, b in beats.items() if (t := sensors_started(b.health)) is not None}
        if not started or self.last_telemetry is None:
            return set()
        by_tenant: dict[int, list[str]] = {}
        for d in started:
            by_tenant.setdefault(beats[d].tenant_id, []).append(d)
        out: set[str] = set()
        for tenant_id, ids in by_tenant.items():
            try:
                last = self.last_telemetry(tenant_id, ids)
            except Exception:  # the event store unreadable must not stop the heartbeats
                log.exception("telemetry times of tenant %s unreadable", tenant_id)
                continue
            out.update(d for d in ids if telemetry_silent(started[d], last.get(d), beats[d].at))
        return out

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
