"""Device inventory and the device page (overview, software, vulnerabilities, configuration,
recommendations, tags and device value)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import Session

from garrison.core import devices
from garrison.core.access import Principal
from garrison.core.errors import GarrisonError
from garrison.core.permissions import P
from garrison.core.scope import AccessScope
from garrison.server.auth import require
from garrison.server.web import session
from garrison.server.web.common import back_to, page, redirect, router
from garrison.server.web.render import Column, Ctx, choice, order_by, pager, render, sort_of
from garrison.store.base import utcnow
from garrison.store.models.core import Device, DeviceGroup, DeviceTag
from garrison.store.models.tvm import DeviceInventoryState, DevicePackage
from garrison.tvm.prioritisation.exposure import REASON_NOT_COVERED
from garrison.tvm.queries import device as device_queries
from garrison.tvm.queries import summary

LEVELS = ("High", "Medium", "Low", "None")
NOT_COVERED = REASON_NOT_COVERED  # the filter's value
EXPOSURE_CHOICES = LEVELS + (NOT_COVERED, "No data")
RISK = ("High", "Medium", "Low", "Informational", "None")
HEALTH_LABELS = {"Active": "Active", "Inactive": "Inactive", "ImpairedCommunication": "Impaired communication",
                 "NoSensorData": "No sensor data", "NoSensorDataImpairedCommunication": "No data, impaired",
                 "Unknown": "Unknown"}


def columns(now: dt.datetime) -> list[Column]:
    return [
        Column("name", "Device name", Device.computer_dns_name),
        Column("exposure", "Exposure level", Device.exposure_score, numeric=False, default_desc=True),
        Column("os", "OS", Device.os_platform),
        Column("health", "Sensor health", devices.health_expr(now), narrow=False),
        Column("lastseen", "Last seen", Device.last_seen, default_desc=True),
        Column("firstseen", "First seen", Device.first_seen, default_desc=True, narrow=False),
        Column("tags", "Tags", narrow=False),
        Column("value", "Device value", Device.device_value, narrow=False),
        Column("group", "Device group", DeviceGroup.name, narrow=False),
    ]


def device_filters(ctx: Ctx, now: dt.datetime, s: Session | None = None) -> list[Any]:
    conds: list[Any] = [ctx.device_cond()]
    q = ctx.param("q")
    if q:
        conds.append(or_(Device.computer_dns_name.startswith(q.lower(), autoescape=True),
                         Device.last_ip_address.startswith(q, autoescape=True)))
    exposure = choice(ctx, "exposure", EXPOSURE_CHOICES)
    if exposure == "No data":
        conds.append(~has_data_expr(now))
    elif exposure == NOT_COVERED:  # as exposure_shown labels them, and the dashboard counts them
        conds.append(and_(Device.exposure_level == "None", has_data_expr(now), ~covered_expr()))
    elif exposure == "None":
        conds.append(and_(Device.exposure_level == "None", has_data_expr(now), covered_expr()))
    elif exposure:
        conds.append(and_(Device.exposure_level == exposure, has_data_expr(now)))
    risk = choice(ctx, "risk", RISK)
    if risk:
        conds.append(Device.risk_score == risk)
    health = choice(ctx, "health", devices.HEALTH_STATES)
    if health:
        conds.append(devices.health_expr(now) == health)
    value = choice(ctx, "value", devices.DEVICE_VALUES)
    if value:
        conds.append(Device.device_value == value)
    os_ = ctx.param("os")
    if os_:
        conds.append(Device.os_platform == os_)
    onboarding = ctx.param("onboarding")
    if onboarding:
        conds.append(Device.onboarding_status == onboarding)
    tag = ctx.param("tag")
    if tag:
        conds.append(Device.id.in_(select(DeviceTag.device_id).where(DeviceTag.tag == tag)))
    ids = ctx.params("id")
    if ids:
        conds.append(Device.id.in_(ids[:500]))
    vuln = ctx.param("vuln")
    if vuln and s is not None:
        pvs = summary.vulnerability_package_versions(s, vuln)
        conds.append(Device.id.in_(select(DevicePackage.device_id).where(DevicePackage.package_version_id.in_(pvs)))
                     if pvs else false())
    rec_id = ctx.param("rec")
    if rec_id and s is not None:
        from garrison.store.models.prioritisation import Recommendation

        rec = s.get(Recommendation, (ctx.principal.tenant_id, rec_id))
        stmt = summary.exposed_devices_select(s, rec) if rec is not None else None
        conds.append(Device.id.in_(stmt) if stmt is not None else false())
    return conds


def has_data_expr(now: dt.datetime) -> Any:
    """Devices with an exposure level: active in the last 30 days with an inventory (as the
    prioritisation job counts them); the others show "No data"."""
    from garrison.tvm.prioritisation import exposure

    return exposure.has_data_expr(now)


def covered_expr() -> Any:
    from garrison.tvm.prioritisation import exposure

    return exposure.covered_expr()


def exposure_shown(device: Device, now: dt.datetime, has_data: bool = True, covered: bool = True) -> str:
    """The level a person sees: Low/Medium/High/None, "No data", or "No data / release not covered" for a
    device whose release no imported feed covers and that nothing else scored (never "Low")."""
    from garrison.tvm.prioritisation import exposure

    if not has_data:
        return "No data"
    level = device.exposure_level or "None"
    if level == "None" and not covered:
        return exposure.REASON_NOT_COVERED
    return level


@router.get("/devices")
def device_list(request: Request, principal: Principal = require(P.MACHINES_READ)) -> Response:
    now = utcnow()
    with page(request, principal, "devices") as (s, ctx):
        cols = columns(now)
        conds = device_filters(ctx, now, s)
        total = s.scalar(select(func.count()).select_from(Device).where(*conds)) or 0
        p = pager(ctx, total)
        sort = sort_of(ctx, cols, "exposure", default_desc=True)
        rows = s.execute(select(Device, DeviceGroup.name, has_data_expr(now), covered_expr())
                         .outerjoin(DeviceGroup, DeviceGroup.id == Device.group_id)
                         .where(*conds).order_by(*order_by(cols, sort, [Device.computer_dns_name, Device.id]))
                         .limit(p.size).offset(p.offset)).all()
        platforms = [r for (r,) in s.execute(select(Device.os_platform).where(ctx.device_cond())
                                             .group_by(Device.os_platform).order_by(Device.os_platform)) if r]
        items = [{"d": d, "group": g, "health": devices.health_status(d, now), "exposure": exposure_shown(d, now, data, inv)}
                 for d, g, data, inv in rows]
        return render(ctx, "devices.html", title="Devices", cols=cols, sort=sort, p=p, items=items,
                      platforms=platforms, levels=EXPOSURE_CHOICES, risks=RISK,
                      health_labels=HEALTH_LABELS, values=devices.DEVICE_VALUES, now=now)


CSV_FIELDS = ["Device name", "Device id", "Domain", "OS platform", "OS version", "Risk level", "Exposure level",
              "Exposure score", "Sensor health", "Onboarding status", "Last seen", "First seen", "Last IP",
              "Tags", "Device value", "Device group"]


@router.get("/devices.csv")
def device_csv(request: Request, principal: Principal = require(P.MACHINES_READ)) -> Response:
    now = utcnow()
    with page(request, principal, "devices") as (_s, ctx):
        conds = device_filters(ctx, now, _s)
    store = request.app.state.store

    def rows() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_FIELDS)
        with store.tenant(principal.tenant_id) as s:
            stmt = (select(Device, DeviceGroup.name, has_data_expr(now), covered_expr())
                    .outerjoin(DeviceGroup, DeviceGroup.id == Device.group_id)
                    .where(*conds).order_by(Device.computer_dns_name, Device.id)
                    .execution_options(yield_per=1000))
            for n, (d, g, data, inv) in enumerate(s.execute(stmt)):
                name = d.computer_dns_name
                writer.writerow([_cell(v) for v in (
                    name, d.id, name.split(".", 1)[1] if "." in name else "", d.os_platform, d.os_version,
                    d.risk_score, exposure_shown(d, now, data, inv), round(d.exposure_score or 0, 1),
                    devices.health_status(d, now), d.onboarding_status,
                    d.last_seen.isoformat() if d.last_seen else "", d.first_seen.isoformat() if d.first_seen else "",
                    d.last_ip_address, ";".join(d.tags or []), d.device_value, g or "")])
                if n % 500 == 0:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="devices.csv"',
                                      "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def _cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas in exported text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def load_device(s: Session, ctx: Ctx, machine_id: str) -> Device:
    return AccessScope.of(ctx.principal).device(s, machine_id)


DEVICE_TABS = [("overview", "Overview"), ("software", "Software inventory"),
               ("vulnerabilities", "Discovered vulnerabilities"), ("configuration", "Configuration assessment"),
               ("recommendations", "Security recommendations")]


@router.get("/devices/{machine_id}")
def device_page(machine_id: str, request: Request, principal: Principal = require(P.MACHINES_READ)) -> Response:
    now = utcnow()
    with page(request, principal, "devices") as (s, ctx):
        device = load_device(s, ctx, machine_id)
        group = s.get(DeviceGroup, device.group_id) if device.group_id else None
        tab = choice(ctx, "tab", [t for t, _ in DEVICE_TABS]) or "overview"
        data: dict[str, Any] = {}
        if tab == "overview":
            data = device_queries.device_overview(s, device)
        elif tab == "software":
            data = device_queries.device_software(s, device, lambda total: pager(ctx, total))
        elif tab == "vulnerabilities":
            data = device_queries.device_vulnerabilities(s, device, lambda total: pager(ctx, total))
        elif tab == "configuration":
            data = summary.device_configuration(s, device, choice(ctx, "status", list(summary.CONFIG_STATUSES)))
            if "rows" in data:
                data["p"] = p = pager(ctx, len(data["rows"]))
                data["rows"] = data["rows"][p.offset:p.offset + p.size]
        elif tab == "recommendations":
            data = summary.device_recommendations(s, device)
        from garrison.tvm.prioritisation import exposure

        reason = exposure.no_data_reason(s, device, now)
        return render(ctx, "device.html", title=device.computer_dns_name or device.id, d=device,
                      group=group.name if group else None, tab=tab, tabs=DEVICE_TABS, data=data,
                      health=devices.health_status(device, now),
                      exposure=exposure_shown(device, now, s.get(DeviceInventoryState, device.id) is not None
                                              and exposure.is_active(device, now),
                                              exposure.inventory_reason(s, device) is None),
                      exposure_reason=reason,
                      values=devices.DEVICE_VALUES, now=now)


def _device_action(request: Request, principal: Principal, machine_id: str, form: dict[str, str]) -> Response:
    here = f"/console/devices/{machine_id}"
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = AccessScope.of(principal).device(s, machine_id)
        try:
            what = form.get("action", "")
            if what in ("add", "remove"):
                tag = form.get("tag", "").strip()
                devices.set_tag(s, device, tag, what == "add")
                message = f"Tag '{tag}' {'added' if what == 'add' else 'removed'}."
            elif what == "value":
                devices.set_device_value(device, form.get("value", ""))
                message = f"Device value set to {device.device_value}."
            else:
                return redirect(request, here, "Unknown action.", "error")
            s.flush()
        except GarrisonError as exc:
            s.rollback()
            return redirect(request, back_to(request, form, here), str(exc), "error")
    return redirect(request, back_to(request, form, here), message)


@router.post("/devices/{machine_id}")
async def device_update(machine_id: str, request: Request,
                        principal: Principal = require(P.MACHINES_ACT)) -> Response:
    form = await session.checked_form(request)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_device_action, request, principal, machine_id, form)

