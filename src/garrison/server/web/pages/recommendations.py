"""Security recommendations: the list (sortable, filterable, searchable, paged), the side panel
(weaknesses, exposed devices, threat insights) and its actions: request remediation, create an
exception."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from garrison.core.access import Principal
from garrison.core.errors import GarrisonError, Invalid, NotFound
from garrison.core.permissions import P
from garrison.server.auth import require
from garrison.server.web import session
from garrison.server.web.common import page, redirect, router
from garrison.server.web.render import Column, Ctx, choice, humane_error, order_by, pager, render, sort_of
from garrison.store.models.prioritisation import Recommendation
from garrison.tvm.queries import summary

STATUSES = {"Active": "Active", "Exception": "Full exception", "PartialException": "Partial exception"}
DURATIONS = (("30", "30 days"), ("60", "60 days"), ("90", "90 days"), ("180", "180 days"), ("365", "1 year"))


def columns(exposed: Any, impact: Any) -> list[Column]:
    return [
        Column("name", "Security recommendation", Recommendation.name),
        Column("weaknesses", "Weaknesses", Recommendation.weaknesses, numeric=True, default_desc=True),
        Column("component", "Related component", Recommendation.related_component, narrow=False),
        Column("threats", "Threats"),
        Column("exposed", "Exposed devices", exposed, numeric=True, default_desc=True),
        Column("status", "Status", Recommendation.status, narrow=False),
        Column("type", "Remediation type", Recommendation.remediation_type, narrow=False),
        Column("activities", "Activities", narrow=False),
        Column("impact", "Impact", impact, numeric=True, default_desc=True),
        Column("tags", "Tags"),
        Column("priority", "Priority", Recommendation.priority_score, numeric=True, default_desc=True),
    ]


def filters(ctx: Ctx) -> list[Any]:
    return summary.recommendation_conditions(summary.RecommendationFilter(
        q=ctx.param("q"), status=choice(ctx, "status", STATUSES), type=choice(ctx, "type", summary.REMEDIATION_TYPES),
        category=choice(ctx, "category", summary.CATEGORIES), kind=choice(ctx, "kind", ("software", "configuration")),
        threat=choice(ctx, "threat", summary.THREAT_FILTERS), tag=choice(ctx, "tag", ("zero-day", "eos")),
        software=ctx.param("software")))


def load_recommendation(s: Session, principal: Principal, rec_id: str) -> Recommendation:
    rec = summary.recommendation(s, principal.tenant_id, rec_id)
    if rec is None:
        raise NotFound(f"no security recommendation {rec_id!r}")
    return rec


def panel_data(s: Session, ctx: Ctx, rec: Recommendation) -> dict[str, Any]:
    from garrison.tvm.prioritisation import risk_acceptance

    devices, device_total = summary.recommendation_devices(s, ctx, rec, 10)
    eff = risk_acceptance.effective(s).get(rec.id)
    excepted_groups = set(eff.group_exception_ids) if eff else set()
    activities = summary.recommendation_activities(s, rec.id, 5)
    global_exception = bool(eff and eff.global_id)
    return {"rec": rec, "vulns": summary.recommendation_vulns(s, rec, 25), "devices": devices,
            "device_total": device_total, "global_exception": global_exception,
            "excepted_groups": excepted_groups, "activities": activities,
            "default_due": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
            "today": dt.date.today().isoformat(),
            "exception_form": exception_form(ctx, excepted_groups, global_exception),
            "remediation_form": remediation_form(ctx)}


def _sent(ctx: Ctx, form: str) -> bool:
    """The page was reached back from a refused ``form`` (it carries what was typed)."""
    return ctx.param("sent") == form


def _sent_groups(ctx: Ctx) -> set[int]:
    return {int(g) for g in ctx.params("groups") if g.isdigit()}


def exception_form(ctx: Ctx, excepted: set[int], global_exception: bool) -> dict[str, Any]:
    """Values of the exception form: what was typed when it comes back refused; else a scope that works —
    the device groups selected in the console, else Global for whoever may use it, else all the user's
    groups (never "Selected device groups" with nothing ticked)."""
    can_global = ctx.allows(P.EXCEPTIONS_GLOBAL) and ctx.principal.group_ids is None and not global_exception
    if _sent(ctx, "exception"):
        scope = "Global" if ctx.param("scope") == "Global" and can_global else "DeviceGroups"
        groups = _sent_groups(ctx)
    elif ctx.selected:
        scope, groups = "DeviceGroups", set(ctx.selected) - excepted
    elif can_global:
        scope, groups = "Global", set()
    else:
        scope, groups = "DeviceGroups", {gid for gid, _name in ctx.groups} - excepted
    return {"scope": scope, "groups": groups, "can_global": can_global,
            "justification": ctx.param("justification"), "duration": ctx.param("duration") or "30",
            "context": (ctx.request.query_params.get("context") or "")[:4000]}


def remediation_form(ctx: Ctx) -> dict[str, Any]:
    sent = _sent(ctx, "remediation")
    return {"priority": ctx.param("priority") if sent else "Medium", "due": ctx.param("due") if sent else "",
            "groups": _sent_groups(ctx) if sent else set(ctx.selected),
            "notes": (ctx.request.query_params.get("notes") or "")[:4000] if sent else ""}


def _refused(request: Request, rec_id: str, form: str, multi: list[tuple[str, str]], message: str) -> Response:
    """Back to the panel with the form open, the error, and every field as it was typed."""
    kept = [(k, v[:4000]) for k, v in multi if k not in ("csrf_token", "sent", "action", "open")][:200]
    query = urlencode([("open", rec_id), ("action", "remediate" if form == "remediation" else form),
                       ("sent", form), *kept])
    return redirect(request, "/console/recommendations?" + query, humane_error(message), "error")


@router.get("/recommendations")
def recommendation_list(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    with page(request, principal, "recommendations") as (s, ctx):
        base, exposed, impact = summary.scoped_recommendations(ctx)
        cols = columns(exposed, impact)
        conds = filters(ctx)
        sort = sort_of(ctx, cols, "priority", default_desc=True)
        rows, p = summary.list_page(s, base.where(*conds), order_by(cols, sort, [Recommendation.id]),
                                    lambda total: pager(ctx, total))
        ids = [r[0].id for r in rows]
        trends = summary.recommendation_trends(s, ids)
        active = summary.active_activity_counts(s, ids)
        items = [{"r": r[0], "exposed": int(r[1] or 0), "impact": float(r[2] or 0), "installed": int(r[3] or 0),
                  "trend": trends.get(r[0].id, []), "activities": active.get(r[0].id, 0)} for r in rows]
        panel = None
        open_id = ctx.param("open")
        if open_id:
            rec = summary.recommendation(s, principal.tenant_id, open_id)
            panel = panel_data(s, ctx, rec) if rec is not None else {"missing": open_id}
        return render(ctx, "recommendations.html", title="Security recommendations", cols=cols, sort=sort, p=p,
                      items=items, panel=panel, statuses=STATUSES, durations=DURATIONS,
                      types=summary.REMEDIATION_LABELS, categories=summary.CATEGORY_LABELS,
                      threats=summary.THREAT_FILTERS, justifications=summary.JUSTIFICATION_LABELS)


def _date(value: str, what: str) -> dt.datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{what}: use a date like 2026-12-31") from None
    return dt.datetime.combine(day, dt.time(23, 59), tzinfo=dt.UTC)


def _groups(multi: list[tuple[str, str]], name: str = "groups") -> list[int] | None:
    out = []
    for k, v in multi:
        if k == name:
            try:
                out.append(int(v))
            except ValueError:
                raise Invalid("invalid device group") from None
    return out or None


@router.post("/recommendations/{rec_id}/remediation")
async def request_remediation(rec_id: str, request: Request,
                              principal: Principal = require(P.REMEDIATION_MANAGE)) -> Response:
    multi = await session.checked_multi_form(request)
    form = dict(multi)

    def run() -> Response:
        from garrison.tvm.prioritisation import remediation

        try:
            with request.app.state.store.tenant(principal.tenant_id) as s:
                rec = load_recommendation(s, principal, rec_id)
                due = None if rec.remediation_type == "AttentionRequired" else _date(form.get("due", ""), "Due date")
                act = remediation.request(s, principal, rec, priority=form.get("priority", "Medium"),
                                          due_on=due, notes=form.get("notes", "")[:4000],
                                          group_ids=_groups(multi))
                act_id, targets = act.id, act.target_devices
                request.state.audit_target = f"recommendation={rec.id} activity={act_id}"
        except NotFound:
            raise
        except GarrisonError as exc:
            return _refused(request, rec_id, "remediation", multi, f"Remediation not requested: {exc}")
        return redirect(request, "/console/remediation?" + urlencode({"open": act_id}),
                        f"Remediation activity created for {targets} exposed device{'s' if targets != 1 else ''}.")

    return await run_in_threadpool(run)


@router.post("/recommendations/{rec_id}/exception")
async def create_exception(rec_id: str, request: Request,
                           principal: Principal = require(P.EXCEPTIONS_MANAGE)) -> Response:
    multi = await session.checked_multi_form(request)
    form = dict(multi)

    def run() -> Response:
        from garrison.tvm.prioritisation import service

        try:
            scope = "Global" if form.get("scope") == "Global" else "DeviceGroups"
            days_raw = form.get("duration", "30")
            expires = _date(form.get("expires", ""), "End date")
            days = None if expires else int(days_raw) if days_raw.isdigit() else 30
            exc_id = service.create_exception(request.app.state.store, principal, rec_id[:300],
                                              form.get("justification", ""), context=form.get("context", "")[:4000],
                                              scope=scope, group_ids=_groups(multi) if scope == "DeviceGroups" else None,
                                              expires_on=expires, duration_days=days)
            request.state.audit_target = f"recommendation={rec_id} exception={exc_id}"
        except NotFound:
            raise
        except GarrisonError as exc_:
            return _refused(request, rec_id, "exception", multi, f"Exception not created: {exc_}")
        return redirect(request, "/console/remediation?" + urlencode({"tab": "exceptions", "open": exc_id}),
                        "Exception created. Scores and the recommendation's status follow at the next "
                        "refresh (within a minute).")

    return await run_in_threadpool(run)
