"""Software inventory and the software page: recommendations, discovered vulnerabilities,
installed devices, version distribution, event timeline."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from garrison.core.access import Principal
from garrison.core.errors import NotFound
from garrison.core.permissions import P
from garrison.server.auth import require
from garrison.server.web import charts
from garrison.server.web.common import page, router
from garrison.server.web.render import Column, Ctx, choice, pager, render, sort_of
from garrison.tvm.queries import software as software_queries
from garrison.tvm.queries import summary

LIST_COLUMNS = [
    Column("name", "Name", "name"), Column("vendor", "Vendor", "vendor"),
    Column("versions", "Installed versions", "versions", numeric=True, default_desc=True),
    Column("installed", "Installed devices", "installed", numeric=True, default_desc=True),
    Column("weaknesses", "Weaknesses", "weaknesses", numeric=True, default_desc=True),
    Column("threats", "Threats"),
    Column("exposed", "Exposed devices", "exposed", numeric=True, default_desc=True),
    Column("impact", "Impact", "impact", numeric=True, default_desc=True),
]
# Every weakness has a bar: "Unknown" ones too (a chart that drops them reads 0/0/0/0 for 28 weaknesses).
SEVERITY_BARS = ("Critical", "High", "Medium", "Low", "Unknown")
SEVERITY_COLORS = {"Critical": "#8e1b2e", "High": "#c4314b", "Medium": "#d9730d", "Low": "#c9a400",
                   "Unknown": "#a19f9d", "None": "#a19f9d"}


@router.get("/software")
def software_list(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    with page(request, principal, "software") as (s, ctx):
        rows = summary.software_summary(s, ctx)
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
        vendors = sorted({r["vendor"] for r in summary.software_summary(s, ctx)})
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


@router.get("/software/{software_id}")
def software_page(software_id: str, request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    with page(request, principal, "software") as (s, ctx):
        product = software_queries.product(s, software_id)
        if product is None:
            raise NotFound(f"no software {software_id!r}")
        # the product's package versions first (a short list), then what the fleet has of them
        versions = software_queries.versions(s, product.id)
        rows = software_queries.installations(s, ctx, list(versions))
        if not rows and not software_queries.installations(s, ctx.unscoped(), list(versions)):
            raise NotFound(f"no software {software_id!r} in this organisation")
        present = sorted({pv for _d, pv in rows})
        vulns_of: dict[int, set[str]] = {}
        fixed: dict[str, str | None] = {}
        for pv, vid, fix in software_queries.findings(s, present):
            vulns_of.setdefault(pv, set()).add(vid)
            if fixed.get(vid) is None:
                fixed[vid] = fix
        devices = {d for d, _pv in rows}
        exposed_devices = {d for d, pv in rows if pv in vulns_of}
        per_vuln: dict[str, set[str]] = {}
        per_version: dict[str, set[str]] = {}
        for d, pv in rows:
            per_version.setdefault(versions[pv], set()).add(d)
            for vid in vulns_of.get(pv, ()):
                per_vuln.setdefault(vid, set()).add(d)
        vuln_objs = software_queries.vulnerabilities(s, list(per_vuln))
        by_sev: dict[str, int] = {}
        for v in vuln_objs:
            by_sev[v.severity or "Unknown"] = by_sev.get(v.severity or "Unknown", 0) + 1
        recs = software_queries.recommendations(s, product.id)
        impact = max((r.exposure_impact for r in recs), default=0.0)
        installed, exposed = len(devices), len(exposed_devices)
        totals = {"installed": installed, "exposed": exposed, "weaknesses": len(vuln_objs),
                   "kev": any(v.kev for v in vuln_objs), "exploit": any(v.public_exploit for v in vuln_objs),
                   "impact": impact, "versions": len(per_version)}
        sev_chart = charts.bar_chart([charts.Bar(sev, by_sev.get(sev, 0), max(by_sev.values(), default=1),
                                                 text=str(by_sev.get(sev, 0)), color=SEVERITY_COLORS[sev],
                                                 href=ctx.url(f"/software/{product.id}", tab="vulnerabilities"))
                                      for sev in SEVERITY_BARS + (("None",) if by_sev.get("None") else ())],
                                     title="Vulnerabilities by severity", width=300, label_width=70)
        exp_chart = charts.donut([charts.Segment("Exposed", exposed, "#c4314b",
                                                 ctx.url(f"/software/{product.id}", tab="devices", exposed="1")),
                                  charts.Segment("Not exposed", installed - exposed, "#5b8c5a",
                                                 ctx.url(f"/software/{product.id}", tab="devices"))],
                                 title="Exposed devices", center=f"{exposed}", center_sub=f"of {installed}",
                                 size=130, thickness=20)
        tab = choice(ctx, "tab", [t for t, _ in SW_TABS]) or "recommendations"
        data: dict[str, Any] = {}
        if tab == "vulnerabilities":
            data["vulns"] = [{"v": v, "exposed": len(per_vuln[v.id]), "fixed": fixed.get(v.id)} for v in vuln_objs]
        elif tab == "devices":
            data.update(_installed_devices(s, ctx, versions, vulns_of))
        elif tab == "versions":
            counts = {ver: len({v for pv in (p for p, x in versions.items() if x == ver) for v in vulns_of.get(pv, ())})
                      for ver in per_version}
            data["versions"] = sorted(({"version": ver, "devices": len(ds), "vulns": counts[ver]}
                                       for ver, ds in per_version.items()), key=lambda r: (-r["devices"], r["version"]))
        elif tab == "timeline":
            data.update(software_queries.history(s, ctx, product.id))
        return render(ctx, "software.html", title=f"{product.name} · Software", sw=product, software_id=product.id,
                      summary=totals, recs=recs, tab=tab, tabs=SW_TABS, data=data, sev_chart=sev_chart,
                      exp_chart=exp_chart, types=summary.REMEDIATION_LABELS)


def _installed_devices(s: Session, ctx: Ctx, versions: dict[int, str], vulns_of: dict[int, set[str]]) -> dict[str, Any]:
    pv_ids = list(versions)
    version = ctx.param("version")
    if version:
        pv_ids = [pv for pv, v in versions.items() if v == version]
    if ctx.param("exposed") == "1":
        pv_ids = [pv for pv in pv_ids if pv in vulns_of]
    rows, p = software_queries.installed_devices(s, ctx, pv_ids, lambda total: pager(ctx, total))
    return {"devices": [(d, versions[pv], path, last_used, len(vulns_of.get(pv, ()))) for d, pv, path, last_used in rows],
            "p": p}
