"""Configuration assessment API: Defender's export-assessment shape, per-device and per-check views."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from garrison.core.access import Principal
from garrison.core.errors import Invalid, NotFound
from garrison.core.permissions import P
from garrison.server import odata
from garrison.server.api import models as schema
from garrison.server.api.common import device_scope, odata_list, returns
from garrison.server.api.machines import load_device
from garrison.server.auth import require
from garrison.store.models.core import Device
from garrison.tvm import assessment

router = APIRouter(prefix="/api", tags=["configuration assessment"])

# Defender's export API takes only `$filter=DeviceId eq '…'` (or an `or` of them).
_DEVICE_FILTER = re.compile(r"^\s*DeviceId\s+eq\s+'([0-9a-f]{1,64})'\s*$")


def _visible_device_ids(s: Any, principal: Principal) -> list[str] | None:
    if principal.group_ids is None:
        return None
    return list(s.scalars(select(Device.id).where(device_scope(principal))))


@router.get("/machines/SecureConfigurationsAssessmentByMachine",
            openapi_extra=odata.openapi_extra(max_top=100000, options=("$filter", "$top", "$skip")), responses=returns(schema.ODataList[schema.AssessmentRow]))
def assessment_by_machine(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    params = request.query_params
    wanted: list[str] | None = None
    if "$filter" in params:
        wanted = []
        for part in params["$filter"].split(" or "):
            m = _DEVICE_FILTER.match(part)
            if not m:
                raise Invalid("$filter supports DeviceId eq '<id>' (joined with 'or')")
            wanted.append(m.group(1))
    try:
        top, skip = odata.parse_paging(params, max_top=100000, default_top=10000)
    except odata.ODataError as exc:
        raise Invalid(str(exc)) from None
    with request.app.state.store.tenant(principal.tenant_id) as s:
        visible = _visible_device_ids(s, principal)
        if visible is not None:
            wanted = [d for d in (wanted if wanted is not None else visible) if d in set(visible)]
        rows = assessment.assessment_by_machine(s, wanted, limit=top, offset=skip)
    return odata_list(request, "SecureConfigurationsAssessmentByMachine", rows)


@router.get("/machines/{machine_id}/configurationAssessment", responses=returns(schema.ODataList[schema.AssessmentRow]))
def machine_assessment(machine_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        return odata_list(request, "ConfigurationAssessment", assessment.device_assessment(s, device.id))


@router.get("/configurationChecks", responses=returns(schema.ODataList[schema.AssessmentRow]))
def configuration_checks(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return odata_list(request, "ConfigurationChecks", assessment.secure_configuration_kb_rows(s))


@router.get("/configurationChecks/{check_id}/machineReferences", responses=returns(schema.ODataList[schema.AssessmentRow]))
def check_machines(check_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        known = {r.get("ConfigurationId") for r in assessment.secure_configuration_kb_rows(s)}
        if check_id not in known:
            raise NotFound(f"no configuration check {check_id!r}")
        rows = assessment.devices_for_check(s, check_id)
        visible = _visible_device_ids(s, principal)
        if visible is not None:
            rows = [r for r in rows if r["DeviceId"] in set(visible)]
    return odata_list(request, "MachineReferences", rows)
