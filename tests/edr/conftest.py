"""Fixtures of the telemetry tests: the server env of tests/server, event stores on both engines."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.server.conftest import Env, device_headers, enroll, env  # noqa: F401

UTC = dt.UTC


def post_events(env: Env, enrolled: dict[str, Any], seq: int, events: list[dict[str, Any]], **extra: Any) -> Any:
    return env.client.post("/agent/v1/events", headers=device_headers(enrolled),
                           json={"seq": seq, "events": events, **extra})


def proc(ts: dt.datetime, pid: int, name: str, ppid: int | None = None, cmd: str = "", **more: Any) -> dict[str, Any]:
    ev = {"Table": "DeviceProcessEvents", "Timestamp": ts.isoformat(), "ActionType": "ProcessCreated", "ProcessId": pid,
          "FileName": name, "FolderPath": f"/usr/bin/{name}", "ProcessCommandLine": cmd or name,
          "ProcessCreationTime": ts.isoformat(), **more}
    if ppid is not None:
        ev["InitiatingProcessId"] = ppid
    return ev


def conn(ts: dt.datetime, ip: str, port: int, pid: int | None = None) -> dict[str, Any]:
    ev = {"Table": "DeviceNetworkEvents", "Timestamp": ts.isoformat(), "ActionType": "ConnectionSuccess",
          "RemoteIP": ip, "RemotePort": port, "LocalIP": "10.0.0.5", "LocalPort": 40000, "Protocol": "Tcp"}
    if pid is not None:
        ev["InitiatingProcessId"] = pid
    return ev
