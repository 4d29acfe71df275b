"""Advanced hunting on real data: Microsoft's public hunting queries (tests/data/hunting) run on real Windows
events (Sysmon samples imported through the Windows mapping) give the same answer on DuckDB and on
ClickHouse's engine. (A module of its own: chdb embeds one ClickHouse server per process, so the two
stores here must not overlap the module-scoped store of test_hunting.py.)"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from garrison.edr.events import BatchIn, EventStore, open_event_store
from garrison.edr.events.imports import parse_files
from garrison.edr.hunting.service import run
from garrison.edr.hunting.syntax import KqlError

UTC = dt.UTC
DATA = Path(__file__).resolve().parents[1] / "data"

# --- real queries on real imported events: both engines agree ---------------------------------------------------

NOW = dt.datetime.now(UTC).replace(microsecond=0)
CORPUS = DATA / "hunting" / "m365-defender-hunting-queries.jsonl"


def _real_store(url: str) -> EventStore:
    """The Sysmon samples as device win1's events, moved to the last day (ClickHouse's TTL would drop
    events from years ago; the hunting window is 30 days)."""
    s = open_event_store(url)
    files = sorted((DATA / "edr" / "windows" / "sigma").glob("sysmon*"))
    parsed = parse_files([(f.name, f.read_bytes()) for f in files])
    rows = [dict(row) for r in parsed for row in r.rows]
    latest = max(row["Timestamp"] for row in rows)
    shift = NOW - dt.timedelta(hours=2) - latest
    for row in rows:
        for key, value in row.items():
            if isinstance(value, dt.datetime):
                row[key] = value + shift
    s.write([BatchIn(1, "win1", "win1.example", 0, rows)])
    return s


def _corpus_sample() -> list[str]:
    keep = []
    for line in CORPUS.read_text().splitlines():
        q = json.loads(line)["query"]
        if ("DeviceProcessEvents" in q or "DeviceFileEvents" in q or "DeviceRegistryEvents" in q) \
                and "externaldata" not in q and "AlertInfo" not in q:
            keep.append(q)
    return keep[:60]


def _normal(rows: list[dict]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)


def test_real_corpus_queries_give_the_same_answer_on_both_engines(tmp_path: Path) -> None:
    base = "DeviceProcessEvents | summarize n = count() by FileName | sort by n desc, FileName asc | take 5"
    answers: dict[str, dict[str, list[str]]] = {}
    for engine, url in (("duckdb", f"duckdb:///{tmp_path / 'e.duckdb'}"), ("chdb", f"chdb://{tmp_path / 'ch'}")):
        store = _real_store(url)
        try:
            out: dict[str, list[str]] = {}
            for q in [base, *_corpus_sample()]:
                try:
                    out[q] = _normal(run(store.scope(1), q, now=NOW).results)
                except KqlError:
                    continue
            answers[engine] = out
        finally:
            store.close()
    duck, ch = answers["duckdb"], answers["chdb"]
    assert duck.keys() == ch.keys() and len(duck) >= 40
    for q in duck:
        assert duck[q] == ch[q], q
    assert duck[base] and json.loads(duck[base][0])["n"] >= 1
