"""The behaviour sensor's cost and completeness, measured on this machine's kernel (run as root).

Scenarios (each bounded in count and time):

* ``burst``: 5,000 short-lived processes in ~5 s; how many the sensor recorded (the target: all).
* ``load``: 100 process creations/s and 1,000 loopback TCP connections/s for ``--seconds``; the CPU
  time and resident memory of the sensor process (an agent with only the sensors running, events
  spooled to a real spool) over that window. Target: ≤ 3% of one core, ≤ 80 MB resident.
* ``connector``: the alternative kernel interface, the process connector (cn_proc): exec events
  for the same burst, each followed by an immediate /proc read; how many command lines were still
  readable (audit carries argv in its records; the connector does not).
* ``memory``: where the sensor process's memory goes (interpreter and imports, caches, queues).
* ``--agent``: instead, the whole agent (``garrison agent run``, all its sensors, check-ins every 10 s
  to a real local server) under the same load: its CPU and resident memory, and what reached the
  server's event store.

    sudo .venv/bin/python bench/bench_sensor.py [--seconds 20] [--json]
    sudo .venv/bin/python bench/bench_sensor.py --agent [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report

CLK = os.sysconf("SC_CLK_TCK")

# --- the sensor process ---------------------------------------------------------------------

CHILD = r"""
import gc, json, os, sys, time, tracemalloc
trace = "--trace" in sys.argv
if trace:
    tracemalloc.start(1)
def rss():
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "VmHWM")):
            out[line.split(":")[0]] = int(line.split()[1]) // 1024
    return out
base = rss()
from garrison.agent.spool import Spool
from garrison.agent.sensors.manager import SensorManager
imported = rss()
spool = Spool(sys.argv[1] + "/spool.db")
m = SensorManager(spool.put, settings={"file_paths": [], **json.loads(sys.argv[2])}, enabled=["audit"])
m.start()
started = rss()
print(json.dumps({"ready": True}), flush=True)
sys.stdin.readline()                       # the load runs meanwhile
time.sleep(1.5)                            # let the sink spool the rest
stats = m.stats()
drops = m.drops()
table = m.ctx.processes
out = {"rss_base": base, "rss_imported": imported, "rss_started": started, "rss_end": rss(),
       "emitted": stats["emitted"], "drops": drops, "pending": spool.pending_count(),
       "spooled_bytes": spool.pending_bytes(), "process_table": len(table), "hash_cache": m.ctx.hashes.computed,
       "coalesced": stats["coalesced"]}
if trace:
    snap = tracemalloc.take_snapshot()
    by = {}
    for st in snap.statistics("filename"):
        f = st.traceback[0].filename
        key = ("garrison/" + f.split("garrison/", 1)[1]) if "garrison/" in f else (
               f.split("site-packages/", 1)[1].split("/")[0] if "site-packages/" in f else "stdlib:" + os.path.basename(f))
        by[key] = by.get(key, 0) + st.size
    out["python_heap_top"] = sorted(((k, round(v / 1048576, 2)) for k, v in by.items()), key=lambda kv: -kv[1])[:12]
m.stop()
spool.close()
print(json.dumps(out), flush=True)
"""


class SensorProcess:
    def __init__(self, trace: bool = False, settings: dict[str, Any] | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="garrison-bench-sensor-")
        args = [sys.executable, "-c", CHILD, self.dir, json.dumps(settings or {})] + (["--trace"] if trace else [])
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        assert json.loads(self.proc.stdout.readline())["ready"]

    def cpu(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK

    def finish(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        self.proc.wait(60)
        return out


# --- load -----------------------------------------------------------------------------------

def spawn_burst(marker: str, n: int, seconds: float) -> float:
    """n short-lived processes in about ``seconds`` (several shells in parallel); returns the elapsed time."""
    shells = 4
    per = n // shells
    pause = max(0.0, seconds / per - 0.002)
    script = (f"i=0; while [ $i -lt {per} ]; do /bin/true {marker} $1 $i; i=$((i+1)); "
              f"{'sleep ' + format(pause, '.4f') + ';' if pause > 0.004 else ''} done")
    t0 = time.monotonic()
    procs = [subprocess.Popen(["/bin/sh", "-c", script, "sh", str(k)]) for k in range(shells)]
    for p in procs:
        p.wait()
    return time.monotonic() - t0


def connection_load(rate: int, seconds: float, stop: threading.Event) -> int:
    """``rate`` TCP connections/s on loopback (connect + accept + close) from a child process."""
    code = f"""
import socket, time, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); srv.bind(("127.0.0.1", 0)); srv.listen(512)
addr = srv.getsockname(); n = 0; t0 = time.monotonic(); end = t0 + {seconds}
while time.monotonic() < end:
    target = int((time.monotonic() - t0) * {rate})
    while n < target:
        c = socket.create_connection(addr); a, _ = srv.accept(); a.close(); c.close(); n += 1
    time.sleep(0.005)
print(n)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout)


def process_load(rate: int, seconds: float) -> int:
    """``rate`` short-lived processes/s from a shell loop, paced against the clock."""
    code = f"""
import subprocess, time
n = 0; t0 = time.monotonic(); end = t0 + {seconds}
sh = subprocess.Popen(["/bin/sh"], stdin=subprocess.PIPE, text=True)
while time.monotonic() < end:
    target = int((time.monotonic() - t0) * {rate})
    if target > n:
        sh.stdin.write("/bin/true bench-load\\n" * (target - n)); sh.stdin.flush(); n = target
    time.sleep(0.01)
sh.stdin.close(); sh.wait()
print(n)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout)


def count_marker(directory: str, marker: str) -> int:
    from garrison.agent.spool import Spool, iter_documents

    spool = Spool(Path(directory) / "spool.db")
    try:
        return sum(1 for doc in iter_documents(spool) for e in doc["payload"]["events"]
                   if e["Table"] == "DeviceProcessEvents" and e.get("FileName") == "true"
                   and marker in e.get("ProcessCommandLine", ""))
    finally:
        spool.close()


# --- the process connector, for comparison ---------------------------------------------------

CN_IDX_PROC, CN_VAL_PROC, PROC_EVENT_EXEC = 1, 1, 0x00000002


def connector_burst(n: int, seconds: float, marker: str) -> dict[str, int]:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 11)  # NETLINK_CONNECTOR
    s.bind((os.getpid(), CN_IDX_PROC))
    s.setsockopt(socket.SOL_SOCKET, 33, 16 * 1024 * 1024)
    # PROC_CN_MCAST_LISTEN
    msg = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, 4, 0) + struct.pack("=I", 1)
    s.send(struct.pack("=IHHII", 16 + len(msg), 3, 0, 0, os.getpid()) + msg)
    s.settimeout(0.5)
    counts = {"exec_events": 0, "cmdline_read": 0, "marker_seen": 0, "gone": 0}
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                data = s.recv(65536)
            except (TimeoutError, OSError):
                continue
            what = struct.unpack_from("=I", data, 16 + 20)[0]
            if what != PROC_EVENT_EXEC:
                continue
            pid = struct.unpack_from("=I", data, 16 + 20 + 16)[0]
            counts["exec_events"] += 1
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
                counts["cmdline_read"] += 1
                if marker.encode() in cmd:
                    counts["marker_seen"] += 1
            except OSError:
                counts["gone"] += 1

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    spawn_burst(marker, n, seconds)
    time.sleep(1.0)
    stop.set()
    t.join()
    s.close()
    return counts


def steady_load(seconds: float, settings: dict[str, Any], connections: int = 1000) -> dict[str, Any]:
    sp = SensorProcess(settings=settings)
    cpu0, t0 = sp.cpu(), time.monotonic()
    conns: list[int] = []
    th = threading.Thread(target=lambda: conns.append(
        connection_load(connections, seconds, threading.Event()) if connections else 0))
    th.start()
    procs = process_load(100, seconds)
    th.join()
    cpu1, t1 = sp.cpu(), time.monotonic()
    out = sp.finish()
    wall = t1 - t0
    return {"seconds": round(wall, 1), "processes": procs, "connections": conns[0],
            "cpu_seconds": round(cpu1 - cpu0, 2), "cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / wall, 2),
            "rss_mib": out["rss_end"]["VmRSS"], "peak_rss_mib": out["rss_end"]["VmHWM"],
            "emitted": out["emitted"], "coalesced": out["coalesced"], "drops": out["drops"]}


def agent_run(seconds: float) -> dict[str, Any]:
    """The real agent process with its sensors, a real server, 100 processes/s + 1,000 connections/s."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from garrison.agent.runner import status
    from tests.agent.harness import Server, free_port, start_agent, wait_for, write_agent_config

    work = Path(tempfile.mkdtemp(prefix="garrison-bench-agent-"))
    srv = Server(work / "server", free_port())
    srv.provision()
    srv.start()
    state = work / "agent"
    config = write_agent_config(work / "agent.toml", srv, state, checkin_interval=10, enabled=["device"],
                                sensors={"enabled": True})
    agent = start_agent(config, work / "agent.log")
    try:
        wait_for(lambda: status(state)["last"].get("last_checkin"), 120, "the agent's first check-in")
        time.sleep(3)  # past start-up (snapshot, first device report)
        def cpu() -> float:
            with open(f"/proc/{agent.pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            return (int(rest[11]) + int(rest[12])) / CLK

        def mem() -> dict[str, int]:
            out = {}
            with open(f"/proc/{agent.pid}/status") as f:
                for line in f:
                    if line.startswith(("VmRSS", "VmHWM")):
                        out[line.split(":")[0]] = int(line.split()[1]) // 1024
            return out

        before = mem()
        cpu0, t0 = cpu(), time.monotonic()
        conns: list[int] = []
        th = threading.Thread(target=lambda: conns.append(connection_load(1000, seconds, threading.Event())))
        th.start()
        procs = process_load(100, seconds)
        th.join()
        cpu1, t1 = cpu(), time.monotonic()
        after = mem()
        time.sleep(5)  # the last batches sent (the spool is never empty for long: the machine is never idle)
    finally:
        agent.terminate()
        agent.wait(60)
        srv.stop()
    import duckdb

    db = duckdb.connect(str(srv.data_dir / "events.duckdb"), read_only=True)
    try:
        stored = {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                  for t in ("DeviceProcessEvents", "DeviceNetworkEvents", "DeviceFileEvents", "DeviceEvents",
                            "DeviceLogonEvents", "DeviceInfo", "DeviceNetworkInfo")}
    finally:
        db.close()
    return {"seconds": round(t1 - t0, 1), "processes": procs, "connections": conns[0],
            "cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 2), "rss_before_mib": before["VmRSS"],
            "rss_after_mib": after["VmRSS"], "peak_rss_mib": after["VmHWM"], "stored": stored,
            "drops": status(state)["drops"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of the load scenario")
    ap.add_argument("--burst", type=int, default=5000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--agent", action="store_true", help="measure the whole agent process instead")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the sensor uses audit netlink")
    results: dict[str, Any] = {}
    if args.agent:
        a = results["agent"] = agent_run(args.seconds)
        cpu = (f"{a['cpu_pct_of_one_core']}% of one core ({a['processes']} processes, {a['connections']} "
               f"connections in {a['seconds']} s)")
        rss = f"{a['rss_before_mib']} MiB before, {a['rss_after_mib']} MiB after, peak {a['peak_rss_mib']} MiB"
        rows = [("agent CPU, 100 processes/s + 1,000 connections/s", cpu),
                ("agent resident memory", rss),
                ("stored in the event store", ", ".join(f"{k} {v}" for k, v in a["stored"].items())),
                ("agent drop counters", str(a["drops"] or "none"))]
        report("Garrison agent with its sensors", results, rows, args.json)
        return

    # 1. burst: every one recorded?
    sp = SensorProcess()
    marker = f"bench-burst-{os.getpid()}"
    elapsed = spawn_burst(marker, args.burst, 5.0)
    out = sp.finish()
    recorded = count_marker(sp.dir, marker)
    results["burst"] = {"processes": args.burst, "seconds": round(elapsed, 2), "recorded": recorded,
                        "drops": out["drops"]}

    # 2. steady load: CPU and memory of the sensor process, with repeated connections coalesced
    #    (the default, 1 s) and with every connection recorded.
    for label, settings in (("load", {}), ("load_every_connection", {"network_coalesce_seconds": 0})):
        results[label] = steady_load(args.seconds, settings)
    results["load_processes_only"] = steady_load(args.seconds, {}, connections=0)

    # 3. the process connector for the same burst.
    results["connector"] = connector_burst(args.burst, 5.0, f"bench-cn-{os.getpid()}")

    # 4. where the memory goes.
    sp = SensorProcess(trace=True)
    spawn_burst(f"bench-mem-{os.getpid()}", 2000, 2.0)
    out = sp.finish()
    results["memory"] = {k: out[k] for k in ("rss_base", "rss_imported", "rss_started", "rss_end",
                                             "process_table", "hash_cache", "python_heap_top")}

    b, ld, le, lp = results["burst"], results["load"], results["load_every_connection"], results["load_processes_only"]
    cn, mem = results["connector"], results["memory"]
    burst = f"{b['recorded']} / {b['processes']} in {b['seconds']} s, drops {b['drops'] or 'none'}"
    load = (f"{ld['cpu_pct_of_one_core']}% of one core ({ld['processes']} processes + {ld['connections']} "
            f"connections in {ld['seconds']} s)")
    every = (f"{le['cpu_pct_of_one_core']}% of one core, {le['rss_mib']} MiB, events {le['emitted']}, "
             f"drops {le['drops'] or 'none'}")
    connector = (f"{cn['exec_events']} / {cn['cmdline_read']} (marker seen {cn['marker_seen']} of {args.burst}, "
                 f"gone before read {cn['gone']})")
    rss = (f"{mem['rss_base']['VmRSS']} / {mem['rss_imported']['VmRSS']} / {mem['rss_started']['VmRSS']} / "
           f"{mem['rss_end']['VmRSS']}")
    alone = f"{lp['cpu_pct_of_one_core']}% of one core, {lp['rss_mib']} MiB ({lp['processes']} in {lp['seconds']} s)"
    rows = [
        ("burst: short-lived processes recorded", burst),
        ("load: sensor CPU (repeats coalesced, 1 s)", load),
        ("load: sensor resident memory", f"{ld['rss_mib']} MiB (peak {ld['peak_rss_mib']} MiB)"),
        ("load: events", f"{ld['emitted']}, coalesced {ld['coalesced']}, drops {ld['drops'] or 'none'}"),
        ("load, every connection recorded: CPU", every),
        ("100 processes/s alone: sensor CPU", alone),
        ("process connector: exec events / cmdline readable", connector),
        ("memory: python / +imports / +sensor started / end (MiB RSS)", rss),
        ("memory: python heap by origin (MiB)", ", ".join(f"{k} {v}" for k, v in mem["python_heap_top"][:8])),
    ]
    report("Behaviour sensor (audit netlink)", results, rows, args.json)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
