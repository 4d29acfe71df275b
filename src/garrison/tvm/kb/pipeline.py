"""Import feed files into the knowledge base: detect, parse, merge aliases, upsert in batches.

Batches are written with multi-row statements (executemany) in one transaction each, so an import
of hundreds of thousands of records keeps memory bounded and survives an interruption with the
batches already written. Unchanged records (same content hash) are skipped, which makes re-imports
idempotent and cheap. Every change that matters to matching or to the event timeline is recorded
in ``kb_changes``; :class:`ImportResult` returns what re-matching needs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from garrison.store.base import utcnow
from garrison.store.db import Store
from garrison.store.models.kb import (
    Advisory,
    AdvisoryVulnerability,
    AffectedPackage,
    FeedSource,
    KbChange,
    Vulnerability,
)
from garrison.tvm.kb.archive import iter_inputs
from garrison.tvm.kb.cvss import pick_score, severity_from_score
from garrison.tvm.kb.records import (
    RANK_FALLBACK,
    AdvisoryRecord,
    Enrichment,
    FullState,
    Record,
    RecordError,
    ScoreTable,
    VulnInfo,
    canonical_json,
)
from garrison.tvm.kb.registry import Importer, detect, get_importer

log = logging.getLogger(__name__)

ADVISORY_BATCH = 500
ENRICH_BATCH = 5000
MAX_ERRORS = 1000
MAX_LIST_COLUMN = 100  # exploit_uris/exploit_types entries kept per vulnerability
EPSS_NOTABLE = 0.1  # an EPSS move at least this large is a timeline event

V = Vulnerability.__table__
A = Advisory.__table__
AV = AdvisoryVulnerability.__table__
AP = AffectedPackage.__table__
CH = KbChange.__table__

# Columns a record's VulnInfo can set, with the VulnInfo attribute that feeds each.
_INFO_COLUMNS = {
    "description": "description",
    "cvss_v3_vector": "cvss_v3_vector",
    "cvss_v3_score": "cvss_v3_score",
    "cvss_v4_vector": "cvss_v4_vector",
    "cvss_v4_score": "cvss_v4_score",
    "cwes": "cwes",
    "published_on": "published",
    "updated_on": "modified",
    "references": "references",
}
_VULN_COLUMNS = [c.name for c in V.columns]
# Changes of these columns are reported as vulnerability_updated.
_TRACKED = ("severity", "cvss_v3_score", "cvss_v4_score")

Progress = Callable[[str, int], None]
Accept = Callable[[str, Record], bool]


@dataclass
class ImportResult:
    records: int = 0  # records read (advisories and enrichments), changed or not
    vulnerabilities: int = 0  # distinct vulnerabilities those records name
    changed_packages: set[tuple[str, str]] = field(default_factory=set)
    changed_vulnerabilities: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    unchanged: int = 0  # records skipped because the KB already had them as given
    files: int = 0
    skipped: list[str] = field(default_factory=list)  # files in no known format
    by_importer: dict[str, int] = field(default_factory=dict)
    error_count: int = 0  # errors seen, including those beyond the kept list

    def add_error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)

    def merge(self, other: ImportResult) -> None:
        self.records += other.records
        self.vulnerabilities += other.vulnerabilities
        self.changed_packages |= other.changed_packages
        self.changed_vulnerabilities |= other.changed_vulnerabilities
        for e in other.errors:
            self.add_error(e)
        self.error_count += other.error_count - len(other.errors)
        self.unchanged += other.unchanged
        self.files += other.files
        self.skipped += other.skipped
        for k, n in other.by_importer.items():
            self.by_importer[k] = self.by_importer.get(k, 0) + n


def import_paths(
    store: Store,
    paths: str | Path | Sequence[str | Path],
    progress: Progress | None = None,
    *,
    importer: str | None = None,
    feed: str | None = None,
    feed_url: str | None = None,
    accept: Accept | None = None,
    now: dt.datetime | None = None,
) -> ImportResult:
    """Import files, directories of records and archives into the knowledge base.

    The format of each file is detected from its content (``importer`` forces one). ``progress`` is
    called after each file with its origin and the number of records read so far. ``feed`` names the
    ``feed_sources`` row to update (default: one row per importer used). ``accept`` (origin, record)
    keeps only some records (the demo replays a feed's history by date); ``now`` dates what the import
    writes (changes, feed status) instead of the clock.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    writer = _Writer(store, accept, now)
    forced = get_importer(importer) if importer else None
    for item in iter_inputs(list(paths)):
        writer.result.files += 1
        if item.error:
            writer.result.add_error(item.error)
            continue
        assert item.data is not None
        imp = forced or detect(item.data)
        if imp is None:
            writer.result.skipped.append(item.origin)
            continue
        writer.consume(imp, item.origin, item.data)
        if progress:
            progress(item.origin, writer.result.records)
    writer.finish(feed=feed, feed_url=feed_url)
    return writer.result


def import_bytes(store: Store, data: bytes, origin: str, importer: str | None = None) -> ImportResult:
    """Import one in-memory file (already decompressed)."""
    writer = _Writer(store)
    imp = get_importer(importer) if importer else detect(data)
    writer.result.files = 1
    if imp is None:
        writer.result.skipped.append(origin)
    else:
        writer.consume(imp, origin, data)
    writer.finish()
    return writer.result


# --- writing ----------------------------------------------------------------------------


def _upsert(session: Session, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert or update rows by primary key in one executemany; rows must share their keys."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        stmt: Any = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
        cols = [c for c in rows[0] if c not in keys]
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols})
        session.execute(stmt, rows)
        return
    # Other databases: split by what exists (not safe against a concurrent writer).
    key_col = table.c[keys[0]]
    existing = set(session.execute(select(key_col).where(key_col.in_([r[keys[0]] for r in rows]))).scalars())
    new = [r for r in rows if r[keys[0]] not in existing]
    old = [r for r in rows if r[keys[0]] in existing]
    if new:
        session.execute(insert(table), new)
    _bulk_update(session, table, old, keys[0])


def _bulk_update(session: Session, table: Table, rows: list[dict[str, Any]], key: str) -> None:
    """UPDATE … WHERE key = ? for many rows; rows are grouped by the columns they set."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(c for c in row if c != key)), []).append(row)
    for cols, group in groups.items():
        if not cols:
            continue
        stmt = (
            update(table)
            .where(table.c[key] == bindparam("b_" + key))
            .values({c: bindparam("b_" + c) for c in cols})
        )
        session.execute(stmt, [{"b_" + k: v for k, v in r.items()} for r in group])


_PLAIN = (str, int, float, bool, type(None))


def _plain_executemany(session: Session, table: Table, rows: list[dict[str, Any]], key: str | None) -> bool:
    """executemany straight on the DB-API cursor for rows of plain values (strings, numbers):
    SQLAlchemy's per-row parameter processing would cost more than the database work for 360k EPSS
    rows. ``key`` given: UPDATE by that key, else INSERT. Returns False when the rows do not qualify."""
    cols = [c for c in rows[0] if c != key]
    if not all(isinstance(v, _PLAIN) for r in rows for v in r.values()):
        return False
    if any(tuple(r) != tuple(rows[0]) for r in rows):
        return False
    conn = session.connection()
    style = conn.dialect.paramstyle
    ph = "?" if style == "qmark" else "%s" if style in ("format", "pyformat") else None
    if ph is None:
        return False
    prep = conn.dialect.identifier_preparer
    name = prep.format_table(table)
    if key is None:
        sql = (f"INSERT INTO {name} ({', '.join(prep.quote(c) for c in cols)}) "
               f"VALUES ({', '.join(ph for _ in cols)})")
        params = [tuple(r[c] for c in cols) for r in rows]
    else:
        sets = ", ".join(f"{prep.quote(c)} = {ph}" for c in cols)
        sql = f"UPDATE {name} SET {sets}, modified_at = CURRENT_TIMESTAMP WHERE {prep.quote(key)} = {ph}"
        params = [tuple(r[c] for c in cols) + (r[key],) for r in rows]
    conn.exec_driver_sql(sql, params)
    return True


def _new_vuln_row(vid: str, now: dt.datetime) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in _VULN_COLUMNS}
    row.update(
        id=vid, description="", severity="Unknown", cwes=[], references=[], kev=False, kev_ransomware="",
        public_exploit=False, exploit_verified=False, exploit_in_kit=False, exploit_types=[], exploit_uris=[],
        sources=[], info_ranks={}, created_at=now, modified_at=now,
    )
    return row


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _apply_info(row: dict[str, Any], info: VulnInfo, rank: int) -> None:
    """Merge what a source says, field by field: a source ranked at least as high as the one that set
    a field overwrites it; others only fill empty fields."""
    ranks = dict(row.get("info_ranks") or {})
    for col, attr in _INFO_COLUMNS.items():
        value = getattr(info, attr)
        if _empty(value):
            continue
        group = col.replace("_vector", "").replace("_score", "")  # a score and its vector go together
        if _empty(row.get(col)) or rank >= ranks.get(group, 0):
            row[col] = list(value) if isinstance(value, list) else value
            ranks[group] = max(rank, ranks.get(group, 0))
    # Severity: the best-ranked source's CVSS rating when a score is known, else the feeds' words for it
    # (order documented in garrison.tvm.kb.cvss).
    row["info_ranks"] = ranks
    picked = pick_score(row)
    if picked is not None:
        row["severity"] = severity_from_score(picked[1])
    elif info.severity and (row.get("severity") in (None, "Unknown") or rank >= ranks.get("severity", 0)):
        row["severity"] = info.severity
        ranks["severity"] = rank
    row["info_ranks"] = ranks


def _merge_list(current: list[Any], extra: Iterable[Any]) -> list[Any]:
    out = list(current or [])
    for item in extra:
        if item not in out and len(out) < MAX_LIST_COLUMN:
            out.append(item)
    return out


def _affected_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["ecosystem"], row["package"], canonical_json(row["ranges"]), canonical_json(row["versions"]),
        row["status"], row["severity"],
    )


class _Writer:
    def __init__(self, store: Store, accept: Accept | None = None, now: dt.datetime | None = None) -> None:
        self.store = store
        self.accept = accept
        self.fixed_now = now
        self.origin = ""
        self.result = ImportResult()
        self.advisories: list[AdvisoryRecord] = []
        self.enrichments: list[Enrichment] = []
        self.full_states: list[tuple[str, FullState]] = []
        self.alias_map: dict[str, str] = {}  # advisory id or alias -> vulnerability id (this run)
        self.vuln_ids: set[str] = set()
        self.per_importer: dict[str, dict[str, Any]] = {}
        self.initial: dict[str, bool] = {}

    # -- reading

    def _stats(self, name: str) -> dict[str, Any]:
        return self.per_importer.setdefault(
            name, {"files": 0, "records": 0, "unchanged": 0, "errors": 0, "first_errors": []}
        )

    def consume(self, imp: Importer, origin: str, data: bytes) -> None:
        stats = self._stats(imp.name)
        stats["files"] += 1
        self.origin = origin
        records = iter(imp.parse(data, origin))
        while True:
            try:
                rec = next(records)
            except StopIteration:
                break
            except Exception as exc:  # a parser bug on odd input must not stop the other files
                log.exception("importer %s failed on %s", imp.name, origin)
                self._error(stats, f"{origin}: {imp.name}: cannot parse: {exc}")
                break
            # Database errors are not caught: the batch rolls back and the import fails loudly.
            self._take(imp.name, rec, stats)

    def _error(self, stats: dict[str, Any], message: str) -> None:
        self.result.add_error(message)
        stats["errors"] += 1
        if len(stats["first_errors"]) < 5:
            stats["first_errors"].append(message)

    def now(self) -> dt.datetime:
        return self.fixed_now or utcnow()

    def _take(self, name: str, rec: Any, stats: dict[str, Any]) -> None:
        if self.accept is not None and isinstance(rec, (AdvisoryRecord, Enrichment, ScoreTable)) \
                and not self.accept(self.origin, rec):
            return
        if isinstance(rec, RecordError):
            self._error(stats, rec.message)
            return
        if isinstance(rec, FullState):
            self.full_states.append((name, rec))
            return
        if isinstance(rec, ScoreTable):
            n = len(rec.rows)
            self.result.records += n
            stats["records"] += n
            self.result.by_importer[name] = self.result.by_importer.get(name, 0) + n
            self.vuln_ids.update(r[0] for r in rec.rows)
            with self.store.system() as s:
                self._write_scores(s, name, rec)
            return
        self.result.records += 1
        stats["records"] += 1
        self.result.by_importer[name] = self.result.by_importer.get(name, 0) + 1
        if isinstance(rec, AdvisoryRecord):
            for w in rec.warnings:
                self._error(stats, w)
            self.advisories.append(rec)
            if len(self.advisories) >= ADVISORY_BATCH:
                self.flush_advisories()
        elif isinstance(rec, Enrichment):
            rec.source = name
            self.vuln_ids.add(rec.vulnerability_id)
            self.enrichments.append(rec)
            if len(self.enrichments) >= ENRICH_BATCH:
                self.flush_enrichments()

    def finish(self, feed: str | None = None, feed_url: str | None = None) -> None:
        self.flush_advisories()
        self.flush_enrichments()
        for name, state in self.full_states:
            if self.per_importer.get(name, {}).get("errors"):
                continue  # a partly unreadable catalog must not clear flags
            self._apply_full_state(name, state)
        self.result.vulnerabilities = len(self.vuln_ids)
        self._update_feeds(feed, feed_url)

    def _initial_load(self, session: Session, source: str) -> bool:
        if source not in self.initial:
            row = session.get(FeedSource, source)
            self.initial[source] = row is None or row.last_success is None
        return self.initial[source]

    # -- advisories

    def _resolve(self, session: Session, records: list[AdvisoryRecord]) -> dict[str, list[str]]:
        """Vulnerability ids per record: the CVEs it names, else what its aliases already resolve to."""
        out: dict[str, list[str]] = {}
        pending = [r for r in records if not r.vulnerabilities]
        lookup: dict[str, str] = {}
        if pending:
            keys = {k for r in pending for k in [r.id, *r.aliases] if k not in self.alias_map}
            keys_list = sorted(keys)
            for i in range(0, len(keys_list), 500):
                chunk = keys_list[i : i + 500]
                for adv, vid in session.execute(
                    select(AV.c.advisory_id, AV.c.vulnerability_id).where(AV.c.advisory_id.in_(chunk))
                ):
                    lookup.setdefault(adv, vid)
                for (vid,) in session.execute(select(V.c.id).where(V.c.id.in_(chunk))):
                    lookup.setdefault(vid, vid)
        for r in records:
            if r.vulnerabilities:
                vids = list(dict.fromkeys(r.vulnerabilities))
            else:
                vid = None
                for k in [r.id, *r.aliases]:
                    vid = self.alias_map.get(k) or lookup.get(k)
                    if vid:
                        break
                vids = [vid or r.id]
                for k in [r.id, *r.aliases]:
                    self.alias_map.setdefault(k, vids[0])
            out[r.id] = vids
        return out

    def flush_advisories(self) -> None:
        if not self.advisories:
            return
        batch = list({r.id: r for r in self.advisories}.values())  # last record of an id wins
        self.advisories = []
        with self.store.system() as s:
            self._write_advisories(s, batch)

    def _write_advisories(self, s: Session, batch: list[AdvisoryRecord]) -> None:
        now = self.now()
        hashes = {
            r.id: hashlib.sha256((r.source + "\n" + canonical_json(r.raw)).encode()).hexdigest() for r in batch
        }
        ids = [r.id for r in batch]
        existing = {
            found.id: found
            for found in s.execute(select(A.c.id, A.c.content_hash, A.c.withdrawn).where(A.c.id.in_(ids)))
        }
        resolved_all = self._resolve(s, batch)
        for r in batch:
            self.vuln_ids.update(resolved_all[r.id])
        changed = [r for r in batch if r.id not in existing or existing[r.id].content_hash != hashes[r.id]]
        self.result.unchanged += len(batch) - len(changed)
        changed_ids = {r.id for r in changed}
        for r in batch:
            if r.id not in changed_ids:
                self._stats(r.source)["unchanged"] += 1
        if not changed:
            return
        cids = [r.id for r in changed]

        old_links: dict[str, set[str]] = {}
        for adv, vid in s.execute(select(AV.c.advisory_id, AV.c.vulnerability_id).where(AV.c.advisory_id.in_(cids))):
            old_links.setdefault(adv, set()).add(vid)
        old_affected: dict[str, list[dict[str, Any]]] = {}
        for found in s.execute(
            select(AP.c.advisory_id, AP.c.ecosystem, AP.c.package, AP.c.ranges, AP.c.versions, AP.c.status,
                   AP.c.severity).where(AP.c.advisory_id.in_(cids))
        ):
            old_affected.setdefault(found.advisory_id, []).append(dict(found._mapping))

        all_vids = {v for r in changed for v in resolved_all[r.id]} | {v for vs in old_links.values() for v in vs}
        vrows: dict[str, dict[str, Any]] = {}
        vid_list = sorted(all_vids)
        for i in range(0, len(vid_list), 500):
            for found in s.execute(select(V).where(V.c.id.in_(vid_list[i : i + 500]))):
                vrows[found.id] = dict(found._mapping)
        before = {vid: dict(row) for vid, row in vrows.items()}
        created: set[str] = set()

        adv_rows: list[dict[str, Any]] = []
        link_rows: list[dict[str, Any]] = []
        aff_rows: list[dict[str, Any]] = []
        # per vulnerability: which advisories were added/removed/updated
        events: dict[str, dict[str, list[str]]] = {}
        changes: list[dict[str, Any]] = []

        for r in changed:
            vids = resolved_all[r.id]
            was = existing.get(r.id)
            new_aff = [
                {
                    "advisory_id": r.id, "ecosystem": a.ecosystem, "package": a.package, "ranges": a.ranges,
                    "versions": a.versions, "status": a.status, "severity": a.severity,
                }
                for a in r.affected
            ]
            old_keys = sorted(_affected_key(x) for x in old_affected.get(r.id, []))
            new_keys = sorted(_affected_key(x) for x in new_aff)
            # What matching must look at again: rows of an advisory that became (in)active, or rows that differ.
            active_before = was is not None and not was.withdrawn
            active_now = not r.withdrawn
            if active_before != active_now:
                diff = set(old_keys) | set(new_keys)
            elif active_now and old_keys != new_keys:
                diff = set(old_keys) ^ set(new_keys)
            elif active_now and old_links.get(r.id, set()) != set(vids):
                # Same packages, other CVEs (secdb adds CVEs to a fixed version, an alias appears):
                # every package of the advisory now has other findings.
                diff = set(old_keys) | set(new_keys)
            else:
                diff = set()
            self.result.changed_packages.update((k[0], k[1]) for k in diff)
            packages_changed = bool(diff)

            adv_rows.append(
                {
                    "id": r.id, "source": r.source, "modified": r.modified, "published": r.published,
                    "withdrawn": r.withdrawn, "summary": r.summary or "", "aliases": r.aliases, "raw": r.raw,
                    "content_hash": hashes[r.id], "imported_at": now,
                }
            )
            aff_rows.extend(new_aff)
            single = len(vids) == 1
            for vid in vids:
                row = vrows.get(vid)
                if row is None:
                    row = vrows[vid] = _new_vuln_row(vid, now)
                    created.add(vid)
                info = r.info.get(vid)
                if info:
                    _apply_info(row, info, r.rank)
                rec_info = r.info.get("*")
                if rec_info:
                    _apply_info(row, rec_info, r.rank if single else RANK_FALLBACK)
                srcs = list(row["sources"] or [])
                ev = events.setdefault(vid, {"added": [], "removed": [], "updated": [], "withdrawn": []})
                if r.withdrawn:
                    if r.id in srcs:  # an active advisory was withdrawn
                        srcs.remove(r.id)
                        ev["withdrawn"].append(r.id)
                elif r.id not in srcs:
                    srcs.append(r.id)
                    ev["added"].append(r.id)
                elif packages_changed:
                    ev["updated"].append(r.id)
                row["sources"] = srcs
                link_rows.append({"advisory_id": r.id, "vulnerability_id": vid})
            for vid in old_links.get(r.id, set()) - set(vids):
                row = vrows.get(vid)
                if row and r.id in (row["sources"] or []):
                    row["sources"] = [x for x in row["sources"] if x != r.id]
                    events.setdefault(vid, {"added": [], "removed": [], "updated": [], "withdrawn": []})[
                        "removed"
                    ].append(r.id)

        # Vulnerability rows and timeline events.
        source_of: dict[str, str] = {}
        for r in changed:
            for vid in resolved_all[r.id]:
                source_of.setdefault(vid, r.source)
        vuln_rows: list[dict[str, Any]] = []
        for vid, row in vrows.items():
            old = before.get(vid)
            ev = events.get(vid, {"added": [], "removed": [], "updated": [], "withdrawn": []})
            source = source_of.get(vid, changed[0].source)
            field_changes = {}
            if old is not None:
                field_changes = {c: [old[c], row[c]] for c in _TRACKED if old[c] != row[c]}
            row_changed = old is None or any(old[c] != row[c] for c in _VULN_COLUMNS if c != "modified_at")
            if not row_changed:
                continue
            row["modified_at"] = now
            vuln_rows.append(row)
            had_sources = bool(old and old["sources"])
            details: dict[str, Any] = {}
            if self._initial_load(s, source):
                details["initial_load"] = True
            if row["sources"] and not had_sources:
                changes.append(self._change(now, source, "vulnerability_added", vid, {
                    **details, "sources": row["sources"], "severity": row["severity"],
                }))
                self.result.changed_vulnerabilities.add(vid)
            elif ev["added"] or ev["removed"] or ev["updated"] or field_changes:
                payload = {k: v for k, v in (
                    ("advisories_added", ev["added"]), ("advisories_removed", ev["removed"]),
                    ("advisories_updated", ev["updated"]), ("changed", field_changes),
                ) if v}
                changes.append(self._change(now, source, "vulnerability_updated", vid, {**details, **payload}))
                self.result.changed_vulnerabilities.add(vid)
            for adv in ev["withdrawn"]:
                changes.append(self._change(now, source, "advisory_withdrawn", vid, {"advisory": adv}))
                self.result.changed_vulnerabilities.add(vid)
        written = {r["id"] for r in vuln_rows}
        for vid, ev in events.items():
            if vid not in written and (ev["updated"] or ev["withdrawn"]):
                source = source_of.get(vid, changed[0].source)
                if ev["updated"]:
                    changes.append(self._change(now, source, "vulnerability_updated", vid,
                                                {"advisories_updated": ev["updated"]}))
                for adv in ev["withdrawn"]:
                    changes.append(self._change(now, source, "advisory_withdrawn", vid, {"advisory": adv}))
                self.result.changed_vulnerabilities.add(vid)

        _upsert(s, V, [_vuln_db_row(r) for r in vuln_rows], ["id"])
        _upsert(s, A, adv_rows, ["id"])
        s.execute(delete(AP).where(AP.c.advisory_id.in_(cids)))
        s.execute(delete(AV).where(AV.c.advisory_id.in_(cids)))
        if aff_rows:
            s.execute(insert(AP), aff_rows)
        if link_rows:
            s.execute(insert(AV), list({(x["advisory_id"], x["vulnerability_id"]): x for x in link_rows}.values()))
        if changes:
            s.execute(insert(CH), changes)

    @staticmethod
    def _change(now: dt.datetime, source: str, kind: str, vid: str | None, details: dict[str, Any]) -> dict[str, Any]:
        return {"at": now, "source": source, "kind": kind, "vulnerability_id": vid, "details": details}

    # -- enrichments

    def flush_enrichments(self) -> None:
        if not self.enrichments:
            return
        batch = self.enrichments
        self.enrichments = []
        with self.store.system() as s:
            self._write_enrichments(s, batch)

    def _write_enrichments(self, s: Session, batch: list[Enrichment]) -> None:
        now = self.now()
        merged: dict[str, Enrichment] = {}
        for e in batch:
            cur = merged.get(e.vulnerability_id)
            if cur is None:
                merged[e.vulnerability_id] = Enrichment(
                    e.vulnerability_id, dict(e.values), {k: list(v) for k, v in e.append.items()}, e.info, e.rank,
                    e.source,
                )
            else:
                cur.values.update(e.values)
                for k, v in e.append.items():
                    cur.append[k] = _merge_list(cur.append.get(k, []), v)
                cur.info = cur.info or e.info
        cols = {"id", "sources", "info_ranks", "severity", "description"}
        for e in merged.values():
            cols |= set(e.values) | set(e.append)
            if e.info:
                cols |= set(_INFO_COLUMNS)
        if "kev" in cols or "public_exploit" in cols or "exploit_in_kit" in cols:
            cols |= {"kev", "public_exploit", "exploit_in_kit"}
        col_list = [V.c[c] for c in sorted(cols)]
        ids = sorted(merged)
        existing: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), 2000):
            for found in s.execute(select(*col_list).where(V.c.id.in_(ids[i : i + 2000]))):
                existing[found.id] = dict(found._mapping)

        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for vid, e in merged.items():
            src = e.source or "feed"
            values = e.values
            old = existing.get(vid)
            row: dict[str, Any] = dict(old) if old else {"id": vid}
            new_row = old is None
            for k, v in values.items():
                row[k] = v
            for k, extra in e.append.items():
                row[k] = _merge_list(row.get(k) or [], extra)
            if e.info:
                full = _new_vuln_row(vid, now) if new_row else None
                if full is not None:
                    full.update(row)
                    row = full
                _apply_info(row, e.info, e.rank)
            diff = [k for k in row if new_row or row[k] != old.get(k)]  # type: ignore[union-attr]
            if not new_row and not diff:
                self.result.unchanged += 1
                continue
            self.result.changed_vulnerabilities.add(vid)
            was = old or {}
            if row.get("kev") and not was.get("kev"):
                changes.append(self._change(now, src, "exploit_verified", vid, {
                    "kev_date_added": str(row.get("kev_date_added") or ""),
                    "kev_ransomware": row.get("kev_ransomware") or "",
                }))
            if row.get("public_exploit") and not was.get("public_exploit") and not row.get("kev"):
                changes.append(self._change(now, src, "exploit_added", vid, {"uris": row.get("exploit_uris") or []}))
            if row.get("exploit_in_kit") and not was.get("exploit_in_kit"):
                changes.append(self._change(now, src, "exploit_in_kit", vid, {"uris": row.get("exploit_uris") or []}))
            if (
                "epss" in values and was.get("epss") is not None and row.get("epss") is not None
                and abs(row["epss"] - was["epss"]) >= EPSS_NOTABLE
            ):
                changes.append(self._change(now, src, "epss_changed", vid, {"old": was["epss"], "new": row["epss"]}))
            if new_row:
                # Only the columns this feed sets; the others take their (server) defaults, which keeps
                # a 360k-row EPSS import from serialising empty lists and timestamps.
                inserts.append(row)
            else:
                upd = {k: row[k] for k in diff}
                upd["id"] = vid
                updates.append(upd)
        for group in _group_by_keys(inserts):
            if not _plain_executemany(s, V, group, None):
                s.execute(insert(V), [{**r, "created_at": now, "modified_at": now} for r in group])
        for group in _group_by_keys(updates):
            if not _plain_executemany(s, V, group, "id"):
                _bulk_update(s, V, [{**r, "modified_at": now} for r in group], "id")
        if changes:
            s.execute(insert(CH), changes)

    def _write_scores(self, s: Session, source: str, table: ScoreTable) -> None:
        """Set plain columns of many vulnerabilities; rows that do not exist yet are created."""
        now = self.now()
        cols = table.columns
        col_objs = [V.c.id, *(V.c[c] for c in cols)]
        ids = [r[0] for r in table.rows]
        existing: dict[str, tuple[Any, ...]] = {}
        for i in range(0, len(ids), 5000):
            for found in s.execute(select(*col_objs).where(V.c.id.in_(ids[i : i + 5000]))):
                existing[found[0]] = tuple(found[1:])
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        notable = "epss" in cols
        epss_at = cols.index("epss") if notable else 0
        for r in table.rows:
            vid, values = r[0], r[1:]
            old = existing.get(vid)
            if old is None:
                inserts.append(dict(zip(("id", *cols), r, strict=True)))
            elif old == values:
                self.result.unchanged += 1
                continue
            else:
                updates.append(dict(zip(("id", *cols), r, strict=True)))
                if notable and old[epss_at] is not None and abs(values[epss_at] - old[epss_at]) >= EPSS_NOTABLE:
                    changes.append(self._change(now, source, "epss_changed", vid,
                                                {"old": old[epss_at], "new": values[epss_at]}))
            self.result.changed_vulnerabilities.add(vid)
        if inserts and not _plain_executemany(s, V, inserts, None):
            s.execute(insert(V), [{**x, "created_at": now, "modified_at": now} for x in inserts])
        if updates and not _plain_executemany(s, V, updates, "id"):
            _bulk_update(s, V, [{**x, "modified_at": now} for x in updates], "id")
        if changes:
            s.execute(insert(CH), changes)

    def _apply_full_state(self, name: str, state: FullState) -> None:
        now = self.now()
        with self.store.system() as s:
            flagged = set(s.execute(select(V.c.id).where(V.c[state.flag].is_(True))).scalars())
            gone = sorted(flagged - state.ids)
            if not gone:
                return
            values: dict[str, Any] = {state.flag: False}
            if state.flag == "kev":
                values.update(kev_date_added=None, kev_due_date=None, kev_ransomware="", exploit_verified=False)
            _bulk_update(s, V, [{"id": vid, **values, "modified_at": now} for vid in gone], "id")
            s.execute(insert(CH), [self._change(now, name, f"{state.flag}_removed", vid, {}) for vid in gone])
            self.result.changed_vulnerabilities.update(gone)

    # -- feed bookkeeping

    def _update_feeds(self, feed: str | None, feed_url: str | None) -> None:
        now = self.now()
        rows: dict[str, dict[str, Any]]
        if feed is not None:
            totals: dict[str, Any] = {"files": self.result.files, "records": self.result.records, "unchanged": self.result.unchanged,
                      "errors": self.result.error_count, "first_errors": self.result.errors[:5]}
            rows = {feed: totals}
        else:
            rows = self.per_importer
        with self.store.system() as s:
            for name, st in rows.items():
                row = s.get(FeedSource, name)
                if row is None:
                    row = FeedSource(name=name, stats={})
                    s.add(row)
                row.last_sync = now
                if feed_url:
                    row.url = feed_url
                # A feed that yielded records succeeded even if some records were malformed.
                if st["errors"] == 0 or st["records"] > 0:
                    row.last_success = now
                row.record_count = st["records"]
                row.error = "\n".join(st["first_errors"]) if st["errors"] else None
                row.stats = {k: st[k] for k in ("files", "records", "unchanged", "errors")}


def _group_by_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r), []).append(r)
    return list(groups.values())


def _vuln_db_row(row: dict[str, Any]) -> dict[str, Any]:
    return {c: row.get(c) for c in _VULN_COLUMNS}
