"""The detection engine: the whole shipped SigmaHQ ruleset over real logs, and what it costs ingest.

    python bench/bench_detection.py throughput [--otrf DIR] [--repeats 3] [--json]
    python bench/bench_detection.py ingest [--otrf DIR] [--batch 1000] [--json]
    python bench/bench_detection.py regression [--sigma DIR] [--json]
    python bench/bench_detection.py indicators [--events 100000] [--json]

* ``throughput``: compile the shipped ruleset (time, peak RSS), read every OTRF recording (Windows
  Sysmon/Security logs, through the Windows import's mapping) and evaluate all of it, ``--repeats`` times:
  events/s by wall clock and per CPU-second of this process (the machine is shared: the load average is
  printed), alerts per 10,000 events, rules evaluated per event (the prefilter's work).
* ``ingest``: the same events written to an in-memory DuckDB event store in batches, once without and once
  with the detection listener (the engine evaluates each write in the writer's pass): events/s of both.
* ``indicators``: the indicator matcher's cost per event with 100 and with 1,000,000 indicators of a tenant
  (OTRF-shaped rows: hashes, remote IPs and URLs; none of them an indicator, the common case).
* ``regression``: SigmaHQ's regression data, every case imported through the Windows import into the event
  store with the detection listener: hit rate (each case must fire its own rule), each miss with its reason.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report

from garrison.edr.detection import rules
from garrison.edr.detection.engine import Detector, Match
from garrison.edr.detection.stream import DetectionService
from garrison.edr.events import open_event_store
from garrison.edr.events.imports import import_windows, parse_files
from garrison.edr.events.store import BatchIn
from garrison.edr.events.windows import LogImportError, parse_file

SHARED = Path("/work/shared/data/edr")


def _load() -> float:
    return os.getloadavg()[0]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _otrf_rows(root: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in sorted(root.rglob("*.zip")):
        try:
            rows.extend(parse_file(f.name, f.read_bytes()).rows)
        except LogImportError:  # the two Linux auditd recordings are not Windows logs
            continue
    return rows


def _by_table(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        out[r["Table"]].append(r)
    return out


def throughput(args: argparse.Namespace) -> None:
    load0 = _load()
    t, c = time.perf_counter(), time.process_time()
    ruleset = rules.load(rules.shipped_texts())
    detector = Detector(ruleset)
    compile_wall, compile_cpu = time.perf_counter() - t, time.process_time() - c
    rss_rules = _rss_mb()
    rows = _otrf_rows(args.otrf)
    tables = _by_table(rows)
    walls, cpus, found = [], [], 0
    for _ in range(args.repeats):
        detector.evaluated = 0
        t, c = time.perf_counter(), time.process_time()
        found = len(detector.evaluate_tables(tables))
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    n = len(rows)
    status = ruleset.status()
    res = {"rules_compiled": status["compiled"], "rules_not_runnable": status["notRunnable"],
           "compile_wall_s": round(compile_wall, 1), "compile_cpu_s": round(compile_cpu, 1),
           "rss_after_compile_mb": round(rss_rules), "events": n, "alerts": found,
           "alerts_per_10k_events": round(found * 10_000 / max(n, 1), 1),
           "rules_evaluated_per_event": round(detector.evaluated / max(n, 1), 2),
           "events_per_s_wall_best": round(n / min(walls)), "events_per_cpu_s_best": round(n / min(cpus)),
           "peak_rss_mb": round(_rss_mb()), "loadavg": [round(load0, 1), round(_load(), 1)]}
    report("Detection throughput: the shipped SigmaHQ ruleset over OTRF's recordings", res, [
        ("rules compiled / not runnable", f"{res['rules_compiled']} / {res['rules_not_runnable']}"),
        ("compile (wall / CPU)", f"{res['compile_wall_s']} s / {res['compile_cpu_s']} s"),
        ("events", f"{n:,}"), ("events/s (wall, best)", f"{res['events_per_s_wall_best']:,}"),
        ("events per CPU-second (best)", f"{res['events_per_cpu_s_best']:,}"),
        ("rules evaluated per event", str(res["rules_evaluated_per_event"])),
        ("alerts per 10,000 events", str(res["alerts_per_10k_events"])),
        ("peak RSS", f"{res['peak_rss_mb']} MB"), ("load average", f"{load0:.1f} → {_load():.1f}")], args.json)


def ingest(args: argparse.Namespace) -> None:
    rows = _otrf_rows(args.otrf)
    ruleset = rules.load(rules.shipped_texts())
    service = DetectionService(lambda: ruleset, lambda m: None)
    _ = service.detector  # compiled before timing
    out: dict[str, Any] = {"events": len(rows), "batch": args.batch, "loadavg": [round(_load(), 1)]}
    for label, listen in (("without_detection", False), ("with_detection", True)):
        store = open_event_store("duckdb:///:memory:")
        if listen:
            store.listeners.append(service.on_write)
        batches = [BatchIn(1, "dev-1", "win-1", i // args.batch + 1, rows[i:i + args.batch])
                   for i in range(0, len(rows), args.batch)]
        t, c = time.perf_counter(), time.process_time()
        for b in batches:
            store.write([b])
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        store.close()
        out[label] = {"events_per_s": round(len(rows) / wall), "cpu_s": round(cpu, 2), "wall_s": round(wall, 2)}
    out["detection_cpu_share"] = round(1 - out["without_detection"]["cpu_s"] / out["with_detection"]["cpu_s"], 2)
    out["loadavg"].append(round(_load(), 1))
    report("Ingest into DuckDB with and without the detection listener", out, [
        ("events (OTRF)", f"{len(rows):,} in batches of {args.batch}"),
        ("without detection", f"{out['without_detection']['events_per_s']:,} events/s"),
        ("with detection", f"{out['with_detection']['events_per_s']:,} events/s"),
        ("detection's share of the write CPU", f"{out['detection_cpu_share']:.0%}")], args.json)


def regression(args: argparse.Namespace) -> None:
    ruleset = rules.load(rules.directory_texts(*(args.sigma / d for d in
                                                 ("rules", "rules-emerging-threats", "rules-threat-hunting"))))
    unrunnable = {u.id: u.reason for u in ruleset.unrunnable}
    found: list[Match] = []
    service = DetectionService(lambda: ruleset, found.extend)
    store = open_event_store("duckdb:///:memory:")
    store.listeners.append(service.on_write)
    hits, misses, cases = 0, [], 0
    for info_path in sorted((args.sigma / "regression_data").rglob("info.yml")):
        info = yaml.safe_load(info_path.read_text())
        for rm in info.get("rule_metadata", []):
            for test in info.get("regression_tests_info", []):
                sample = args.sigma / test["path"]
                if not sample.exists():
                    continue
                cases += 1
                rid = rm["id"]
                found.clear()
                if rid in unrunnable:
                    misses.append((rm["title"], f"rule not runnable: {unrunnable[rid]}"))
                    continue
                try:
                    parsed = parse_files([(sample.name, sample.read_bytes())])
                except LogImportError as exc:
                    misses.append((rm["title"], f"import error: {exc}"))
                    continue
                import_windows(store.write, 1, "dev-1", "win-1", parsed)
                if rid in {m.rule.id for m in found}:
                    hits += 1
                elif not parsed[0].rows:
                    misses.append((rm["title"], "event not imported: " + ", ".join(parsed[0].skipped)))
                else:
                    misses.append((rm["title"], "no match"))
    store.close()
    res = {"cases": cases, "hits": hits, "hit_rate": round(hits / max(cases, 1), 4),
           "misses": [{"rule": t, "reason": r} for t, r in misses]}
    report("SigmaHQ regression data through the Windows import and the event store",
           res, [("cases", str(cases)), ("fired their rule", f"{hits} ({res['hit_rate']:.1%})")]
           + [(f"miss: {t}", r) for t, r in misses], args.json)


def indicators_cost(args: argparse.Namespace) -> None:
    from garrison.edr.detection import indicators

    rows = [{**r, "TenantId": 1, "DeviceId": "dev-1"} for r in _otrf_rows(args.otrf)][:args.events]
    matcher = indicators.IndicatorMatcher(None, None)  # type: ignore[arg-type]  # no store: sets given below
    out: dict[str, Any] = {"events": len(rows)}
    for n in (100, 1_000_000):
        entries = {}
        for i in range(n):
            kind = ("FileSha256", "IpAddress", "DomainName")[i % 3]
            value = (f"{i:064x}" if kind == "FileSha256" else f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
                     if kind == "IpAddress" else f"bad{i}.example")
            entries[(kind, value)] = indicators._Entry(i, "t", "", "High", "Alert", True, frozenset(), "")
        tables = _by_table(rows)
        c = time.process_time()
        for _ in range(args.repeats):
            for table, table_rows in tables.items():
                for row in table_rows:
                    matcher._match(entries, table, row)
        per_event_us = (time.process_time() - c) / (args.repeats * len(rows)) * 1e6
        out[f"us_per_event_{n}"] = round(per_event_us, 2)
    report("Indicator matching cost per event", out, [
        ("events", f"{len(rows):,}"), ("100 indicators", f"{out['us_per_event_100']} µs/event"),
        ("1,000,000 indicators", f"{out['us_per_event_1000000']} µs/event")], args.json)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("throughput", "ingest", "indicators"):
        p = sub.add_parser(name)
        p.add_argument("--otrf", type=Path, default=SHARED / "otrf")
        p.add_argument("--repeats", type=int, default=3)
        p.add_argument("--batch", type=int, default=1000)
        p.add_argument("--events", type=int, default=100_000)
        p.add_argument("--json", action="store_true")
    p = sub.add_parser("regression")
    p.add_argument("--sigma", type=Path, default=SHARED / "sigma")
    p.add_argument("--json", action="store_true")
    args = ap.parse_args()
    {"throughput": throughput, "ingest": ingest, "regression": regression,
     "indicators": indicators_cost}[args.cmd](args)


if __name__ == "__main__":
    main()
