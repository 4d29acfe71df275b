"""The event store: ingest through the real HTTP path, the device timeline and a filter over 10 million events.

Scenarios (each bounded in count and time):

* ``ingest``: a real ``garrison server`` process (plain HTTP on loopback, no job process) and N simulated
  agents (threads, each its own device and HTTP connection) posting batches of 1,000 events of a realistic
  mix (50% connections, 30% process creations, 15% file events, 5% logons) for ``--seconds``; the
  acknowledged events/s for each N (the curve). ``--engine duckdb`` (default) or ``chdb`` (ClickHouse's
  engine, embedded in the server process). The agents run on the same 2 cores as the server.
* ``timeline``: one device with ``--day-events`` (100,000) events in one day among other devices' events;
  the first page (100 rows), a page deep in the day, a search and a $filter, through EventScope (the
  code behind GET /api/machines/{id}/timeline), p50/p95 over repeats.
* ``filter``: ``--rows`` (10,000,000) process events over 30 days on 1,000 devices (generated inside
  DuckDB), a tenant-scoped filter on a command-line substring and a $filter-style condition, p50/p95.

    .venv/bin/python bench/bench_events.py ingest [--engine chdb] [--agents 1,4,16,32] [--seconds 15]
    .venv/bin/python bench/bench_events.py timeline
    .venv/bin/python bench/bench_events.py filter [--rows 10000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import pct, report

UTC = dt.UTC
PER_BATCH = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(data: Path, *args: str) -> Any:
    r = subprocess.run([sys.executable, "-m", "garrison.cli.main", *args, "--data-dir", str(data), "--json"],
                       capture_output=True, text=True, check=True, timeout=120)
    return json.loads(r.stdout)


def mixed_events(n: int, rng: random.Random, now: dt.datetime) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        ts = (now - dt.timedelta(milliseconds=n - i)).isoformat()
        pid = rng.randint(300, 60000)
        k = rng.random()
        if k < 0.5:
            out.append({"Table": "DeviceNetworkEvents", "Timestamp": ts, "ActionType": "ConnectionSuccess",
                        "RemoteIP": f"93.184.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "RemotePort": 443,
                        "LocalIP": "10.0.0.5", "LocalPort": rng.randint(30000, 60000), "Protocol": "Tcp",
                        "InitiatingProcessId": pid, "InitiatingProcessFileName": "curl",
                        "InitiatingProcessFolderPath": "/usr/bin/curl",
                        "InitiatingProcessCommandLine": "curl -s https://example.com/api/v1/items"})
        elif k < 0.8:
            out.append({"Table": "DeviceProcessEvents", "Timestamp": ts, "ActionType": "ProcessCreated",
                        "ProcessId": pid, "FileName": "python3", "FolderPath": "/usr/bin/python3.11",
                        "ProcessCommandLine": f"python3 /opt/app/worker.py --job {i}", "ProcessCreationTime": ts,
                        "AccountName": "app", "AccountSid": "1000", "SHA256": "a" * 64,
                        "InitiatingProcessId": pid - 1, "InitiatingProcessFileName": "bash",
                        "InitiatingProcessCommandLine": "/bin/bash /opt/app/run.sh"})
        elif k < 0.95:
            out.append({"Table": "DeviceFileEvents", "Timestamp": ts, "ActionType": "FileModified",
                        "FileName": f"cache-{i}.tmp", "FolderPath": f"/tmp/app/cache-{i}.tmp", "FileSize": 4096,
                        "InitiatingProcessId": pid, "InitiatingProcessFileName": "python3"})
        else:
            out.append({"Table": "DeviceLogonEvents", "Timestamp": ts, "ActionType": "LogonSuccess",
                        "LogonType": "RemoteInteractive", "AccountName": "deploy", "RemoteIP": "10.0.3.4",
                        "Protocol": "ssh", "InitiatingProcessFileName": "sshd"})
    return out


def _agent(base: str, headers: dict[str, str], events_json: bytes, stop: threading.Event,
           counts: list[int], idx: int) -> None:
    seq = 0
    with httpx.Client(base_url=base, headers={**headers, "Content-Type": "application/json"}, timeout=60) as c:
        while not stop.is_set():
            seq += 1
            r = c.post("/agent/v1/events", content=b'{"seq":%d,"events":%s}' % (seq, events_json))
            if r.status_code == 200:
                counts[idx] += r.json()["stored"]
            elif r.status_code in (429, 503):
                time.sleep(0.2)
            else:
                raise RuntimeError(r.text[:300])


def ingest(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    results: dict[str, Any] = {"engine": args.engine, "per_batch": PER_BATCH, "curve": []}
    for n_agents in [int(x) for x in args.agents.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            _cli(data, "tenant", "create", "bench")
            secret = _cli(data, "enrollment", "create", "--tenant", "bench", "--uses", "100000")["secret"]
            port = _free_port()
            extra = ["--events-url", f"chdb://{tmp}/ch"] if args.engine == "chdb" else []
            proc = subprocess.Popen([sys.executable, "-m", "garrison.cli.main", "server", "--data-dir", str(data),
                                     "--port", str(port), "--insecure-http", "--no-jobs", "--json", *extra],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert proc.stdout is not None and proc.stdout.readline(), proc.stderr.read() if proc.stderr else ""
            base = f"http://127.0.0.1:{port}"
            try:
                agents = []
                for i in range(n_agents):
                    e = httpx.post(f"{base}/agent/v1/enroll", json={"secret": secret, "machine_key": f"bench{i:08d}",
                                                                     "hostname": f"host-{i}", "agent_version": "b"},
                                   timeout=30).json()
                    agents.append({"Authorization": f"Device {e['device_id']}:{e['credential']}"})
                rng = random.Random(7)
                body = json.dumps(mixed_events(PER_BATCH, rng, dt.datetime.now(UTC))).encode()
                stop = threading.Event()
                counts = [0] * n_agents
                threads = [threading.Thread(target=_agent, args=(base, h, body, stop, counts, i), daemon=True)
                           for i, h in enumerate(agents)]
                for t in threads:
                    t.start()
                time.sleep(min(3.0, args.seconds / 4))  # warm-up
                c0, t0 = sum(counts), time.perf_counter()
                cpu0 = _cpu(proc.pid)
                time.sleep(args.seconds)
                c1, t1 = sum(counts), time.perf_counter()
                cpu1 = _cpu(proc.pid)
                stop.set()
                for t in threads:
                    t.join(60)
                rate = (c1 - c0) / (t1 - t0)
                server_cores = (cpu1 - cpu0) / (t1 - t0)
                results["curve"].append({"agents": n_agents, "events_per_s": round(rate),
                                         "server_cpu_cores": round(server_cores, 2)})
                rows.append((f"{n_agents} agents", f"{rate:,.0f} events/s acknowledged (server {server_cores:.2f} cores)"))
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    report(f"Telemetry ingest through HTTP, engine {args.engine}", results, rows, args.json)
    return results


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(fn: Any, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return pct(times, 0.5), pct(times, 0.95)


def timeline(args: argparse.Namespace) -> dict[str, Any]:
    from garrison.edr.events import BatchIn, open_event_store

    with tempfile.TemporaryDirectory() as tmp:
        store = open_event_store(f"duckdb:///{tmp}/events.duckdb")
        day_end = dt.datetime.now(UTC).replace(microsecond=0)
        rng = random.Random(3)
        seq = 0
        for device, n in (("busy", args.day_events), *((f"other-{i}", args.day_events // 10) for i in range(5))):
            done = 0
            while done < n:
                chunk = min(10_000, n - done)
                evs = mixed_events(chunk, rng, day_end - dt.timedelta(seconds=86_000 * (n - done) / n))
                for e in evs:
                    e["Timestamp"] = dt.datetime.fromisoformat(e["Timestamp"])
                    if "ProcessCreationTime" in e:
                        e["ProcessCreationTime"] = e["Timestamp"]
                seq += 1
                store.write([BatchIn(1, device, device, seq, evs)])
                done += chunk
        sc = store.scope(1)
        start = day_end - dt.timedelta(days=1)
        end = day_end + dt.timedelta(seconds=1)
        cases = {
            "first page (100 rows)": lambda: sc.timeline("busy", start, end, top=100),
            "page at $skip=50,000": lambda: sc.timeline("busy", start, end, top=100, skip=50_000),
            "search 'worker.py --job 99'": lambda: sc.timeline("busy", start, end, search="worker.py --job 99", top=100),
            "$filter RemotePort eq 443 and LocalPort gt 59000": lambda: sc.timeline(
                "busy", start, end, where=lambda c: (c["RemotePort"] == 443) & (c["LocalPort"] > 59000), top=100),
            "$count of the day": lambda: sc.timeline_count("busy", start, end),
        }
        rows = []
        results: dict[str, Any] = {"day_events": args.day_events, "cases": {}}
        for name, fn in cases.items():
            fn()
            p50, p95 = _timed(fn, args.repeats)
            results["cases"][name] = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1)}
            rows.append((name, f"p50 {p50:.0f} ms, p95 {p95:.0f} ms"))
        store.close()
    report(f"Device timeline, one day of {args.day_events:,} events (DuckDB)", results, rows, args.json)
    return results


def filter_10m(args: argparse.Namespace) -> dict[str, Any]:
    from garrison.edr.events import open_event_store

    with tempfile.TemporaryDirectory() as tmp:
        store = open_event_store(f"duckdb:///{tmp}/events.duckdb")
        db = store.engine._writer  # type: ignore[attr-defined]
        t = time.perf_counter()
        db.execute(f"""INSERT INTO "DeviceProcessEvents" ("TenantId", "Timestamp", "DeviceId", "DeviceName", "ActionType",
            "FileName", "FolderPath", "ProcessId", "ProcessCommandLine", "AccountName", "InitiatingProcessId",
            "InitiatingProcessFileName", "ReportId")
            SELECT 1 + (i % 4 = 0)::INT, now()::TIMESTAMP - INTERVAL (i % 2592000) SECOND, 'dev-' || (i % 1000),
                   'host-' || (i % 1000), 'ProcessCreated', 'proc' || (i % 500), '/usr/bin/proc' || (i % 500),
                   i % 65536, 'proc' || (i % 500) || ' --arg ' || (i % 100003) ||
                   CASE WHEN i % 999983 = 0 THEN ' mimikatz sekurlsa::logonpasswords' ELSE '' END,
                   'user' || (i % 50), (i % 65536) + 1, 'bash', i
            FROM range({args.rows}) t(i)""")
        load_s = time.perf_counter() - t
        db.execute("CHECKPOINT")
        sc = store.scope(1)
        since = dt.datetime.now(UTC) - dt.timedelta(days=30)

        def substring() -> list[dict[str, Any]]:
            from garrison.edr.events import schema

            src = schema.source("DeviceProcessEvents")
            return sc.rows("DeviceProcessEvents", where=src.c.ProcessCommandLine.ilike("%mimikatz%"), since=since,
                           limit=1000)

        def structured() -> list[dict[str, Any]]:
            from garrison.edr.events import schema

            src = schema.source("DeviceProcessEvents")
            return sc.rows("DeviceProcessEvents", where=(src.c.FileName == "proc7") & (src.c.AccountName == "user7"),
                           since=since, limit=1000)

        rows, results = [], {"rows": args.rows, "load_s": round(load_s, 1), "cases": {}}
        for name, fn in (("command line contains 'mimikatz' (tenant 1, 30 days)", substring),
                         ("FileName eq 'proc7' and AccountName eq 'user7' (top 1,000)", structured)):
            found = len(fn())
            p50, p95 = _timed(fn, args.repeats)
            results["cases"][name] = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "rows": found}
            rows.append((name, f"p50 {p50:.0f} ms, p95 {p95:.0f} ms ({found} rows)"))
        store.close()
    report(f"Filter over {args.rows:,} events (DuckDB, generated in {load_s:.0f} s)", results, rows, args.json)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=["ingest", "timeline", "filter"])
    ap.add_argument("--engine", choices=["duckdb", "chdb"], default="duckdb")
    ap.add_argument("--agents", default="1,4,16,32")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--day-events", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    {"ingest": ingest, "timeline": timeline, "filter": filter_10m}[args.scenario](args)


if __name__ == "__main__":
    main()
