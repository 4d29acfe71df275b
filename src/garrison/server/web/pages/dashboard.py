"""Dashboard: exposure score and Secure Score for Devices with their trends, device exposure
distribution, top recommendations, vulnerable software, remediation activities, exposed devices
and the top events of the last 7 days. Every card links to its page, filtered."""

from __future__ import annotations

import datetime as dt

from fastapi import Request
from fastapi.responses import Response

from garrison.core.access import Principal
from garrison.core.permissions import P
from garrison.server.auth import require
from garrison.server.web import charts
from garrison.server.web.common import page, router
from garrison.server.web.render import Ctx, render
from garrison.store.models.prioritisation import TimelineEvent
from garrison.tvm.queries import summary

LEVEL_ORDER = ("High", "Medium", "Low", "None")


def event_dots(ctx: Ctx, events: list[TimelineEvent], kinds: tuple[str, ...] | None = None) -> list[charts.ChartEvent]:
    per_day: dict[dt.date, int] = {}
    for e in events:
        if kinds is None or e.kind in kinds:
            day = e.at.astimezone(dt.UTC).date()
            per_day[day] = per_day.get(day, 0) + 1
    return [charts.ChartEvent(day, f"{n} event{'s' if n != 1 else ''} on {day.isoformat()}: see all events "
                                   f"from this day",
                              ctx.url("/timeline", start=day.isoformat(), end=day.isoformat()))
            for day, n in sorted(per_day.items())]


@router.get("/")
def dashboard(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    now = dt.datetime.now(dt.UTC)
    with page(request, principal, "dashboard") as (s, ctx):
        from garrison.tvm.prioritisation import exposure, timeline

        exp = summary.exposure_now(s, ctx)
        period = summary.trend_days(s, ctx)
        exp_hist = summary.exposure_history(s, ctx, days=period)
        month_events = summary.timeline_events(s, ctx, now - dt.timedelta(days=period))
        vuln_kinds = tuple(timeline.VULNERABILITY_EVENTS) + tuple(timeline.SOFTWARE_KINDS.values())
        exposure_chart = charts.line_chart(exp_hist, title="Exposure score over time", y_max=100,
                                           color="#c4314b", value_label="exposure score",
                                           events=event_dots(ctx, month_events, vuln_kinds))
        week_ago = summary.value_days_ago(exp_hist, 7)

        secure = summary.secure_score_now(s, ctx)
        sec_hist = summary.secure_score_history(s, ctx)
        secure_chart = charts.line_chart(sec_hist, title="Secure Score for Devices over time", y_max=100,
                                         color="#2e7d32", value_label="Secure Score", higher_is_better=True,
                                         events=event_dots(ctx, month_events, ("NewConfigurationAssessment",)))
        secure_bars = None
        if secure is not None:
            cats = secure.get("categories") or {}
            secure_bars = charts.bar_chart(
                [charts.Bar(summary.CATEGORY_LABELS[c], cats.get(c) or 0.0, 100.0,
                            href=ctx.url("/recommendations", category=c),
                            text="no data" if cats.get(c) is None else f"{cats[c]:.0f}%", color="#2e7d32")
                 for c in summary.CATEGORIES], title="Secure Score by category")

        levels = exp["levels"]
        no_data = summary.no_data_devices(s, ctx, sum(levels.values()))
        segments = [charts.Segment(level, levels.get(level, 0), charts.LEVEL_COLORS[level],
                                   ctx.url("/devices", exposure=level)) for level in LEVEL_ORDER]
        segments.append(charts.Segment(exposure.REASON_NOT_COVERED, levels.get(exposure.NOT_COVERED, 0),
                                       charts.LEVEL_COLORS[exposure.REASON_NOT_COVERED],
                                       ctx.url("/devices", exposure=exposure.REASON_NOT_COVERED)))
        segments.append(charts.Segment("No data", no_data, charts.LEVEL_COLORS["No data"],
                                       ctx.url("/devices", exposure="No data")))
        total_devices = sum(sg.value for sg in segments)
        donut = charts.donut(segments, title="Device exposure distribution", center=f"{int(total_devices):,}",
                             center_sub="devices")

        top_recs = summary.top_recommendations(s, ctx, 5)
        trends = summary.recommendation_trends(s, [r["r"].id for r in top_recs])
        software = sorted((sw for sw in summary.software_summary(s, ctx) if sw["exposed"]),
                          key=lambda sw: (-sw["impact"], -sw["weaknesses"], -sw["exposed"], sw["name"]))[:5]
        activities = summary.active_activities(s, ctx, 5)
        devices_top = summary.top_exposed_devices(s, ctx, 5)
        week = [e for e in month_events if e.at >= now - dt.timedelta(days=7)]
        top_events = sorted(week, key=lambda e: (-timeline.visible_count(e, ctx.scope),
                                                 -timeline.SEVERITY_RANK.get(e.severity, 0), -e.id))[:3]
        return render(ctx, "dashboard.html", title="Dashboard", exp=exp, exposure_chart=exposure_chart,
                      week_ago=week_ago, secure=secure, secure_chart=secure_chart, secure_bars=secure_bars,
                      sec_hist=sec_hist, donut=donut, segments=segments, top_recs=top_recs, trends=trends,
                      software=software, activities=activities, devices_top=devices_top, top_events=top_events,
                      visible_count=lambda e: timeline.visible_count(e, ctx.scope), now=now,
                      remediation_labels=summary.REMEDIATION_LABELS)
