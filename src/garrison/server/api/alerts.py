"""Alerts API, shaped like Defender's (``/api/alerts``), and the detection engine's wiring at ingest.

``setup`` attaches the detection service (the server's ``detection_rules``) to the event store of this
server, with the alerts store as its sink: every batch written is evaluated in the writer's pass.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from garrison.core.access import Principal
from garrison.core.errors import Invalid, NotFound
from garrison.core.permissions import P
from garrison.core.scope import AccessScope
from garrison.edr.detection import alerts, rules
from garrison.edr.detection.stream import DetectionService
from garrison.server import odata
from garrison.server.api import models as schema
from garrison.server.api.common import ODATA, odata_list, returns
from garrison.server.auth import require
from garrison.store.models.core import Device, DeviceGroup
from garrison.store.models.detection import Alert

router = APIRouter(prefix="/api", tags=["alerts"])
Group = aliased(DeviceGroup)


def setup(app: FastAPI) -> None:
    spec = app.state.settings.detection_rules
    service = DetectionService(lambda: rules.configured(spec), alerts.AlertSink(app.state.store), background=True)
    app.state.detection = service
    app.state.events.listeners.append(service.on_write)


def alert_fields() -> dict[str, odata.Field]:
    return {
        "id": odata.Field(Alert.id),
        "title": odata.Field(Alert.title),
        "severity": odata.Field(Alert.severity),
        "status": odata.Field(Alert.status),
        "classification": odata.Field(Alert.classification),
        "determination": odata.Field(Alert.determination),
        "category": odata.Field(Alert.category),
        "detectionSource": odata.Field(Alert.detection_source),
        "detectorId": odata.Field(Alert.detector_id),
        "assignedTo": odata.Field(Alert.assigned_to),
        "machineId": odata.Field(Alert.device_id),
        "computerDnsName": odata.Field(Device.computer_dns_name),
        "rbacGroupName": odata.Field(Group.name),
        "alertCreationTime": odata.Field(Alert.alert_creation_time, dt.datetime),
        "firstEventTime": odata.Field(Alert.first_event_time, dt.datetime),
        "lastEventTime": odata.Field(Alert.last_event_time, dt.datetime),
        "lastUpdateTime": odata.Field(Alert.last_update_time, dt.datetime),
        "resolvedTime": odata.Field(Alert.resolved_time, dt.datetime),
        "eventCount": odata.Field(Alert.event_count, int),
    }


def _stmt(scope: AccessScope) -> Any:
    return (select(Alert, Device.computer_dns_name, Group.name).join(Device, Device.id == Alert.device_id)
            .outerjoin(Group, Group.id == Device.group_id).where(scope.devices()))


_EXPAND = {"name": "$expand", "in": "query", "required": False, "schema": {"type": "string", "enum": ["evidence"]}}


@router.get("/alerts", openapi_extra={"parameters": [*ODATA["parameters"], _EXPAND]}, responses=returns(schema.ODataList[schema.Alert]))
def list_alerts(request: Request, principal: Principal = require(P.ALERTS_READ)) -> dict[str, Any]:
    """Alerts of the caller's tenant and device groups (OData ``$filter``, ``$orderby``, ``$top``, ``$skip``,
    ``$select``, ``$count``); ``$expand=evidence`` adds the evidence entities, as Defender's list does."""
    params = {k: v for k, v in request.query_params.items() if k.lower() != "$expand"}
    expand = request.query_params.get("$expand")
    if expand is not None and expand.strip().lower() != "evidence":
        raise Invalid("$expand takes 'evidence' only")
    try:
        q = odata.parse_query(params, alert_fields(), default_order=[Alert.alert_creation_time.desc(), Alert.id])
    except odata.ODataError as exc:
        raise Invalid(str(exc)) from None
    stmt = _stmt(AccessScope.of(principal))
    with request.app.state.store.tenant(principal.tenant_id) as s:
        count = None
        if params.get("$count", "").lower() == "true":
            filtered = stmt.where(q.filter) if q.filter is not None else stmt
            count = s.scalar(select(func.count()).select_from(filtered.subquery()))
        rows = s.execute(odata.apply(stmt, q)).all()
        return odata_list(request, "Alerts", (alerts.to_api(a, n, g, expand is not None) for a, n, g in rows),
                          q.select, count)


def _load(s: Any, scope: AccessScope, alert_id: str) -> Any:
    row = s.execute(_stmt(scope).where(Alert.id == alert_id[:64])).first() if len(alert_id) <= 64 else None
    if row is None:
        raise NotFound(f"no alert with id {alert_id[:64]!r}")
    return row


@router.get("/alerts/{alert_id}", responses=returns(schema.Alert))
def get_alert(alert_id: str, request: Request, principal: Principal = require(P.ALERTS_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        a, name, group = _load(s, AccessScope.of(principal), alert_id)
        return alerts.to_api(a, name, group)


class AlertUpdate(BaseModel):
    """Defender's alert update body."""

    model_config = ConfigDict(extra="forbid")
    status: str | None = Field(default=None, max_length=16)
    assignedTo: str | None = Field(default=None, max_length=256)
    classification: str | None = Field(default=None, max_length=40)
    determination: str | None = Field(default=None, max_length=40)
    comment: str | None = Field(default=None, max_length=alerts.MAX_COMMENT)


@router.patch("/alerts/{alert_id}", responses=returns(schema.Alert))
def update_alert(alert_id: str, body: AlertUpdate, request: Request,
                 principal: Principal = require(P.ALERTS_MANAGE)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        a, name, group = _load(s, AccessScope.of(principal), alert_id)
        alerts.apply_update(a, body.model_dump(exclude_unset=True), principal.actor)
        s.flush()
        return alerts.to_api(a, name, group)
