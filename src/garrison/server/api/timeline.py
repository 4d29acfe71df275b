"""The device timeline (``GET /api/machines/{id}/timeline``) and agentless Windows event import
(``POST /api/machines/{id}/events/import``), over the event store (garrison.edr.events)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from garrison.core.access import Principal
from garrison.core.errors import Invalid, NotFound
from garrison.core.permissions import P
from garrison.edr.events import BatchIn, EventScope, Stored
from garrison.edr.events.health import telemetry_health
from garrison.edr.events.imports import import_windows, parse_files, resolve_device
from garrison.edr.events.schema import TIMELINE_COLUMNS
from garrison.edr.events.store import MAX_TIMELINE_PAGE
from garrison.protocol.events import EVENT_TABLES
from garrison.server import odata
from garrison.server.api import models as schema
from garrison.server.api.common import csv_file, json_response, odata_list, returns
from garrison.server.api.machines import load_device
from garrison.server.auth import require
from garrison.store.base import utcnow

router = APIRouter(prefix="/api", tags=["timeline"])

UTC = dt.UTC
DEFAULT_RANGE = dt.timedelta(days=30)
MAX_EXPORT = dt.timedelta(days=7)
MAX_EXPORT_ROWS = 1_000_000
_PY_TYPES: dict[str, type] = {"string": str, "long": int, "int": int, "bool": bool, "datetime": dt.datetime}


def _fields(cols: Mapping[str, Any]) -> dict[str, odata.Field]:
    return {name: odata.Field(cols[name], _PY_TYPES[typ]) for name, typ in TIMELINE_COLUMNS}


class _Probe(dict[str, Any]):
    """Columns of no table: to check a $filter once, before it is built for each table."""

    def __missing__(self, name: str) -> Any:
        import sqlalchemy as sa

        return sa.column(name)


def scope_for(request: Request, principal: Principal, machine_id: str) -> tuple[EventScope, str, str]:
    """The event-store handle of this caller for this machine (404 for a machine it may not see)."""
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        device_id, name = device.id, device.computer_dns_name
    limit = None if principal.group_ids is None else [device_id]
    return request.app.state.events.store.scope(principal.tenant_id, limit), device_id, name


def _time_param(request: Request, name: str) -> dt.datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        t = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid(f"{name}: not an ISO 8601 time ({raw[:40]!r})") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _range(request: Request, longest: dt.timedelta | None = None) -> tuple[dt.datetime, dt.datetime]:
    end = _time_param(request, "toDate") or dt.datetime.now(UTC) + dt.timedelta(seconds=1)
    start = _time_param(request, "fromDate") or end - DEFAULT_RANGE
    if start >= end:
        raise Invalid("fromDate must be before toDate")
    reach = dt.timedelta(days=request.app.state.settings.events_retention_days)
    if end - start > (longest or reach):
        raise Invalid(f"the time range is at most {(longest or reach).days} days")
    return start, end


class _Query:
    """The timeline's query options: $filter/$top/$skip/$select/$orderby (Timestamp only), search, tables."""

    def __init__(self, request: Request) -> None:
        params = dict(request.query_params)
        order = params.pop("$orderby", "Timestamp desc").strip()
        if order not in ("Timestamp", "Timestamp desc", "Timestamp asc"):
            raise Invalid("$orderby: the timeline is ordered by Timestamp (asc or desc) only")
        self.ascending = order == "Timestamp asc"
        params.pop("$count", None)
        try:
            q = odata.parse_query(params, _fields(_Probe()), max_top=MAX_TIMELINE_PAGE)
        except odata.ODataError as exc:
            raise Invalid(str(exc)) from None
        self.top = q.top if "$top" in params else 100
        self.skip, self.select = q.skip, q.select
        self.count = request.query_params.get("$count", "").lower() == "true"
        self.where = None
        if q.filter is not None:
            text = params["$filter"]
            self.where = lambda cols: odata.parse_query({"$filter": text}, _fields(cols)).filter
        tables = [t.strip() for t in request.query_params.get("tables", "").split(",") if t.strip()]
        unknown = [t for t in tables if t not in EVENT_TABLES]
        if unknown:
            raise Invalid(f"unknown table {unknown[0][:60]!r}; known: {', '.join(EVENT_TABLES)}")
        self.tables = tables or None
        self.search = (request.query_params.get("search") or "").strip()[:256] or None


@router.get("/machines/{machine_id}/timeline", responses=returns(schema.ODataList[schema.TimelineRow]))
def timeline(machine_id: str, request: Request, principal: Principal = require(P.EVENTS_READ)) -> Response:
    """A device's events in time order (newest first), with Defender's column names. ``fromDate``/``toDate``
    (default: the last 30 days), ``search`` (file, command line, IP, URL, account, registry key…),
    ``tables`` (comma-separated), ``$filter`` over the columns, ``$top`` (100; at most 10,000), ``$skip``,
    ``$select``, ``$count``, ``$orderby=Timestamp asc``."""
    sc, device_id, _name = scope_for(request, principal, machine_id)
    start, end = _range(request)
    q = _Query(request)
    rows = sc.timeline(device_id, start, end, tables=q.tables, search=q.search, where=q.where, top=q.top,
                       skip=q.skip, ascending=q.ascending)
    count = sc.timeline_count(device_id, start, end, tables=q.tables, search=q.search, where=q.where) if q.count else None
    return json_response(odata_list(request, "Timeline", rows, q.select, count))


@router.get("/machines/{machine_id}/sensorHealth", responses=returns(schema.SensorHealth))
def sensor_health(machine_id: str, request: Request, principal: Principal = require(P.EVENTS_READ)) -> Response:
    """Telemetry health: sensor state, events/s and drops over 5 minutes, last event time, and
    ``healthStatus`` — ``NoSensorData`` for a device that checks in but sends no telemetry."""
    with request.app.state.store.tenant(principal.tenant_id) as s:
        device = load_device(s, principal, machine_id)
        limit = None if principal.group_ids is None else [device.id]
        sc = request.app.state.events.store.scope(principal.tenant_id, limit)
        return json_response(telemetry_health(sc, device, utcnow()))


@router.get("/machines/{machine_id}/timeline/{table}/{report_id}", responses=returns(schema.EventDetail))
def timeline_event(machine_id: str, table: str, report_id: int, request: Request,
                   principal: Principal = require(P.EVENTS_READ)) -> Response:
    """One event whole, and the process tree around it (parent → … → process → children)."""
    sc, device_id, _name = scope_for(request, principal, machine_id)
    if table not in EVENT_TABLES:
        raise Invalid(f"unknown table {table[:60]!r}")
    row = sc.event(table, device_id, report_id)
    if row is None:
        raise NotFound(f"no event {table}/{report_id} on this machine")
    tree = None
    pid = row.get("ProcessId") if table == "DeviceProcessEvents" else row.get("InitiatingProcessId")
    if pid is not None:
        created = row.get("ProcessCreationTime") if table == "DeviceProcessEvents" else row.get(
            "InitiatingProcessCreationTime")
        tree = sc.process_tree(device_id, pid, created)
        if tree["process"] is None and table != "DeviceProcessEvents":  # the process's creation was not seen
            tree["process"] = {"ProcessId": pid, "FileName": row.get("InitiatingProcessFileName"),
                               "ProcessCommandLine": row.get("InitiatingProcessCommandLine"),
                               "FolderPath": row.get("InitiatingProcessFolderPath")}
            if row.get("InitiatingProcessParentId") is not None:
                tree["ancestors"] = [{"ProcessId": row["InitiatingProcessParentId"],
                                      "FileName": row.get("InitiatingProcessParentFileName")}]
    return json_response({"Table": table, **row, "processTree": tree})


_CSV_COLUMNS = ("Timestamp", "Table", "ActionType", "FileName", "FolderPath", "ProcessCommandLine", "ProcessId",
                "AccountDomain", "AccountName", "RemoteIP", "RemotePort", "RemoteUrl", "LocalIP", "LocalPort",
                "RegistryKey", "RegistryValueName", "RegistryValueData", "InitiatingProcessFileName",
                "InitiatingProcessCommandLine", "InitiatingProcessId", "SHA256", "ReportId", "DeviceName")


@router.get("/machines/{machine_id}/timeline/export", responses=csv_file("the timeline as CSV"))
def timeline_export(machine_id: str, request: Request, principal: Principal = require(P.EVENTS_READ)) -> Response:
    """The timeline as CSV: at most 7 days, with the same search/tables/$filter as the list."""
    sc, device_id, name = scope_for(request, principal, machine_id)
    start, end = _range(request, MAX_EXPORT)
    q = _Query(request)
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(_CSV_COLUMNS)
    skip, page = 0, MAX_TIMELINE_PAGE
    while skip < MAX_EXPORT_ROWS:
        rows = sc.timeline(device_id, start, end, tables=q.tables, search=q.search, where=q.where, top=page,
                           skip=skip, ascending=q.ascending)
        for r in rows:
            out.writerow(_csv_value(r.get(c)) for c in _CSV_COLUMNS)
        if len(rows) < page:
            break
        skip += page
    filename = f"timeline-{name or device_id}-{start:%Y%m%d}-{end:%Y%m%d}.csv".replace('"', "")
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _csv_value(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):
        return "'" + v  # no formulas in a spreadsheet
    return "" if v is None else v


@router.post("/machines/{machine_id}/events/import", responses=returns(schema.ImportResult))
async def import_events(machine_id: str, request: Request,
                        principal: Principal = require(P.MACHINES_IMPORT)) -> dict[str, Any]:
    """Agentless telemetry: a Windows event log file (EVTX, JSON lines, zip of them) as the request body
    (``fileName`` names it in errors) stored as this machine's events. A malformed file stores nothing."""
    def device() -> tuple[str, str, bool]:
        return resolve_device(request.app.state.store, principal.tenant_id, device_id=machine_id,
                              group_ids=principal.group_ids)

    device_id, name, _created = await run_in_threadpool(device)
    data = await request.body()
    if not data:
        raise Invalid("the event log file is empty")
    file_name = (request.query_params.get("fileName") or "upload")[:200]
    parsed = await run_in_threadpool(parse_files, [(file_name, data)])
    writer = request.app.state.events.writer

    def write(batches: list[BatchIn]) -> list[Stored]:
        futures = [writer.submit(b) for b in batches]
        return [f.result(timeout=600) for f in futures]

    return await run_in_threadpool(import_windows, write, principal.tenant_id, device_id, name, parsed)


__all__ = ["router"]
