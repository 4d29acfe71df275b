"""Coverage of real hunting queries: the share of a corpus of KQL queries that translates and runs on
the event store (DuckDB and ClickHouse's engine), the rest counted by cause.

    .venv/bin/python bench/hunting_coverage.py [corpus.jsonl] [--duckdb-kql]

A corpus file may hold several queries separated by blank lines (the portal runs the one under the
cursor): it is split the way the portal reads it, and each query counts. An empty result is fine;
an error is not.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from garrison.edr.events import open_event_store
from garrison.edr.hunting.service import HuntingError, run
from garrison.edr.hunting.syntax import KqlError, parse
from garrison.protocol.events import TABLES

DEFAULT = Path(__file__).resolve().parents[1] / "tests/data/hunting/m365-defender-hunting-queries.jsonl"


def portal_queries(text: str) -> list[str]:
    """Split a file into the queries the portal would run: blocks between blank lines, joined while
    the text so far does not parse as a query on its own (a let block, a query with blank lines)."""
    out, cur = [], ""
    for block in text.replace("\r\n", "\n").split("\n\n"):
        cur = f"{cur}\n\n{block}" if cur else block
        code = "\n".join(line for line in cur.splitlines() if not line.strip().startswith("//")).strip()
        if not code:
            cur = ""
            continue
        try:
            parse(cur, frozenset(TABLES))
        except KqlError:
            continue
        out.append(cur)
        cur = ""
    if cur.strip() and "\n".join(x for x in cur.splitlines() if not x.strip().startswith("//")).strip():
        out.append(cur)
    return out


def cause(message: str) -> str:
    for key in ("unknown table", "operator is not supported", "unknown function", "unknown aggregate",
                "unknown column", "could not run", "not supported"):
        if key in message:
            tail = message.split("'")[1] if "'" in message else ""
            return f"{key}: {tail}" if tail and key != "could not run" else key
    return message.split(" (line")[0][:60]


def main() -> None:
    corpus = Path(next((a for a in sys.argv[1:] if not a.startswith("--")), DEFAULT))
    entries = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    for engine in ("duckdb", "chdb"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"duckdb:///{tmp}/e.duckdb" if engine == "duckdb" else f"chdb://{tmp}/ch"
            store = open_event_store(url)
            scope = store.scope(1)
            files_ok = queries = ok = 0
            causes: collections.Counter[str] = collections.Counter()
            worst = 0.0
            for e in entries:
                parts = portal_queries(e["query"])
                good = True
                for q in parts:
                    queries += 1
                    t0 = time.perf_counter()
                    try:
                        r = run(scope, q, max_rows=1000, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
                        worst = max(worst, r.stats["translate_ms"])
                        ok += 1
                    except (KqlError, HuntingError) as exc:
                        good = False
                        causes[cause(str(exc))] += 1
                    _ = t0
                files_ok += good
            store.close()
        print(f"{engine}: {files_ok}/{len(entries)} files ({100 * files_ok / len(entries):.1f}%) run whole; "
              f"{ok}/{queries} queries ({100 * ok / queries:.1f}%); slowest translation {worst:.1f} ms")
        for c, n in causes.most_common(25):
            print(f"  {n:4}  {c}")


if __name__ == "__main__":
    main()
