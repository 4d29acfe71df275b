"""Weaknesses: the CVEs found in the organisation with severity, CVSS, EPSS, KEV and exploit
insights, exposed devices and published date; a side panel per CVE."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from garrison.core.access import Principal
from garrison.core.permissions import P
from garrison.server.auth import require
from garrison.server.web.common import page, router
from garrison.server.web.render import Column, choice, pager, render, sort_of
from garrison.tvm.kb.cvss import severity_source
from garrison.tvm.queries import summary

COLUMNS = [
    Column("id", "Name", "id"),
    Column("severity", "Severity", "severity_rank", default_desc=True),
    Column("cvss", "CVSS", "cvss", numeric=True, default_desc=True),
    Column("epss", "EPSS", "epss", numeric=True, default_desc=True),
    Column("threats", "Threats"),
    Column("software", "Software"),
    Column("exposed", "Exposed devices", "exposed", numeric=True, default_desc=True),
    Column("published", "Published", "published", default_desc=True),
    Column("updated", "Updated", "updated", default_desc=True),
]
SEVERITIES = ("Critical", "High", "Medium", "Low", "Unknown")
THREATS = {"kev": "Known exploited (KEV)", "exploit": "Public exploit", "verified": "Verified exploit",
           "kit": "Exploit kit", "epss": "EPSS ≥ 10%"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _sort_value(key: str) -> Any:
    def value(r: dict[str, Any]) -> Any:
        v = r.get(key)
        if key in ("published", "updated"):
            return v or _EPOCH
        if key == "id":
            return v
        return -1 if v is None else v
    return value


@router.get("/weaknesses")
def weakness_list(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    with page(request, principal, "weaknesses") as (s, ctx):
        rows = summary.weakness_summary(s, ctx)
        q = ctx.param("q").lower()
        if q:
            rows = [r for r in rows if q in r["id"].lower() or any(q in sw for sw in r["software"])]
        severity = choice(ctx, "severity", SEVERITIES)
        if severity:
            rows = [r for r in rows if r["severity"] == severity]
        threat = choice(ctx, "threat", THREATS)
        if threat == "epss":
            rows = [r for r in rows if (r["epss"] or 0) >= 0.1]
        elif threat:
            rows = [r for r in rows if r[threat]]
        software = ctx.param("software")
        if software:
            rows = [r for r in rows if software in r["software"]]
        counts = {"total": len(rows), "kev": sum(r["kev"] for r in rows), "exploit": sum(r["exploit"] for r in rows),
                  "critical": sum(r["severity"] == "Critical" for r in rows)}
        sort = sort_of(ctx, COLUMNS, "exposed", default_desc=True)
        rows = sorted(rows, key=lambda r: r["id"], reverse=True)
        rows.sort(key=lambda r: (r["kev"], r["severity_rank"], r["cvss"] or 0), reverse=True)
        rows.sort(key=_sort_value(sort.key), reverse=sort.desc)
        p = pager(ctx, len(rows))
        items = rows[p.offset:p.offset + p.size]
        panel: dict[str, Any] | None = None
        open_id = ctx.param("open")
        if open_id:
            v = summary.vulnerability(s, open_id)
            found = next((r for r in summary.weakness_summary(s, ctx) if r["id"] == open_id), None)
            if v is None:
                panel = {"missing": open_id}
            else:
                devices, total = summary.vulnerability_devices(s, ctx, v.id, 10)
                panel = {"v": v, "summary": found, "devices": devices, "device_total": total,
                         "recs": summary.recommendations_for_vulnerability(s, v.id),
                         "refs": [r for r in (v.references or []) if isinstance(r, (str, dict))][:12],
                         "severity_source": severity_source(
                             {c: getattr(v, c) for c in ("severity", "cvss_v3_score", "cvss_v3_vector", "cvss_v4_score",
                                                          "cvss_v4_vector", "info_ranks")})}
        return render(ctx, "weaknesses.html", title="Weaknesses", cols=COLUMNS, sort=sort, p=p, items=items,
                      counts=counts, panel=panel, severities=SEVERITIES, threats=THREATS)
