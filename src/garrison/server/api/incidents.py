"""Incidents API, shaped like Defender's (``/api/incidents``): related alerts grouped, within the caller's
tenant and device groups."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from garrison.core.access import Principal
from garrison.core.errors import NotFound
from garrison.core.permissions import P
from garrison.core.scope import AccessScope
from garrison.edr.detection import alerts
from garrison.server import odata
from garrison.server.api import models as schema
from garrison.server.api.common import ODATA, returns, run_list
from garrison.server.auth import require
from garrison.store.models.core import Device
from garrison.store.models.detection import Alert, Incident

router = APIRouter(prefix="/api", tags=["incidents"])


def incident_fields() -> dict[str, odata.Field]:
    return {
        "incidentId": odata.Field(Incident.id, int),
        "incidentName": odata.Field(Incident.name),
        "status": odata.Field(Incident.status),
        "severity": odata.Field(Incident.severity),
        "assignedTo": odata.Field(Incident.assigned_to),
        "classification": odata.Field(Incident.classification),
        "determination": odata.Field(Incident.determination),
        "machineId": odata.Field(Incident.device_id),
        "computerDnsName": odata.Field(Device.computer_dns_name),
        "createdTime": odata.Field(Incident.created_time, dt.datetime),
        "lastUpdateTime": odata.Field(Incident.last_update_time, dt.datetime),
        "firstActivity": odata.Field(Incident.first_activity, dt.datetime),
        "lastActivity": odata.Field(Incident.last_activity, dt.datetime),
    }


def _stmt(scope: AccessScope) -> Any:
    return select(Incident, Device.computer_dns_name).join(Device, Device.id == Incident.device_id).where(
        scope.devices())


@router.get("/incidents", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.Incident]))
def list_incidents(request: Request, principal: Principal = require(P.ALERTS_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return run_list(s, request, _stmt(AccessScope.of(principal)), incident_fields(),
                        lambda r: alerts.incident_to_api(r[0], r[1]), "Incidents",
                        default_order=[Incident.last_activity.desc(), Incident.id])


def _load(s: Any, principal: Principal, incident_id: str) -> tuple[Incident, str, list[Alert]]:
    row = s.execute(_stmt(AccessScope.of(principal)).where(Incident.id == int(incident_id))).first() \
        if incident_id.isdigit() and len(incident_id) <= 18 else None
    if row is None:
        raise NotFound(f"no incident with id {incident_id[:20]!r}")
    members = list(s.scalars(select(Alert).where(Alert.incident_id == row[0].id).order_by(Alert.first_event_time)))
    return row[0], row[1], members


@router.get("/incidents/{incident_id}", responses=returns(schema.Incident))
def get_incident(incident_id: str, request: Request, principal: Principal = require(P.ALERTS_READ)) -> dict[str, Any]:
    """The incident with its alerts (each with its linking reason)."""
    with request.app.state.store.tenant(principal.tenant_id) as s:
        incident, name, members = _load(s, principal, incident_id)
        return alerts.incident_to_api(incident, name, members)


class IncidentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str | None = Field(default=None, max_length=16)
    assignedTo: str | None = Field(default=None, max_length=256)
    classification: str | None = Field(default=None, max_length=40)
    determination: str | None = Field(default=None, max_length=40)
    tags: list[str] | None = Field(default=None, max_length=alerts.MAX_TAGS)
    comment: str | None = Field(default=None, max_length=alerts.MAX_COMMENT)


@router.patch("/incidents/{incident_id}", responses=returns(schema.Incident))
def update_incident(incident_id: str, body: IncidentUpdate, request: Request,
                    principal: Principal = require(P.ALERTS_MANAGE)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        incident, name, members = _load(s, principal, incident_id)
        alerts.apply_incident_update(incident, members, body.model_dump(exclude_unset=True), principal.actor)
        s.flush()
        return alerts.incident_to_api(incident, name, members)
