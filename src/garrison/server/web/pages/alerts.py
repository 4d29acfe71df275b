"""The alerts queue: the detection engine's alerts of the caller's tenant and device groups, filtered by
severity, status, category and detection source, newest first; assign to me and change status (the same
update as ``PATCH /api/alerts/{id}``: garrison.edr.detection.alerts.apply_update)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import func, select

from garrison.core.access import Principal
from garrison.core.errors import GarrisonError, NotFound
from garrison.core.permissions import P
from garrison.core.scope import AccessScope
from garrison.edr.detection import alerts
from garrison.server.auth import require
from garrison.server.web import session
from garrison.server.web.common import back_to, page, redirect, router
from garrison.server.web.render import Column, choice, order_by, pager, render, sort_of
from garrison.store.base import utcnow
from garrison.store.models.core import Device
from garrison.store.models.detection import Alert

CATEGORIES = sorted(set(alerts.CATEGORIES.values()) | {alerts.DEFAULT_CATEGORY})
SOURCES = (alerts.DETECTION_SOURCE,)
SEVERITIES = ("High", "Medium", "Low", "Informational")


def columns() -> list[Column]:
    return [
        Column("title", "Alert", Alert.title),
        Column("severity", "Severity", Alert.severity),
        Column("status", "Status", Alert.status),
        Column("device", "Device", Device.computer_dns_name),
        Column("category", "Category", Alert.category, narrow=False),
        Column("source", "Detection source", Alert.detection_source, narrow=False),
        Column("last", "Last activity", Alert.last_event_time, default_desc=True),
        Column("assigned", "Assigned to", Alert.assigned_to, narrow=False),
    ]


@router.get("/alerts")
def alert_queue(request: Request, principal: Principal = require(P.ALERTS_READ)) -> Response:
    now = utcnow()
    with page(request, principal, "alerts") as (s, ctx):
        conds = [ctx.device_cond()]
        for name, column, options in (("severity", Alert.severity, SEVERITIES), ("status", Alert.status,
                                       alerts.STATUSES), ("category", Alert.category, CATEGORIES),
                                      ("source", Alert.detection_source, SOURCES)):
            value = choice(ctx, name, options)
            if value:
                conds.append(column == value)
        q = ctx.param("q")
        if q:
            conds.append(Alert.title.contains(q, autoescape=True))
        base = select(Alert, Device.computer_dns_name).join(Device, Device.id == Alert.device_id).where(*conds)
        total = s.scalar(select(func.count()).select_from(base.subquery())) or 0
        p = pager(ctx, total)
        cols = columns()
        sort = sort_of(ctx, cols, "last", default_desc=True)
        rows = s.execute(base.order_by(*order_by(cols, sort, [Alert.id])).limit(p.size).offset(p.offset)).all()
        return render(ctx, "alerts.html", title="Alerts queue", cols=cols, sort=sort, p=p,
                      items=[{"a": a, "device": name} for a, name in rows], severities=SEVERITIES,
                      statuses=alerts.STATUSES, categories=CATEGORIES, sources=SOURCES, now=now)


def _alert_action(request: Request, principal: Principal, alert_id: str, form: dict[str, str]) -> Response:
    here = "/console/alerts"
    scope = AccessScope.of(principal)
    with request.app.state.store.tenant(principal.tenant_id) as s:
        alert = s.scalar(select(Alert).join(Device, Device.id == Alert.device_id)
                         .where(Alert.id == alert_id[:64], scope.devices()))
        if alert is None:
            raise NotFound(f"no alert with id {alert_id[:64]!r}")
        what = form.get("action", "")
        try:
            if what == "assign":
                alerts.apply_update(alert, {"assignedTo": principal.actor}, principal.actor)
                message = f"Alert assigned to {principal.actor}."
            elif what == "status":
                alerts.apply_update(alert, {"status": form.get("status", "")}, principal.actor)
                message = f"Alert status set to {alert.status}."
            else:
                return redirect(request, here, "Unknown action.", "error")
            s.flush()
        except GarrisonError as exc:
            s.rollback()
            return redirect(request, back_to(request, form, here), str(exc), "error")
    return redirect(request, back_to(request, form, here), message)


@router.post("/alerts/{alert_id}")
async def alert_update(alert_id: str, request: Request, principal: Principal = require(P.ALERTS_MANAGE)) -> Response:
    form = await session.checked_form(request)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_alert_action, request, principal, alert_id, form)
