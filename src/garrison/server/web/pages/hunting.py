"""Advanced hunting in the console: a KQL editor, the schema browser (tables, columns, types), sample
queries, the results table and CSV export — the same runner as ``POST /api/advancedqueries/run``
(garrison.edr.hunting.service)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from garrison.core.access import Principal
from garrison.core.errors import Invalid
from garrison.core.permissions import P
from garrison.core.scope import AccessScope
from garrison.edr.hunting.service import MAX_ROWS, HuntingError, HuntResult, hunting_tables, run
from garrison.edr.hunting.syntax import KqlError
from garrison.server.auth import require
from garrison.server.web.common import page, router
from garrison.server.web.render import Ctx, render

MAX_CONSOLE_QUERY = 8_000  # the query travels in the URL (a link to a hunt can be shared)
SHOWN_ROWS = 1_000
SAMPLES = {
    "Processes started from /tmp": "DeviceProcessEvents\n| where Timestamp > ago(7d)\n"
                                   "| where FolderPath startswith \"/tmp/\" or FolderPath startswith \"/dev/shm/\"\n"
                                   "| project Timestamp, DeviceName, FileName, ProcessCommandLine, AccountName\n"
                                   "| top 100 by Timestamp desc",
    "Downloads piped to a shell": "DeviceProcessEvents\n| where ProcessCommandLine has_any (\"curl\", \"wget\")\n"
                                  "    and ProcessCommandLine has_any (\"| sh\", \"| bash\")\n"
                                  "| project Timestamp, DeviceName, AccountName, ProcessCommandLine",
    "Connections per device and hour": "DeviceNetworkEvents\n| where Timestamp > ago(1d)\n"
                                       "| summarize Connections = count(), Hosts = dcount(RemoteIP)"
                                       " by DeviceName, bin(Timestamp, 1h)\n| sort by Timestamp desc",
    "Failed logons by source": "DeviceLogonEvents\n| where ActionType == \"LogonFailed\"\n"
                               "| summarize Failures = count(), Accounts = make_set(AccountName) by RemoteIP\n"
                               "| top 20 by Failures desc",
    "Process → network on the same device": "DeviceProcessEvents\n| where Timestamp > ago(1d)\n"
                                            "| project DeviceId, ProcessId, FileName, ProcessCommandLine\n"
                                            "| join kind=inner (DeviceNetworkEvents | project DeviceId, "
                                            "InitiatingProcessId, RemoteIP, RemotePort)\n"
                                            "    on DeviceId, $left.ProcessId == $right.InitiatingProcessId\n"
                                            "| take 100",
}


def _hunt(request: Request, ctx: Ctx, s: Any, query: str, max_rows: int) -> HuntResult:
    """Run in the device groups the page shows: the caller's, narrowed by the console's group selector."""
    if len(query) > MAX_CONSOLE_QUERY:
        raise KqlError(f"the console runs queries of at most {MAX_CONSOLE_QUERY} characters (use the API)")
    groups = ctx.scope
    access = AccessScope(ctx.principal.tenant_id, None if groups is None else frozenset(groups))
    return run(access.events(s, request.app.state.events.store), query, max_rows=max_rows)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


@router.get("/hunting")
def hunting_page(request: Request, principal: Principal = require(P.HUNT)) -> Response:
    with page(request, principal, "hunting") as (s, ctx):
        query = ctx.param("query").strip() or ""
        result: HuntResult | None = None
        error = ""
        if query:
            try:
                result = _hunt(request, ctx, s, query, SHOWN_ROWS)
            except (KqlError, HuntingError) as exc:
                error = str(exc)
        return render(ctx, "hunting.html", query=query or SAMPLES["Processes started from /tmp"], ran=bool(query),
                      result=result, error=error, tables=hunting_tables(), samples=SAMPLES, cell=_cell,
                      shown=SHOWN_ROWS)


@router.get("/hunting.csv")
def hunting_csv(request: Request, principal: Principal = require(P.HUNT)) -> Response:
    with page(request, principal, "hunting") as (s, ctx):
        query = ctx.param("query").strip()
        if not query:
            raise Invalid("no query to export")
        try:
            result = _hunt(request, ctx, s, query, MAX_ROWS)
        except (KqlError, HuntingError) as exc:
            raise Invalid(str(exc)) from None
    buf = io.StringIO()
    out = csv.writer(buf)
    names = [c["Name"] for c in result.schema]
    out.writerow(names)
    for row in result.results:
        out.writerow([_csv_safe(_cell(row.get(n))) for n in names])
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="hunting.csv"'})


def _csv_safe(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no formulas in a spreadsheet


__all__ = ["Ctx", "hunting_csv", "hunting_page"]
