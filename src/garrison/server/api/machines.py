"""Device inventory API, shaped like the Defender for Endpoint Machine API."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import aliased

from garrison.core import actions, devices
from garrison.core.access import Principal
from garrison.core.errors import Invalid, NotFound
from garrison.core.permissions import P
from garrison.core.scope import AccessScope
from garrison.protocol.actions import ACTION_TYPES
from garrison.protocol.bounds import to_utc
from garrison.server import odata
from garrison.server.api import models as schema
from garrison.server.api.common import ODATA, device_scope, odata_list, returns, run_list
from garrison.server.auth import require
from garrison.store.base import utcnow
from garrison.store.models.core import Device, DeviceGroup, DeviceTag, MachineAction

router = APIRouter(prefix="/api", tags=["machines"])
Group = aliased(DeviceGroup)


def machine_fields() -> dict[str, odata.Field]:
    return {
        "id": odata.Field(Device.id),
        "computerDnsName": odata.Field(Device.computer_dns_name),
        "firstSeen": odata.Field(Device.first_seen, dt.datetime),
        "lastSeen": odata.Field(Device.last_seen, dt.datetime),
        "osPlatform": odata.Field(Device.os_platform),
        "osVersion": odata.Field(Device.os_version),
        "osProcessor": odata.Field(Device.os_processor),
        "osArchitecture": odata.Field(Device.os_architecture),
        "osBuild": odata.Field(Device.os_build),
        "version": odata.Field(Device.os_version),
        "lastIpAddress": odata.Field(Device.last_ip_address),
        "lastExternalIpAddress": odata.Field(Device.last_external_ip_address),
        "healthStatus": odata.Field(devices.health_expr()),
        "onboardingStatus": odata.Field(Device.onboarding_status),
        "rbacGroupId": odata.Field(Device.group_id, int),
        "rbacGroupName": odata.Field(Group.name),
        "riskScore": odata.Field(Device.risk_score),
        "exposureLevel": odata.Field(Device.exposure_level),
        "exposureScore": odata.Field(Device.exposure_score, float),
        "deviceValue": odata.Field(Device.device_value),
        "agentVersion": odata.Field(Device.agent_version),
        "isAgentless": odata.Field(Device.agentless, bool),
        "machineTags": odata.Field(Device.tags, str, sortable=False, collection=True, element_predicate=odata.element_exists(DeviceTag.tag, DeviceTag.device_id == Device.id)),
    }


def machine_to_api(device: Device, group_name: str | None, now: dt.datetime | None = None) -> dict[str, Any]:
    return {
        "id": device.id,
        "computerDnsName": device.computer_dns_name,
        "firstSeen": device.first_seen,
        "lastSeen": device.last_seen,
        "osPlatform": device.os_platform,
        "osVersion": device.os_version,
        "osProcessor": device.os_processor,
        "version": device.os_version,
        "osBuild": device.os_build,
        "osArchitecture": device.os_architecture,
        "osDistribution": device.os_id,
        "kernelVersion": device.kernel,
        "lastIpAddress": device.last_ip_address,
        "lastExternalIpAddress": device.last_external_ip_address,
        "ipAddresses": device.ip_addresses,
        "healthStatus": devices.health_status(device, now),
        "onboardingStatus": device.onboarding_status,
        "rbacGroupId": device.group_id,
        "rbacGroupName": group_name,
        "riskScore": device.risk_score,
        "exposureLevel": device.exposure_level,
        "exposureScore": device.exposure_score,
        "deviceValue": device.device_value,
        "machineTags": device.tags,
        "agentVersion": device.agent_version,
        "isAgentless": device.agentless,
    }


def _machines_stmt(principal: Principal) -> Any:
    return select(Device, Group.name).outerjoin(Group, Group.id == Device.group_id).where(device_scope(principal))


def load_device(s: Any, principal: Principal, machine_id: str) -> Device:
    return AccessScope.of(principal).device(s, machine_id)


@router.get("/machines", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.Machine]))
def list_machines(request: Request, principal: Principal = require(P.MACHINES_READ)) -> dict[str, Any]:
    now = utcnow()
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return run_list(s, request, _machines_stmt(principal), machine_fields(),
                        lambda r: machine_to_api(r[0], r[1], now), "Machines",
                        default_order=[Device.computer_dns_name, Device.id])


@router.get("/machines/findbytag", responses=returns(schema.ODataList[schema.Machine]))
def find_by_tag(request: Request, tag: str, useStartsWithFilter: bool = False,
                principal: Principal = require(P.MACHINES_READ)) -> dict[str, Any]:
    now = utcnow()
    with request.app.state.store.tenant(principal.tenant_id) as s:
        rows = s.execute(_machines_stmt(principal).where(devices.tag_filter(tag, useStartsWithFilter))
                         .order_by(Device.computer_dns_name)).all()
        return odata_list(request, "Machines", [machine_to_api(d, g, now) for d, g in rows])


_FINDBYIP = re.compile(r"^ip='([0-9A-Fa-f:.%]{1,64})'(?:,timestamp=([0-9T:.+\-Z]{10,40}))?$")


@router.get("/machines/findbyip({args})", responses=returns(schema.ODataList[schema.Machine]))
def find_by_ip(args: str, request: Request, principal: Principal = require(P.MACHINES_READ)) -> dict[str, Any]:
    m = _FINDBYIP.match(args)
    if not m:
        raise Invalid("use findbyip(ip='10.1.2.3',timestamp=2024-01-01T00:00:00Z)")
    at = None
    if m.group(2):
        try:
            at = to_utc(dt.datetime.fromisoformat(m.group(2)))
        except ValueError:
            raise Invalid(f"invalid timestamp {m.group(2)!r}") from None
    now = utcnow()
    with request.app.state.store.tenant(principal.tenant_id) as s:
        rows = s.execute(_machines_stmt(principal).where(devices.ip_filter(m.group(1), at))).all()
        return odata_list(request, "Machines", [machine_to_api(d, g, now) for d, g in rows])


@router.get("/machines/{machine_id}", responses=returns(schema.Machine))
def get_machine(machine_id: str, request: Request, principal: Principal = require(P.MACHINES_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        group = s.get(DeviceGroup, device.group_id) if device.group_id else None
        return machine_to_api(device, group.name if group else None)


@router.get("/machines/{machine_id}/logonusers", responses=returns(schema.ODataList[schema.LogonUser]))
def logon_users(machine_id: str, request: Request, principal: Principal = require(P.MACHINES_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        users = [{"id": u.get("user"), "accountName": u.get("user"), "logonTypes": "Interactive" if
                  (u.get("terminal") or "").startswith("tty") else "Network",
                  "terminal": u.get("terminal"), "remoteHost": u.get("host"), "firstSeen": u.get("since")}
                 for u in device.logged_on_users]
        return odata_list(request, "Users", users)


class TagBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    Value: str = Field(min_length=1, max_length=200)
    Action: str = Field(pattern="^(Add|Remove)$")


class BatchTagBody(TagBody):
    MachineIds: list[str] = Field(min_length=1, max_length=500)


@router.post("/machines/{machine_id}/tags", responses=returns(schema.Machine))
def machine_tags(machine_id: str, body: TagBody, request: Request,
                 principal: Principal = require(P.MACHINES_ACT)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        devices.set_tag(s, device, body.Value, body.Action == "Add")
        s.flush()
        group = s.get(DeviceGroup, device.group_id) if device.group_id else None
        return machine_to_api(device, group.name if group else None)


@router.post("/machines/AddOrRemoveTagForMultipleMachines", responses=returns(schema.ODataList[schema.Machine]))
def batch_tags(body: BatchTagBody, request: Request,
               principal: Principal = require(P.MACHINES_ACT)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        touched = [load_device(s, principal, mid) for mid in dict.fromkeys(body.MachineIds)]
        for device in touched:
            devices.set_tag(s, device, body.Value, body.Action == "Add")
        s.flush()
        return odata_list(request, "Machines", [machine_to_api(d, None) for d in touched])


class DeviceValueBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    DeviceValue: str


@router.post("/machines/{machine_id}/setDeviceValue", responses=returns(schema.Machine))
def set_device_value(machine_id: str, body: DeviceValueBody, request: Request,
                     principal: Principal = require(P.MACHINES_ACT)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        devices.set_device_value(device, body.DeviceValue)
        return machine_to_api(device, None)


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Comment: str = Field(default="", max_length=4000)


@router.post("/machines/{machine_id}/offboard", status_code=201, responses=returns(schema.MachineAction, 201))
def offboard_machine(machine_id: str, body: CommentBody, request: Request,
                     principal: Principal = require(P.MACHINES_OFFBOARD)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        action = devices.offboard(s, device, principal.actor, body.Comment)
        out = actions.to_api(action, device.computer_dns_name)
    request.app.state.device_cache.pop(machine_id, None)
    return out


# --- machine actions --------------------------------------------------------------------

def action_fields() -> dict[str, odata.Field]:
    return {
        "id": odata.Field(MachineAction.id), "type": odata.Field(MachineAction.type),
        "status": odata.Field(MachineAction.status), "machineId": odata.Field(MachineAction.device_id),
        "requestor": odata.Field(MachineAction.requestor),
        "creationDateTimeUtc": odata.Field(MachineAction.creation_time, dt.datetime),
        "lastUpdateDateTimeUtc": odata.Field(MachineAction.last_update_time, dt.datetime),
    }


@router.get("/machineactions", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.MachineAction]))
def list_actions(request: Request, principal: Principal = require(P.MACHINES_READ)) -> dict[str, Any]:
    stmt = select(MachineAction, Device.computer_dns_name).join(Device, Device.id == MachineAction.device_id) \
        .where(device_scope(principal))
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return run_list(s, request, stmt, action_fields(), lambda r: actions.to_api(r[0], r[1]), "MachineActions",
                        default_order=[MachineAction.creation_time.desc()])


def _load_action(s: Any, principal: Principal, action_id: str) -> tuple[MachineAction, Device]:
    action = s.get(MachineAction, action_id[:64])
    if action is None or action.tenant_id != principal.tenant_id:
        raise NotFound(f"no machine action {action_id!r}")
    try:
        device = load_device(s, principal, action.device_id)
    except NotFound:  # the action's device is in another group: say nothing of it
        raise NotFound(f"no machine action {action_id!r}") from None
    return action, device


@router.get("/machineactions/{action_id}", responses=returns(schema.MachineAction))
def get_action(action_id: str, request: Request, principal: Principal = require(P.MACHINES_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        action, device = _load_action(s, principal, action_id)
        return actions.to_api(action, device.computer_dns_name)


@router.post("/machineactions/{action_id}/cancel", responses=returns(schema.MachineAction))
def cancel_action(action_id: str, body: CommentBody, request: Request,
                  principal: Principal = require(P.MACHINES_ACT)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        action, device = _load_action(s, principal, action_id)
        actions.cancel(s, action, principal.actor, body.Comment)
        return actions.to_api(action, device.computer_dns_name)


class ActionRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Comment: str = Field(default="", max_length=4000)




def _make_action_route(action_type: str, path_name: str) -> None:
    def request_action(machine_id: str, body: ActionRequestBody, request: Request,
                       principal: Principal = require(P.MACHINES_ACT)) -> dict[str, Any]:
        with request.app.state.store.tenant(principal.tenant_id) as s:
            device = load_device(s, principal, machine_id)
            action = actions.create(s, device, action_type, principal.actor, body.Comment)
            return actions.to_api(action, device.computer_dns_name)

    request_action.__name__ = f"request_{path_name}"
    router.add_api_route(f"/machines/{{machine_id}}/{path_name}", request_action, methods=["POST"], status_code=201,
                         responses=returns(schema.MachineAction, 201))


# One request route per action type that declares one (garrison.protocol.actions).
for _spec in ACTION_TYPES.values():
    if _spec.api_path:
        _make_action_route(_spec.name, _spec.api_path)


__all__ = ["Depends", "load_device", "machine_fields", "machine_to_api", "router"]
