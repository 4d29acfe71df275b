"""Ids of tenant A's telemetry for the route-security tests (tests/server/test_route_security.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.server.conftest import Env, device_headers


def edr_ids(env: Env, dev: dict[str, Any]) -> dict[str, str]:
    now = dt.datetime.now(dt.UTC).isoformat()
    r = env.client.post("/agent/v1/events", headers=device_headers(dev), json={"seq": 1, "events": [
        {"Table": "DeviceProcessEvents", "Timestamp": now, "ActionType": "ProcessCreated", "ProcessId": 9}]})
    assert r.status_code == 200, r.text
    return {"table": "DeviceProcessEvents", "report_id": str(1 << 16)}
