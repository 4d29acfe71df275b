"""Cost of the suite's PostgreSQL ``store`` fixture per test: an empty database + CREATE TABLE of every model
(before) against a copy of a migrated template database + the no-op create_all check, then DROP (after).

    python bench/bench_pg_fixture.py [--n 20]

Starts a throw-away cluster (tests/pg.py) like the suite does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from garrison.store.db import Store
from garrison.store.models import metadata
from tests.pg import TempPostgres, create_database, drop_database, schema_template


def fixture_once(base: str, template: str | None) -> float:
    started = time.perf_counter()
    url = create_database(base, template=template)
    store = Store(url)
    metadata.create_all(store.engine)
    store.dispose()
    if template:
        drop_database(url)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    pg = TempPostgres()
    base = pg.start()
    try:
        t0 = time.perf_counter()
        template = schema_template(base)
        once = time.perf_counter() - t0
        before = [fixture_once(base, None) for _ in range(args.n)]
        after = [fixture_once(base, template) for _ in range(args.n)]
    finally:
        pg.stop()
    print(f"{len(metadata.tables)} tables; template built once per session in {once:.2f} s")
    print(f"before (empty database + create_all, never dropped): median {statistics.median(before):.3f} s, "
          f"total {sum(before):.1f} s for {args.n}")
    print(f"after (CREATE DATABASE … TEMPLATE + drop):           median {statistics.median(after):.3f} s, "
          f"total {sum(after):.1f} s for {args.n}")


if __name__ == "__main__":
    main()
