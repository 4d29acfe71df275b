"""Remediation: activities (progress, due date, priority, status, CSV export, mark complete) and
exceptions (justification, scope, expiry, cancel)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from garrison.core.access import Principal
from garrison.core.errors import GarrisonError, NotFound
from garrison.core.permissions import P
from garrison.protocol.bounds import parse_id
from garrison.server.auth import require
from garrison.server.web import session
from garrison.server.web.common import back_to, page, redirect, router
from garrison.server.web.render import Column, Ctx, choice, order_by, pager, render, sort_of
from garrison.store.models.prioritisation import (
    RecommendationException,
    RemediationActivity,
)
from garrison.tvm.queries import summary

PRIORITY_RANK = summary.PRIORITY_RANK
EXC_STATUSES = ("Active", "Expired", "Cancelled")


def activity_columns() -> list[Column]:
    keys = summary.activity_sort_keys()
    return [
        Column("title", "Remediation activity", keys["title"]),
        Column("type", "Remediation type", keys["type"]),
        Column("priority", "Priority", keys["priority"], default_desc=True),
        Column("due", "Due date", keys["due"]),
        Column("progress", "Progress", keys["progress"], default_desc=True),
        Column("status", "Status", keys["status"]),
        Column("created", "Created", keys["created"], default_desc=True),
        Column("by", "Requested by", keys["by"]),
        Column("completed", "Completed by", keys["completed"]),
    ]


def exception_columns() -> list[Column]:
    keys = summary.exception_sort_keys()
    return [
        Column("rec", "Security recommendation", keys["rec"]),
        Column("justification", "Justification", keys["justification"]),
        Column("scope", "Scope", keys["scope"]),
        Column("status", "Status", keys["status"]),
        Column("created", "Created", keys["created"], default_desc=True),
        Column("by", "Created by", keys["by"]),
        Column("expires", "Expires", keys["expires"]),
    ]


def activities_tab(s: Session, ctx: Ctx) -> dict[str, Any]:
    from garrison.tvm.prioritisation import remediation

    now = dt.datetime.now(dt.UTC)
    cols = activity_columns()
    conds = summary.activity_conditions(
        s, ctx, status=choice(ctx, "status", ("Active", "Completed")), priority=choice(ctx, "priority", PRIORITY_RANK),
        type=choice(ctx, "type", summary.REMEDIATION_TYPES), recommendation=ctx.param("rec"), q=ctx.param("q"))
    sort = sort_of(ctx, cols, "created", default_desc=True)
    items, p = summary.activities_page(s, conds, order_by(cols, sort, [RemediationActivity.id]),
                                       lambda total: pager(ctx, total))
    panel = None
    open_id = ctx.param("open")
    if open_id:
        try:
            act = remediation.get(s, ctx.principal, open_id)
            targets = remediation.targets_with_devices(s, act, ctx.principal)
            panel = {"act": act, "targets": targets[:50], "target_total": len(targets),
                     "overdue": remediation.overdue(act, now),
                     "rec": summary.recommendation(s, act.tenant_id, act.recommendation_id)}
        except NotFound:
            panel = {"missing": open_id}
    return {"cols": cols, "sort": sort, "p": p, "items": items, "panel": panel, "now": now,
            "overdue": lambda a: remediation.overdue(a, now)}


def exceptions_tab(s: Session, ctx: Ctx) -> dict[str, Any]:
    from garrison.tvm.prioritisation import risk_acceptance

    now = dt.datetime.now(dt.UTC)
    cols = exception_columns()
    conds = summary.exception_conditions(ctx, now, justification=choice(ctx, "justification",
                                                                      summary.JUSTIFICATION_LABELS),
                                         status=choice(ctx, "status", EXC_STATUSES),
                                         scope=choice(ctx, "scope", ("Global", "DeviceGroups")))
    sort = sort_of(ctx, cols, "created", default_desc=True)
    rows, p = summary.exceptions_page(s, conds, order_by(cols, sort, [RecommendationException.id.desc()]),
                                      lambda total: pager(ctx, total))
    eff = risk_acceptance.effective(s, now)
    items = [{"e": e, "rec_name": name, "status": risk_acceptance.status_of(e, eff.get(e.recommendation_id), now),
              "groups": groups, "risk_reduced": risk_acceptance.reduces_risk(e.justification)}
             for e, name, groups in rows]
    panel = None
    open_id = ctx.param("open")
    if open_id:
        try:
            e = risk_acceptance.get(s, ctx.principal, open_id)
            rec = summary.recommendation(s, e.tenant_id, e.recommendation_id)
            panel = {"e": e, "rec": rec, "groups": risk_acceptance.groups_of(s, e),
                     "status": risk_acceptance.status_of(e, eff.get(e.recommendation_id), now),
                     "risk_reduced": risk_acceptance.reduces_risk(e.justification),
                     "can_cancel_global": ctx.allows(P.EXCEPTIONS_GLOBAL) and ctx.principal.group_ids is None}
        except NotFound:
            panel = {"missing": open_id}
    return {"cols": cols, "sort": sort, "p": p, "items": items, "panel": panel, "now": now}


@router.get("/remediation")
def remediation_page(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    with page(request, principal, "remediation") as (s, ctx):
        tab = choice(ctx, "tab", ("activities", "exceptions")) or "activities"
        data = activities_tab(s, ctx) if tab == "activities" else exceptions_tab(s, ctx)
        return render(ctx, "remediation.html", title="Remediation", tab=tab, types=summary.REMEDIATION_LABELS,
                      justifications=summary.JUSTIFICATION_LABELS, exc_statuses=EXC_STATUSES,
                      priorities=tuple(PRIORITY_RANK), **data)


@router.get("/remediation/{activity_id}/export.csv")
def export_activity(activity_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    from garrison.tvm.prioritisation import remediation

    with request.app.state.store.tenant(principal.tenant_id) as s:
        act = remediation.get(s, principal, activity_id)
        body = remediation.export_csv(s, act, principal)
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in act.title)[:60] or "remediation"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"', "Cache-Control": "no-store",
                             "X-Content-Type-Options": "nosniff"})


@router.post("/remediation/{activity_id}")
async def update_activity(activity_id: str, request: Request,
                          principal: Principal = require(P.REMEDIATION_MANAGE)) -> Response:
    form = await session.checked_form(request)
    default = "/console/remediation?" + urlencode({"open": activity_id})

    def run() -> Response:
        from garrison.tvm.prioritisation import remediation

        with request.app.state.store.tenant(principal.tenant_id) as s:
            act = remediation.get(s, principal, activity_id)
            if form.get("action") != "complete":
                return redirect(request, default, "Unknown action.", "error")
            try:
                remediation.complete(s, principal, act)
            except GarrisonError as exc:
                return redirect(request, back_to(request, form, default), str(exc), "error")
            title = act.title
        return redirect(request, back_to(request, form, default), f"Marked '{title}' as complete.")

    return await run_in_threadpool(run)


@router.post("/remediation/exceptions/{exception_id}")
async def cancel_exception(exception_id: str, request: Request,
                           principal: Principal = require(P.EXCEPTIONS_MANAGE)) -> Response:
    multi = await session.checked_multi_form(request)
    form = dict(multi)
    default = "/console/remediation?" + urlencode({"tab": "exceptions", "open": exception_id})

    def run() -> Response:
        from garrison.tvm.prioritisation import risk_acceptance, service

        groups = [g for k, v in multi if k == "group_id" and (g := parse_id(v)) is not None] or None
        if form.get("action") != "cancel":
            with request.app.state.store.tenant(principal.tenant_id) as s:
                risk_acceptance.get(s, principal, exception_id)  # 404 before anything else
            return redirect(request, default, "Unknown action.", "error")
        try:
            _id, status = service.cancel_exception(request.app.state.store, principal, exception_id, groups)
        except NotFound:
            raise
        except GarrisonError as err:
            return redirect(request, default, str(err), "error")
        what = "Exception cancelled" if status == "Cancelled" else "Exception cancelled for the chosen device group"
        return redirect(request, back_to(request, form, default),
                        f"{what}. Scores follow at the next refresh (within a minute).")

    return await run_in_threadpool(run)


