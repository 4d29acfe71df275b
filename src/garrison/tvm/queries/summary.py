"""Read side of the vulnerability-management pages, scoped to the page's device groups (``scope``:
an object with ``scope`` — the device-group ids shown, None for every group —, ``principal`` and
``device_cond()``; the console's page context is one).

The prioritisation job materialises per tenant what is expensive (exposure score components,
recommendations with their per-group shares, daily histories, the event timeline), and ingest keeps
device counts per device group for every package version, software product and vulnerability
(``tvm_group_*``). These helpers read those rows — organisation-wide figures when no device group is
selected, sums over the selected groups' rows otherwise. The software and weakness summaries (one
row per product or CVE) are cached per tenant, scope and prioritisation run for at most two minutes
(:func:`cached`); lookups by one package or vulnerability first fetch its short list of package
version ids, so that every ``device_packages`` query goes through its package index.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from garrison.core.access import Principal
from garrison.store.models.assessment import DeviceAssessmentResult
from garrison.store.models.core import Device
from garrison.store.models.kb import Vulnerability
from garrison.store.models.prioritisation import (
    ORG,
    ExposureGroupScore,
    ExposureScoreHistory,
    Recommendation,
    RecommendationException,
    RecommendationExceptionGroup,
    RecommendationGroup,
    RecommendationHistory,
    RemediationActivity,
    RemediationTarget,
    TimelineEvent,
)
from garrison.store.models.tvm import (
    DevicePackage,
    GroupPackageCount,
    GroupSoftwareCount,
    GroupVulnerabilityCount,
    PackageVersion,
    PackageVersionVuln,
    SoftwareProduct,
)
from garrison.tvm import assessment, findings


class PageScope(Protocol):
    """The device groups a page reads: ``scope`` (ids, None = every group of the tenant), the caller."""

    @property
    def scope(self) -> tuple[int, ...] | None: ...

    @property
    def principal(self) -> Principal: ...

    def device_cond(self) -> ColumnElement[bool]: ...


@dataclass(frozen=True)
class Point:
    """A day's value of a trend (None: nothing was scored that day)."""
    day: dt.date
    value: float | None


def exposure_level(score: float | None) -> str:
    """0–29 low, 30–69 medium, 70–100 high (Defender's bands); None = no data."""
    if score is None:
        return "No data"
    if score >= 70:
        return "High"
    if score >= 30:
        return "Medium"
    return "Low"


SEVERITY_RANK = {"Critical": 4, "High": 3, "Medium": 2, "Low": 1}
TREND_DAYS = 30
TREND_MIN_POINTS = 3  # a default trend period takes in at least this many scored days…
TREND_MAX_DAYS = 731  # … within two years
CATEGORIES = ("Application", "OS", "Network", "Accounts", "SecurityControls")
CATEGORY_LABELS = {"Application": "Application", "OS": "Operating system", "Network": "Network",
                   "Accounts": "Accounts", "SecurityControls": "Security controls"}
REMEDIATION_TYPES = ("Update", "Upgrade", "Uninstall", "ConfigurationChange", "AttentionRequired")
REMEDIATION_LABELS = {"Update": "Software update", "Upgrade": "Software upgrade", "Uninstall": "Software uninstall",
                      "ConfigurationChange": "Configuration change", "AttentionRequired": "Attention required"}
THREAT_FILTERS = {"kev": "Known exploited (KEV)", "exploit": "Public exploit", "kit": "Exploit kit",
                  "alert": "Active alert"}
JUSTIFICATION_LABELS = {"ThirdPartyControl": "Third party control", "AlternateMitigation": "Alternate mitigation",
                        "RiskAccepted": "Risk accepted", "PlannedRemediation": "Planned remediation (grace)"}


def severity_rank(col: Any = None) -> ColumnElement[int]:
    col = Vulnerability.severity if col is None else col
    return case(*((col == k, v) for k, v in SEVERITY_RANK.items()), else_=0)


# --- cache of live aggregates -------------------------------------------------------------

_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 256


CACHE_TTL = 120.0  # seconds: inventories that change between prioritisation runs show up this late at most


def data_version(s: Session) -> Any:
    """Changes whenever the prioritisation job has run, the knowledge base grew or device-group moves
    were booked into the per-group counts."""
    return (s.scalar(select(func.max(ExposureGroupScore.computed_at))), s.scalar(select(func.max(PackageVersion.id))),
            findings.moves_booked())


def cached(key: tuple[Any, ...], compute: Callable[[], Any], ttl: float = CACHE_TTL) -> Any:
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] > now:
            _CACHE.move_to_end(key)
            return hit[1]
    value = compute()
    with _CACHE_LOCK:
        _CACHE[key] = (now + ttl, value)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


# --- exposure score -----------------------------------------------------------------------

def exposure_now(s: Session, ctx: PageScope) -> dict[str, Any]:
    from garrison.tvm.prioritisation import exposure

    comp = exposure.components_for(s, list(ctx.scope) if ctx.scope is not None else None)
    computed = exposure.last_computed(s)
    score = comp.score if comp.devices else None
    return {"score": score, "level": exposure_level(score) if score is not None else "No data",
            "devices": comp.devices, "levels": exposure.levels_summary(comp.levels), "computed_at": computed}


def exposure_history(s: Session, ctx: PageScope, days: int = TREND_DAYS, until: dt.date | None = None) -> list[Point]:
    """Daily organisation (or selected groups') score over the ``days`` up to ``until`` (today); several
    groups: a device-weighted average. The points cover the whole period (gaps where nothing was scored)."""
    last = min(until or dt.date.today(), dt.date.today())
    since = last - dt.timedelta(days=days - 1)
    keys = [ORG] if ctx.scope is None else list(ctx.scope)
    rows = s.execute(select(ExposureScoreHistory.day, ExposureScoreHistory.score, ExposureScoreHistory.devices)
                     .where(ExposureScoreHistory.group_id.in_(keys), ExposureScoreHistory.day >= since,
                            ExposureScoreHistory.day <= last)
                     .order_by(ExposureScoreHistory.day)).all()
    by_day: dict[dt.date, list[tuple[float, int]]] = {}
    for day, score, devices in rows:
        by_day.setdefault(day, []).append((score, devices or 0))
    return _daily_points(since, days, {d: _weighted(v) for d, v in by_day.items()}, whole_period=True)


def trend_days(s: Session, ctx: PageScope) -> int:
    """Days a trend shows when the user chose none: the last TREND_DAYS, widened back (at most
    TREND_MAX_DAYS) to take in the last TREND_MIN_POINTS scored days, so that a sparse history (a new
    server, the demo's replayed one) still shows a trend rather than one point."""
    today = dt.date.today()
    keys = [ORG] if ctx.scope is None else list(ctx.scope)
    days = list(s.scalars(select(ExposureScoreHistory.day).distinct()
                          .where(ExposureScoreHistory.group_id.in_(keys),
                                 ExposureScoreHistory.day >= today - dt.timedelta(days=TREND_MAX_DAYS - 1),
                                 ExposureScoreHistory.day <= today)
                          .order_by(ExposureScoreHistory.day.desc()).limit(TREND_MIN_POINTS)))
    return max(TREND_DAYS, (today - days[-1]).days + 1) if days else TREND_DAYS


def _weighted(values: list[tuple[float, int]]) -> float:
    total = sum(n for _s, n in values)
    if total <= 0:
        return sum(sc for sc, _n in values) / len(values)
    return sum(sc * n for sc, n in values) / total


def _daily_points(since: dt.date, days: int, values: dict[dt.date, float | None],
                  whole_period: bool = False) -> list[Point]:
    """One point per day up to today (days without a value stay gaps), trimmed to the first value — or,
    ``whole_period``, over the whole period asked for (the exposure trend of a chosen date range)."""
    pts = [Point(since + dt.timedelta(days=i), values.get(since + dt.timedelta(days=i)))
           for i in range(days)]
    first = next((i for i, p in enumerate(pts) if p.value is not None), None)
    if first is None:
        return []
    return pts if whole_period else pts[first:]


def value_days_ago(points: Sequence[Point], days: int) -> float | None:
    if not points:
        return None
    target = points[-1].day - dt.timedelta(days=days)
    for p in points:
        if p.day == target:
            return p.value
    return None


# --- secure score -------------------------------------------------------------------------

def secure_score_now(s: Session, ctx: PageScope) -> dict[str, Any] | None:
    return assessment.secure_score(s, list(ctx.scope) if ctx.scope is not None else None)


def secure_score_history(s: Session, ctx: PageScope, days: int = TREND_DAYS) -> list[Point]:
    since = dt.date.today() - dt.timedelta(days=days - 1)
    if ctx.scope is not None and len(ctx.scope) != 1:
        per_day: dict[dt.date, list[tuple[float, int]]] = {}
        for gid in ctx.scope:
            for row in assessment.secure_score_history(s, gid, since=since):
                if row["score"] is not None:
                    per_day.setdefault(dt.date.fromisoformat(row["date"]), []).append((row["score"], row["devices"]))
        return _daily_points(since, days, {d: _weighted(v) for d, v in per_day.items()})
    one: int | None = None if ctx.scope is None else ctx.scope[0]
    rows = assessment.secure_score_history(s, one, since=since)
    return _daily_points(since, days, {dt.date.fromisoformat(r["date"]): r["score"] for r in rows})


# --- recommendations ----------------------------------------------------------------------

def scoped_recommendations(ctx: PageScope) -> tuple[Any, Any, Any]:
    """(SELECT of recommendations with scoped figures, exposed expr, impact expr).

    Columns: Recommendation, exposed devices, exposure impact, installed devices.
    """
    exposed: Any
    impact: Any
    if ctx.scope is None:
        exposed = Recommendation.exposed_machines_count
        impact = Recommendation.exposure_impact
        stmt = select(Recommendation, exposed.label("exposed"), impact.label("impact"),
                      Recommendation.total_machine_count.label("installed"))
        return stmt.where(exposed > 0), exposed, impact
    rg = (select(RecommendationGroup.recommendation_id.label("rid"),
                 func.sum(RecommendationGroup.exposed).label("exposed"),
                 func.sum(RecommendationGroup.installed).label("installed"),
                 func.sum(RecommendationGroup.priority).label("priority"))
          .where(RecommendationGroup.group_id.in_(ctx.scope))
          .group_by(RecommendationGroup.recommendation_id).subquery())
    exposed = rg.c.exposed
    impact = Recommendation.exposure_impact * rg.c.exposed / func.nullif(Recommendation.exposed_machines_count, 0)
    stmt = (select(Recommendation, exposed.label("exposed"), impact.label("impact"), rg.c.installed.label("installed"))
            .join(rg, rg.c.rid == Recommendation.id).where(exposed > 0))
    return stmt, exposed, impact


def recommendation_trends(s: Session, ids: Sequence[str], days: int = TREND_DAYS) -> dict[str, list[int]]:
    if not ids:
        return {}
    since = dt.date.today() - dt.timedelta(days=days)
    out: dict[str, list[int]] = {}
    for rid, _day, exposed in s.execute(
            select(RecommendationHistory.recommendation_id, RecommendationHistory.day, RecommendationHistory.exposed)
            .where(RecommendationHistory.recommendation_id.in_(list(ids)), RecommendationHistory.day >= since)
            .order_by(RecommendationHistory.recommendation_id, RecommendationHistory.day)):
        out.setdefault(rid, []).append(exposed)
    return out


def top_recommendations(s: Session, ctx: PageScope, n: int = 5) -> list[dict[str, Any]]:
    stmt, _exposed, _impact = scoped_recommendations(ctx)
    order = Recommendation.priority_score.desc()
    rows = s.execute(stmt.where(Recommendation.status != "Exception").order_by(order, Recommendation.id).limit(n)).all()
    return [{"r": r[0], "exposed": int(r[1] or 0), "impact": float(r[2] or 0)} for r in rows]


def _ids(s: Session, stmt: Any) -> list[Any]:
    """Materialise a short id list first: SQLite plans ``device_packages`` joins badly otherwise."""
    return [r[0] for r in s.execute(stmt)]


def recommendation_package_versions(s: Session, rec: Recommendation) -> list[int]:
    d = rec.details or {}
    if rec.kind != "software" or not d.get("matchNames"):
        return []
    return _ids(s, select(PackageVersion.id).where(PackageVersion.match_name.in_(d["matchNames"]),
                                                   PackageVersion.ecosystem.in_(d.get("ecosystems") or [])))


def recommendation_vulns(s: Session, rec: Recommendation, limit: int = 50) -> list[dict[str, Any]]:
    """The weaknesses a software recommendation fixes (what the knowledge base says of each)."""
    pv_ids = recommendation_package_versions(s, rec)
    if not pv_ids:
        return []
    present = _ids(s, select(DevicePackage.package_version_id).where(DevicePackage.package_version_id.in_(pv_ids))
                   .distinct())
    if not present:
        return []
    rows = s.execute(select(Vulnerability, func.max(PackageVersionVuln.fixed_version))
                     .join(PackageVersionVuln, PackageVersionVuln.vulnerability_id == Vulnerability.id)
                     .where(PackageVersionVuln.package_version_id.in_(present))
                     .group_by(Vulnerability.id)
                     .order_by(Vulnerability.kev.desc(), severity_rank().desc(),
                               func.coalesce(Vulnerability.cvss_v3_score, 0).desc(), Vulnerability.id)
                     .limit(limit)).all()
    return [{"v": v, "fixed": fixed} for v, fixed in rows]


def exposed_devices_select(s: Session, rec: Recommendation) -> Any | None:
    """SELECT of the ids of the devices exposed to ``rec`` (None: none)."""
    if rec.kind == "software":
        pv_ids = recommendation_package_versions(s, rec)
        vulnerable = _ids(s, select(PackageVersionVuln.package_version_id)
                          .where(PackageVersionVuln.package_version_id.in_(pv_ids)).distinct()) if pv_ids else []
        if not vulnerable:
            return None
        return select(DevicePackage.device_id).where(DevicePackage.package_version_id.in_(vulnerable))
    from garrison.tvm.prioritisation import recommendations as recs

    stmt = recs.exposed_devices_stmt(rec)
    return select(stmt.subquery().c[0]) if stmt is not None else None


def recommendation_devices(s: Session, ctx: PageScope, rec: Recommendation, limit: int = 25) -> tuple[list[Any], int]:
    """The most exposed devices of ``rec`` now, and how many the last prioritisation run counted in
    the page's scope (the figure the list shows)."""
    stmt = exposed_devices_select(s, rec)
    if stmt is None:
        return [], 0
    rows = list(s.scalars(select(Device).where(Device.id.in_(stmt), ctx.device_cond())
                          .order_by(Device.exposure_score.desc(), Device.computer_dns_name).limit(limit)))
    if ctx.scope is None:
        total = rec.exposed_machines_count
    else:
        total = s.scalar(select(func.sum(RecommendationGroup.exposed))
                         .where(RecommendationGroup.recommendation_id == rec.id,
                                RecommendationGroup.group_id.in_(ctx.scope))) or 0
    return rows, max(int(total), len(rows))


# --- software -----------------------------------------------------------------------------

def _group_keys(ctx: PageScope) -> list[int] | None:
    """Keys of the per-group count tables for the page's scope (None: every group of the tenant)."""
    return None if ctx.scope is None else list(ctx.scope)


def _in_groups(column: Any, keys: list[int] | None) -> Any:
    return column.in_(keys) if keys is not None else literal(True)


def software_summary(s: Session, ctx: PageScope) -> list[dict[str, Any]]:
    """One row per software product installed in scope, from the per-group counts that ingest keeps
    (``tvm_group_software``, ``tvm_group_packages``); cached per tenant, scope and prioritisation run."""
    findings.rebook_moved(s)  # a device-group change shows at once (the API books moves the same way)
    key = ("software", ctx.principal.tenant_id, ctx.scope, data_version(s))
    return cached(key, lambda: _software_summary(s, ctx))


def _software_summary(s: Session, ctx: PageScope) -> list[dict[str, Any]]:
    keys = _group_keys(ctx)
    counts = s.execute(select(GroupSoftwareCount.software_id, func.sum(GroupSoftwareCount.installed),
                              func.sum(GroupSoftwareCount.exposed))
                       .where(_in_groups(GroupSoftwareCount.group_id, keys))
                       .group_by(GroupSoftwareCount.software_id)).all()
    installed = {sid: (int(n or 0), int(e or 0)) for sid, n, e in counts if n}
    present_pvs = (select(GroupPackageCount.package_version_id)
                   .where(_in_groups(GroupPackageCount.group_id, keys), GroupPackageCount.devices > 0).distinct())
    versions = dict(s.execute(select(PackageVersion.software_id, func.count(func.distinct(PackageVersion.version)))
                              .where(PackageVersion.id.in_(present_pvs))
                              .group_by(PackageVersion.software_id)).all())
    weak_rows = s.execute(
        select(PackageVersion.software_id, func.count(func.distinct(PackageVersionVuln.vulnerability_id)),
               func.max(case((Vulnerability.kev.is_(True), 1), else_=0)),
               func.max(case((Vulnerability.public_exploit.is_(True), 1), else_=0)),
               func.max(severity_rank()))
        .join(PackageVersionVuln, PackageVersionVuln.package_version_id == PackageVersion.id)
        .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
        .where(PackageVersion.id.in_(present_pvs))
        .group_by(PackageVersion.software_id)).all()
    weak = {r[0]: (r[1], bool(r[2]), bool(r[3]), r[4]) for r in weak_rows}
    impact: dict[str, float] = {}
    for details, rec_impact in s.execute(select(Recommendation.details, Recommendation.exposure_impact)
                                         .where(Recommendation.kind == "software")):
        for sid in (details or {}).get("softwareIds") or []:
            impact[sid] = max(impact.get(sid, 0.0), float(rec_impact or 0))
    names: dict[str, tuple[str, str]] = {}
    ids = sorted(installed)
    for i in range(0, len(ids), 500):
        names.update({r[0]: (r[1], r[2]) for r in s.execute(
            select(SoftwareProduct.id, SoftwareProduct.name, SoftwareProduct.vendor)
            .where(SoftwareProduct.id.in_(ids[i:i + 500])))})
    out = []
    for sid, (n, exposed) in installed.items():
        name, vendor = names.get(sid, (sid.split("-_-", 1)[-1], sid.split("-_-", 1)[0]))
        w = weak.get(sid, (0, False, False, 0))
        out.append({"id": sid, "name": name, "vendor": vendor, "installed": n, "versions": versions.get(sid, 0),
                    "exposed": exposed, "weaknesses": w[0], "kev": w[1], "exploit": w[2],
                    "severity": w[3], "impact": impact.get(sid, 0.0)})
    return out


# --- weaknesses ---------------------------------------------------------------------------

def weakness_summary(s: Session, ctx: PageScope) -> list[dict[str, Any]]:
    """One row per vulnerability found in scope: exposed devices (``tvm_group_vulnerabilities``) and
    the fields lists sort on; cached per tenant, scope and prioritisation run."""
    findings.rebook_moved(s)
    key = ("weaknesses", ctx.principal.tenant_id, ctx.scope, data_version(s))
    return cached(key, lambda: _weakness_summary(s, ctx))


def _weakness_summary(s: Session, ctx: PageScope) -> list[dict[str, Any]]:
    keys = _group_keys(ctx)
    exposed = {vid: int(n or 0) for vid, n in s.execute(
        select(GroupVulnerabilityCount.vulnerability_id, func.sum(GroupVulnerabilityCount.exposed))
        .where(_in_groups(GroupVulnerabilityCount.group_id, keys))
        .group_by(GroupVulnerabilityCount.vulnerability_id)) if n}
    present_pvs = (select(GroupPackageCount.package_version_id)
                   .where(_in_groups(GroupPackageCount.group_id, keys), GroupPackageCount.devices > 0).distinct())
    software: dict[str, set[str]] = {}
    for vid, sid in s.execute(select(PackageVersionVuln.vulnerability_id, PackageVersion.software_id)
                              .join(PackageVersion, PackageVersion.id == PackageVersionVuln.package_version_id)
                              .where(PackageVersionVuln.package_version_id.in_(present_pvs))):
        software.setdefault(vid, set()).add(sid)
    v = Vulnerability
    ids = sorted(exposed)
    out = []
    for i in range(0, len(ids), 500):
        for r in s.execute(select(v.id, v.severity, v.cvss_v3_score, v.epss, v.kev, v.public_exploit,
                                  v.exploit_verified, v.exploit_in_kit, v.published_on, v.updated_on)
                           .where(v.id.in_(ids[i:i + 500]))):
            sws = sorted(software.get(r[0], ()))
            out.append({"id": r[0], "severity": r[1] or "Unknown", "severity_rank": SEVERITY_RANK.get(r[1] or "", 0),
                        "cvss": r[2], "epss": r[3], "kev": bool(r[4]), "exploit": bool(r[5]), "verified": bool(r[6]),
                        "kit": bool(r[7]), "published": r[8], "updated": r[9], "exposed": exposed[r[0]],
                        "software": sws[:20], "software_count": len(sws)})
    return out


def vulnerability_package_versions(s: Session, vuln_id: str) -> list[int]:
    return _ids(s, select(PackageVersionVuln.package_version_id).where(PackageVersionVuln.vulnerability_id == vuln_id))


def vulnerability_devices(s: Session, ctx: PageScope, vuln_id: str, limit: int = 25) -> tuple[list[Any], int]:
    """The most exposed devices with ``vuln_id``, and how many there are (the per-group counts)."""
    pvs = vulnerability_package_versions(s, vuln_id)
    if not pvs:
        return [], 0
    total = s.scalar(select(func.sum(GroupVulnerabilityCount.exposed))
                     .where(GroupVulnerabilityCount.vulnerability_id == vuln_id,
                            _in_groups(GroupVulnerabilityCount.group_id, _group_keys(ctx)))) or 0
    ids = select(DevicePackage.device_id).where(DevicePackage.package_version_id.in_(pvs))
    rows = list(s.scalars(select(Device).where(Device.id.in_(ids), ctx.device_cond())
                          .order_by(Device.exposure_score.desc(), Device.computer_dns_name).limit(limit)))
    return rows, max(int(total), len(rows))


def recommendations_of_package_versions(s: Session, pv_ids: Any, limit: int | None = None) -> list[Recommendation]:
    """The recommendations whose remediation unit includes these package versions (ids or a SELECT of
    them), highest priority first."""
    from garrison.tvm.prioritisation import recommendations as recs

    units = {recs.software_rec_id(recs.unit_of(eco, mgr, name)[0]) for eco, mgr, name in s.execute(
        select(PackageVersion.ecosystem, PackageVersion.manager, PackageVersion.match_name)
        .where(PackageVersion.id.in_(pv_ids)).distinct())}
    if not units:
        return []
    stmt = select(Recommendation).where(Recommendation.id.in_(sorted(units))).order_by(Recommendation.priority_score.desc())
    return list(s.scalars(stmt.limit(limit) if limit else stmt))


def recommendations_for_vulnerability(s: Session, vuln_id: str) -> list[Recommendation]:
    pvs = vulnerability_package_versions(s, vuln_id)
    return recommendations_of_package_versions(s, pvs, limit=10) if pvs else []


# --- devices ------------------------------------------------------------------------------

def top_exposed_devices(s: Session, ctx: PageScope, n: int = 5) -> list[Device]:
    from garrison.tvm.prioritisation import exposure

    now = dt.datetime.now(dt.UTC)
    return list(s.scalars(select(Device).where(ctx.device_cond(), exposure.is_active_expr(now),
                                               Device.exposure_score > 0)
                          .order_by(Device.exposure_score.desc(), Device.computer_dns_name).limit(n)))


def no_data_devices(s: Session, ctx: PageScope, with_data: int) -> int:
    """Devices in scope without an exposure level: inactive for 30 days, offboarded, or no inventory yet."""
    total = s.scalar(select(func.count()).select_from(Device).where(ctx.device_cond())) or 0
    return max(0, total - with_data)


def device_assessment_summary(s: Session, device: Device) -> dict[str, Any] | None:
    rows = assessment.device_assessment(s, device.id)
    if not rows:
        return None
    failed = sum(1 for r in rows if _status(r) == "fail")
    return {"failed": failed, "total": len(rows)}


def _status(row: dict[str, Any]) -> str:
    value = row.get("status") or row.get("Status") or ""
    if isinstance(value, str):
        return value.lower()
    return str(value)


def device_configuration(s: Session, device: Device, status: str | None) -> dict[str, Any]:
    """The device's configuration checks (failed first), those of ``status`` when given, and the counts."""
    rows = assessment.device_assessment(s, device.id)
    order: dict[str, int] = {"fail": 0, "error": 1, "pass": 2, "not_applicable": 3}
    out: list[dict[str, Any]] = []
    for r in rows:
        st = _status(r)
        ev = r.get("evidence") or {}
        out.append({"id": r.get("check_id") or r.get("checkId") or r.get("id"), "title": r.get("title") or "",
                    "category": r.get("category") or "", "impact": r.get("impact") or r.get("severity") or "",
                    "status": st, "evidence": ev.get("message") or ev.get("value") or "" if isinstance(ev, dict)
                    else str(ev)})
    out.sort(key=lambda x: (order.get(str(x["status"]), 9), -(x["impact"] if isinstance(x["impact"], int) else 0)))
    counts = {k: sum(1 for x in out if x["status"] == k) for k in order}
    from garrison.store.models.assessment import DeviceAssessmentState

    state = s.get(DeviceAssessmentState, device.id)
    shown = [x for x in out if x["status"] == status] if status else out
    return {"rows": shown, "status": status, "statuses": CONFIG_STATUSES,
            "passed": counts["pass"], "failed": counts["fail"], "errors": counts["error"],
            "na": counts["not_applicable"], "assessed_at": state.assessed_at if state else None}


CONFIG_STATUSES = {"fail": "Failed", "pass": "Passed", "error": "Error", "not_applicable": "Not applicable"}


def device_recommendations(s: Session, device: Device) -> dict[str, Any]:
    from garrison.tvm.prioritisation import recommendations as recs

    units = {recs.software_rec_id(recs.unit_of(eco, mgr, mn)[0])
             for eco, mgr, mn in s.execute(
                 select(PackageVersion.ecosystem, PackageVersion.manager, PackageVersion.match_name)
                 .join(DevicePackage, DevicePackage.package_version_id == PackageVersion.id)
                 .where(DevicePackage.device_id == device.id,
                        DevicePackage.package_version_id.in_(select(PackageVersionVuln.package_version_id)))
                 .distinct())}
    rows = list(s.scalars(select(Recommendation).where(Recommendation.id.in_(list(units)))
                          .order_by(Recommendation.priority_score.desc()))) if units else []
    failed = [recs.config_rec_id(c) for c in s.scalars(
        select(DeviceAssessmentResult.check_id).where(DeviceAssessmentResult.device_id == device.id,
                                                      DeviceAssessmentResult.status == "fail"))]
    if failed:
        rows += list(s.scalars(select(Recommendation).where(Recommendation.id.in_(failed))
                               .order_by(Recommendation.priority_score.desc())))
    return {"rows": rows}


# --- timeline events and remediation activities of the page's groups ----------------------

def timeline_events(s: Session, ctx: PageScope, since: dt.datetime, limit: int = 5000) -> list[TimelineEvent]:
    """Events since ``since`` that touch the page's device groups (newest first)."""
    from garrison.tvm.prioritisation import timeline

    rows = list(s.scalars(select(TimelineEvent).where(TimelineEvent.at >= since)
                          .order_by(TimelineEvent.at.desc(), TimelineEvent.id.desc()).limit(limit)))
    if ctx.scope is None:
        return rows
    return [e for e in rows if timeline.visible_count(e, ctx.scope) > 0]


def visible_activities(ctx: PageScope) -> list[Any]:
    """SQL conditions for the remediation activities a page shows: those that target devices of the
    page's device groups (finish with ``remediation.visible``, which checks the caller's own groups)."""
    conds: list[Any] = []
    if ctx.scope is not None:
        conds.append(exists().where(RemediationTarget.activity_id == RemediationActivity.id,
                                    RemediationTarget.device_id == Device.id, ctx.device_cond()))
    if ctx.principal.group_ids is not None:
        # activities of other groups stay hidden from group-scoped users (remediation.visible)
        conds.append(RemediationActivity.group_ids.is_not(None))
    return conds


def active_activities(s: Session, ctx: PageScope, n: int = 5) -> list[RemediationActivity]:
    """The page's active remediation activities, soonest due first."""
    from garrison.tvm.prioritisation import remediation

    rows = s.scalars(select(RemediationActivity).where(RemediationActivity.status == "Active",
                                                       *visible_activities(ctx))
                     .order_by(RemediationActivity.due_on.is_(None), RemediationActivity.due_on,
                               RemediationActivity.created_on.desc()).limit(20))
    return [a for a in rows if remediation.visible(ctx.principal, a)][:n]


def vulnerability(s: Session, vulnerability_id: str) -> Vulnerability | None:
    return s.get(Vulnerability, vulnerability_id[:128])


# --- the recommendation list ---------------------------------------------------------------

@dataclass(frozen=True)
class RecommendationFilter:
    """The list's filters (already checked against their allowed values; "" = not filtered)."""
    q: str = ""
    status: str = ""
    type: str = ""
    category: str = ""
    kind: str = ""
    threat: str = ""
    tag: str = ""
    software: str = ""


THREAT_CONDITIONS = {"kev": Recommendation.kev, "exploit": Recommendation.public_exploit,
                     "kit": Recommendation.exploit_in_kit, "alert": Recommendation.active_alert}
TAG_CONDITIONS = {"zero-day": Recommendation.zero_day, "eos": Recommendation.end_of_life}


def recommendation_conditions(f: RecommendationFilter) -> list[Any]:
    conds: list[Any] = []
    if f.q:
        like = f"%{f.q.lower().replace('%', '').replace('_', '')}%"
        conds.append(or_(func.lower(Recommendation.name).like(like),
                         func.lower(Recommendation.related_component).like(like),
                         func.lower(Recommendation.product_name).like(like)))
    for value, column in ((f.status, Recommendation.status), (f.type, Recommendation.remediation_type),
                          (f.category, Recommendation.category), (f.kind, Recommendation.kind),
                          (f.software, Recommendation.product_id)):
        if value:
            conds.append(column == value)
    if f.threat in THREAT_CONDITIONS:
        conds.append(THREAT_CONDITIONS[f.threat].is_(True))
    if f.tag in TAG_CONDITIONS:
        conds.append(TAG_CONDITIONS[f.tag].is_(True))
    return conds


def list_page(s: Session, stmt: Any, order: Sequence[Any], page: Callable[[int], Any]) -> tuple[list[Any], Any]:
    """The rows of ``stmt`` on one page: ``page(total)`` is the caller's pager (``offset``, ``size``)."""
    p = page(s.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    return list(s.execute(stmt.order_by(*order).limit(p.size).offset(p.offset)).all()), p


def recommendation(s: Session, tenant_id: int, rec_id: str) -> Recommendation | None:
    return s.get(Recommendation, (tenant_id, rec_id[:300]))


def recommendation_activities(s: Session, rec_id: str, n: int = 5) -> list[RemediationActivity]:
    return list(s.scalars(select(RemediationActivity).where(RemediationActivity.recommendation_id == rec_id)
                          .order_by(RemediationActivity.created_on.desc()).limit(n)))


def active_activity_counts(s: Session, rec_ids: Sequence[str]) -> dict[str, int]:
    if not rec_ids:
        return {}
    return {rid: n for rid, n in s.execute(
        select(RemediationActivity.recommendation_id, func.count())
        .where(RemediationActivity.recommendation_id.in_(list(rec_ids)), RemediationActivity.status == "Active")
        .group_by(RemediationActivity.recommendation_id))}


# --- the event timeline page -----------------------------------------------------------------

SCOPED_LIMIT = 5000  # events of a range read for a group-limited page (impacted devices per group are JSON)


def timeline_conditions(lo: dt.datetime, hi: dt.datetime, kinds: Sequence[str], q: str,
                        min_pct: float) -> list[Any]:
    conds: list[Any] = [TimelineEvent.at >= lo, TimelineEvent.at < hi]
    if kinds:
        conds.append(TimelineEvent.kind.in_(list(kinds)))
    if q:
        like = f"%{q.lower().replace('%', '')}%"
        conds.append(or_(func.lower(TimelineEvent.title).like(like),
                         func.lower(TimelineEvent.related_component).like(like),
                         func.lower(func.coalesce(TimelineEvent.vulnerability_id, "")).like(like)))
    if min_pct > 0:
        conds.append(TimelineEvent.originally_impacted * 100.0 >= min_pct * func.nullif(TimelineEvent.total_devices, 0))
    return conds


def timeline_page(s: Session, ctx: PageScope, conds: list[Any],
                  page: Callable[[int], Any]) -> tuple[list[TimelineEvent], Any, list[tuple[str, str | None, Any]]]:
    """(the page's events newest first, the pager, (kind, vulnerability, details) of every event matched)."""
    from garrison.tvm.prioritisation import timeline

    order: list[Any] = [TimelineEvent.at.desc(), TimelineEvent.id.desc()]
    if ctx.scope is None:
        p = page(s.scalar(select(func.count()).select_from(TimelineEvent).where(*conds)) or 0)
        events = list(s.scalars(select(TimelineEvent).where(*conds).order_by(*order).limit(p.size).offset(p.offset)))
        matched = [(k, v, d) for k, v, d in s.execute(
            select(TimelineEvent.kind, TimelineEvent.vulnerability_id, TimelineEvent.details).where(*conds))]
        return events, p, matched
    # impacted devices per group live in a JSON map: filter the range's events in Python
    scoped = [e for e in s.scalars(select(TimelineEvent).where(*conds).order_by(*order).limit(SCOPED_LIMIT))
              if timeline.visible_count(e, ctx.scope) > 0]
    p = page(len(scoped))
    return scoped[p.offset:p.offset + p.size], p, [(e.kind, e.vulnerability_id, e.details) for e in scoped]


def timeline_events_between(s: Session, ctx: PageScope, lo: dt.datetime, hi: dt.datetime) -> list[TimelineEvent]:
    from garrison.tvm.prioritisation import timeline

    return [e for e in s.scalars(select(TimelineEvent).where(TimelineEvent.at >= lo, TimelineEvent.at < hi)
                                 .limit(SCOPED_LIMIT))
            if ctx.scope is None or timeline.visible_count(e, ctx.scope) > 0]


def timeline_event(s: Session, ctx: PageScope,
                   event_id: int) -> tuple[TimelineEvent, Vulnerability | None, Recommendation | None] | None:
    """One event the page's groups may see, with its vulnerability and recommendation; else None."""
    from garrison.tvm.prioritisation import timeline

    e = s.get(TimelineEvent, event_id)
    if e is None or e.tenant_id != ctx.principal.tenant_id or \
            (ctx.scope is not None and timeline.visible_count(e, ctx.scope) == 0):
        return None
    vuln = s.get(Vulnerability, e.vulnerability_id) if e.vulnerability_id else None
    rec = s.get(Recommendation, (e.tenant_id, e.recommendation_id)) if e.recommendation_id else None
    return e, vuln, rec


# --- the remediation page: activities and exceptions -------------------------------------------

PRIORITY_RANK = {"High": 3, "Medium": 2, "Low": 1}


def activity_sort_keys() -> dict[str, Any]:
    """The sortable columns of the activity list (key -> SQL expression)."""
    A = RemediationActivity
    return {"title": A.title, "type": A.type, "due": A.due_on, "status": A.status, "created": A.created_on,
            "by": A.requester_email, "completed": A.completer_email,
            "priority": case(*((A.priority == k, v) for k, v in PRIORITY_RANK.items()), else_=0),
            "progress": A.fixed_devices * 1.0 / func.nullif(A.target_devices, 0)}


def activity_conditions(s: Session, ctx: PageScope, *, status: str = "", priority: str = "", type: str = "",
                        recommendation: str = "", q: str = "") -> list[Any]:
    """Conditions on the activities the page lists (its groups, the caller's, the filters)."""
    from garrison.tvm.prioritisation import remediation

    A = RemediationActivity
    conds = visible_activities(ctx)
    for value, column in ((status, A.status), (priority, A.priority), (type, A.type), (recommendation, A.recommendation_id)):
        if value:
            conds.append(column == value)
    if q:
        conds.append(func.lower(A.title).like(f"%{q.lower().replace('%', '')}%"))
    if ctx.principal.group_ids is not None:
        # remediation.visible (group overlap) is not expressible portably on a JSON list: check in Python
        allowed = [a.id for a in s.scalars(select(A).where(*conds)) if remediation.visible(ctx.principal, a)]
        conds.append(A.id.in_(allowed))
    return conds


def activities_page(s: Session, conds: list[Any], order: Sequence[Any],
                    page: Callable[[int], Any]) -> tuple[list[RemediationActivity], Any]:
    rows, p = list_page(s, select(RemediationActivity).where(*conds), order, page)
    return [r[0] for r in rows], p


def exception_sort_keys() -> dict[str, Any]:
    E = RecommendationException
    return {"rec": Recommendation.name, "justification": E.justification, "scope": E.scope, "status": E.status,
            "created": E.created_at, "by": E.created_by, "expires": E.expires_at}


def exception_conditions(ctx: PageScope, now: dt.datetime, *, justification: str = "", status: str = "",
                         scope: str = "") -> list[Any]:
    """Exceptions a page shows — global ones, and group ones touching the page's groups — and its filters."""
    E, EG = RecommendationException, RecommendationExceptionGroup
    conds: list[Any] = []
    if ctx.scope is not None:
        conds.append(or_(E.scope == "Global", exists().where(EG.exception_id == E.id, EG.group_id.in_(ctx.scope))))
    if justification:
        conds.append(E.justification == justification)
    if status == "Expired":
        conds.append(or_(E.status == "Expired", (E.status == "Active") & (E.expires_at <= now)))
    elif status == "Active":
        conds += [E.status == "Active", E.expires_at > now]
    elif status:
        conds.append(E.status == status)
    if scope:
        conds.append(E.scope == scope)
    return conds


def exceptions_page(s: Session, conds: list[Any], order: Sequence[Any], page: Callable[[int], Any]
                    ) -> tuple[list[tuple[RecommendationException, str | None, list[RecommendationExceptionGroup]]], Any]:
    """The page's exceptions with their recommendation's name and their device groups."""
    base = select(RecommendationException, Recommendation.name).outerjoin(
        Recommendation, Recommendation.id == RecommendationException.recommendation_id).where(*conds)
    rows, p = list_page(s, base, order, page)
    groups: dict[int, list[RecommendationExceptionGroup]] = {}
    ids = [e.id for e, _n in rows]
    if ids:
        for g in s.scalars(select(RecommendationExceptionGroup).where(RecommendationExceptionGroup.exception_id.in_(ids))
                           .order_by(RecommendationExceptionGroup.group_id)):
            groups.setdefault(g.exception_id, []).append(g)
    return [(e, name, groups.get(e.id, [])) for e, name in rows], p
