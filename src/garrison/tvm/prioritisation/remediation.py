"""Remediation activities: a tracked request to fix a recommendation on chosen device groups.

Requesting changes no device. Progress is measured, not declared: the target devices are the
devices of the chosen groups exposed to the recommendation (devices that become exposed while the
activity is open join them); a target is *fixed* while it is no longer exposed (inventories and
configuration results decide). When no target is exposed any more the activity completes by
**System confirmation**; a user can also complete it by hand (their identity is kept). Completed
activities are deleted 180 days after completion.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from garrison.core.access import Principal
from garrison.core.errors import Conflict, Invalid, NotFound
from garrison.store.base import utcnow
from garrison.store.models.core import Device, DeviceGroup, User
from garrison.store.models.prioritisation import (
    PRIORITIES,
    Recommendation,
    RemediationActivity,
    RemediationTarget,
    RemediationTicket,
)

RETENTION = dt.timedelta(days=180)
SYSTEM_CONFIRMATION = "System confirmation"


def identity(s: Session, principal: Principal) -> tuple[str, str]:
    """(id, email) of the caller: a user's e-mail address when known, else the actor name."""
    if principal.actor_type == "user":
        email = s.scalar(select(User.email).where(User.username == principal.actor))
        return principal.actor, email or principal.actor
    return principal.actor, ""


def active_recommendation_ids(s: Session) -> set[str]:
    return set(s.scalars(select(RemediationActivity.recommendation_id)
                         .where(RemediationActivity.status == "Active").distinct()))


def visible(principal: Principal, act: RemediationActivity) -> bool:
    if principal.group_ids is None:
        return True
    if act.group_ids is None:
        return False
    return bool(set(act.group_ids) & set(principal.group_ids))


def get(s: Session, principal: Principal, activity_id: str) -> RemediationActivity:
    act = s.get(RemediationActivity, activity_id[:36])
    if act is None or act.tenant_id != principal.tenant_id or not visible(principal, act):
        raise NotFound(f"no remediation activity {activity_id!r}")
    return act


def _in_scope(group_ids: list[int] | None, device_group: int | None) -> bool:
    return group_ids is None or device_group in group_ids


def create(s: Session, principal: Principal, rec: Recommendation, exposed: Iterable[str], *,
           priority: str = "Medium", due_on: dt.datetime | None = None, notes: str = "",
           group_ids: list[int] | None = None, title: str | None = None,
           now: dt.datetime | None = None) -> RemediationActivity:
    now = now or utcnow()
    if priority not in PRIORITIES:
        raise Invalid(f"priority must be one of {', '.join(PRIORITIES)}")
    if rec.remediation_type == "AttentionRequired":
        if due_on is not None:
            raise Invalid("an 'attention required' remediation has no due date")
    elif due_on is None:
        raise Invalid("give a due date (dueOn)")
    if due_on is not None:
        due_on = due_on if due_on.tzinfo else due_on.replace(tzinfo=dt.UTC)
        if due_on < now - dt.timedelta(days=1):
            raise Invalid("the due date is in the past")
    if group_ids is not None:
        group_ids = sorted({int(g) for g in group_ids})
        if not group_ids:
            raise Invalid("name at least one device group, or leave rbacGroupIds out for all")
        if principal.group_ids is not None and any(g not in principal.group_ids for g in group_ids):
            raise NotFound("no such device group")
    elif principal.group_ids is not None:
        group_ids = sorted(principal.group_ids)
    names: list[str] = []
    if group_ids is not None:
        found = dict(s.execute(select(DeviceGroup.id, DeviceGroup.name).where(DeviceGroup.id.in_(group_ids)))
                     .all())
        missing = [g for g in group_ids if g not in found]
        if missing:
            raise NotFound(f"no device group with id {missing[0]}")
        names = [found[g] for g in group_ids]
    exposed_ids = sorted(set(exposed))
    groups = _device_groups(s, exposed_ids)
    targets = [d for d in exposed_ids if _in_scope(group_ids, groups.get(d))]
    if not targets:
        raise Invalid("no device of the chosen device groups is exposed to this recommendation")
    requester_id, requester_email = identity(s, principal)
    category = "SecurityConfiguration" if rec.kind == "configuration" else "Software"
    act = RemediationActivity(
        id=str(uuid.uuid4()), recommendation_id=rec.id, title=(title or rec.name)[:512],
        description=_description(rec, len(targets)), category=category, type=rec.remediation_type,
        product_id=rec.product_id, config_id=rec.config_id, related_component=rec.related_component,
        recommended_version=rec.recommended_version, recommended_program=rec.recommended_program,
        recommended_vendor=rec.recommended_vendor, priority=priority, due_on=due_on, requester_notes=notes,
        requester_id=requester_id, requester_email=requester_email, group_ids=group_ids, group_names=names,
        created_on=now, status="Active", status_last_modified_on=now, target_devices=len(targets), fixed_devices=0)
    s.add(act)
    s.flush()
    s.add_all(RemediationTarget(activity_id=act.id, device_id=d, added_on=now) for d in targets)
    s.flush()
    return act


def request(s: Session, principal: Principal, rec: Recommendation, *, priority: str = "Medium",
            due_on: dt.datetime | None = None, notes: str = "", group_ids: list[int] | None = None,
            title: str | None = None, now: dt.datetime | None = None) -> RemediationActivity:
    """Request remediation of ``rec`` (API and console alike): the targets are the devices exposed to it
    that are active (seen in the last 30 days, the devices the recommendation counts), narrowed to the
    chosen device groups by :func:`create`."""
    from garrison.tvm.prioritisation import recommendations

    now = now or utcnow()
    targets = recommendations.exposed_device_ids(s, rec) & recommendations.active_device_ids(s, now)
    return create(s, principal, rec, targets, priority=priority, due_on=due_on, notes=notes, group_ids=group_ids,
                  title=title, now=now)


def _description(rec: Recommendation, n: int) -> str:
    what = {"Update": f"Update {rec.product_name} to {rec.recommended_version}" if rec.recommended_version
            else f"Update {rec.product_name} to a fixed version",
            "Upgrade": f"Upgrade {rec.product_name} to a supported release",
            "Uninstall": f"Uninstall {rec.product_name}",
            "AttentionRequired": f"No fix exists yet for {rec.product_name}: mitigate and watch for an update",
            "ConfigurationChange": rec.name}.get(rec.remediation_type, rec.name)
    return f"{what} ({n} exposed device{'s' if n != 1 else ''} when requested)"


def _device_groups(s: Session, device_ids: list[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for i in range(0, len(device_ids), 500):
        out.update(s.execute(select(Device.id, Device.group_id).where(Device.id.in_(device_ids[i : i + 500])))
                   .all())
    return out


def complete(s: Session, principal: Principal, act: RemediationActivity, now: dt.datetime | None = None) -> None:
    if act.status == "Completed":
        raise Conflict(f"remediation activity {act.id} is already completed")
    now = now or utcnow()
    cid, cemail = identity(s, principal)
    act.status, act.status_last_modified_on, act.completed_on = "Completed", now, now
    act.completion_method, act.completer_id, act.completer_email = "Manual", cid, cemail or cid


def update_progress(s: Session, now: dt.datetime, exposed: Mapping[str, set[str]]) -> int:
    """Refresh fixed/target counts of every active activity; complete those with nothing exposed."""
    acts = list(s.scalars(select(RemediationActivity).where(RemediationActivity.status == "Active")))
    if not acts:
        return 0
    completed = 0
    groups: dict[str, int | None] | None = None
    for act in acts:
        now_exposed = exposed.get(act.recommendation_id, set())
        targets = {t.device_id: t for t in s.scalars(select(RemediationTarget)
                                                     .where(RemediationTarget.activity_id == act.id))}
        new = [d for d in now_exposed if d not in targets]
        if new:
            if groups is None:
                groups = dict(s.execute(select(Device.id, Device.group_id)).all())
            for d in new:
                if d in groups and _in_scope(act.group_ids, groups[d]):
                    t = RemediationTarget(activity_id=act.id, device_id=d, added_on=now)
                    s.add(t)
                    targets[d] = t
        fixed = 0
        for d, t in targets.items():
            if d in now_exposed:
                t.fixed_on = None
            else:
                if t.fixed_on is None:
                    t.fixed_on = now
                fixed += 1
        act.target_devices, act.fixed_devices = len(targets), fixed
        if targets and fixed == len(targets):
            act.status, act.status_last_modified_on, act.completed_on = "Completed", now, now
            act.completion_method, act.completer_id, act.completer_email = "Automatic", SYSTEM_CONFIRMATION, None
            completed += 1
    s.flush()
    return completed


def purge_completed(s: Session, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    res: Any = s.execute(delete(RemediationActivity)
                    .where(RemediationActivity.status == "Completed", RemediationActivity.completed_on < now - RETENTION)
                    .execution_options(synchronize_session=False))
    return int(res.rowcount or 0)


def overdue(act: RemediationActivity, now: dt.datetime) -> bool:
    if act.status != "Active" or act.due_on is None:
        return False
    due = act.due_on if act.due_on.tzinfo else act.due_on.replace(tzinfo=dt.UTC)
    return due < now


def to_api(act: RemediationActivity, now: dt.datetime, tickets: list[RemediationTicket] | None = None) -> dict[str, Any]:
    attention = act.type == "AttentionRequired"
    completed_by = None
    if act.status == "Completed":
        completed_by = SYSTEM_CONFIRMATION if act.completion_method == "Automatic" else \
            (act.completer_email or act.completer_id)
    vendor = (act.product_id or "").split("-_-", 1)[0] if act.product_id else None
    return {
        "id": act.id,
        "title": act.title,
        "description": act.description,
        "category": act.category,
        "type": act.type,
        "recommendationId": act.recommendation_id,
        "nameId": act.recommendation_id,
        "productId": act.product_id,
        "vendorId": vendor,
        "scid": act.config_id,
        "relatedComponent": act.related_component,
        "recommendedVersion": act.recommended_version or None,
        "recommendedProgram": act.recommended_program or None,
        "recommendedVendor": act.recommended_vendor or None,
        "priority": act.priority,
        "dueOn": None if attention else act.due_on,
        "overdue": overdue(act, now),
        "requesterNotes": act.requester_notes,
        "requesterId": act.requester_id,
        "requesterEmail": act.requester_email or None,
        "rbacGroupIds": act.group_ids,
        "rbacGroupNames": act.group_names if act.group_ids is not None else [],
        "createdOn": act.created_on,
        "status": act.status,
        "statusLastModifiedOn": act.status_last_modified_on,
        "completionMethod": act.completion_method,
        "completedBy": completed_by,
        "completerId": act.completer_id,
        "completerEmail": act.completer_email,
        "completedOn": act.completed_on,
        "targetDevices": None if attention else act.target_devices,
        "fixedDevices": None if attention else act.fixed_devices,
        "targetDevicesCount": act.target_devices,
        "fixedDevicesCount": act.fixed_devices,
        "productivityImpactRemediationType": "AllExposedAssets" if act.category == "SecurityConfiguration" else None,
        "tickets": [ticket_to_api(t) for t in tickets or []],
    }


def ticket_to_api(t: RemediationTicket) -> dict[str, Any]:
    return {"id": t.id, "activityId": t.activity_id, "connector": t.connector, "connectionId": t.connection_id,
            "externalId": t.external_id or None, "url": t.url or None, "state": t.state, "closed": t.closed,
            "createdOn": t.created_at, "lastCheckedOn": t.last_checked_at, "lastError": t.last_error or None,
            "attempts": t.attempts}


def targets_with_devices(s: Session, act: RemediationActivity,
                         principal: Principal) -> list[tuple[RemediationTarget, Device | None, str | None]]:
    """The activity's devices that ``principal`` may see: a caller limited to device groups gets only
    the targets whose device is in one of them (a target whose device is gone is not provably in scope).
    The one place the API's machine references, its CSV export and the console's page read them."""
    stmt = (select(RemediationTarget, Device, DeviceGroup.name)
            .outerjoin(Device, Device.id == RemediationTarget.device_id)
            .outerjoin(DeviceGroup, DeviceGroup.id == Device.group_id)
            .where(RemediationTarget.activity_id == act.id)
            .order_by(Device.computer_dns_name, RemediationTarget.device_id))
    if principal.group_ids is not None:
        stmt = stmt.where(Device.group_id.in_(principal.group_ids))
    return [(t, d, g) for t, d, g in s.execute(stmt).all()]


def export_csv(s: Session, act: RemediationActivity, principal: Principal) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["Remediation activity", "Device ID", "Device name", "OS platform", "OS version", "Device group",
                "Status", "Added on", "Fixed on"])
    for t, d, g in targets_with_devices(s, act, principal):
        w.writerow([_csv_safe(act.title), t.device_id, _csv_safe(d.computer_dns_name if d else ""),
                    _csv_safe(d.os_platform if d else ""), _csv_safe(d.os_version if d else ""), _csv_safe(g or ""),
                    "Fixed" if t.fixed_on else "Exposed", t.added_on.isoformat(),
                    t.fixed_on.isoformat() if t.fixed_on else ""])
    return buf.getvalue()


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas in exported text (CSV injection)."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def counts(s: Session) -> dict[str, int]:
    return dict(s.execute(select(RemediationActivity.status, func.count()).group_by(RemediationActivity.status))
                .all())
