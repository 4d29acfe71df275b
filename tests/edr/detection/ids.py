"""Ids of tenant A's alerts for the route-security tests (tests/server/test_route_security.py)."""

from __future__ import annotations

from typing import Any

from garrison.store.base import utcnow
from garrison.store.models.detection import Alert
from tests.server.conftest import Env


def detection_ids(env: Env, dev: dict[str, Any]) -> dict[str, str]:
    now = utcnow()
    with env.store.tenant(env.a.id) as s:
        s.add(Alert(id="da" + "0" * 38, tenant_id=env.a.id, device_id=dev["device_id"], title="t", severity="Low",
                    category="Execution", detection_source="CustomDetection", detector_id="r", dedupe_key="k",
                    first_event_time=now, last_event_time=now))
    return {"alert_id": "da" + "0" * 38}
