"""Running a hunting query on the event store, inside the caller's scope.

The translated SELECT reads only the scoped views this module defines in front of it (one CTE per
table the query names): ``TenantId = :_tenant``, the caller's devices, the hunting window — the
tenant and device values are bound here from the :class:`EventScope`, never from the query. The
statement goes through the engine's ordinary path (bound, typed parameters), with a row cap (one row
more is read to say ``truncated``) and, on ClickHouse, an execution-time limit.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from garrison.edr.events import EventScope
from garrison.edr.events.store import EventStoreError
from garrison.edr.hunting import functions as _functions  # noqa: F401  (the function registry)
from garrison.edr.hunting.dialects import DIALECTS, Dialect
from garrison.edr.hunting.syntax import KqlError, parse
from garrison.edr.hunting.translate import Translation, Translator, quote, view_name
from garrison.protocol.events import TABLES, columns

MAX_ROWS = 100_000  # Defender's advanced-hunting API limit
DEFAULT_TIMEOUT_S = 60
UTC = dt.UTC

# KQL type -> the Schema "Type" of Defender's API answer
SCHEMA_TYPES = {"string": "String", "long": "Int64", "int": "Int32", "real": "Double", "bool": "Boolean",
                "datetime": "DateTime", "timespan": "TimeSpan", "dynamic": "Object", "null": "String"}
_PARAM = re.compile(r"(?<![:\w]):(\w+)")
_BASE_TABLE_READ = re.compile(r'FROM\s+"(' + "|".join(TABLES) + r')"')


def hunting_tables() -> dict[str, dict[str, str]]:
    """The tables a hunting query may name and their columns (``TenantId`` is not one of them)."""
    return {t: dict(columns(t)) for t in TABLES}


_TABLES = hunting_tables()


def translate(query: str, engine: str = "duckdb", now: dt.datetime | None = None) -> Translation:
    """KQL text -> a SELECT over the scoped views, in ``engine``'s dialect (raises :class:`KqlError`)."""
    tree = parse(query, frozenset(_TABLES))
    t = Translator(query, DIALECTS[engine], _TABLES, now or dt.datetime.now(UTC))
    out = t.query(tree)
    if _BASE_TABLE_READ.search(out.sql):  # cannot happen: the translator names views only
        raise KqlError("refused: the statement would read a table outside the scope")
    return out


@dataclass
class HuntResult:
    schema: list[dict[str, str]]
    results: list[dict[str, Any]]
    truncated: bool
    sql: str
    chart: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def _scoped_views(d: Dialect, tables: set[str], scope: EventScope, since: dt.datetime) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"_tenant": scope.tenant_id, "_since": since}
    device_cond = ""
    if scope.device_ids is not None:
        ids = sorted(scope.device_ids)
        if not ids:
            device_cond = " AND 1 = 0"
        else:
            names = []
            for i, dev in enumerate(ids):
                params[f"_d{i}"] = dev
                names.append(f":_d{i}")
            device_cond = f' AND "DeviceId" IN ({", ".join(names)})'
    ctes = []
    for t in sorted(tables):
        cols = []
        for c, typ in _TABLES[t].items():
            # KQL strings are never null: a column the sensor did not fill reads as ""
            cols.append(f"coalesce({quote(c)}, '') AS {quote(c)}" if typ == "string" else quote(c))
        time_cond = ' AND "Timestamp" >= :_since' if "Timestamp" in _TABLES[t] else ""
        ctes.append(f'{view_name(t)} AS (SELECT {", ".join(cols)} FROM "{t}" '
                    f'WHERE "TenantId" = :_tenant{device_cond}{time_cond})')
    return ("WITH " + ", ".join(ctes) + " ") if ctes else "", params


def run(scope: EventScope, query: str, *, max_rows: int = MAX_ROWS, timeout_s: float = DEFAULT_TIMEOUT_S,
        now: dt.datetime | None = None) -> HuntResult:
    """Translate and run ``query`` in ``scope``: at most ``max_rows`` rows (``truncated`` says if there were more)."""
    engine = scope.store.engine
    now = now or dt.datetime.now(UTC)
    started = time.perf_counter()
    tr = translate(query, engine.name, now)
    translated = time.perf_counter()
    d = DIALECTS[engine.name]
    since = (now - dt.timedelta(days=scope.store.hunting_days)).astimezone(UTC).replace(tzinfo=None)
    views, scope_params = _scoped_views(d, tr.tables, scope, since)
    limit = max(0, int(max_rows)) + 1
    sql = f"{views}SELECT * FROM ({tr.sql}) AS _result LIMIT {limit}{d.settings}"
    used = set(_PARAM.findall(sql))
    stmt = sa.text(sql).bindparams(**{k: v for k, v in {**tr.params, **scope_params}.items() if k in used})
    try:
        rows = engine.query(stmt, timeout_s=timeout_s)
    except EventStoreError as exc:
        raise HuntingError(_engine_message(str(exc))) from None
    except Exception as exc:  # noqa: BLE001 (the engine's own error types: a query it could not run)
        raise HuntingError(_engine_message(f"{type(exc).__name__}: {exc}")) from None
    truncated = len(rows) > max_rows
    rows = rows[:max_rows]
    names = list(tr.columns)
    results = [{n: _value(r.get(n), tr.columns[n]) for n in names} for r in rows]
    return HuntResult([{"Name": n, "Type": SCHEMA_TYPES.get(t, "String")} for n, t in tr.columns.items()],
                      results, truncated, sql, tr.chart,
                      {"translate_ms": round((translated - started) * 1000, 2),
                       "run_ms": round((time.perf_counter() - translated) * 1000, 2)})


class HuntingError(ValueError):
    """The engine refused or failed the translated query (a bug of the translator, or a limit)."""


def _engine_message(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "the query failed"
    return "the query could not run: " + first[:300]


def _value(v: Any, typ: str) -> Any:
    if v is None:
        return None
    if typ == "datetime" and isinstance(v, dt.datetime):
        v = v.astimezone(UTC) if v.tzinfo else v.replace(tzinfo=UTC)
        return v.isoformat().replace("+00:00", "Z")
    if typ == "bool" and isinstance(v, int):  # ClickHouse answers conditions as 0/1
        return bool(v)
    if typ == "dynamic" and isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    if typ == "timespan" and isinstance(v, int):
        return _timespan(v)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _timespan(micros: int) -> str:
    """Kusto's timespan text: [-][d.]hh:mm:ss[.fffffff]."""
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    days, rest = divmod(micros, 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, frac = divmod(rest, 1_000_000)
    out = f"{sign}{f'{days}.' if days else ''}{hours:02}:{minutes:02}:{seconds:02}"
    return out + (f".{frac * 10:07}" if frac else "")
