"""Speed of the typical hunting shapes on a large event store (issue 15: p95 ≤ 2 s on 10 million events).

    .venv/bin/python bench/hunting_speed.py [--events 10000000] [--engine duckdb|chdb] [--runs 10]

The store is filled directly by the engine (generated rows: 70% process creations, 30% connections,
200 devices, the last 7 days), then each query runs through the full hunting path (parse, translate,
scoped views, engine) ``runs`` times; the p50/p95 wall times are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from garrison.edr.events import open_event_store
from garrison.edr.hunting.service import run

QUERIES = {
    "filter + project": "DeviceProcessEvents | where Timestamp > ago(1d) and FileName =~ 'curl' "
                        "and ProcessCommandLine has 'evil' | project Timestamp, DeviceName, ProcessCommandLine "
                        "| take 1000",
    "summarize by device, bin(1h)": "DeviceNetworkEvents | where Timestamp > ago(7d) "
                                    "| summarize Connections = count(), Hosts = dcount(RemoteIP) "
                                    "by DeviceId, bin(Timestamp, 1h)",
    "join process → network": "DeviceProcessEvents | where Timestamp > ago(1d) and FileName == 'curl' "
                              "| project DeviceId, ProcessId, ProcessCommandLine "
                              "| join kind=inner (DeviceNetworkEvents | where Timestamp > ago(1d) "
                              "| project DeviceId, InitiatingProcessId, RemoteIP) "
                              "on DeviceId, $left.ProcessId == $right.InitiatingProcessId | take 1000",
}

_NAMES = "['bash','curl','python3','sshd','cron','systemd','nginx','wget','sh','git']"


def fill_duckdb(store, n: int) -> None:  # type: ignore[no-untyped-def]
    db = store.engine._writer  # the bench writes generated rows in bulk, not through ingest
    procs, conns = int(n * 0.7), n - int(n * 0.7)
    db.execute(f"""INSERT INTO "DeviceProcessEvents" ("TenantId", "Timestamp", "DeviceId", "DeviceName", "ActionType",
        "FileName", "FolderPath", "ProcessId", "ProcessCommandLine", "AccountName", "ReportId")
        SELECT 1, now()::TIMESTAMP - to_microseconds(CAST(hash(i) % 604800000000 AS BIGINT)), 'dev-' || (i % 200),
               'host-' || (i % 200), 'ProcessCreated', {_NAMES}[1 + i % 10], '/usr/bin/x', i % 65536,
               {_NAMES}[1 + i % 10] || ' --arg ' || (i % 1000) || (CASE WHEN i % 997 = 0 THEN ' http://evil.example/x'
               ELSE '' END), 'user' || (i % 50), i
        FROM range({procs}) t(i) ORDER BY 2""")
    db.execute(f"""INSERT INTO "DeviceNetworkEvents" ("TenantId", "Timestamp", "DeviceId", "DeviceName", "ActionType",
        "RemoteIP", "RemotePort", "InitiatingProcessId", "ReportId")
        SELECT 1, now()::TIMESTAMP - to_microseconds(CAST(hash(i) % 604800000000 AS BIGINT)), 'dev-' || (i % 200),
               'host-' || (i % 200), 'ConnectionSuccess', '10.0.' || (i % 250) || '.' || (i % 7), 443, i % 65536, i
        FROM range({conns}) t(i) ORDER BY 2""")
    db.execute("CHECKPOINT")


def fill_chdb(store, n: int) -> None:  # type: ignore[no-untyped-def]
    t = store.engine.t
    procs, conns = int(n * 0.7), n - int(n * 0.7)
    t.run(f"""INSERT INTO DeviceProcessEvents (TenantId, Timestamp, DeviceId, DeviceName, ActionType, FileName,
        FolderPath, ProcessId, ProcessCommandLine, AccountName, ReportId)
        SELECT 1, now64(6) - toIntervalMicrosecond(cityHash64(number) % 604800000000), concat('dev-', toString(number % 200)),
               concat('host-', toString(number % 200)), 'ProcessCreated', {_NAMES}[1 + number % 10], '/usr/bin/x',
               number % 65536, concat({_NAMES}[1 + number % 10], ' --arg ', toString(number % 1000),
               if(number % 997 = 0, ' http://evil.example/x', '')), concat('user', toString(number % 50)), number
        FROM numbers({procs})""")
    t.run(f"""INSERT INTO DeviceNetworkEvents (TenantId, Timestamp, DeviceId, DeviceName, ActionType, RemoteIP,
        RemotePort, InitiatingProcessId, ReportId)
        SELECT 1, now64(6) - toIntervalMicrosecond(cityHash64(number) % 604800000000), concat('dev-', toString(number % 200)),
               concat('host-', toString(number % 200)), 'ConnectionSuccess',
               concat('10.0.', toString(number % 250), '.', toString(number % 7)), 443, number % 65536, number
        FROM numbers({conns})""")
    t.run("OPTIMIZE TABLE DeviceProcessEvents FINAL")
    t.run("OPTIMIZE TABLE DeviceNetworkEvents FINAL")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--engine", choices=("duckdb", "chdb"), default="duckdb")
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"duckdb:///{tmp}/e.duckdb" if args.engine == "duckdb" else f"chdb://{tmp}/ch"
        store = open_event_store(url)
        t0 = time.perf_counter()
        (fill_duckdb if args.engine == "duckdb" else fill_chdb)(store, args.events)
        print(f"{args.engine}: {args.events:,} events generated in {time.perf_counter() - t0:.1f} s")
        scope = store.scope(1)
        for name, q in QUERIES.items():
            times, rows = [], 0
            for _ in range(args.runs):
                t = time.perf_counter()
                rows = len(run(scope, q).results)
                times.append(time.perf_counter() - t)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            print(f"  {name:32} rows {rows:6}  p50 {statistics.median(times) * 1000:7.0f} ms  p95 {p95 * 1000:7.0f} ms")
        store.close()


if __name__ == "__main__":
    main()
