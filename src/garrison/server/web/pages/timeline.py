"""Event timeline: events that may change the organisation's risk, filtered by type and date
range, with originally and currently impacted devices and the score trend."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from garrison.core.access import Principal
from garrison.core.permissions import P
from garrison.protocol.bounds import parse_id
from garrison.server.auth import require
from garrison.server.web import charts
from garrison.server.web.common import page, router
from garrison.server.web.pages.dashboard import event_dots
from garrison.server.web.render import Ctx, choice, pager, render
from garrison.tvm.queries import summary

TYPE_LABELS = {"NewVulnerability": "New vulnerability", "NewPublicExploit": "New public exploit",
               "ExploitVerified": "Exploit was verified", "ExploitAddedToKit": "Exploit added to an exploit kit",
               "NewConfigurationAssessment": "New configuration assessment", "SoftwareInstalled": "Software installed",
               "SoftwareUninstalled": "Software uninstalled", "SoftwareUpdated": "Software updated"}
RANGES = {"7": "Last 7 days", "30": "Last 30 days", "90": "Last 3 months", "180": "Last 6 months"}


def date_range(ctx: Ctx, default_days: int = 30) -> tuple[dt.datetime, dt.datetime, str, str]:
    """(from, to) of the page: ``start``/``end`` dates when given, else the preset ``range``, else the
    last ``default_days``."""
    today = dt.date.today()
    start_s, end_s = ctx.param("start"), ctx.param("end")
    try:
        start = dt.date.fromisoformat(start_s) if start_s else None
        end = dt.date.fromisoformat(end_s) if end_s else None
    except ValueError:
        start = end = None
    if start is None:
        days = int(choice(ctx, "range", RANGES) or default_days)
        start = today - dt.timedelta(days=days - 1)
    end = end or today
    if end < start:
        start, end = end, start
    lo = dt.datetime.combine(start, dt.time(0, 0), tzinfo=dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0, 0), tzinfo=dt.UTC)
    return lo, hi, start.isoformat(), end.isoformat()


@router.get("/timeline")
def timeline_page(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    from garrison.tvm.prioritisation import timeline

    now = dt.datetime.now(dt.UTC)
    with page(request, principal, "timeline") as (s, ctx):
        lo, hi, start, end = date_range(ctx, summary.trend_days(s, ctx))
        kinds = [k for k in ctx.params("type") if k in TYPE_LABELS]
        try:
            min_pct = float(ctx.param("minpct") or 0)
        except ValueError:
            min_pct = 0.0
        conds = summary.timeline_conditions(lo, hi, kinds, ctx.param("q"), min_pct)
        events, p, in_range = summary.timeline_page(s, ctx, conds, lambda total: pager(ctx, total, default_size=50))
        current = timeline.currently_impacted(s, events, ctx.scope, now)
        rows = [timeline.to_api(e, ctx.scope, current.get(e.id)) for e in events]
        new_vulns = len({v for k, v, _d in in_range if k == "NewVulnerability" and v})
        exploitable = len({v for k, v, d in in_range if v and (k in ("NewPublicExploit", "ExploitVerified",
                                                                      "ExploitAddedToKit") or (d or {}).get("kev"))})
        hist = summary.exposure_history(s, ctx, days=max(1, min(summary.TREND_MAX_DAYS, (hi - lo).days)), until=(hi - dt.timedelta(
            microseconds=1)).date())
        chart_events = summary.timeline_events_between(s, ctx, lo, hi)
        chart = charts.line_chart(hist, title="Exposure score in this period", y_max=100, color="#c4314b",
                                  value_label="exposure score", events=event_dots(ctx, chart_events), width=1000,
                                  height=170)
        panel: dict[str, Any] | None = None
        open_id = ctx.param("open")
        if open_id and parse_id(open_id) is not None:
            found = summary.timeline_event(s, ctx, parse_id(open_id) or 0)
            if found is None:
                panel = {"missing": open_id}
            else:
                e, vuln, rec = found
                cur = timeline.currently_impacted(s, [e], ctx.scope, now).get(e.id)
                panel = {"e": e, "api": timeline.to_api(e, ctx.scope, cur), "v": vuln, "rec": rec}
        return render(ctx, "timeline.html", title="Event timeline", rows=rows, p=p, panel=panel, start=start, end=end,
                      kinds=kinds, type_labels=TYPE_LABELS, ranges=RANGES, chart=chart, new_vulns=new_vulns,
                      exploitable=exploitable, total_events=len(in_range))
