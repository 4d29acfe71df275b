"""Machine actions: the channel from the server to an agent (Defender MachineAction).

States: Pending → InProgress → Succeeded | Failed | TimeOut | Cancelled. Actions are
delivered in the check-in reply; the agent posts the result. Action types are executed by
the agent's action registry (more come with the response issues).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from garrison.core.errors import Conflict, Invalid, NotFound
from garrison.protocol.actions import ACTION_TYPES, InvalidActionParams
from garrison.store.base import utcnow
from garrison.store.db import Store
from garrison.store.models.core import ACTION_STATES, Device, MachineAction

ACTION_TIMEOUT = dt.timedelta(days=3)
FINAL = ("Succeeded", "Failed", "TimeOut", "Cancelled")


def create(s: Session, device: Device, type_: str, requestor: str, comment: str = "",
           params: dict[str, Any] | None = None) -> MachineAction:
    """A new Pending action; its type must be one of ``garrison.protocol.actions`` and its parameters
    must parse by that type's model (what the agent will parse them with)."""
    if len(comment) > 4000:
        raise Invalid("comment too long (max 4000 characters)")
    spec = ACTION_TYPES.get(type_)
    if spec is None:
        raise Invalid(f"unknown machine action type {type_[:80]!r}; known: {', '.join(ACTION_TYPES)}")
    try:
        params = spec.parse(params).model_dump(mode="json")
    except InvalidActionParams as exc:
        raise Invalid(str(exc)) from None
    open_same = s.scalar(select(MachineAction.id).where(
        MachineAction.device_id == device.id, MachineAction.type == type_,
        MachineAction.status.in_(("Pending", "InProgress"))))
    if open_same:
        raise Conflict(f"a {type_} action is already pending for this machine ({open_same})")
    now = utcnow()
    action = MachineAction(id=str(uuid.uuid4()), tenant_id=device.tenant_id, device_id=device.id, type=type_,
                           requestor=requestor, requestor_comment=comment, params=params or {},
                           creation_time=now, last_update_time=now, expires_at=now + ACTION_TIMEOUT)
    s.add(action)
    s.flush()
    return action


def pending_for_device(s: Session, device_id: str, now: dt.datetime) -> list[MachineAction]:
    """Actions to hand to the agent; expired ones time out instead. One indexed read per
    check-in (the common case is no open action at all). InProgress actions are handed out
    again until their result arrives: a lost check-in reply must not lose the action, and the
    agent runs each action id once."""
    handed: list[MachineAction] = []
    for a in s.scalars(select(MachineAction).where(
            MachineAction.device_id == device_id, MachineAction.status.in_(("Pending", "InProgress")))):
        if a.expires_at is not None and a.expires_at < now:
            a.status, a.last_update_time = "TimeOut", now
            continue
        if a.status == "Pending":
            a.status, a.last_update_time = "InProgress", now
        handed.append(a)
    return handed


def record_result(s: Session, device_id: str, action_id: str, status: str, result: dict[str, Any]) -> None:
    action = s.get(MachineAction, action_id)
    if action is None or action.device_id != device_id:
        raise NotFound(f"no action {action_id!r} for this device")
    if status not in ACTION_STATES:
        raise Invalid(f"unknown action status {status!r}")
    if action.status in FINAL:
        return  # a late or repeated result changes nothing
    action.status = status
    action.result = result
    action.last_update_time = utcnow()


def cancel(s: Session, action: MachineAction, requestor: str, comment: str) -> None:
    if action.status in FINAL:
        raise Conflict(f"action is already {action.status}")
    action.status = "Cancelled"
    action.result = {"cancelledBy": requestor, "comment": comment[:4000]}
    action.last_update_time = utcnow()


def to_api(a: MachineAction, device_name: str = "") -> dict[str, Any]:
    return {
        "id": a.id, "type": a.type, "status": a.status, "machineId": a.device_id,
        "computerDnsName": device_name, "requestor": a.requestor, "requestorComment": a.requestor_comment,
        "creationDateTimeUtc": a.creation_time, "lastUpdateDateTimeUtc": a.last_update_time,
        "params": a.params, "result": a.result,
    }


def expire_actions(store: Store) -> None:
    """Actions of devices that never came back for them time out."""
    now = utcnow()
    with store.system() as s:
        s.execute(update(MachineAction)
                  .where(MachineAction.status.in_(("Pending", "InProgress")), MachineAction.expires_at < now)
                  .values(status="TimeOut", last_update_time=now))
