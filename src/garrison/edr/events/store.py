"""The event store: one interface (:class:`EventStore`), two engines (DuckDB, ClickHouse).

Writes take whole batches (:meth:`EventStore.write`): a batch is stored with its ledger row
(``EventBatches``: device, seq) at most once. Reads go through a tenant- and device-group-bound
handle (:meth:`EventStore.scope`), whose statements are built only from :func:`schema.source`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import sqlalchemy as sa

from garrison.edr.events import schema
from garrison.edr.events.enrich import ProcessLinks, enrich, report_id
from garrison.protocol.events import EVENT_TABLES, TABLES
from garrison.registry import Registry

UTC = dt.UTC
log = logging.getLogger("garrison.events")
DEFAULT_RETENTION_DAYS = 180  # the timeline (Defender keeps six months)
DEFAULT_HUNTING_DAYS = 30  # advanced hunting's window
MAX_TIMELINE_PAGE = 10_000
MAX_IMPORT_EVENTS = 1 << 24


class EventStoreError(RuntimeError):
    """The store cannot do what was asked (locked by another process, bad URL, engine failure)."""


class Engine(Protocol):
    """What an engine provides; everything else (enrichment, scoping, SQL) is shared."""

    name: str

    def setup(self, retention_days: int) -> None: ...
    def query(self, stmt: sa.Executable, timeout_s: float | None = None) -> list[dict[str, Any]]: ...
    def stored_keys(self, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]: ...
    def min_seq(self, device_id: str) -> int: ...
    def insert(self, tables: dict[str, pa.Table], batches: pa.Table) -> None: ...
    def prune(self, before: dt.datetime) -> int: ...
    def close(self) -> None: ...


ENGINES: Registry[Callable[[str], Engine]] = Registry("event store engine", package="garrison.edr.events")
"""URL scheme → the engine it opens (``duckdb``, ``clickhouse``, ``chdb``): each engine's module registers
its schemes; every module of ``garrison.edr.events`` is discovered on first use."""


@dataclass
class BatchIn:
    """One batch to store: rows are ``{"Table": name, column: value, …}`` (identity columns are set here)."""

    tenant_id: int
    device_id: str
    device_name: str
    seq: int  # >= 1: an agent batch; 0: an import (the store takes the device's next negative seq)
    events: Sequence[dict[str, Any]]
    drops: int = 0
    received_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(UTC))


@dataclass
class Stored:
    status: str  # accepted | duplicate
    stored: int = 0
    seq: int = 0


class EventStore:
    """Shared logic over an :class:`Engine`. Thread-safe: writes are serialised by a lock."""

    def __init__(self, engine: Engine, retention_days: int = DEFAULT_RETENTION_DAYS,
                 hunting_days: int = DEFAULT_HUNTING_DAYS) -> None:
        self.engine = engine
        self.retention_days = retention_days
        self.hunting_days = hunting_days
        self.links = ProcessLinks()
        # Called with each write's stored rows by table (enriched, after the commit), in the writer's pass:
        # the detection engine evaluates them here instead of polling the store.
        self.listeners: list[Callable[[Mapping[str, Sequence[dict[str, Any]]]], None]] = []
        self._write_lock = threading.Lock()
        engine.setup(retention_days)

    # --- writes ------------------------------------------------------------------------------

    def write(self, batches: Sequence[BatchIn]) -> list[Stored]:
        """Store batches at most once each (by device and seq), all in one engine write."""
        with self._write_lock:
            return self._write(batches)

    def _write(self, batches: Sequence[BatchIn]) -> list[Stored]:
        agent_keys = [(b.device_id, b.seq) for b in batches if b.seq > 0]
        seen = self.engine.stored_keys(agent_keys) if agent_keys else set()
        out: list[Stored] = []
        rows: dict[str, list[dict[str, Any]]] = {}
        ledger: list[dict[str, Any]] = []
        next_import: dict[str, int] = {}
        for b in batches:
            seq = b.seq
            if seq <= 0:
                seq = next_import.get(b.device_id) or min(self.engine.min_seq(b.device_id), 0) - 1
                next_import[b.device_id] = seq - 1
                if len(b.events) > MAX_IMPORT_EVENTS:
                    raise EventStoreError(f"an import holds at most {MAX_IMPORT_EVENTS} events")
            key = (b.device_id, seq)
            if key in seen:
                out.append(Stored("duplicate", 0, seq))
                continue
            seen.add(key)
            first: dt.datetime | None = None
            last: dt.datetime | None = None
            for i, ev in enumerate(b.events):
                row = dict(ev)
                table = row.pop("Table")
                ts = row["Timestamp"]
                first = ts if first is None or ts < first else first
                last = ts if last is None or ts > last else last
                rows.setdefault(table, []).append(
                    enrich(row, table, b.tenant_id, b.device_id, b.device_name, report_id(seq, i), self.links))
            ledger.append({"TenantId": b.tenant_id, "DeviceId": b.device_id, "Seq": seq, "ReceivedAt": b.received_at,
                           "Events": len(b.events), "Drops": b.drops, "FirstEvent": first, "LastEvent": last})
            out.append(Stored("accepted", len(b.events), seq))
        if ledger:
            tables = {t: _arrow(t, r) for t, r in rows.items()}
            self.engine.insert(tables, pa.Table.from_pylist(ledger, schema=schema.arrow_schema("EventBatches")))
            for listener in self.listeners:
                try:
                    listener(rows)
                except Exception:  # the rows are stored; a failing listener must not fail the ingest
                    log.exception("an event-store listener failed on a stored write")
        return out

    def prune(self, now: dt.datetime | None = None) -> int:
        """Drop events older than the retention (the engine may also do it itself, e.g. a TTL)."""
        now = now or dt.datetime.now(UTC)
        with self._write_lock:
            return self.engine.prune(now - dt.timedelta(days=self.retention_days))

    # --- reads -------------------------------------------------------------------------------

    def scope(self, tenant_id: int, device_ids: Iterable[str] | None = None) -> EventScope:
        """The only read handle: rows of ``tenant_id`` (and, if given, of these devices only)."""
        return EventScope(self, int(tenant_id), None if device_ids is None else frozenset(device_ids))

    def close(self) -> None:
        self.engine.close()


def _arrow(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Only the columns some row has (the engines fill the rest with NULL): a sensor sends a dozen of 60."""
    full = schema.arrow_schema(table)
    present: set[str] = set()
    for r in rows:
        present.update(r)
    return pa.Table.from_pylist(rows, schema=pa.schema([f for f in full if f.name in present]))


def _aware(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for k, v in row.items():
            if isinstance(v, dt.datetime) and v.tzinfo is None:
                row[k] = v.replace(tzinfo=UTC)
    return rows


TIMELINE_SEARCH = ("FileName", "FolderPath", "ProcessCommandLine", "InitiatingProcessFileName",
                   "InitiatingProcessCommandLine", "RemoteIP", "RemoteUrl", "AccountName", "RegistryKey",
                   "RegistryValueData", "ActionType", "SHA256", "SHA1", "MD5", "LocalIP")


class _TimelineColumns(dict[str, Any]):
    """A table's columns under every timeline column name (a column it lacks is a typed NULL)."""

    def __init__(self, table: str, src: schema.Scoped) -> None:
        super().__init__()
        self.table, self.src = table, src

    def __missing__(self, name: str) -> Any:
        if name == "Table":
            return sa.literal(self.table, sa.String)
        if name in self.src.c:
            return self.src.c[name]
        typ = schema.TIMELINE_TYPES.get(name)
        if typ is None:
            raise KeyError(name)
        return sa.null().cast(schema.SA_TYPES[typ])


Where = Callable[[Mapping[str, Any]], Any]


class EventScope:
    """A tenant- (and device-group-) bound read handle. Every statement it runs is built on
    :func:`schema.source` and gets the scope's values for ``_tenant``/``_devices`` here, and only here."""

    def __init__(self, store: EventStore, tenant_id: int, device_ids: frozenset[str] | None) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.device_ids = device_ids

    def _run(self, stmt: sa.Select[Any]) -> list[dict[str, Any]]:
        loose = schema.unscoped_tables(stmt)
        if loose:
            raise EventStoreError(f"refused: {', '.join(sorted(set(loose)))} read without the tenant scope")
        bound = stmt.params(_tenant=self.tenant_id, _all_devices=self.device_ids is None,
                            _devices=sorted(self.device_ids or ()))
        return _aware(self.store.engine.query(bound))

    def sees(self, device_id: str) -> bool:
        return self.device_ids is None or device_id in self.device_ids

    def _parts(self, device_id: str, start: dt.datetime, end: dt.datetime, tables: Sequence[str] | None,
               search: str | None, where: Where | None) -> list[tuple[str, schema.Scoped, list[Any]]]:
        """Per event table: its scoped source and the conditions of this timeline query on it."""
        out = []
        needle = None
        if search:
            needle = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").lower() + "%"
        for t in EVENT_TABLES:
            if tables and t not in tables:
                continue
            src = schema.source(t)
            conds: list[Any] = [src.c.DeviceId == device_id, src.c.Timestamp >= _naive(start),
                                src.c.Timestamp < _naive(end)]
            if needle is not None:
                conds.append(sa.or_(*(sa.func.lower(src.c[c]).like(needle, escape="\\")
                                      for c in TIMELINE_SEARCH if c in src.c)))
            if where is not None:
                conds.append(where(_TimelineColumns(t, src)))
            out.append((t, src, conds))
        return out

    def timeline(self, device_id: str, start: dt.datetime, end: dt.datetime, *, tables: Sequence[str] | None = None,
                 search: str | None = None, where: Where | None = None, top: int = 100, skip: int = 0,
                 ascending: bool = False) -> list[dict[str, Any]]:
        """A device's events in ``[start, end)``, newest first. ``where`` builds a condition from a table's
        columns (every timeline column name; a column the table lacks is a typed NULL), e.g. an OData
        ``$filter``. The page is chosen on (time, ReportId) over all tables, then its rows are read whole."""
        parts = self._parts(device_id, start, end, tables, search, where)
        if not parts:
            return []
        keys = sa.union_all(*(src.select(sa.literal(t, sa.String).label("Table"), src.c.Timestamp, src.c.ReportId)
                              .where(*conds) for t, src, conds in parts)).subquery("page")
        order = (keys.c.Timestamp.asc(), keys.c.ReportId.asc()) if ascending else (keys.c.Timestamp.desc(),
                                                                                   keys.c.ReportId.desc())
        page = self._run(sa.select(keys).order_by(*order).limit(max(0, min(top, MAX_TIMELINE_PAGE)))
                         .offset(max(0, skip)))
        wanted: dict[str, list[int]] = {}
        for k in page:
            wanted.setdefault(k["Table"], []).append(k["ReportId"])
        full: dict[tuple[str, int], dict[str, Any]] = {}
        if page:  # the page's time span bounds the second read (zone maps skip the rest of the table)
            lo, hi = min(k["Timestamp"] for k in page), max(k["Timestamp"] for k in page)
        for t, ids in wanted.items():
            src = schema.source(t)
            for row in self._run(src.select().where(src.c.DeviceId == device_id, src.c.Timestamp >= _naive(lo),
                                                    src.c.Timestamp <= _naive(hi), src.c.ReportId.in_(ids))):
                row.pop("TenantId", None)
                full[(t, row["ReportId"])] = {"Table": t, **{k: v for k, v in row.items() if v is not None}}
        return [full[(k["Table"], k["ReportId"])] for k in page if (k["Table"], k["ReportId"]) in full]

    def timeline_count(self, device_id: str, start: dt.datetime, end: dt.datetime, *,
                       tables: Sequence[str] | None = None, search: str | None = None, where: Where | None = None) -> int:
        parts = self._parts(device_id, start, end, tables, search, where)
        if not parts:
            return 0
        counts = sa.union_all(*(src.select(sa.func.count().label("n")).where(*conds)
                                for _t, src, conds in parts)).subquery("counts")
        return int(self._run(sa.select(sa.func.sum(counts.c.n).label("n")))[0]["n"] or 0)

    def event(self, table: str, device_id: str, report: int) -> dict[str, Any] | None:
        if table not in TABLES:
            return None
        src = schema.source(table)
        rows = self._run(src.select().where(src.c.DeviceId == device_id, src.c.ReportId == report).limit(1))
        return {k: v for k, v in rows[0].items() if v is not None and k != "TenantId"} if rows else None

    def process_tree(self, device_id: str, process_id: int, created: dt.datetime | None = None,
                     depth: int = 8, children: int = 200) -> dict[str, Any]:
        """The process (by pid and, if known, creation time), its ancestors (parent → … up to ``depth``) and
        the processes it started, from DeviceProcessEvents."""
        src = schema.source("DeviceProcessEvents")
        cols = [src.c[c] for c in ("Timestamp", "ReportId", "FileName", "FolderPath", "ProcessId", "ProcessCommandLine",
                                   "ProcessCreationTime", "AccountName", "InitiatingProcessId",
                                   "InitiatingProcessCreationTime", "InitiatingProcessFileName",
                                   "InitiatingProcessCommandLine", "InitiatingProcessFolderPath")]

        def find(pid: int, when: dt.datetime | None) -> dict[str, Any] | None:
            conds = [src.c.DeviceId == device_id, src.c.ProcessId == pid]
            if when is not None:
                conds.append(src.c.ProcessCreationTime == _naive(when))
            rows = self._run(src.select(*cols).where(*conds).order_by(src.c.Timestamp.desc()).limit(1))
            return rows[0] if rows else None

        me = find(process_id, created)
        chain: list[dict[str, Any]] = []
        node = me
        while node is not None and len(chain) < depth and node.get("InitiatingProcessId") is not None:
            parent = find(node["InitiatingProcessId"], node.get("InitiatingProcessCreationTime"))
            if parent is None:  # not recorded: what the child says of it
                chain.append({"ProcessId": node["InitiatingProcessId"], "FileName": node.get("InitiatingProcessFileName"),
                              "ProcessCommandLine": node.get("InitiatingProcessCommandLine"),
                              "FolderPath": node.get("InitiatingProcessFolderPath"),
                              "ProcessCreationTime": node.get("InitiatingProcessCreationTime")})
                break
            chain.append(parent)
            node = parent
        kids: list[dict[str, Any]] = []
        if me is not None:
            conds = [src.c.DeviceId == device_id, src.c.InitiatingProcessId == process_id]
            if me.get("ProcessCreationTime") is not None:
                conds.append(src.c.InitiatingProcessCreationTime == _naive(me["ProcessCreationTime"]))
            kids = self._run(src.select(*cols).where(*conds).order_by(src.c.Timestamp.asc()).limit(children))
        return {"process": me, "ancestors": list(reversed(chain)), "children": kids}

    def rows(self, table: str, where: Any = None, limit: int = 10_000, since: dt.datetime | None = None,
             columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Rows of one hunting table within the hunting window (the query layer of the next issues)."""
        src = schema.source(table)
        since = since or dt.datetime.now(UTC) - dt.timedelta(days=self.store.hunting_days)
        cols = [src.c[c] for c in columns] if columns else [c for c in src.c if c.name != "TenantId"]
        stmt = src.select(*cols).where(src.c.Timestamp >= _naive(since))
        if where is not None:
            stmt = stmt.where(where)
        return self._run(stmt.order_by(src.c.Timestamp.desc()).limit(limit))

    def sensor_stats(self, since: dt.datetime, device_id: str | None = None) -> dict[str, dict[str, Any]]:
        """Per device: last event time, events and drops received since ``since`` (agent batches)."""
        src = schema.source("EventBatches")
        stmt = (src.select(src.c.DeviceId, sa.func.max(src.c.LastEvent).label("lastEvent"),
                          sa.func.max(src.c.ReceivedAt).label("lastReceived"),
                          sa.func.sum(sa.case((src.c.ReceivedAt >= _naive(since), src.c.Events), else_=0)).label("events"),
                          sa.func.sum(sa.case((src.c.ReceivedAt >= _naive(since), src.c.Drops), else_=0)).label("drops"),
                          sa.func.sum(src.c.Drops).label("dropsTotal"))
                .where(src.c.Seq > 0).group_by(src.c.DeviceId))
        if device_id is not None:
            stmt = stmt.where(src.c.DeviceId == device_id)
        return {r.pop("DeviceId"): r for r in self._run(stmt)}


def _naive(value: dt.datetime) -> dt.datetime:
    """Engines store UTC without a zone."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
