#!/usr/bin/env python3
"""Import speed of the knowledge base on real data from the shared data set.

    PYTHONPATH=src python bench/bench_kb_import.py [--shared ../shared/data] [--db sqlite:///tmp/kb.db]

Measures: OSV records as JSON in an all.zip (the PyPA advisories, re-encoded as OSV JSON, times 4
with distinct ids to reach ~10k records), a re-import of the same zip (all unchanged), the full EPSS
file (360k rows) into an empty KB and again with every score changed, and the starter KB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import yaml

from garrison.store.db import Store
from garrison.store.models import Base
from garrison.tvm.kb import import_paths, load_starter


def _timed(label: str, fn, count_of=lambda r: r.records) -> None:
    start = time.perf_counter()
    result = fn()
    took = time.perf_counter() - start
    n = count_of(result)
    print(f"{label:<44} {n:>8} records {took:7.2f} s {n / took if took else 0:>10,.0f}/s"
          f"  errors={result.error_count}")


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(root.parent / "shared" / "data"))
    ap.add_argument("--db", default=None, help="SQLAlchemy URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    vuln = Path(args.shared) / "vuln"
    if not vuln.is_dir():
        print(f"{vuln} not found", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    store = Store(args.db or f"sqlite:///{tmp / 'kb.db'}")
    Base.metadata.drop_all(store.engine)
    Base.metadata.create_all(store.engine)

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    records = [yaml.load(p.read_text(), Loader=loader)
               for p in sorted((vuln / "osv" / "pypa" / "vulns").glob("*/*.yaml"))]
    zpath = tmp / "all.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for copy in range(4):
            for rec in records:
                rec = dict(rec, id=f"{rec['id']}-{copy}")
                zf.writestr(f"{rec['id']}.json", json.dumps(rec, default=str))
    _timed("OSV all.zip (JSON), empty KB", lambda: import_paths(store, zpath))
    _timed("OSV all.zip again (unchanged)", lambda: import_paths(store, zpath))
    epss = vuln / "epss" / "epss_scores.csv.gz"
    _timed("EPSS 360k rows, new", lambda: import_paths(store, epss))
    lines = gzip.decompress(epss.read_bytes()).decode().splitlines()
    shifted = [lines[0]] + [f"{c},{min(1.0, float(e) + 0.0001):.9f},{p}" for c, e, p in
                            (line.split(",") for line in lines[1:])]
    changed = tmp / "epss2.csv.gz"
    changed.write_bytes(gzip.compress("\n".join(shifted).encode()))
    _timed("EPSS 360k rows, every score changed", lambda: import_paths(store, changed))
    _timed("EPSS 360k rows, unchanged", lambda: import_paths(store, changed))
    fresh = Store(f"sqlite:///{tmp / 'starter.db'}") if args.db is None else store
    if args.db is None:
        Base.metadata.create_all(fresh.engine)
    _timed("starter KB", lambda: load_starter(fresh, force=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
