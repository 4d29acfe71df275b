"""Custom indicators API, shaped like Defender's (``/api/indicators``), and their matching at ingest."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from garrison.core.access import Principal
from garrison.core.errors import Invalid, NotFound
from garrison.core.permissions import P
from garrison.edr.detection import alerts, indicators
from garrison.protocol.bounds import to_utc
from garrison.server import odata
from garrison.server.api import models as schema
from garrison.server.api.common import ODATA, returns, run_list
from garrison.server.auth import require
from garrison.store.base import utcnow
from garrison.store.models.core import DeviceGroup
from garrison.store.models.detection import Indicator

router = APIRouter(prefix="/api", tags=["indicators"])


def setup(app: FastAPI) -> None:
    matcher = indicators.IndicatorMatcher(app.state.store, alerts.AlertSink(app.state.store))
    app.state.indicators = matcher
    app.state.events.listeners.append(matcher.on_write)


def indicator_fields() -> dict[str, odata.Field]:
    return {
        "id": odata.Field(Indicator.id, int),
        "indicatorValue": odata.Field(Indicator.indicator_value),
        "indicatorType": odata.Field(Indicator.indicator_type),
        "action": odata.Field(Indicator.action),
        "title": odata.Field(Indicator.title),
        "severity": odata.Field(Indicator.severity),
        "generateAlert": odata.Field(Indicator.generate_alert, bool),
        "createdBy": odata.Field(Indicator.created_by),
        "creationTimeDateTimeUtc": odata.Field(Indicator.creation_time, dt.datetime),
        "lastUpdateTime": odata.Field(Indicator.last_update_time, dt.datetime),
        "expirationTime": odata.Field(Indicator.expiration_time, dt.datetime),
    }


def to_api(ind: Indicator) -> dict[str, Any]:
    return {"id": str(ind.id), "indicatorValue": ind.indicator_value, "indicatorType": ind.indicator_type,
            "action": ind.action, "title": ind.title, "description": ind.description, "severity": ind.severity,
            "recommendedActions": ind.recommended_actions, "expirationTime": ind.expiration_time,
            "generateAlert": ind.generate_alert, "rbacGroupIds": ind.rbac_group_ids, "createdBy": ind.created_by,
            "creationTimeDateTimeUtc": ind.creation_time, "lastUpdateTime": ind.last_update_time,
            "sourceType": "User"}


@router.get("/indicators", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.Indicator]))
def list_indicators(request: Request, principal: Principal = require(P.INDICATORS_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return run_list(s, request, select(Indicator), indicator_fields(), lambda r: to_api(r[0]), "Indicators",
                        default_order=[Indicator.id])


class IndicatorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indicatorValue: str = Field(min_length=1, max_length=1024)
    indicatorType: str = Field(max_length=32)
    action: str = Field(max_length=32)
    title: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=4096)
    severity: str = Field(default="Informational", max_length=16)
    recommendedActions: str = Field(default="", max_length=4096)
    expirationTime: dt.datetime | None = None
    generateAlert: bool = True
    rbacGroupIds: list[int] = Field(default_factory=list, max_length=500)


@router.post("/indicators", responses=returns(schema.Indicator))
def submit_indicator(body: IndicatorBody, request: Request,
                     principal: Principal = require(P.INDICATORS_MANAGE, all_groups=True)) -> dict[str, Any]:
    """Submit or update (same type and value) an indicator, as Defender's ``POST /api/indicators``."""
    value = indicators.normalise(body.indicatorType, body.indicatorValue)
    if body.action not in indicators.ACTIONS:
        raise Invalid(f"action must be one of {', '.join(indicators.ACTIONS)}")
    if body.severity not in indicators.SEVERITIES:
        raise Invalid(f"severity must be one of {', '.join(indicators.SEVERITIES)}")
    expires = to_utc(body.expirationTime) if body.expirationTime else None
    with request.app.state.store.tenant(principal.tenant_id) as s:
        groups = set(s.scalars(select(DeviceGroup.id).where(DeviceGroup.id.in_(body.rbacGroupIds))))
        if set(body.rbacGroupIds) - groups:
            raise Invalid(f"no device group with id {min(set(body.rbacGroupIds) - groups)}")
        ind = s.scalar(select(Indicator).where(Indicator.indicator_type == body.indicatorType,
                                               Indicator.indicator_value == value))
        if ind is None:
            if (s.scalar(select(func.count()).select_from(Indicator)) or 0) >= indicators.MAX_PER_TENANT:
                raise Invalid(f"a tenant has at most {indicators.MAX_PER_TENANT} indicators")
            ind = Indicator(indicator_type=body.indicatorType, indicator_value=value, created_by=principal.actor)
            s.add(ind)
        ind.action, ind.title, ind.description = body.action, body.title, body.description
        ind.severity, ind.recommended_actions, ind.expiration_time = body.severity, body.recommendedActions, expires
        ind.generate_alert, ind.rbac_group_ids = body.generateAlert, sorted(groups)
        ind.last_update_time = utcnow()
        s.flush()
        out = to_api(ind)
    request.app.state.indicators.invalidate(principal.tenant_id)
    return out


@router.delete("/indicators/{indicator_id}", status_code=204)
def delete_indicator(indicator_id: str, request: Request,
                     principal: Principal = require(P.INDICATORS_MANAGE, all_groups=True)) -> Response:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        ind = s.get(Indicator, int(indicator_id)) if indicator_id.isdigit() and len(indicator_id) <= 18 else None
        if ind is None or ind.tenant_id != principal.tenant_id:
            raise NotFound(f"no indicator with id {indicator_id[:20]!r}")
        s.delete(ind)
    request.app.state.indicators.invalidate(principal.tenant_id)
    return Response(status_code=204)
