"""Software inventory and the software page: recommendations, discovered vulnerabilities,
installed devices, version distribution, event timeline."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from garrison.core.access import Principal
from garrison.core.errors import NotFound
from garrison.server.auth import require
from garrison.server.web import charts, tvmviews
from garrison.server.web.common import page, router
from garrison.server.web.render import Column, Ctx, choice, pager, render, sort_of
from garrison.store.models.core import Device
from garrison.store.models.kb import Vulnerability
from garrison.store.models.prioritisation import Recommendation, TimelineEvent
from garrison.store.models.tvm import (
    DevicePackage,
    PackageVersion,
    PackageVersionVuln,
    SoftwareHistory,
    SoftwareProduct,
)

LIST_COLUMNS = [
    Column("name", "Name", "name"), Column("vendor", "Vendor", "vendor"),
    Column("versions", "Installed versions", "versions", numeric=True, default_desc=True),
    Column("installed", "Installed devices", "installed", numeric=True, default_desc=True),
    Column("weaknesses", "Weaknesses", "weaknesses", numeric=True, default_desc=True),
    Column("threats", "Threats"),
    Column("exposed", "Exposed devices", "exposed", numeric=True, default_desc=True),
    Column("impact", "Impact", "impact", numeric=True, default_desc=True),
]
SEVERITY_COLORS = {"Critical": "#8e1b2e", "High": "#c4314b", "Medium": "#d9730d", "Low": "#c9a400",
                   "Unknown": "#a19f9d", "None": "#a19f9d"}


@router.get("/software")
def software_list(request: Request, principal: Principal = require("analyst")) -> Response:
    with page(request, principal, "software") as (s, ctx):
        rows = tvmviews.software_summary(s, ctx)
        q = ctx.param("q").lower().replace(" ", "_")
        if q:
            rows = [r for r in rows if q in r["name"].lower() or q in r["vendor"].lower() or q in r["id"]]
        vulnerable = choice(ctx, "vulnerable", ("1", "0"))
        if vulnerable == "1":
            rows = [r for r in rows if r["weaknesses"]]
        elif vulnerable == "0":
            rows = [r for r in rows if not r["weaknesses"]]
        threat = choice(ctx, "threat", ("kev", "exploit"))
        if threat:
            rows = [r for r in rows if r[threat]]
        vendor = ctx.param("vendor")
        if vendor:
            rows = [r for r in rows if r["vendor"] == vendor]
        vendors = sorted({r["vendor"] for r in tvmviews.software_summary(s, ctx)})
        sort = sort_of(ctx, LIST_COLUMNS, "impact", default_desc=True)
        key = sort.key

        def value(r: dict[str, Any]) -> Any:
            v = r[key]
            return v.lower() if isinstance(v, str) else v

        rows = sorted(rows, key=lambda r: (r["name"].lower(), r["vendor"]))
        rows.sort(key=lambda r: (r["exposed"], r["weaknesses"]), reverse=True)  # ties: the most exposed first
        rows.sort(key=value, reverse=sort.desc)
        p = pager(ctx, len(rows))
        items = rows[p.offset:p.offset + p.size]
        return render(ctx, "software_list.html", title="Software inventory", cols=LIST_COLUMNS, sort=sort, p=p,
                      items=items, vendors=vendors)


SW_TABS = [("recommendations", "Security recommendations"), ("vulnerabilities", "Discovered vulnerabilities"),
           ("devices", "Installed devices"), ("versions", "Version distribution"), ("timeline", "Event timeline")]


def _pv_in_scope(ctx: Ctx, software_id: str) -> Any:
    """(device, package version) rows of this software on the page's devices."""
    stmt = (select(DevicePackage.device_id, DevicePackage.package_version_id)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .where(PackageVersion.software_id == software_id))
    if ctx.scope is not None:
        stmt = stmt.join(Device, Device.id == DevicePackage.device_id).where(ctx.device_cond())
    return stmt.subquery()


def software_recommendations(s: Session, software_id: str) -> list[Recommendation]:
    out = []
    for rec in s.scalars(select(Recommendation).where(Recommendation.kind == "software")
                         .order_by(Recommendation.priority_score.desc())):
        if software_id in ((rec.details or {}).get("softwareIds") or []) or rec.product_id == software_id:
            out.append(rec)
    return out


@router.get("/software/{software_id}")
def software_page(software_id: str, request: Request, principal: Principal = require("analyst")) -> Response:
    with page(request, principal, "software") as (s, ctx):
        product = s.get(SoftwareProduct, software_id[:300])
        dp = _pv_in_scope(ctx, software_id)
        installed = s.scalar(select(func.count(func.distinct(dp.c.device_id)))) or 0
        if product is None or (installed == 0 and not s.scalar(select(func.count()).select_from(DevicePackage)
                                                                 .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
                                                                 .where(PackageVersion.software_id == software_id))):
            raise NotFound(f"no software {software_id!r} in this organisation")
        exposed = s.scalar(select(func.count(func.distinct(dp.c.device_id)))
                           .where(dp.c.package_version_id.in_(select(PackageVersionVuln.package_version_id)))) or 0
        present = select(dp.c.package_version_id).distinct()
        vuln_rows = s.execute(
            select(Vulnerability, func.count(func.distinct(dp.c.device_id)), func.max(PackageVersionVuln.fixed_version))
            .join(PackageVersionVuln, PackageVersionVuln.vulnerability_id == Vulnerability.id)
            .join(dp, dp.c.package_version_id == PackageVersionVuln.package_version_id)
            .group_by(Vulnerability.id)
            .order_by(Vulnerability.kev.desc(), tvmviews.severity_rank().desc(),
                      func.coalesce(Vulnerability.cvss_v3_score, 0).desc(), Vulnerability.id)).all()
        by_sev: dict[str, int] = {}
        for v, _n, _f in vuln_rows:
            by_sev[v.severity or "Unknown"] = by_sev.get(v.severity or "Unknown", 0) + 1
        recs = software_recommendations(s, software_id)
        impact = max((r.exposure_impact for r in recs), default=0.0)
        summary = {"installed": installed, "exposed": exposed, "weaknesses": len(vuln_rows),
                   "kev": any(v.kev for v, _n, _f in vuln_rows), "exploit": any(v.public_exploit for v, _n, _f in vuln_rows),
                   "impact": impact, "versions": s.scalar(select(func.count(func.distinct(PackageVersion.version)))
                                                          .where(PackageVersion.id.in_(present))) or 0}
        sev_chart = charts.bar_chart([charts.Bar(sev, by_sev.get(sev, 0), max(by_sev.values(), default=1),
                                                 text=str(by_sev.get(sev, 0)), color=SEVERITY_COLORS[sev],
                                                 href=ctx.url(f"/software/{software_id}", tab="vulnerabilities"))
                                      for sev in ("Critical", "High", "Medium", "Low")],
                                     title="Vulnerabilities by severity", width=300, label_width=70)
        exp_chart = charts.donut([charts.Segment("Exposed", exposed, "#c4314b",
                                                 ctx.url(f"/software/{software_id}", tab="devices", exposed="1")),
                                  charts.Segment("Not exposed", installed - exposed, "#5b8c5a",
                                                 ctx.url(f"/software/{software_id}", tab="devices"))],
                                 title="Exposed devices", center=f"{exposed}", center_sub=f"of {installed}",
                                 size=130, thickness=20)
        tab = choice(ctx, "tab", [t for t, _ in SW_TABS]) or "recommendations"
        data: dict[str, Any] = {}
        if tab == "vulnerabilities":
            data["vulns"] = [{"v": v, "exposed": n, "fixed": f} for v, n, f in vuln_rows]
        elif tab == "devices":
            data.update(_installed_devices(s, ctx, software_id))
        elif tab == "versions":
            data["versions"] = _versions(s, ctx, software_id)
        elif tab == "timeline":
            data.update(_timeline(s, ctx, software_id))
        name = product.name if product else software_id
        return render(ctx, "software.html", title=f"{name} · Software", sw=product, software_id=software_id,
                      summary=summary, recs=recs, tab=tab, tabs=SW_TABS, data=data, sev_chart=sev_chart,
                      exp_chart=exp_chart, types=tvmviews.REMEDIATION_LABELS)


def _installed_devices(s: Session, ctx: Ctx, software_id: str) -> dict[str, Any]:
    vulns = (select(PackageVersionVuln.package_version_id, func.count().label("n"))
             .group_by(PackageVersionVuln.package_version_id).subquery())
    conds = [PackageVersion.software_id == software_id, ctx.device_cond()]
    if ctx.param("exposed") == "1":
        conds.append(vulns.c.n > 0)
    base = (select(Device, PackageVersion.version, DevicePackage.path, DevicePackage.last_used,
                   func.coalesce(vulns.c.n, 0))
            .select_from(DevicePackage)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .join(Device, Device.id == DevicePackage.device_id)
            .outerjoin(vulns, vulns.c.package_version_id == PackageVersion.id)
            .where(*conds))
    version = ctx.param("version")
    if version:
        base = base.where(PackageVersion.version == version)
    total = s.scalar(select(func.count()).select_from(base.subquery())) or 0
    p = pager(ctx, total)
    rows = s.execute(base.order_by(func.coalesce(vulns.c.n, 0).desc(), Device.computer_dns_name, PackageVersion.version)
                     .limit(p.size).offset(p.offset)).all()
    return {"devices": rows, "p": p}


def _versions(s: Session, ctx: Ctx, software_id: str) -> list[dict[str, Any]]:
    dp = _pv_in_scope(ctx, software_id)
    counts = s.execute(select(PackageVersion.version, func.count(func.distinct(dp.c.device_id)))
                       .join(dp, dp.c.package_version_id == PackageVersion.id)
                       .group_by(PackageVersion.version)).all()
    vulns = dict(s.execute(select(PackageVersion.version, func.count(func.distinct(PackageVersionVuln.vulnerability_id)))
                           .join(PackageVersionVuln, PackageVersionVuln.package_version_id == PackageVersion.id)
                           .where(PackageVersion.software_id == software_id,
                                  PackageVersion.id.in_(select(dp.c.package_version_id)))
                           .group_by(PackageVersion.version)).all())
    out = [{"version": v, "devices": n, "vulns": vulns.get(v, 0)} for v, n in counts]
    out.sort(key=lambda r: (-r["devices"], r["version"]))
    return out


def _timeline(s: Session, ctx: Ctx, software_id: str) -> dict[str, Any]:
    hist = (select(SoftwareHistory, Device.computer_dns_name)
            .join(Device, Device.id == SoftwareHistory.device_id)
            .where(SoftwareHistory.software_id == software_id, ctx.device_cond())
            .order_by(SoftwareHistory.at.desc(), SoftwareHistory.id.desc()).limit(100))
    events = list(s.scalars(select(TimelineEvent).where(or_(TimelineEvent.product_id == software_id,
                                                            and_(TimelineEvent.recommendation_id.is_not(None),
                                                                 TimelineEvent.related_component == software_id)))
                            .order_by(TimelineEvent.at.desc()).limit(100)))
    return {"history": s.execute(hist).all(), "events": events}
