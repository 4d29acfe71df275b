"""Ids of tenant A's alerts for the route-security tests (tests/server/test_route_security.py)."""

from __future__ import annotations

from typing import Any

from garrison.store.base import utcnow
from garrison.store.models.detection import Alert, Incident, Indicator
from tests.server.conftest import Env


def detection_ids(env: Env, dev: dict[str, Any]) -> dict[str, str]:
    now = utcnow()
    with env.store.tenant(env.a.id) as s:
        incident = Incident(tenant_id=env.a.id, name="i", device_id=dev["device_id"], severity="Low",
                            first_activity=now, last_activity=now)
        s.add(incident)
        s.flush()
        s.add(Alert(id="da" + "0" * 38, tenant_id=env.a.id, device_id=dev["device_id"], incident_id=incident.id,
                    title="t", severity="Low", category="Execution", detection_source="CustomDetection", detector_id="r", dedupe_key="k",
                    first_event_time=now, last_event_time=now))
        indicator = Indicator(tenant_id=env.a.id, indicator_type="IpAddress", indicator_value="203.0.113.1",
                              action="Alert", title="t")
        s.add(indicator)
        s.flush()
        incident_id, indicator_id = str(incident.id), str(indicator.id)
    return {"alert_id": "da" + "0" * 38, "incident_id": incident_id, "indicator_id": indicator_id}
