"""The device page's Timeline tab: the device's telemetry in time order (garrison.edr.events), with
search, date range (1 day / 7 days / 30 days / custom), jump to a time, event-type filter, CSV export
(up to 7 days) and an event side panel with the process tree (parent → child)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from garrison.core.access import Principal
from garrison.core.errors import Invalid
from garrison.core.permissions import P
from garrison.edr.events import EventScope
from garrison.edr.events.health import telemetry_health
from garrison.protocol.events import EVENT_TABLES
from garrison.server.auth import require
from garrison.server.web.common import page, router
from garrison.server.web.pages.devices import load_device
from garrison.server.web.render import Ctx, choice, pager, render
from garrison.store.base import utcnow

RANGES = {"1": "1 day", "7": "7 days", "30": "30 days"}
TYPE_LABELS = {"DeviceProcessEvents": "Process", "DeviceNetworkEvents": "Network", "DeviceFileEvents": "File",
               "DeviceLogonEvents": "Logon", "DeviceRegistryEvents": "Registry", "DeviceImageLoadEvents": "Image load",
               "DeviceEvents": "Other"}
MAX_EXPORT = dt.timedelta(days=7)
EXPORT_COLUMNS = ("Timestamp", "Table", "ActionType", "FileName", "FolderPath", "ProcessCommandLine", "ProcessId",
                  "AccountDomain", "AccountName", "RemoteIP", "RemotePort", "RemoteUrl", "LocalIP", "LocalPort",
                  "RegistryKey", "RegistryValueName", "InitiatingProcessFileName", "InitiatingProcessCommandLine",
                  "InitiatingProcessId", "SHA256", "ReportId")


def _range(ctx: Ctx, now: dt.datetime) -> tuple[dt.datetime, dt.datetime, str, str, str]:
    """(from, to, start date, end date, preset) of the page: custom dates, a preset, and ``at`` (jump)."""
    preset = choice(ctx, "range", RANGES)
    start_s, end_s = ctx.param("start"), ctx.param("end")
    try:
        start_d = dt.date.fromisoformat(start_s) if start_s and not preset else None
        end_d = dt.date.fromisoformat(end_s) if end_s and not preset else None
    except ValueError:
        start_d = end_d = None
    hi = now + dt.timedelta(seconds=1)
    if end_d is not None:
        hi = dt.datetime.combine(end_d + dt.timedelta(days=1), dt.time(0, 0), tzinfo=dt.UTC)
    at = ctx.param("at")
    if at:
        try:
            jump = dt.datetime.fromisoformat(at)
            hi = (jump if jump.tzinfo else jump.replace(tzinfo=dt.UTC)) + dt.timedelta(seconds=1)
        except ValueError:
            pass
    if start_d is not None:
        lo = dt.datetime.combine(start_d, dt.time(0, 0), tzinfo=dt.UTC)
        preset = ""
    else:
        preset = preset or "30"
        lo = hi - dt.timedelta(days=int(preset))
    if lo >= hi:
        lo = hi - dt.timedelta(days=1)
    return lo, hi, lo.date().isoformat(), (hi - dt.timedelta(seconds=1)).date().isoformat(), preset


def _filters(ctx: Ctx) -> tuple[list[str] | None, str | None]:
    types = [t for t in ctx.params("type") if t in EVENT_TABLES]
    return types or None, (ctx.param("q")[:256] or None)


def _scope(request: Request, principal: Principal, device_id: str) -> EventScope:
    limit = None if principal.group_ids is None else [device_id]
    return request.app.state.events.store.scope(principal.tenant_id, limit)


def summary(row: dict[str, Any]) -> str:
    """One line for the list, as Defender's timeline words it."""
    t, a = row.get("Table"), row.get("ActionType", "")
    who = row.get("InitiatingProcessFileName") or ""
    if t == "DeviceProcessEvents":
        return f"{who or 'A process'} created process {row.get('FileName') or ''}".strip()
    if t == "DeviceNetworkEvents":
        return f"{who or 'A process'} {a} {row.get('RemoteIP') or ''}:{row.get('RemotePort') or ''}"
    if t == "DeviceFileEvents":
        return f"{who or 'A process'} {a} {row.get('FolderPath') or row.get('FileName') or ''}"
    if t == "DeviceLogonEvents":
        return f"{row.get('AccountName') or '?'} {a} ({row.get('LogonType') or '?'})" + (
            f" from {row['RemoteIP']}" if row.get("RemoteIP") else "")
    if t == "DeviceRegistryEvents":
        return f"{who or 'A process'} {a} {row.get('RegistryKey') or ''}"
    if t == "DeviceImageLoadEvents":
        return f"{who or 'A process'} loaded {row.get('FileName') or ''}"
    return f"{a} {row.get('FileName') or row.get('RemoteUrl') or row.get('AccountName') or ''}".strip()


@router.get("/devices/{machine_id}/timeline")
def device_timeline(machine_id: str, request: Request, principal: Principal = require(P.EVENTS_READ)) -> Response:
    now = utcnow()
    with page(request, principal, "devices") as (s, ctx):
        device = load_device(s, ctx, machine_id)
        sc = _scope(request, principal, device.id)
        lo, hi, start, end, preset = _range(ctx, now)
        tables, search = _filters(ctx)
        total = sc.timeline_count(device.id, lo, hi, tables=tables, search=search)
        p = pager(ctx, total, default_size=50)
        rows = sc.timeline(device.id, lo, hi, tables=tables, search=search, top=p.size, skip=p.offset)
        for r in rows:
            r["summary"] = summary(r)
        panel: dict[str, Any] | None = None
        opened = ctx.param("event")
        if opened:
            table, _, rid = opened.partition(":")
            ev = sc.event(table, device.id, int(rid)) if table in EVENT_TABLES and rid.isdigit() else None
            if ev is None:
                panel = {"missing": opened}
            else:
                pid = ev.get("ProcessId") if table == "DeviceProcessEvents" else ev.get("InitiatingProcessId")
                created = (ev.get("ProcessCreationTime") if table == "DeviceProcessEvents"
                           else ev.get("InitiatingProcessCreationTime"))
                tree = sc.process_tree(device.id, pid, created) if pid is not None else None
                if tree is not None and tree["process"] is None:
                    tree["process"] = {"ProcessId": pid, "FileName": ev.get("InitiatingProcessFileName"),
                                       "ProcessCommandLine": ev.get("InitiatingProcessCommandLine")}
                panel = {"table": table, "e": ev, "tree": tree, "summary": summary({"Table": table, **ev}),
                         "fields": [(k, v) for k, v in ev.items() if k not in ("DeviceId",)]}
        health = telemetry_health(sc, device, now)
        return render(ctx, "device_timeline.html", title=f"{device.computer_dns_name or device.id} — timeline",
                      d=device, rows=rows, p=p, total=total, panel=panel, start=start, end=end, preset=preset,
                      ranges=RANGES, type_labels=TYPE_LABELS, types=tables or [], health=health,
                      export_days=MAX_EXPORT.days, export_ok=(hi - lo) <= MAX_EXPORT + dt.timedelta(seconds=1))


@router.get("/devices/{machine_id}/timeline.csv")
def device_timeline_csv(machine_id: str, request: Request, principal: Principal = require(P.EVENTS_READ)) -> Response:
    now = utcnow()
    with page(request, principal, "devices") as (s, ctx):
        device = load_device(s, ctx, machine_id)
        lo, hi, start, end, _preset = _range(ctx, now)
        if hi - lo > MAX_EXPORT + dt.timedelta(seconds=1):
            raise Invalid(f"export at most {MAX_EXPORT.days} days: choose a shorter range")
        tables, search = _filters(ctx)
        sc = _scope(request, principal, device.id)
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(EXPORT_COLUMNS)
        skip = 0
        while True:
            rows = sc.timeline(device.id, lo, hi, tables=tables, search=search, top=10_000, skip=skip)
            for r in rows:
                out.writerow(_cell(r.get(c)) for c in EXPORT_COLUMNS)
            if len(rows) < 10_000 or skip > 1_000_000:
                break
            skip += 10_000
        name = f"timeline-{device.computer_dns_name or device.id}-{start}-{end}.csv".replace('"', "")
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _cell(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):
        return "'" + v
    return "" if v is None else v
