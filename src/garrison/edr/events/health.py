"""Telemetry health of a device: sensor state, events/s, drops, last event time, and Defender's
``NoSensorData`` when a device whose sensors run sends no telemetry (the rule of
:mod:`garrison.core.heartbeats`, which also stores it for the machine list)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from garrison.core import devices
from garrison.core.heartbeats import LastTelemetry, sensors_started, telemetry_silent
from garrison.edr.events.service import EventService
from garrison.edr.events.store import EventScope
from garrison.store.models.core import Device

WINDOW = dt.timedelta(minutes=5)  # events/s and recent drops are over this window


def telemetry_health(scope: EventScope, device: Device, now: dt.datetime) -> dict[str, Any]:
    stats = scope.sensor_stats(now - WINDOW, device.id).get(device.id) or {}
    last_event = stats.get("lastEvent")
    last_received = stats.get("lastReceived")
    status = devices.health_status(device, now)
    started = None if device.agentless else sensors_started(device.collector_health or {})
    silent = (started is not None and status in ("Active", "ImpairedCommunication")
              and telemetry_silent(started, last_received, now))
    if silent:
        status = "NoSensorData" if status == "Active" else "NoSensorDataImpairedCommunication"
    return {"machineId": device.id, "healthStatus": status, "sensorState": devices.sensor_state(device),
            "eventsPerSecond": round((stats.get("events") or 0) / WINDOW.total_seconds(), 2),
            "droppedEventsLast5Minutes": int(stats.get("drops") or 0), "droppedEventsTotal": int(stats.get("dropsTotal") or 0),
            "lastEventTime": last_event, "lastTelemetryReceived": last_received, "telemetry": not silent}


def last_telemetry(service: EventService) -> LastTelemetry:
    """For the heartbeat flush: when each device's last event batch reached the event store, as the
    server's event writer keeps it in memory (seeded once per tenant from the store). Before the writer
    runs (no batch since the start) the store is read; the flush never starts the writer itself (its
    last flush runs at shutdown)."""
    def read(tenant_id: int, device_ids: list[str]) -> dict[str, dt.datetime]:
        writer = service.running_writer
        if writer is not None:
            return writer.last_received(tenant_id, device_ids)
        stats = service.store.scope(tenant_id, device_ids).sensor_stats(dt.datetime.now(dt.UTC))
        return {d: s["lastReceived"] for d, s in stats.items() if s.get("lastReceived") is not None}
    return read
