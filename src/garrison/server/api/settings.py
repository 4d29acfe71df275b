"""Server-side settings of the agents: ``/api/settings/sensorExclusions`` (read: security operators;
change: admins; every change is in the audit log, by the AuditLog middleware)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from garrison.core import sensor_exclusions
from garrison.core.access import Principal
from garrison.core.permissions import P
from garrison.server.api import models as schema
from garrison.server.api.common import returns
from garrison.server.auth import require

router = APIRouter(prefix="/api/settings", tags=["settings"])


class ExclusionsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exclusions: list[Any] = Field(max_length=sensor_exclusions.MAX_EXCLUSIONS)  # entries: validated in core


GroupId = Annotated[int | None, Query(alias="groupId", ge=1, le=2**31 - 1)]


@router.get("/sensorExclusions", responses=returns(schema.SensorExclusions))
def get_sensor_exclusions(request: Request, group_id: GroupId = None,
                          principal: Principal = require(P.SETTINGS_READ, all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return sensor_exclusions.read(s, group_id)


@router.put("/sensorExclusions", responses=returns(schema.SensorExclusions))
def put_sensor_exclusions(request: Request, body: ExclusionsBody, group_id: GroupId = None,
                          principal: Principal = require(P.SETTINGS_MANAGE, all_groups=True)) -> dict[str, Any]:
    request.state.audit_target = f"groupId={group_id}" if group_id else "tenant"
    with request.app.state.store.tenant(principal.tenant_id) as s:
        out = sensor_exclusions.update(s, principal.tenant_id, group_id, body.exclusions, principal.actor)
    request.app.state.exclusions_cache.clear()  # committed: the next check-ins read the change
    return out
