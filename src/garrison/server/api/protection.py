"""Protection API (issue 17): ``POST /api/machines/{id}/runAntiVirusScan`` (Defender's body: ``Comment``,
``ScanType`` Quick/Full; Garrison adds Custom with ``Paths`` and ``Quarantine``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from garrison.core import actions
from garrison.core.access import Principal
from garrison.core.permissions import P
from garrison.protocol.protection import RUN_ANTIVIRUS_SCAN, ScanParams
from garrison.server.api import models as schema
from garrison.server.api.common import returns
from garrison.server.api.machines import load_device
from garrison.server.auth import require

router = APIRouter(prefix="/api", tags=["protection"])


class RunAntiVirusScanBody(ScanParams):
    Comment: str = Field(default="", max_length=4000)


@router.post("/machines/{machine_id}/runAntiVirusScan", status_code=201, responses=returns(schema.MachineAction, 201))
def run_antivirus_scan(machine_id: str, body: RunAntiVirusScanBody, request: Request,
                       principal: Principal = require(P.MACHINES_ACT)) -> dict[str, Any]:
    params = ScanParams.model_validate(body.model_dump(exclude={"Comment"})).model_dump(mode="json")
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        action = actions.create(s, device, RUN_ANTIVIRUS_SCAN, principal.actor, body.Comment, params)
        return actions.to_api(action, device.computer_dns_name)
