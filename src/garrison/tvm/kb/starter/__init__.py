"""The starter knowledge base: real public records shipped with Garrison so that a fresh install
(and the demo) shows real findings offline. See ``data/PROVENANCE.md``; rebuilt from the shared
data set by ``scripts/build_starter_kb.py``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from importlib import resources
from pathlib import Path

from garrison.store.db import Store
from garrison.store.models.kb import FeedSource
from garrison.tvm.kb.pipeline import ImportResult, Progress, import_paths

FEED = "starter"


def starter_dir() -> Path:
    return Path(str(resources.files(__name__).joinpath("data")))


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def load_starter(store: Store, progress: Progress | None = None, *, force: bool = False) -> ImportResult:
    """Import the bundled records. Idempotent: when this exact starter set was loaded before, nothing
    is read again (``force`` re-imports, which is still a no-op for unchanged records)."""
    files = sorted(p for p in starter_dir().iterdir() if p.is_file() and p.suffix in (".gz", ".json"))
    digest = _digest(files)
    with store.system() as s:
        row = s.get(FeedSource, FEED)
        if not force and row is not None and (row.stats or {}).get("sha256") == digest:
            return ImportResult(unchanged=int((row.stats or {}).get("records", 0)))
    result = import_paths(store, files, progress)
    with store.system() as s:
        row = s.get(FeedSource, FEED)
        if row is None:
            row = FeedSource(name=FEED, stats={})
            s.add(row)
        row.last_sync = row.last_success = None if result.records == 0 else _now()
        row.record_count = result.records
        row.error = "\n".join(result.errors[:5]) or None
        row.stats = {"sha256": digest, "records": result.records, "files": len(files)}
    return result


def _now() -> dt.datetime:
    from garrison.store.base import utcnow

    return utcnow()
