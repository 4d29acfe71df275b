"""Starts the sensors beside the agent loop and reports their health and drops at check-in.

The runner owns one :class:`SensorManager`. Sensors never run in the agent's main thread:
a slow collector cannot delay telemetry and a telemetry flood cannot delay a check-in (the
sink's writer only takes the spool's lock for one batch at a time). A sensor that cannot run
(not root, interface missing) is reported in health with the reason; the others run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from garrison.agent.sensors import base
from garrison.agent.sensors.base import EventSink, Exclusion, Sensor, SensorContext, SpoolPut
from garrison.protocol import CollectorHealth

log = logging.getLogger("garrison.agent.sensors")

HEALTH_PREFIX = "sensor."


def load_sensors() -> dict[str, type[Sensor]]:
    return dict(base.SENSORS)


class SensorManager:
    def __init__(self, put: SpoolPut, *, settings: dict[str, Any] | None = None, enabled: Iterable[str] = (),
                 state_dir: str = "", self_pids: Iterable[int] | None = None) -> None:
        s = dict(settings or {})
        self.settings = s
        self.sink = EventSink(put, rate=float(s.get("rate_limit", 2000)), burst=int(s.get("burst", 20000)),
                              max_queue=int(s.get("queue_size", 50000)),
                              exclusions=[Exclusion.parse(e) for e in s.get("exclusions", [])])
        pids = frozenset(self_pids) if self_pids is not None else frozenset({os.getpid()})
        self.ctx = SensorContext(self.sink, pids, s, state_dir=state_dir)
        self.enabled = list(enabled)
        self.sensors: dict[str, Sensor] = {}
        self.failed: dict[str, str] = {}
        self.server_exclusions: tuple[Exclusion, ...] = ()

    def start(self) -> None:
        classes = load_sensors()
        self.sink.start()
        ordered = sorted(classes.items(), key=lambda kv: (bool(kv[1].fallback_for), kv[0]))
        for name, cls in ordered:
            if self.enabled and name not in self.enabled and cls.fallback_for not in self.enabled:
                continue
            if cls.fallback_for and cls.fallback_for not in self.failed:
                continue  # the primary runs (or was not wanted): no fallback
            if cls.needs_root and os.geteuid() != 0:
                self.failed[name] = (f"needs root (audit netlink); the agent runs as uid {os.geteuid()}: "
                                     f"{', '.join(cls.tables)} are not collected")
                continue
            sensor = cls()
            try:
                sensor.start(self.ctx)
            except Exception as exc:  # noqa: BLE001 - reported in health; the agent goes on without it
                self.failed[name] = f"cannot start: {type(exc).__name__}: {exc}"
                log.warning("sensor %s cannot start: %s", name, exc)
                continue
            self.sensors[name] = sensor
            log.info("sensor %s started", name)

    def stop(self) -> None:
        for sensor in self.sensors.values():
            try:
                sensor.stop()
            except Exception as exc:  # noqa: BLE001
                log.warning("sensor %s did not stop cleanly: %s", sensor.name, exc)
        self.sensors.clear()
        self.sink.stop()

    def apply_server_settings(self, exclusions: Iterable[Any]) -> None:
        """Exclusions sent by the server at check-in (they add to the configured ones)."""
        parsed = []
        for raw in exclusions:
            try:
                parsed.append(raw if isinstance(raw, Exclusion) else Exclusion.parse(raw))
            except ValueError as exc:
                log.warning("exclusion from the server ignored: %s", exc)
        self.server_exclusions = tuple(parsed)
        local = [Exclusion.parse(e) for e in self.settings.get("exclusions", [])]
        self.sink.exclusions = tuple(local) + self.server_exclusions

    def health(self) -> dict[str, CollectorHealth]:
        out = {HEALTH_PREFIX + n: CollectorHealth(ok=False, error=why[:4096]) for n, why in self.failed.items()}
        for name, sensor in self.sensors.items():
            out[HEALTH_PREFIX + name] = sensor.health()
        return out

    def drops(self) -> dict[str, int]:
        drops = self.sink.snapshot_drops()
        for sensor in self.sensors.values():
            lost = getattr(sensor, "lost", None)
            if callable(lost):
                n = lost()
                if n:
                    drops["events.kernel_lost"] = drops.get("events.kernel_lost", 0) + n
        return drops

    def stats(self) -> dict[str, Any]:
        return {"emitted": dict(self.sink.emitted), "excluded": self.sink.excluded, "queued": self.sink.pending(),
                "last_event": self.sink.last_event,
                "coalesced": sum(int(getattr(s, "coalesced", 0)) for s in self.sensors.values())}
