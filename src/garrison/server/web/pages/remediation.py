"""Remediation: activities (progress, due date, priority, status, CSV export, mark complete) and
exceptions (justification, scope, expiry, cancel)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from garrison.core.access import Principal
from garrison.core.errors import GarrisonError, NotFound
from garrison.protocol.bounds import parse_id
from garrison.server.auth import require
from garrison.server.web import session
from garrison.server.web.common import back_to, page, redirect, router
from garrison.server.web.render import Column, Ctx, choice, order_by, pager, render, sort_of
from garrison.store.models.prioritisation import (
    Recommendation,
    RecommendationException,
    RecommendationExceptionGroup,
    RemediationActivity,
)
from garrison.tvm.queries import summary

PRIORITY_RANK = {"High": 3, "Medium": 2, "Low": 1}
EXC_STATUSES = ("Active", "Expired", "Cancelled")


def activity_columns() -> list[Column]:
    from sqlalchemy import case

    prio = case(*((RemediationActivity.priority == k, v) for k, v in PRIORITY_RANK.items()), else_=0)
    progress = RemediationActivity.fixed_devices * 1.0 / func.nullif(RemediationActivity.target_devices, 0)
    return [
        Column("title", "Remediation activity", RemediationActivity.title),
        Column("type", "Remediation type", RemediationActivity.type),
        Column("priority", "Priority", prio, default_desc=True),
        Column("due", "Due date", RemediationActivity.due_on),
        Column("progress", "Progress", progress, default_desc=True),
        Column("status", "Status", RemediationActivity.status),
        Column("created", "Created", RemediationActivity.created_on, default_desc=True),
        Column("by", "Requested by", RemediationActivity.requester_email),
        Column("completed", "Completed by", RemediationActivity.completer_email),
    ]


def exception_columns() -> list[Column]:
    return [
        Column("rec", "Security recommendation", Recommendation.name),
        Column("justification", "Justification", RecommendationException.justification),
        Column("scope", "Scope", RecommendationException.scope),
        Column("status", "Status", RecommendationException.status),
        Column("created", "Created", RecommendationException.created_at, default_desc=True),
        Column("by", "Created by", RecommendationException.created_by),
        Column("expires", "Expires", RecommendationException.expires_at),
    ]


def _exception_scope(ctx: Ctx) -> list[Any]:
    """Exceptions a page shows: global ones, and group ones touching the page's groups."""
    scope = ctx.scope
    if scope is None:
        return []
    return [or_(RecommendationException.scope == "Global",
                exists().where(RecommendationExceptionGroup.exception_id == RecommendationException.id,
                               RecommendationExceptionGroup.group_id.in_(scope)))]


def activities_tab(s: Session, ctx: Ctx) -> dict[str, Any]:
    from garrison.tvm.prioritisation import remediation

    now = dt.datetime.now(dt.UTC)
    cols = activity_columns()
    conds = summary.visible_activities(ctx)
    status = choice(ctx, "status", ("Active", "Completed"))
    if status:
        conds.append(RemediationActivity.status == status)
    prio = choice(ctx, "priority", PRIORITY_RANK)
    if prio:
        conds.append(RemediationActivity.priority == prio)
    rtype = choice(ctx, "type", summary.REMEDIATION_TYPES)
    if rtype:
        conds.append(RemediationActivity.type == rtype)
    rec = ctx.param("rec")
    if rec:
        conds.append(RemediationActivity.recommendation_id == rec)
    q = ctx.param("q").lower()
    if q:
        conds.append(func.lower(RemediationActivity.title).like(f"%{q.replace('%', '')}%"))
    if ctx.principal.group_ids is not None:
        # remediation.visible (group overlap) is not expressible portably on a JSON list: check in Python
        rows = [a for a in s.scalars(select(RemediationActivity).where(*conds)) if remediation.visible(ctx.principal, a)]
        allowed = [a.id for a in rows]
        conds.append(RemediationActivity.id.in_(allowed))
    total = s.scalar(select(func.count()).select_from(RemediationActivity).where(*conds)) or 0
    p = pager(ctx, total)
    sort = sort_of(ctx, cols, "created", default_desc=True)
    items = list(s.scalars(select(RemediationActivity).where(*conds)
                           .order_by(*order_by(cols, sort, [RemediationActivity.id])).limit(p.size).offset(p.offset)))
    panel = None
    open_id = ctx.param("open")
    if open_id:
        try:
            act = remediation.get(s, ctx.principal, open_id)
            targets = remediation.targets_with_devices(s, act, ctx.principal)
            panel = {"act": act, "targets": targets[:50], "target_total": len(targets),
                     "overdue": remediation.overdue(act, now), "rec": s.get(Recommendation, (act.tenant_id,
                                                                                             act.recommendation_id))}
        except NotFound:
            panel = {"missing": open_id}
    return {"cols": cols, "sort": sort, "p": p, "items": items, "panel": panel, "now": now,
            "overdue": lambda a: remediation.overdue(a, now)}


def exceptions_tab(s: Session, ctx: Ctx) -> dict[str, Any]:
    from garrison.tvm.prioritisation import risk_acceptance

    now = dt.datetime.now(dt.UTC)
    cols = exception_columns()
    conds = _exception_scope(ctx)
    just = choice(ctx, "justification", summary.JUSTIFICATION_LABELS)
    if just:
        conds.append(RecommendationException.justification == just)
    status = choice(ctx, "status", EXC_STATUSES)
    if status == "Expired":
        conds.append(or_(RecommendationException.status == "Expired",
                         (RecommendationException.status == "Active") & (RecommendationException.expires_at <= now)))
    elif status == "Active":
        conds += [RecommendationException.status == "Active", RecommendationException.expires_at > now]
    elif status:
        conds.append(RecommendationException.status == status)
    scope = choice(ctx, "scope", ("Global", "DeviceGroups"))
    if scope:
        conds.append(RecommendationException.scope == scope)
    base = select(RecommendationException, Recommendation.name).outerjoin(
        Recommendation, Recommendation.id == RecommendationException.recommendation_id).where(*conds)
    total = s.scalar(select(func.count()).select_from(base.subquery())) or 0
    p = pager(ctx, total)
    sort = sort_of(ctx, cols, "created", default_desc=True)
    rows = s.execute(base.order_by(*order_by(cols, sort, [RecommendationException.id.desc()]))
                     .limit(p.size).offset(p.offset)).all()
    eff = risk_acceptance.effective(s, now)
    ids = [e.id for e, _n in rows]
    groups: dict[int, list[RecommendationExceptionGroup]] = {}
    if ids:
        for g in s.scalars(select(RecommendationExceptionGroup).where(RecommendationExceptionGroup.exception_id.in_(ids))
                           .order_by(RecommendationExceptionGroup.group_id)):
            groups.setdefault(g.exception_id, []).append(g)
    items = [{"e": e, "rec_name": name, "status": risk_acceptance.status_of(e, eff.get(e.recommendation_id), now),
              "groups": groups.get(e.id, []), "risk_reduced": risk_acceptance.reduces_risk(e.justification)}
             for e, name in rows]
    panel = None
    open_id = ctx.param("open")
    if open_id:
        try:
            e = risk_acceptance.get(s, ctx.principal, open_id)
            rec = s.get(Recommendation, (e.tenant_id, e.recommendation_id))
            panel = {"e": e, "rec": rec, "groups": risk_acceptance.groups_of(s, e),
                     "status": risk_acceptance.status_of(e, eff.get(e.recommendation_id), now),
                     "risk_reduced": risk_acceptance.reduces_risk(e.justification),
                     "can_cancel_global": ctx.principal.role == "admin" and ctx.principal.group_ids is None}
        except NotFound:
            panel = {"missing": open_id}
    return {"cols": cols, "sort": sort, "p": p, "items": items, "panel": panel, "now": now}


@router.get("/remediation")
def remediation_page(request: Request, principal: Principal = require("analyst")) -> Response:
    with page(request, principal, "remediation") as (s, ctx):
        tab = choice(ctx, "tab", ("activities", "exceptions")) or "activities"
        data = activities_tab(s, ctx) if tab == "activities" else exceptions_tab(s, ctx)
        return render(ctx, "remediation.html", title="Remediation", tab=tab, types=summary.REMEDIATION_LABELS,
                      justifications=summary.JUSTIFICATION_LABELS, exc_statuses=EXC_STATUSES,
                      priorities=tuple(PRIORITY_RANK), **data)


@router.get("/remediation/{activity_id}/export.csv")
def export_activity(activity_id: str, request: Request, principal: Principal = require("analyst")) -> Response:
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
                          principal: Principal = require("security_operator")) -> Response:
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
                           principal: Principal = require("security_operator")) -> Response:
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


