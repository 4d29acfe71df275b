"""Telemetry health of a device: sensor state, events/s, drops, last event time, and Defender's
``NoSensorData`` when a device that checks in sends no telemetry."""

from __future__ import annotations

import datetime as dt
from typing import Any

from garrison.core import devices
from garrison.edr.events.store import EventScope
from garrison.store.models.core import Device

WINDOW = dt.timedelta(minutes=5)  # events/s and recent drops are over this window
SILENT_AFTER = dt.timedelta(minutes=15)  # a checking-in device without telemetry for this long: NoSensorData


def telemetry_health(scope: EventScope, device: Device, now: dt.datetime) -> dict[str, Any]:
    stats = scope.sensor_stats(now - WINDOW, device.id).get(device.id) or {}
    last_event = stats.get("lastEvent")
    last_received = stats.get("lastReceived")
    status = devices.health_status(device, now)
    silent = (not device.agentless and status in ("Active", "ImpairedCommunication")
              and (last_received is None or now - last_received > SILENT_AFTER))
    if silent:
        status = "NoSensorData" if status == "Active" else "NoSensorDataImpairedCommunication"
    return {"machineId": device.id, "healthStatus": status, "sensorState": devices.sensor_state(device),
            "eventsPerSecond": round((stats.get("events") or 0) / WINDOW.total_seconds(), 2),
            "droppedEventsLast5Minutes": int(stats.get("drops") or 0), "droppedEventsTotal": int(stats.get("dropsTotal") or 0),
            "lastEventTime": last_event, "lastTelemetryReceived": last_received, "telemetry": not silent}
