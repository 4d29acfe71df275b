"""The starter knowledge base: real public records shipped with Garrison so that a fresh install
(and the demo) shows real findings offline. See ``data/PROVENANCE.md``; rebuilt from the shared
data set by ``scripts/build_starter_kb.py``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from garrison.store.db import Store
from garrison.store.models.kb import FeedSource
from garrison.tvm.kb.pipeline import ImportResult, Progress, import_paths
from garrison.tvm.kb.records import Record, record_date

FEED = "starter"
# Files whose records carry no date of their own, dated by their snapshot (data/PROVENANCE.md).
FILE_DATES = {"epss.csv.gz": dt.date(2026, 8, 16)}


def starter_dir() -> Path:
    return Path(str(resources.files(__name__).joinpath("data")))


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def dated(origin: str, rec: Record) -> dt.date | None:
    """The day a bundled record was last changed: its own date, else its file's snapshot date."""
    return record_date(rec) or FILE_DATES.get(Path(origin.split("!")[0]).name)


def in_window(after: dt.date | None, until: dt.date | None,
              latest: dict[str, str] | None = None) -> Callable[[str, Record], bool]:
    """Records dated in (after, until]; undated ones belong to the first window (``after`` None).
    ``latest`` collects each file's latest record date (ISO; "" for a file without dates)."""
    def accept(origin: str, rec: Record) -> bool:
        day = dated(origin, rec)
        if latest is not None:
            name = Path(origin.split("!")[0]).name
            latest[name] = max(latest.get(name, ""), day.isoformat() if day else "")
        if day is None:
            return after is None
        return (after is None or day > after) and (until is None or day <= until)
    return accept


def load_starter(store: Store, progress: Progress | None = None, *, force: bool = False,
                 after: dt.date | None = None, until: dt.date | None = None,
                 now: dt.datetime | None = None) -> ImportResult:
    """Import the bundled records. Idempotent: when this exact starter set was loaded before, nothing
    is read again (``force`` re-imports, which is still a no-op for unchanged records).

    ``after``/``until`` import only the records last changed in (after, until] (see :func:`in_window`),
    written as of ``now``: the demo replays the set's history in dated steps. The last step (``until``
    None) reads the whole set, as a feed sync would (what is in already counts as unchanged); the set
    counts as loaded then."""
    files = sorted(p for p in starter_dir().iterdir() if p.is_file() and p.suffix in (".gz", ".json"))
    digest = _digest(files)
    with store.system() as s:
        row = s.get(FeedSource, FEED)
        if not force and row is not None and (row.stats or {}).get("sha256") == digest:
            return ImportResult(unchanged=int((row.stats or {}).get("records", 0)))
        latest: dict[str, str] = dict((row.stats or {}).get("latest", {})) if row is not None else {}
    if until is None:  # the whole set (or the last step of a replay: what is in already is unchanged)
        result = import_paths(store, files, progress, now=now)
    else:  # one step of a replay; a later one reads only the files that have records changed after ``after``
        todo = [f for f in files if after is None or latest.get(f.name, "9999") > after.isoformat()]
        result = import_paths(store, todo, progress, accept=in_window(after, until, latest), now=now)
    with store.system() as s:
        row = s.get(FeedSource, FEED)
        if row is None:
            row = FeedSource(name=FEED, stats={})
            s.add(row)
        if until is not None:  # not complete yet
            row.stats = {"latest": latest}
            return result
        row.last_sync = row.last_success = None if result.records == 0 else (now or _now())
        row.record_count = result.records
        row.error = "\n".join(result.errors[:5]) or None
        row.stats = {"sha256": digest, "records": result.records, "files": len(files)}
    return result


def _now() -> dt.datetime:
    from garrison.store.base import utcnow

    return utcnow()
