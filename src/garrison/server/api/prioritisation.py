"""Risk-based prioritisation API, shaped like Defender's: exposure score, recommendations,
remediation tasks, exceptions, the event timeline, notification rules, integration connections and
the export-assessment APIs (JSON lines).

Device-group scoping: a caller limited to some device groups sees scores, recommendation figures,
activities, exceptions and events of those groups only (the per-group components the refresh keeps
are summed over them).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Text, and_, case, cast, distinct, func, inspect, literal, or_, select
from sqlalchemy.orm import Session, aliased

from garrison.core.access import Principal
from garrison.core.devices import reference_to_api
from garrison.core.errors import Conflict, Invalid, NotFound
from garrison.core.permissions import P
from garrison.core.scope import AccessScope
from garrison.integrations import connections as conn_mod
from garrison.integrations import secretbox
from garrison.integrations import service as integrations
from garrison.integrations import settings as integration_settings
from garrison.protocol.bounds import Id, UtcDateTime, to_utc
from garrison.protocol.limits import INT_MAX
from garrison.server import odata
from garrison.server.api import models as schema
from garrison.server.api.common import (
    ODATA,
    csv_file,
    device_scope,
    json_lines,
    json_response,
    odata_list,
    parse_odata,
    returns,
    run_list,
)
from garrison.server.auth import require
from garrison.store.base import utcnow
from garrison.store.models.core import Device, DeviceGroup
from garrison.store.models.prioritisation import (
    ORG,
    RISK_REDUCING,
    DeviceVulnerabilityAlert,
    ExposureScoreHistory,
    IntegrationConnection,
    NotificationDelivery,
    NotificationRule,
    Recommendation,
    RecommendationException,
    RecommendationGroup,
    RecommendationHistory,
    RemediationActivity,
    RemediationTicket,
    TimelineEvent,
)
from garrison.store.models.tvm import SoftwareProduct
from garrison.tvm.prioritisation import (
    config,
    exports,
    exposure,
    notifications,
    recommendations,
    remediation,
    risk_acceptance,
    service,
    timeline,
)
from garrison.tvm.prioritisation import (
    device as device_exposure,
)
from garrison.tvm.queries import vulnerabilities

router = APIRouter(prefix="/api", tags=["prioritisation"])
# Routes under /api/machines/<name> must come before the machines router's /machines/{machine_id}:
# setup() inserts this router ahead of the others.
export_router = APIRouter(prefix="/api", tags=["export assessment"])
Group = aliased(DeviceGroup)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _store(request: Request) -> Any:
    return request.app.state.store


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _load_device(s: Session, principal: Principal, machine_id: str) -> Device:
    return AccessScope.of(principal).device(s, machine_id)


def _group_names(s: Session) -> dict[int, str]:
    return dict(s.execute(select(DeviceGroup.id, DeviceGroup.name)).all())


def _parse_when(value: str | None, what: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    try:
        return to_utc(dt.datetime.fromisoformat(value))  # 3.11 reads "Z"
    except ValueError as exc:
        raise Invalid(f"{what}: expected an ISO 8601 date or time in range, got {value[:40]!r} ({exc})") from None


# =============================================================================== exposure score

def _score_body(request: Request, comps: exposure.Components, at: dt.datetime | None,
                gid: int | None = None, gname: str | None = None) -> dict[str, Any]:
    return {"time": at, "score": round(comps.score, 2), "rbacGroupName": gname, "rbacGroupId": gid,
            "devices": comps.devices, "exposureLevels": exposure.levels_summary(comps.levels)}


@router.get("/exposureScore", responses=returns(schema.ExposureScore))
def exposure_score(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        comps = exposure.components_for(s, principal.group_ids)
        at = exposure.last_computed(s)
    return {"@odata.context": f"{_base(request)}/api/$metadata#ExposureScore/$entity",
            **_score_body(request, comps, at)}


@router.get("/exposureScore/ByMachineGroups", responses=returns(schema.ODataList[schema.ExposureScore]))
def exposure_score_by_groups(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        groups = list(s.scalars(select(DeviceGroup).order_by(DeviceGroup.rank, DeviceGroup.id)))
        at = exposure.last_computed(s)
        rows = []
        for g in groups:
            if principal.group_ids is not None and g.id not in principal.group_ids:
                continue
            rows.append(_score_body(request, exposure.components_for(s, [g.id]), at, g.id, g.name))
    return odata_list(request, "ExposureScore", rows)


@router.get("/exposureScore/history", responses=returns(schema.ODataList[schema.ExposureScorePoint]))
def exposure_score_history(request: Request, days: int = Query(default=30, ge=1, le=3660),
                           rbacGroupId: Id | None = None,
                           principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    since = (utcnow() - dt.timedelta(days=days - 1)).date()
    with _store(request).tenant(principal.tenant_id) as s:
        if rbacGroupId is not None:
            if principal.group_ids is not None and rbacGroupId not in principal.group_ids:
                raise NotFound(f"no device group with id {rbacGroupId}")
            keys: list[int] | None = [rbacGroupId]
        else:
            keys = None if principal.group_ids is None else list(principal.group_ids)
        stmt = select(ExposureScoreHistory).where(ExposureScoreHistory.day >= since)
        stmt = stmt.where(ExposureScoreHistory.group_id.in_(keys if keys is not None else [ORG]))
        by_day: dict[dt.date, list[ExposureScoreHistory]] = {}
        for h in s.scalars(stmt.order_by(ExposureScoreHistory.day)):
            by_day.setdefault(h.day, []).append(h)
    rows = []
    for day, hs in sorted(by_day.items()):
        n = sum(h.devices for h in hs)
        score = sum(h.score * h.devices for h in hs) / n if n else (hs[0].score if len(hs) == 1 else 0.0)
        rows.append({"date": day.isoformat(), "score": round(score, 2), "devices": n,
                     "rbacGroupId": rbacGroupId, "configurationScore": hs[0].config_score if keys is None else None})
    return odata_list(request, "ExposureScoreHistory", rows)


if config.has_secure_score():
    @router.get("/configurationScore", responses=returns(schema.ConfigurationScore))
    def configuration_score(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
        with _store(request).tenant(principal.tenant_id) as s:
            res = config.configuration_score(s, list(principal.group_ids) if principal.group_ids is not None else None)
        return {"@odata.context": f"{_base(request)}/api/$metadata#ConfigurationScore/$entity", **(res or {})}


@router.post("/exposureScore/recompute", responses=returns(schema.RefreshStats))
def recompute(request: Request, principal: Principal = require(P.REMEDIATION_MANAGE)) -> dict[str, Any]:
    """Recompute the tenant's scores and recommendations now (the job does it within a minute)."""
    stats = service.refresh(_store(request), principal.tenant_id)
    return stats.as_dict()


@router.get("/machines/{machine_id}/exposure", responses=returns(schema.DeviceExposure))
def machine_exposure(machine_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        device = _load_device(s, principal, machine_id)
        return device_exposure.device_exposure(s, device)


class AlertBody(Body):
    vulnerabilityId: str = Field(min_length=1, max_length=128)
    alertId: str = Field(default="", max_length=128)
    title: str = Field(default="", max_length=512)
    active: bool = True


@router.post("/machines/{machine_id}/vulnerabilityAlerts", responses=returns(schema.VulnerabilityAlert))
def set_vulnerability_alert(machine_id: str, body: AlertBody, request: Request,
                            principal: Principal = require(P.ALERTS_MANAGE)) -> dict[str, Any]:
    """The 'active alert on this device' hook: EDR calls it through the service layer; here for the API."""
    with _store(request).tenant(principal.tenant_id) as s:
        device = _load_device(s, principal, machine_id)
        row = s.scalar(select(DeviceVulnerabilityAlert).where(
            DeviceVulnerabilityAlert.device_id == device.id,
            DeviceVulnerabilityAlert.vulnerability_id == body.vulnerabilityId,
            DeviceVulnerabilityAlert.alert_id == body.alertId))
        now = utcnow()
        if row is None:
            row = DeviceVulnerabilityAlert(device_id=device.id, vulnerability_id=body.vulnerabilityId,
                                           alert_id=body.alertId, title=body.title, active=body.active, created_at=now)
            s.add(row)
        row.active = body.active
        row.title = body.title or row.title
        row.resolved_at = None if body.active else now
        s.flush()
        return _alert_to_api(row)


@router.get("/machines/{machine_id}/vulnerabilityAlerts", responses=returns(schema.ODataList[schema.VulnerabilityAlert]))
def list_vulnerability_alerts(machine_id: str, request: Request,
                              principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        device = _load_device(s, principal, machine_id)
        rows = s.scalars(select(DeviceVulnerabilityAlert).where(DeviceVulnerabilityAlert.device_id == device.id)
                         .order_by(DeviceVulnerabilityAlert.id))
        return odata_list(request, "VulnerabilityAlerts", [_alert_to_api(r) for r in rows])


def _alert_to_api(r: DeviceVulnerabilityAlert) -> dict[str, Any]:
    return {"id": r.id, "machineId": r.device_id, "vulnerabilityId": r.vulnerability_id, "alertId": r.alert_id or None,
            "title": r.title, "active": r.active, "createdOn": r.created_at, "resolvedOn": r.resolved_at}


# =============================================================================== recommendations

R = Recommendation


def _scoped_agg(principal: Principal) -> Any:
    """Per-recommendation sums over the caller's groups (None for a caller who sees every group)."""
    if principal.group_ids is None:
        return None
    G = RecommendationGroup
    reduced = G.exception_justification.in_(RISK_REDUCING)
    return (select(G.recommendation_id.label("rid"),
                   func.sum(G.exposed).label("exposed"), func.sum(G.installed).label("installed"),
                   func.sum(G.in_use).label("in_use"), func.sum(G.nl_delta).label("nl"),
                   func.sum(G.high_delta).label("high"), func.sum(G.priority).label("priority"),
                   func.sum(case((reduced, 0), else_=G.exposed)).label("exposed_after"),
                   func.sum(case((reduced, 0.0), else_=G.nl_delta)).label("nl_after"),
                   func.sum(case((reduced, 0.0), else_=G.high_delta)).label("high_after"),
                   func.count().label("groups"),
                   func.sum(case((G.exception_justification.is_not(None), 1), else_=0)).label("covered"))
            .where(G.group_id.in_(principal.group_ids)).group_by(G.recommendation_id)).subquery("agg")


def _impact_expr(comps: exposure.Components, nl: Any, high: Any) -> Any:
    w = comps.total_weight
    if w <= 0:
        return literal(0.0)
    return (nl + high * comps.high_weight) / w


def _tags_predicate(op: str, value: Any) -> Any:
    text = cast(R.tags, Text)
    values = value if op == "in" else (value,)
    if op not in ("eq", "in"):
        raise odata.ODataError("tags/any() supports eq and in", option="$filter")
    return or_(*[text.contains(json.dumps(v), autoescape=True) for v in values])


def rec_fields(agg: Any = None, comps: exposure.Components | None = None) -> dict[str, odata.Field]:
    status: Any
    if agg is None:
        exposed, total, impact = R.exposed_machines_count, R.total_machine_count, R.exposure_impact
        exposed_after, impact_after, prio, status = (R.exposed_after_exceptions, R.exposure_impact_after_exceptions,
                                                     R.priority_score, R.status)
        in_use = R.in_use_machines_count
    else:
        assert comps is not None
        exposed, total, in_use = agg.c.exposed, agg.c.installed, agg.c.in_use
        impact = _impact_expr(comps, agg.c.nl, agg.c.high)
        exposed_after = agg.c.exposed_after
        impact_after = _impact_expr(comps, agg.c.nl_after, agg.c.high_after)
        prio = agg.c.priority
        status = case((R.status == "Exception", "Exception"), (agg.c.covered >= agg.c.groups, "Exception"),
                      (agg.c.covered > 0, "PartialException"), else_="Active")
    return {
        "id": odata.Field(R.id), "productName": odata.Field(R.product_name), "recommendationName": odata.Field(R.name),
        "weaknesses": odata.Field(R.weaknesses, int), "vendor": odata.Field(R.vendor),
        "recommendedVersion": odata.Field(R.recommended_version), "recommendedProgram": odata.Field(R.recommended_program),
        "recommendedVendor": odata.Field(R.recommended_vendor), "recommendationCategory": odata.Field(R.category),
        "subCategory": odata.Field(R.sub_category), "severityScore": odata.Field(R.severity_score, float),
        "publicExploit": odata.Field(R.public_exploit, bool), "activeAlert": odata.Field(R.active_alert, bool),
        "knownExploited": odata.Field(R.kev, bool), "exploitVerified": odata.Field(R.exploit_verified, bool),
        "exploitInKit": odata.Field(R.exploit_in_kit, bool), "zeroDay": odata.Field(R.zero_day, bool),
        "remediationType": odata.Field(R.remediation_type), "status": odata.Field(status),
        "configScoreImpact": odata.Field(R.config_score_impact, float), "exposureImpact": odata.Field(impact, float),
        "totalMachineCount": odata.Field(total, int), "exposedMachinesCount": odata.Field(exposed, int),
        "exposedMachinesAfterExceptions": odata.Field(exposed_after, int),
        "exposureImpactAfterExceptions": odata.Field(impact_after, float),
        "inUseMachinesCount": odata.Field(in_use, int),
        "relatedComponent": odata.Field(R.related_component), "priorityScore": odata.Field(prio, float),
        "firstSeen": odata.Field(R.first_seen, dt.datetime),
        "tags": odata.Field(R.tags, str, sortable=False, collection=True, element_predicate=_tags_predicate),
    }


def _columns(r: Any) -> dict[str, Any]:
    """A recommendation (ORM object or list row) as its columns by name."""
    if isinstance(r, Recommendation):
        return {c.name: getattr(r, c.name) for c in Recommendation.__table__.c}
    return dict(r._mapping)


def _dynamic(m: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any]:
    if row:
        return recommendations.dynamic_api(row["status"], row["impact"], row["impact_after"], row["total"],
                                           row["exposed"], row["exposed_after"], row["in_use"], row["priority"])
    return recommendations.dynamic_api(m["status"], m["exposure_impact"], m["exposure_impact_after_exceptions"],
                                       m["total_machine_count"], m["exposed_machines_count"],
                                       m["exposed_after_exceptions"], m["in_use_machines_count"], m["priority_score"])


def rec_to_api(r: Any, row: dict[str, Any] | None = None, full: bool = False) -> dict[str, Any]:
    """``row``: the values of the scoped columns (exposed, total, impact, …) when scoped."""
    m = _columns(r)
    out = {**recommendations.static_api(m), **_dynamic(m, row)}
    if full:
        out["explanation"] = m["explanation"]
        out["softwareIds"] = (m["details"] or {}).get("softwareIds", [])
        out["remediation"] = (m["details"] or {}).get("remediation")
    return out


def _scoped_values(row: Any, comps: exposure.Components) -> dict[str, Any]:
    m = row._mapping
    status = "Exception" if m["rstatus"] == "Exception" or (m["covered"] >= m["groups"]) else \
        ("PartialException" if m["covered"] > 0 else "Active")
    return {"exposed": int(m["exposed"] or 0), "total": int(m["installed"] or 0), "in_use": int(m["in_use"] or 0),
            "impact": comps.impact(m["nl"] or 0.0, m["high"] or 0.0),
            "impact_after": comps.impact(m["nl_after"] or 0.0, m["high_after"] or 0.0),
            "exposed_after": int(m["exposed_after"] or 0), "priority": float(m["priority"] or 0.0), "status": status}


# ORM attributes, not Recommendation.__table__ columns: the tenant filter reaches tables only through them.
_LIST_COLUMNS = [p.class_attribute for p in inspect(Recommendation).column_attrs
                 if p.key not in ("explanation", "details")]


def _rec_select(principal: Principal, s: Session, light: bool = False) -> tuple[Any, Any, exposure.Components | None]:
    """The recommendations a caller sees; ``light``: plain rows without the large JSON columns (lists)."""
    what: list[Any] = list(_LIST_COLUMNS) if light else [R]
    agg = _scoped_agg(principal)
    if agg is None:
        return select(*what), None, None
    comps = exposure.components_for(s, principal.group_ids)
    stmt = (select(*what, *[c for c in agg.c if c.name != "rid"], R.status.label("rstatus"))
            .join(agg, agg.c.rid == R.id).where(agg.c.exposed > 0))
    return stmt, agg, comps


@router.get("/recommendations", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.Recommendation]))
def list_recommendations(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    with _store(request).tenant(principal.tenant_id) as s:
        stmt, agg, comps = _rec_select(principal, s, light=True)
        fields = rec_fields(agg, comps)
        default = [fields["priorityScore"].column.desc(), R.id]
        q = parse_odata(request, fields, default)
        if q.select is None:
            return _fast_list(request, s, stmt, q, agg, comps)
        if agg is None:
            body = run_list(s, request, stmt, fields, lambda r: rec_to_api(r), "Recommendations", default)
        else:
            assert comps is not None
            scope = comps
            body = run_list(s, request, stmt, fields, lambda r: rec_to_api(r, _scoped_values(r, scope)),
                            "Recommendations", default)
    return json_response(body)


def _fast_list(request: Request, s: Session, stmt: Any, q: Any, agg: Any, comps: Any) -> Response:
    """The list without $select: each row's stored JSON fragment plus its scoped figures, as text."""
    count = None
    if request.query_params.get("$count", "").lower() == "true":
        filtered = stmt.where(q.filter) if q.filter is not None else stmt
        count = s.scalar(select(func.count()).select_from(filtered.subquery()))
    parts = []
    for r in s.execute(odata.apply(stmt, q)):
        m: Any = r._mapping
        fragment = m["api_json"] or recommendations.api_fragment(m)
        dyn = _dynamic(m, _scoped_values(r, comps) if agg is not None else None)
        parts.append(fragment + "," + json.dumps(dyn, separators=(",", ":"))[1:])
    head: dict[str, Any] = {"@odata.context": f"{_base(request)}/api/$metadata#Recommendations"}
    if count is not None:
        head["@odata.count"] = count
    text_ = json.dumps(head, separators=(",", ":"))[:-1] + ',"value":[' + ",".join(parts) + "]}"
    return Response(text_, media_type="application/json")


def _load_rec(s: Session, principal: Principal, rec_id: str) -> tuple[Recommendation, dict[str, Any] | None]:
    stmt, agg, comps = _rec_select(principal, s)
    row = s.execute(stmt.where(R.id == rec_id[:300])).first()
    if row is None:
        raise NotFound(f"no recommendation {rec_id!r}")
    if agg is None:
        return row[0], None
    assert comps is not None
    return row[0], _scoped_values(row, comps)


@router.get("/recommendations/{recommendation_id}", responses=returns(schema.RecommendationDetail))
def get_recommendation(recommendation_id: str, request: Request,
                       principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        rec, scoped = _load_rec(s, principal, recommendation_id)
        out = rec_to_api(rec, scoped, full=True)
        since = utcnow().date() - dt.timedelta(days=29)
        out["exposedMachinesHistory"] = [
            {"date": d.isoformat(), "exposedMachines": n} for d, n in s.execute(
                select(RecommendationHistory.day, RecommendationHistory.exposed)
                .where(RecommendationHistory.recommendation_id == rec.id, RecommendationHistory.day >= since)
                .order_by(RecommendationHistory.day))] if principal.group_ids is None else []
        out["exceptions"] = _rec_exceptions(s, principal, rec)
        out["remediationTasks"] = [
            {"id": a.id, "status": a.status, "priority": a.priority, "dueOn": a.due_on}
            for a in s.scalars(select(RemediationActivity).where(RemediationActivity.recommendation_id == rec.id)
                               .order_by(RemediationActivity.created_on.desc())) if remediation.visible(principal, a)]
        return out


def _rec_exceptions(s: Session, principal: Principal, rec: Recommendation) -> list[dict[str, Any]]:
    now = utcnow()
    eff = risk_acceptance.effective(s, now).get(rec.id)
    out = []
    for e in s.scalars(select(RecommendationException).where(RecommendationException.recommendation_id == rec.id)
                       .order_by(RecommendationException.id)):
        if risk_acceptance.visible(s, principal, e):
            out.append(risk_acceptance.to_api(e, risk_acceptance.groups_of(s, e), eff, now))
    return out


@router.get("/recommendations/{recommendation_id}/machineReferences", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.MachineReference]))
def recommendation_machines(recommendation_id: str, request: Request,
                            principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        rec, _ = _load_rec(s, principal, recommendation_id)
        sub = recommendations.exposed_devices_stmt(rec)
        if sub is None:
            return odata_list(request, "MachineReferences", [])
        ids = sub.subquery()
        stmt = (select(Device, Group.name).join(ids, ids.c[0] == Device.id)
                .outerjoin(Group, Group.id == Device.group_id)
                .where(device_scope(principal), exposure.is_active_expr(utcnow())))
        fields = {"id": odata.Field(Device.id), "computerDnsName": odata.Field(Device.computer_dns_name),
                  "osPlatform": odata.Field(Device.os_platform), "rbacGroupId": odata.Field(Device.group_id, int),
                  "rbacGroupName": odata.Field(Group.name), "exposureLevel": odata.Field(Device.exposure_level),
                  "exposureScore": odata.Field(Device.exposure_score, float),
                  "deviceValue": odata.Field(Device.device_value)}
        return run_list(s, request, stmt, fields, lambda r: reference_to_api(r[0], r[1]), "MachineReferences",
                        [Device.computer_dns_name, Device.id])


@router.get("/recommendations/{recommendation_id}/software", responses=returns(schema.ODataList[schema.RecommendationSoftware]))
def recommendation_software(recommendation_id: str, request: Request,
                            principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        rec, _ = _load_rec(s, principal, recommendation_id)
        stmt = recommendations.unit_findings_stmt(rec)
        if stmt is None:
            return odata_list(request, "Software", [])
        now = utcnow()
        f = stmt.subquery()
        rows = s.execute(select(f.c.software_id, func.count(distinct(f.c.vulnerability_id)),
                                func.count(distinct(f.c.device_id)))
                         .join(Device, Device.id == f.c.device_id)
                         .where(device_scope(principal), exposure.is_active_expr(now))
                         .group_by(f.c.software_id).order_by(f.c.software_id)).all()
        products = {p.id: p for p in s.scalars(select(SoftwareProduct).where(
            SoftwareProduct.id.in_([r[0] for r in rows])))}
        out = []
        for sid, weak, machines in rows:
            p = products.get(sid)
            out.append({"id": sid, "name": p.name if p else sid.split("-_-")[-1],
                        "vendor": p.vendor if p else sid.split("-_-")[0], "weaknesses": int(weak),
                        "publicExploit": rec.public_exploit, "activeAlert": rec.active_alert,
                        "exposedMachines": int(machines), "impactScore": rec.exposure_impact,
                        "recommendationId": rec.id})
        return odata_list(request, "Software", out)


@router.get("/recommendations/{recommendation_id}/vulnerabilities", responses=returns(schema.ODataList[schema.Vulnerability]))
def recommendation_vulnerabilities(recommendation_id: str, request: Request,
                                   principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        rec, _ = _load_rec(s, principal, recommendation_id)
        stmt = recommendations.unit_findings_stmt(rec)
        if stmt is None:
            return odata_list(request, "Vulnerabilities", [])
        f = stmt.subquery()
        per_vuln = (select(f.c.vulnerability_id, func.count(distinct(f.c.device_id)).label("exposed"),
                           func.count(f.c.fixed_version).label("fixes"))
                    .join(Device, Device.id == f.c.device_id)
                    .where(device_scope(principal), exposure.is_active_expr(utcnow()))
                    .group_by(f.c.vulnerability_id).subquery())
        rows = s.execute(vulnerabilities.with_counts(per_vuln)).all()
        out = [{**vulnerabilities.with_threat(r), "fixAvailable": int(r.fixes) > 0} for r in rows]
        out.sort(key=lambda x: (-x["threatScore"], x["id"]))
        return odata_list(request, "Vulnerabilities", out)


@router.get("/machines/{machine_id}/recommendations", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.Recommendation]))
def machine_recommendations(machine_id: str, request: Request,
                            principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        device = _load_device(s, principal, machine_id)
        ids = device_exposure.device_recommendation_ids(s, device)
        if not ids:
            return odata_list(request, "Recommendations", [])
        stmt = select(*_LIST_COLUMNS).where(R.id.in_(sorted(ids)))
        return run_list(s, request, stmt, rec_fields(), lambda r: rec_to_api(r), "Recommendations",
                        [R.priority_score.desc(), R.id])


# =============================================================================== exceptions

class ExceptionBody(Body):
    recommendationId: str = Field(min_length=1, max_length=300)
    justification: str = Field(min_length=1, max_length=64)
    justificationContext: str = Field(default="", max_length=4000)
    scope: str = Field(default="DeviceGroups", pattern="^(Global|DeviceGroups)$")
    rbacGroupIds: list[Id] | None = Field(default=None, max_length=1000)
    expiresOn: UtcDateTime | None = None
    durationDays: int | None = Field(default=None, ge=1, le=1100)


class CancelBody(Body):
    rbacGroupIds: list[Id] | None = Field(default=None, max_length=1000)


def _exception_fields() -> dict[str, odata.Field]:
    E = RecommendationException
    return {"id": odata.Field(E.id, int), "recommendationId": odata.Field(E.recommendation_id),
            "justification": odata.Field(E.justification), "scope": odata.Field(E.scope),
            "status": odata.Field(E.status), "createdBy": odata.Field(E.created_by),
            "createdOn": odata.Field(E.created_at, dt.datetime), "expiresOn": odata.Field(E.expires_at, dt.datetime)}


def _exception_scope(principal: Principal) -> Any:
    E, EG = RecommendationException, aliased(risk_acceptance.RecommendationExceptionGroup)
    if principal.group_ids is None:
        return literal(True)
    return or_(E.scope == "Global", select(EG.id).where(EG.exception_id == E.id,
                                                        EG.group_id.in_(principal.group_ids)).exists())


@router.get("/recommendationExceptions", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.RecommendationException]))
def list_exceptions(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    now = utcnow()
    with _store(request).tenant(principal.tenant_id) as s:
        risk_acceptance.expire_due(s, now)
        eff = risk_acceptance.effective(s, now)
        stmt = select(RecommendationException, R).outerjoin(R, R.id == RecommendationException.recommendation_id) \
            .where(_exception_scope(principal))
        return run_list(s, request, stmt, _exception_fields(),
                        lambda r: risk_acceptance.to_api(r[0], risk_acceptance.groups_of(s, r[0]),
                                                    eff.get(r[0].recommendation_id), now, r[1]),
                        "RecommendationExceptions", [RecommendationException.id.desc()])


@router.post("/recommendationExceptions", status_code=201, responses=returns(schema.RecommendationException, 201))
def create_exception(body: ExceptionBody, request: Request,
                     principal: Principal = require(P.EXCEPTIONS_MANAGE)) -> dict[str, Any]:
    store = _store(request)
    exc_id = service.create_exception(store, principal, body.recommendationId, body.justification,
                                      context=body.justificationContext, scope=body.scope,
                                      group_ids=body.rbacGroupIds, expires_on=body.expiresOn,
                                      duration_days=body.durationDays)
    return _exception_out(store, principal, exc_id)


def _exception_out(store: Any, principal: Principal, exc_id: int) -> dict[str, Any]:
    now = utcnow()
    with store.tenant(principal.tenant_id) as s:
        exc = risk_acceptance.get(s, principal, exc_id)
        eff = risk_acceptance.effective(s, now).get(exc.recommendation_id)
        rec = s.get(Recommendation, (principal.tenant_id, exc.recommendation_id))
        return risk_acceptance.to_api(exc, risk_acceptance.groups_of(s, exc), eff, now, rec)


@router.get("/recommendationExceptions/{exception_id}", responses=returns(schema.RecommendationException))
def get_exception(exception_id: Id, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        exc = risk_acceptance.get(s, principal, exception_id)
        exc_id = exc.id
    return _exception_out(_store(request), principal, exc_id)


@router.post("/recommendationExceptions/{exception_id}/cancel", responses=returns(schema.RecommendationException))
def cancel_exception(exception_id: Id, body: CancelBody, request: Request,
                     principal: Principal = require(P.EXCEPTIONS_MANAGE)) -> dict[str, Any]:
    store = _store(request)
    exc_id, _status = service.cancel_exception(store, principal, exception_id, body.rbacGroupIds)
    return _exception_out(store, principal, exc_id)


# =============================================================================== remediation

class RemediationBody(Body):
    recommendationId: str = Field(min_length=1, max_length=300)
    priority: str = Field(default="Medium", pattern="^(High|Medium|Low)$")
    dueOn: UtcDateTime | None = None
    requesterNotes: str = Field(default="", max_length=4000)
    rbacGroupIds: list[Id] | None = Field(default=None, max_length=1000)
    title: str | None = Field(default=None, max_length=512)
    ticketConnectionId: Id | None = None


def _activity_fields() -> dict[str, odata.Field]:
    A = RemediationActivity
    return {"id": odata.Field(A.id), "title": odata.Field(A.title), "category": odata.Field(A.category),
            "type": odata.Field(A.type), "status": odata.Field(A.status), "priority": odata.Field(A.priority),
            "recommendationId": odata.Field(A.recommendation_id), "nameId": odata.Field(A.recommendation_id),
            "productId": odata.Field(A.product_id), "relatedComponent": odata.Field(A.related_component),
            "createdOn": odata.Field(A.created_on, dt.datetime), "dueOn": odata.Field(A.due_on, dt.datetime),
            "requesterEmail": odata.Field(A.requester_email), "requesterId": odata.Field(A.requester_id),
            "completerEmail": odata.Field(A.completer_email), "completionMethod": odata.Field(A.completion_method),
            "completedOn": odata.Field(A.completed_on, dt.datetime),
            "targetDevicesCount": odata.Field(A.target_devices, int),
            "fixedDevicesCount": odata.Field(A.fixed_devices, int)}


def _activity_scope(principal: Principal) -> Any:
    if principal.group_ids is None:
        return literal(True)
    # JSON lists cannot be intersected portably in SQL; filter the group-limited activities by a
    # LIKE on each of the caller's ids as a JSON number, then re-check exactly in Python.
    text = cast(RemediationActivity.group_ids, Text)
    return and_(RemediationActivity.group_ids.is_not(None),
                or_(*[or_(text.like(f"[{g},%"), text.like(f"%, {g},%"), text.like(f"%, {g}]"), text.like(f"[{g}]"),
                          text.like(f"%,{g},%"), text.like(f"%,{g}]"))
                      for g in principal.group_ids]))


def _tickets(s: Session, act_ids: list[str]) -> dict[str, list[RemediationTicket]]:
    out: dict[str, list[RemediationTicket]] = {}
    if act_ids:
        for t in s.scalars(select(RemediationTicket).where(RemediationTicket.activity_id.in_(act_ids))
                           .order_by(RemediationTicket.id)):
            out.setdefault(t.activity_id, []).append(t)
    return out


@router.get("/remediationTasks", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.RemediationTask]))
def list_remediation_tasks(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    now = utcnow()
    with _store(request).tenant(principal.tenant_id) as s:
        q = parse_odata(request, _activity_fields(), [RemediationActivity.created_on.desc(), RemediationActivity.id])
        stmt = select(RemediationActivity).where(_activity_scope(principal))
        count = None
        if request.query_params.get("$count", "").lower() == "true":
            filtered = stmt.where(q.filter) if q.filter is not None else stmt
            count = s.scalar(select(func.count()).select_from(filtered.subquery()))
        acts = [a for a in s.scalars(odata.apply(stmt, q)) if remediation.visible(principal, a)]
        tickets = _tickets(s, [a.id for a in acts])
        return odata_list(request, "RemediationTasks", (remediation.to_api(a, now, tickets.get(a.id)) for a in acts),
                          q.select, count)


@router.post("/remediationTasks", status_code=201, responses=returns(schema.RemediationTask, 201))
def create_remediation_task(body: RemediationBody, request: Request,
                            principal: Principal = require(P.REMEDIATION_MANAGE)) -> dict[str, Any]:
    store = _store(request)
    with store.tenant(principal.tenant_id) as s:
        if body.ticketConnectionId is not None:
            try:
                integrations.connection(s, principal.tenant_id, body.ticketConnectionId, ticketing=True)
            except LookupError as exc:
                raise NotFound(str(exc)) from None
            except ValueError as exc:
                raise Invalid(str(exc)) from None
        rec, _ = _load_rec(s, principal, body.recommendationId)
        act = remediation.request(s, principal, rec, priority=body.priority, due_on=body.dueOn,
                                  notes=body.requesterNotes, group_ids=body.rbacGroupIds, title=body.title)
        act_id = act.id
    if body.ticketConnectionId is not None:
        integrations.open_ticket(store, principal.tenant_id, act_id, body.ticketConnectionId)
    return _activity_out(store, principal, act_id)


def _activity_out(store: Any, principal: Principal, act_id: str) -> dict[str, Any]:
    with store.tenant(principal.tenant_id) as s:
        act = remediation.get(s, principal, act_id)
        return remediation.to_api(act, utcnow(), _tickets(s, [act.id]).get(act.id))


@router.get("/remediationTasks/{task_id}", responses=returns(schema.RemediationTask))
def get_remediation_task(task_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    return _activity_out(_store(request), principal, task_id)


@router.get("/remediationTasks/{task_id}/machineReferences", responses=returns(schema.ODataList[schema.RemediationTarget]))
def remediation_task_machines(task_id: str, request: Request,
                              principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        act = remediation.get(s, principal, task_id)
        rows = []
        for t, d, g in remediation.targets_with_devices(s, act, principal):
            if d is None:
                continue
            rows.append(reference_to_api(d, g, {"status": "Fixed" if t.fixed_on else "Exposed", "addedOn": t.added_on,
                                             "fixedOn": t.fixed_on}))
        return odata_list(request, "MachineReferences", rows)


@router.get("/remediationTasks/{task_id}/export", responses=csv_file("the activity's devices as CSV"))
def export_remediation_task(task_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    with _store(request).tenant(principal.tenant_id) as s:
        act = remediation.get(s, principal, task_id)
        text = remediation.export_csv(s, act, principal)
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="remediation-{act.id}.csv"'})


@router.post("/remediationTasks/{task_id}/complete", responses=returns(schema.RemediationTask))
def complete_remediation_task(task_id: str, request: Request,
                              principal: Principal = require(P.REMEDIATION_MANAGE)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        act = remediation.get(s, principal, task_id)
        remediation.complete(s, principal, act)
    return _activity_out(_store(request), principal, task_id)


class TicketBody(Body):
    connectionId: Id


@router.post("/remediationTasks/{task_id}/tickets", status_code=201, responses=returns(schema.Ticket, 201))
def open_remediation_ticket(task_id: str, body: TicketBody, request: Request,
                            principal: Principal = require(P.REMEDIATION_MANAGE)) -> dict[str, Any]:
    store = _store(request)
    with store.tenant(principal.tenant_id) as s:
        act = remediation.get(s, principal, task_id)
        act_id = act.id
        try:
            integrations.connection(s, principal.tenant_id, body.connectionId, ticketing=True)
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        except ValueError as exc:
            raise Invalid(str(exc)) from None
    return integrations.open_ticket(store, principal.tenant_id, act_id, body.connectionId)


@router.post("/remediationTasks/{task_id}/tickets/sync", responses=returns(schema.ODataList[schema.Ticket]))
def sync_remediation_tickets(task_id: str, request: Request,
                             principal: Principal = require(P.REMEDIATION_MANAGE)) -> dict[str, Any]:
    store = _store(request)
    with store.tenant(principal.tenant_id) as s:
        act = remediation.get(s, principal, task_id)
        ids = [t.id for t in _tickets(s, [act.id]).get(act.id, [])]
    return odata_list(request, "Tickets", [integrations.sync_ticket(store, principal.tenant_id, i) for i in ids])


# =============================================================================== event timeline

def _event_fields() -> dict[str, odata.Field]:
    E = TimelineEvent
    return {"id": odata.Field(E.id, int), "date": odata.Field(E.at, dt.datetime), "eventType": odata.Field(E.kind),
            "relatedComponent": odata.Field(E.related_component), "vulnerabilityId": odata.Field(E.vulnerability_id),
            "severity": odata.Field(E.severity), "originallyImpactedDevices": odata.Field(E.originally_impacted, int),
            "scoreImpact": odata.Field(E.score_impact, float), "productId": odata.Field(E.product_id),
            "recommendationId": odata.Field(E.recommendation_id)}


def _event_scope(principal: Principal) -> Any:
    if principal.group_ids is None:
        return literal(True)
    text = cast(TimelineEvent.impacted_by_group, Text)
    return or_(*[text.contains(f'"{g}"') for g in principal.group_ids])


@router.get("/eventTimeline", openapi_extra=ODATA, responses=returns(schema.TimelineEventList))
def list_events(request: Request, eventType: str | None = None, fromDate: str | None = None,
                toDate: str | None = None, minImpactedPercentage: float | None = None,
                principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    now = utcnow()
    with _store(request).tenant(principal.tenant_id) as s:
        stmt = select(TimelineEvent).where(_event_scope(principal))
        if eventType:
            kinds = [k.strip() for k in eventType.split(",") if k.strip()]
            bad = [k for k in kinds if k not in timeline.EVENT_TYPES]
            if bad:
                raise Invalid(f"unknown eventType {bad[0]!r}; use {', '.join(timeline.EVENT_TYPES)}")
            stmt = stmt.where(TimelineEvent.kind.in_(kinds))
        start, end = _parse_when(fromDate, "fromDate"), _parse_when(toDate, "toDate")
        if start:
            stmt = stmt.where(TimelineEvent.at >= start)
        if end:
            stmt = stmt.where(TimelineEvent.at <= end)
        if minImpactedPercentage is not None:
            stmt = stmt.where(TimelineEvent.total_devices > 0, TimelineEvent.originally_impacted * 100.0 >=
                              TimelineEvent.total_devices * minImpactedPercentage)
        q = parse_odata(request, _event_fields(), [TimelineEvent.at.desc(), TimelineEvent.id.desc()])
        count = None
        if request.query_params.get("$count", "").lower() == "true":
            filtered = stmt.where(q.filter) if q.filter is not None else stmt
            count = s.scalar(select(func.count()).select_from(filtered.subquery()))
        events = [e for e in s.scalars(odata.apply(stmt, q))
                  if principal.group_ids is None or timeline.visible_count(e, principal.group_ids) > 0]
        current = timeline.currently_impacted(s, events, principal.group_ids, now)
        body = odata_list(request, "EventTimeline", (timeline.to_api(e, principal.group_ids, current.get(e.id))
                                                    for e in events), q.select, count)
        day = now - dt.timedelta(days=30)
        vuln_kinds = list(timeline.VULNERABILITY_EVENTS)
        body["summary"] = {
            "newVulnerabilitiesLast30Days": s.scalar(select(func.count(distinct(TimelineEvent.vulnerability_id))).where(
                TimelineEvent.kind == "NewVulnerability", TimelineEvent.at >= day, _event_scope(principal))) or 0,
            "exploitableVulnerabilitiesLast30Days": s.scalar(select(func.count(distinct(TimelineEvent.vulnerability_id)))
                                                             .where(TimelineEvent.kind.in_(vuln_kinds[1:]),
                                                                    TimelineEvent.at >= day, _event_scope(principal))) or 0,
        }
        return body


@router.get("/eventTimeline/{event_id}", responses=returns(schema.TimelineEventDetail))
def get_event(event_id: Id, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    now = utcnow()
    with _store(request).tenant(principal.tenant_id) as s:
        e = s.get(TimelineEvent, event_id)
        if e is None or e.tenant_id != principal.tenant_id or (
                principal.group_ids is not None and timeline.visible_count(e, principal.group_ids) == 0):
            raise NotFound(f"no event {event_id!r}")
        out = timeline.to_api(e, principal.group_ids, timeline.currently_impacted(s, [e], principal.group_ids, now)
                              .get(e.id))
        ids = list(e.device_ids or [])
        devices = s.execute(select(Device, Group.name).outerjoin(Group, Group.id == Device.group_id)
                            .where(Device.id.in_(ids), device_scope(principal))
                            .order_by(Device.computer_dns_name)).all() if ids else []
        out["devices"] = [reference_to_api(d, g) for d, g in devices]
        if e.vulnerability_id:
            out["vulnerability"] = vulnerabilities.by_id(s, e.vulnerability_id, out["currentlyImpactedDevices"] or 0)
        return out


# =============================================================================== notification rules

class RuleBody(Body):
    name: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    events: list[str] | None = Field(default=None, max_length=20)
    minimumSeverity: str = "Low"
    rbacGroupIds: list[Id] | None = Field(default=None, max_length=1000)
    emailRecipients: list[str] = Field(default_factory=list, max_length=100)
    webhookConnectionIds: list[Id] = Field(default_factory=list, max_length=50)
    includeOrganizationName: bool = False


class RulePatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    description: str | None = Field(default=None, max_length=2000)
    enabled: bool | None = None
    events: list[str] | None = Field(default=None, max_length=20)
    minimumSeverity: str | None = None
    rbacGroupIds: list[Id] | None = Field(default=None, max_length=1000)
    emailRecipients: list[str] | None = Field(default=None, max_length=100)
    webhookConnectionIds: list[Id] | None = Field(default=None, max_length=50)
    includeOrganizationName: bool | None = None


@router.get("/notificationRules", responses=returns(schema.ODataList[schema.NotificationRule]))
def list_rules(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        names = _group_names(s)
        rules = [r for r in s.scalars(select(NotificationRule).order_by(NotificationRule.id))
                 if notifications.visible(principal, r)]
        return odata_list(request, "NotificationRules", [notifications.to_api(r, names) for r in rules])


@router.post("/notificationRules", status_code=201, responses=returns(schema.NotificationRule, 201))
def create_rule(body: RuleBody, request: Request, principal: Principal = require(P.SETTINGS_MANAGE)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        v = notifications.validate(s, principal, name=body.name, events=body.events,
                                   min_severity=body.minimumSeverity, group_ids=body.rbacGroupIds,
                                   emails=body.emailRecipients, webhook_connection_ids=body.webhookConnectionIds)
        rule = NotificationRule(**v, description=body.description, enabled=body.enabled,
                                include_org_name=body.includeOrganizationName, created_by=principal.actor,
                                last_event_id=notifications.start_after_latest(s))
        s.add(rule)
        s.flush()
        return notifications.to_api(rule, _group_names(s))


@router.get("/notificationRules/{rule_id}", responses=returns(schema.NotificationRule))
def get_rule(rule_id: Id, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        return notifications.to_api(notifications.get(s, principal, rule_id), _group_names(s))


@router.patch("/notificationRules/{rule_id}", responses=returns(schema.NotificationRule))
def update_rule(rule_id: Id, body: RulePatch, request: Request, principal: Principal = require(P.SETTINGS_MANAGE)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        rule = notifications.get(s, principal, rule_id)
        given = body.model_fields_set
        v = notifications.validate(
            s, principal, name=body.name if body.name is not None else rule.name,
            events=body.events if body.events is not None else rule.events,
            min_severity=body.minimumSeverity or rule.min_severity,
            group_ids=body.rbacGroupIds if "rbacGroupIds" in given else rule.group_ids,
            emails=body.emailRecipients if body.emailRecipients is not None else rule.emails,
            webhook_connection_ids=body.webhookConnectionIds if body.webhookConnectionIds is not None
            else rule.webhook_connection_ids)
        for k, val in v.items():
            setattr(rule, k, val)
        if body.description is not None:
            rule.description = body.description
        if body.enabled is not None:
            rule.enabled = body.enabled
        if body.includeOrganizationName is not None:
            rule.include_org_name = body.includeOrganizationName
        s.flush()
        return notifications.to_api(rule, _group_names(s))


@router.delete("/notificationRules/{rule_id}", status_code=204)
def delete_rule(rule_id: Id, request: Request, principal: Principal = require(P.SETTINGS_MANAGE)) -> Response:
    with _store(request).tenant(principal.tenant_id) as s:
        s.delete(notifications.get(s, principal, rule_id))
    return Response(status_code=204)


@router.get("/notificationRules/{rule_id}/deliveries", responses=returns(schema.ODataList[schema.NotificationDelivery]))
def rule_deliveries(rule_id: Id, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        rule = notifications.get(s, principal, rule_id)
        rows = s.scalars(select(NotificationDelivery).where(NotificationDelivery.rule_id == rule.id)
                         .order_by(NotificationDelivery.id.desc()).limit(1000))
        return odata_list(request, "NotificationDeliveries", [notifications.delivery_to_api(d) for d in rows])


# =============================================================================== integration connections

class ConnectionBody(Body):
    name: str = Field(min_length=1, max_length=128)
    kind: str = Field(min_length=1, max_length=32)
    config: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True


class ConnectionPatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    config: dict[str, Any] | None = None
    secrets: dict[str, str] | None = None  # keys given replace those stored; others stay
    enabled: bool | None = None


class ConnectionTestBody(Body):
    to: str | None = Field(default=None, max_length=320)


def _connection(s: Session, principal: Principal, connection_id: int) -> IntegrationConnection:
    conn = s.get(IntegrationConnection, connection_id)
    if conn is None or conn.tenant_id != principal.tenant_id:
        raise NotFound(f"no connection {connection_id!r}")
    return conn


@router.get("/integrationConnections", responses=returns(schema.ODataList[schema.IntegrationConnection]))
def list_connections(request: Request, principal: Principal = require(P.SETTINGS_MANAGE)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        rows = s.scalars(select(IntegrationConnection).order_by(IntegrationConnection.id))
        return odata_list(request, "IntegrationConnections", [conn_mod.to_api(c) for c in rows])


@router.post("/integrationConnections", status_code=201, responses=returns(schema.IntegrationConnection, 201))
def create_connection(body: ConnectionBody, request: Request, principal: Principal = require(P.SETTINGS_MANAGE)) -> dict[str, Any]:
    try:
        cfg = conn_mod.validate(body.kind, body.name, body.config, body.secrets)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    with _store(request).tenant(principal.tenant_id) as s:
        if s.scalar(select(IntegrationConnection.id).where(IntegrationConnection.name == body.name)):
            raise Conflict(f"a connection named {body.name!r} exists")
        conn = IntegrationConnection(name=body.name, kind=body.kind, config=cfg,
                                     secrets=secretbox.seal(principal.tenant_id, {}, body.secrets),
                                     enabled=body.enabled, created_by=principal.actor)
        s.add(conn)
        s.flush()
        return conn_mod.to_api(conn)


@router.get("/integrationConnections/{connection_id}", responses=returns(schema.IntegrationConnection))
def get_connection(connection_id: Id, request: Request, principal: Principal = require(P.SETTINGS_MANAGE)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        return conn_mod.to_api(_connection(s, principal, connection_id))


@router.patch("/integrationConnections/{connection_id}", responses=returns(schema.IntegrationConnection))
def update_connection(connection_id: Id, body: ConnectionPatch, request: Request,
                      principal: Principal = require(P.SETTINGS_MANAGE)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        conn = _connection(s, principal, connection_id)
        name = body.name or conn.name
        # which secrets will be set (stored values stay encrypted: validation only needs their presence)
        secrets = {**(conn.secrets or {}), **(body.secrets or {})}
        try:
            cfg = conn_mod.validate(conn.kind, name, body.config if body.config is not None else conn.config, secrets)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        if name != conn.name and s.scalar(select(IntegrationConnection.id).where(IntegrationConnection.name == name)):
            raise Conflict(f"a connection named {name!r} exists")
        # every write re-encrypts: new values, and values stored in plaintext by earlier versions
        conn.name, conn.config = name, cfg
        conn.secrets = secretbox.seal(principal.tenant_id, conn.secrets, body.secrets)
        if body.enabled is not None:
            conn.enabled = body.enabled
        s.flush()
        return conn_mod.to_api(conn)


@router.delete("/integrationConnections/{connection_id}", status_code=204)
def delete_connection(connection_id: Id, request: Request, principal: Principal = require(P.SETTINGS_MANAGE)) -> Response:
    with _store(request).tenant(principal.tenant_id) as s:
        s.delete(_connection(s, principal, connection_id))
    return Response(status_code=204)


@router.post("/integrationConnections/{connection_id}/test", responses=returns(schema.ConnectionCheck))
def try_connection(connection_id: Id, body: ConnectionTestBody, request: Request,
                    principal: Principal = require(P.SETTINGS_MANAGE)) -> dict[str, Any]:
    with _store(request).tenant(principal.tenant_id) as s:
        conn_id = _connection(s, principal, connection_id).id
    try:
        return integrations.check_connection(_store(request), principal.tenant_id, conn_id, body.to)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


# =============================================================================== export assessment
# Defender's names: ``…ByMachine`` answers JSON pages (``pageSize``, ``pageIndex``, ``@odata.nextLink``);
# ``…Export`` streams the whole export as JSON lines (one row per line, constant memory).

NDJSON = "application/x-ndjson"
MAX_PAGE = 200_000
DEFAULT_PAGE = 50_000
PAGED = {"parameters": [  # what _page reads, for the API document
    {"name": "pageSize", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                      "maximum": MAX_PAGE}},
    {"name": "pageIndex", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                       "maximum": INT_MAX}}]}


def _jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for r in rows:
        yield (json.dumps(r, default=str, separators=(",", ":")) + "\n").encode()


def _stream(request: Request, principal: Principal, produce: Any) -> StreamingResponse:
    store = _store(request)

    def gen() -> Iterator[bytes]:
        with store.tenant(principal.tenant_id) as s:
            yield from _jsonl(produce(s))

    return StreamingResponse(gen(), media_type=NDJSON)


def _page(request: Request, principal: Principal, entity: str, produce: Any) -> dict[str, Any]:
    try:
        size = int(request.query_params.get("pageSize", DEFAULT_PAGE))
        index = int(request.query_params.get("pageIndex", 1))
    except ValueError:
        raise Invalid("pageSize and pageIndex must be integers") from None
    if not 1 <= size <= MAX_PAGE or not 1 <= index <= INT_MAX:
        raise Invalid(f"pageSize must be 1-{MAX_PAGE} and pageIndex 1-{INT_MAX}")
    with _store(request).tenant(principal.tenant_id) as s:
        rows = list(itertools.islice(produce(s), (index - 1) * size, index * size + 1))
    body = odata_list(request, entity, rows[:size])
    if len(rows) > size:
        body["@odata.nextLink"] = str(request.url.include_query_params(pageIndex=index + 1, pageSize=size))
    return body


def _since(value: str | None, required: bool) -> dt.datetime | None:
    since = _parse_when(value, "sinceTime")
    if since is None:
        if required:
            raise Invalid("sinceTime is required")
        return None
    if since < utcnow() - dt.timedelta(days=14):
        raise Invalid("sinceTime must be within the last 14 days; use the full export for older changes")
    return since


def _inventory(principal: Principal) -> Any:
    now = utcnow()
    return lambda s: exports.software_inventory(s, device_scope(principal), now)


def _vulnerabilities(principal: Principal) -> Any:
    now = utcnow()
    return lambda s: exports.software_vulnerabilities(s, device_scope(principal), now)


def _changes(principal: Principal, since: dt.datetime) -> Any:
    now = utcnow()
    return lambda s: exports.software_vulnerability_changes(s, device_scope(principal), since, now)


@export_router.get("/machines/SoftwareInventoryByMachine", openapi_extra=PAGED, responses=returns(schema.ExportPage))
def software_inventory_by_machine(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    return _page(request, principal, "SoftwareInventoryByMachine", _inventory(principal))


@export_router.get("/machines/SoftwareVulnerabilitiesByMachine", openapi_extra=PAGED, responses=returns(schema.ExportPage))
def software_vulnerabilities_by_machine(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    return _page(request, principal, "SoftwareVulnerabilitiesByMachine", _vulnerabilities(principal))


@export_router.get("/machines/SoftwareVulnerabilityChangesByMachine", openapi_extra=PAGED, responses=returns(schema.ExportPage))
def software_vulnerability_changes_by_machine(request: Request, sinceTime: str,
                                              principal: Principal = require(P.VULNERABILITIES_READ)) -> dict[str, Any]:
    since = _since(sinceTime, True)
    assert since is not None
    return _page(request, principal, "SoftwareVulnerabilityChangesByMachine", _changes(principal, since))


@export_router.get("/machines/SoftwareInventoryExport", responses=json_lines(schema.AssessmentRow, "the software inventory"))
def software_inventory_export(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> StreamingResponse:
    return _stream(request, principal, _inventory(principal))


@export_router.get("/machines/SoftwareVulnerabilitiesExport", responses=json_lines(schema.AssessmentRow, "the software vulnerabilities"))
def software_vulnerabilities_export(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> StreamingResponse:
    return _stream(request, principal, _vulnerabilities(principal))


@export_router.get("/machines/SoftwareVulnerabilityChangesExport", responses=json_lines(schema.AssessmentRow, "the changes of software vulnerabilities"))
def software_vulnerability_changes_export(request: Request, sinceTime: str,
                                          principal: Principal = require(P.VULNERABILITIES_READ)) -> StreamingResponse:
    since = _since(sinceTime, True)
    assert since is not None
    return _stream(request, principal, _changes(principal, since))


@export_router.get("/machines/SecureConfigurationsAssessmentExport", responses=json_lines(schema.AssessmentRow, "the secure configuration assessment"))
def secure_configurations_export(request: Request, sinceTime: str | None = None,
                                 principal: Principal = require(P.VULNERABILITIES_READ)) -> StreamingResponse:
    since = _since(sinceTime, False)
    if not config.available():
        raise NotFound("the configuration assessment is not part of this build")
    groups = principal.group_ids
    return _stream(request, principal, lambda s: exports.secure_configuration(s, groups, since) or iter(()))


def setup(app: FastAPI) -> None:
    """Put the export routes ahead of ``/api/machines/{machine_id}``; apply the server's integration
    settings (allowed networks, secrets key) to this process."""
    integration_settings.configure(app.state.settings.integrations())
    routes = app.router.routes
    before = len(routes)
    app.include_router(export_router)
    mine = routes[before:]
    del routes[before:]
    first_api = next((i for i, r in enumerate(routes) if getattr(r, "original_router", None) is not None
                      or str(getattr(r, "path", "")).startswith("/api/")), len(routes))
    routes[first_api:first_api] = mine
