"""The durable spool: every upload is written here before it is sent.

A batch leaves the spool only when the server acknowledged its sequence number, so
neither a server outage nor an agent restart loses what was collected. Sequence
numbers come from a counter in the same database and are never reused, not even after
the batches that carried them were acknowledged or dropped.

A re-installed agent (fresh spool) on the same machine enrolls as the same device, and the
server already holds that device's earlier sequence numbers. So at each enrollment the
counter jumps to at least the number of seconds since 2024-01-01 (:func:`enrollment_floor`):
the new installation starts above anything the old one used, as long as that one sent
fewer than one batch per second on average.

Each row holds the complete wire document of the batch (``garrison.protocol.Batch``
as JSON), gzip-compressed: it is what the transport sends, byte for byte.

The spool is bounded by ``max_bytes`` (sum of the compressed rows). When a new batch
does not fit, the oldest batches are dropped, first those of *re-creatable* kinds —
state the collectors report again in full on their next run (device facts, runtime
use, assessment results) — then the oldest of any kind. Each kind's rank is its
:class:`SpoolPolicy` in ``SPOOL_POLICIES``, declared by the collector that sends it. Every drop
is counted per kind (``drops``); the counters are cumulative and reported in each
check-in. Inventory is dropped last because a lost delta forces a full resync.

Telemetry kinds (``events``) have a quota of their own (half the spool by default): a new
events batch over the quota evicts the oldest *events* batches, never another kind's, so a
flood of telemetry during an outage cannot push inventories out. When the whole spool is
full, telemetry goes after the re-creatable kinds and before everything else.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.protocol import Batch
from garrison.registry import Registry

EVENTS_KIND = "events"  # behaviour telemetry (garrison.agent.sensors), sent to /agent/v1/events
DEFAULT_TELEMETRY_SHARE = 0.5  # of max_bytes, per telemetry kind

# Drop ranks: when the spool is full, lower ranks go first (oldest first within a rank).
RECREATE = 0  # state a collector sends again in full on its next run (device facts, runtime use, assessment)
TELEMETRY = 1  # behaviour telemetry: has its own quota too
KEEP = 2  # deltas whose loss forces a full resync (inventory): the default for a kind without a policy


@dataclass(frozen=True)
class SpoolPolicy:
    """How the spool treats one upload kind: its drop rank and, optionally, the share of the spool its
    pending batches may hold (a new batch over it evicts the oldest batches of that kind only)."""

    kind: str
    drop_rank: int = KEEP
    quota_share: float | None = None


SPOOL_POLICIES: Registry[SpoolPolicy] = Registry("spool policy", package="garrison.agent.collectors",
                                                 name_of=lambda p: p.kind, isolate_failures=True)
"""Kind → policy. Collectors declare theirs (``Collector.drop_rank``: registering a collector registers
a policy for each kind it sends; the collectors package is discovered); telemetry's is below."""
SPOOL_POLICIES.add(EVENTS_KIND, SpoolPolicy(EVENTS_KIND, TELEMETRY, DEFAULT_TELEMETRY_SHARE), discover=False)
REJECTED = "rejected"  # drop counter of batches the server refused for good (413/422)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    raw_size INTEGER NOT NULL,
    size INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS drops (kind TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS action_results (
    action_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    posted INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class SpooledBatch:
    seq: int
    kind: str
    created_at: str
    raw_size: int  # bytes of the JSON document
    size: int  # bytes stored (gzip)
    body: bytes  # gzip of the JSON document

    def json_bytes(self) -> bytes:
        return gzip.decompress(self.body)

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.json_bytes())
        return doc


class SpoolError(RuntimeError):
    pass


class Spool:
    """SQLite (WAL) store of pending batches; safe to share between threads of one process."""

    def __init__(self, path: Path, max_bytes: int = 64 * 1024 * 1024,
                 quotas: dict[str, int] | None = None) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        # kind → most bytes its pending batches may hold (the policies' quota shares by default)
        self.quotas = quotas if quotas is not None else {
            p.kind: int(max_bytes * p.quota_share) for p in SPOOL_POLICIES.values() if p.quota_share is not None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: an acknowledged put survives power loss, not only a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc
        try:
            self.path.chmod(0o600)
        except OSError:
            pass

    # --- writing ------------------------------------------------------------------------

    def put(self, kind: str, payload: dict[str, Any], created_at: dt.datetime | None = None) -> int | None:
        """Spool one upload; returns its sequence number (None when it alone exceeds the bound)."""
        created = created_at or dt.datetime.now(dt.UTC)
        with self._lock, self._tx() as db:
            seq = self._next_seq(db)
            doc = Batch(seq=seq, kind=kind, created_at=created, payload=payload)
            raw = doc.model_dump_json().encode()
            body = gzip.compress(raw, compresslevel=6, mtime=0)
            quota = self.quotas.get(kind)
            if len(body) > self.max_bytes or (quota is not None and len(body) > quota):
                self._count_drop(db, kind, 1)
                return None
            if quota is not None:
                self._within_quota(db, kind, quota, len(body))
            self._make_room(db, len(body))
            db.execute(
                "INSERT INTO batches(seq, kind, created_at, raw_size, size, body) VALUES (?,?,?,?,?,?)",
                (seq, kind, created.isoformat(), len(raw), len(body), body),
            )
            return seq

    def raise_seq_floor(self, floor: int) -> None:
        """Make the next sequence number at least ``floor`` (never lowers it)."""
        with self._lock, self._tx() as db:
            row = db.execute("SELECT value FROM counters WHERE name = 'next_seq'").fetchone()
            if row is None or int(row[0]) < floor:
                db.execute("INSERT INTO counters(name, value) VALUES ('next_seq', ?) "
                           "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (floor,))

    def ack(self, seq: int) -> None:
        """The server has the batch (accepted or duplicate): it leaves the spool."""
        with self._lock, self._tx() as db:
            db.execute("DELETE FROM batches WHERE seq = ?", (seq,))

    def reject(self, seq: int) -> None:
        """The server can never accept this batch (too large, invalid): drop and count it."""
        with self._lock, self._tx() as db:
            if db.execute("DELETE FROM batches WHERE seq = ?", (seq,)).rowcount:
                self._count_drop(db, REJECTED, 1)

    def clear(self) -> None:
        """Forget every pending batch and result (offboarding); counters stay."""
        with self._lock, self._tx() as db:
            db.execute("DELETE FROM batches")
            db.execute("DELETE FROM action_results")

    # --- reading ------------------------------------------------------------------------

    def pending(self, limit: int = 100, after: int = 0) -> list[SpooledBatch]:
        """The oldest pending batches (seq > ``after``), in the order they must be sent in."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, created_at, raw_size, size, body FROM batches WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [SpooledBatch(*row) for row in rows]

    def pending_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])

    def pending_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM batches").fetchone()[0])

    def pending_kinds(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT kind, COUNT(*) FROM batches GROUP BY kind").fetchall()
        return {k: int(n) for k, n in rows}

    def drops(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT kind, count FROM drops ORDER BY kind").fetchall()
        return {k: int(n) for k, n in rows}

    def last_seq(self) -> int:
        """The highest sequence number ever handed out (0 when none)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'next_seq'").fetchone()
        return int(row[0]) - 1 if row else 0

    # --- action results -----------------------------------------------------------------
    # Results of actions the agent ran are kept until posted, so a result survives an
    # outage and an action delivered twice is not run twice.

    def add_result(self, action_id: str, body: dict[str, Any]) -> None:
        with self._lock, self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO action_results(action_id, body, created_at) VALUES (?,?,?)",
                (action_id, json.dumps(body), dt.datetime.now(dt.UTC).isoformat()),
            )

    def replace_result(self, action_id: str, body: dict[str, Any]) -> None:
        """The final result of an action that first reported InProgress (a background scan): posted again."""
        with self._lock, self._tx() as db:
            db.execute("INSERT INTO action_results(action_id, body, created_at) VALUES (?,?,?) "
                       "ON CONFLICT(action_id) DO UPDATE SET body = excluded.body, posted = 0",
                       (action_id, json.dumps(body), dt.datetime.now(dt.UTC).isoformat()))

    def has_result(self, action_id: str) -> bool:
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM action_results WHERE action_id = ?", (action_id,)
            ).fetchone() is not None

    def unposted_results(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM action_results WHERE posted = 0 ORDER BY created_at"
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def mark_posted(self, action_id: str) -> None:
        cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).isoformat()
        with self._lock, self._tx() as db:
            db.execute("UPDATE action_results SET posted = 1 WHERE action_id = ?", (action_id,))
            # Remember posted ids for a while (re-delivery), then forget them.
            db.execute("DELETE FROM action_results WHERE posted = 1 AND created_at < ?", (cutoff,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- internals ----------------------------------------------------------------------

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    @staticmethod
    def _next_seq(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM counters WHERE name = 'next_seq'").fetchone()
        seq = int(row[0]) if row else 1
        db.execute(
            "INSERT INTO counters(name, value) VALUES ('next_seq', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (seq + 1,),
        )
        return seq

    @staticmethod
    def _count_drop(db: sqlite3.Connection, kind: str, n: int) -> None:
        db.execute(
            "INSERT INTO drops(kind, count) VALUES (?, ?) ON CONFLICT(kind) DO UPDATE SET count = count + ?",
            (kind, n, n),
        )

    def _within_quota(self, db: sqlite3.Connection, kind: str, quota: int, needed: int) -> None:
        """Drop the oldest batches of ``kind`` until ``needed`` more bytes fit in its quota."""
        used = int(db.execute("SELECT COALESCE(SUM(size), 0) FROM batches WHERE kind = ?", (kind,)).fetchone()[0])
        if used + needed <= quota:
            return
        dropped = []
        for seq, size in db.execute("SELECT seq, size FROM batches WHERE kind = ? ORDER BY seq", (kind,)):
            if used + needed <= quota:
                break
            dropped.append(seq)
            used -= size
        for seq in dropped:
            db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
        self._count_drop(db, kind, len(dropped))

    def _make_room(self, db: sqlite3.Connection, needed: int) -> None:
        used = int(db.execute("SELECT COALESCE(SUM(size), 0) FROM batches").fetchone()[0])
        if used + needed <= self.max_bytes:
            return
        # Candidates in drop order: by the kinds' drop ranks (a kind with a quota counts as telemetry),
        # oldest first within a rank.
        ranks = {p.kind: p.drop_rank for p in SPOOL_POLICIES.values()}
        ranks |= {k: min(ranks.get(k, TELEMETRY), TELEMETRY) for k in self.quotas}
        whens = " ".join("WHEN ? THEN ?" for _ in ranks)
        order = f"CASE kind {whens} ELSE {KEEP} END, seq" if ranks else "seq"
        victims = db.execute(f"SELECT seq, kind, size FROM batches ORDER BY {order}",
                             tuple(v for kv in ranks.items() for v in kv))
        dropped: list[tuple[int, str]] = []
        for seq, kind, size in victims:
            if used + needed <= self.max_bytes:
                break
            dropped.append((seq, kind))
            used -= size
        for seq, kind in dropped:
            db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            self._count_drop(db, kind, 1)


SEQ_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z


def enrollment_floor(now: float | None = None) -> int:
    """First sequence number after an enrollment: seconds since 2024-01-01 (fits 32 bits until 2092)."""
    return max(1, int((time.time() if now is None else now) - SEQ_EPOCH))


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT/ROLLBACK on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def iter_documents(spool: Spool) -> Iterator[dict[str, Any]]:
    """Every pending batch as a wire document, in order (diagnostics and tests)."""
    last = 0
    while chunk := spool.pending(limit=1000, after=last):
        for b in chunk:
            yield b.document()
        last = chunk[-1].seq
