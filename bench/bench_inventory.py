"""Inventory speed: dpkg parsing, and the collector's no-change run (which must only stat/hash).

Run: PYTHONPATH=src python bench/bench_inventory.py [--json]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.inventory import InventoryCollector
from garrison.agent.collectors.runtime import RuntimeCollector
from garrison.inventory import parse_dpkg_status, parse_os_release

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "inventories"


def timed(fn: Callable[[], Any], repeat: int = 20) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return {"best_ms": round(min(runs), 2), "median_ms": round(statistics.median(runs), 2)}


def main() -> None:
    parts = [(DATA / f).read_text() for f in
             ("ubuntu-20.04-ga.dpkg-status", "debian-sid-riscv64.dpkg-status", "ubuntu-18.04.dpkg-status")]
    again = parts[0].replace("Package: ", "Package: copy-")
    six_hundred = "\n".join(p.rstrip("\n") + "\n" for p in [*parts, again]).encode()
    os_identity = parse_os_release((DATA / "ubuntu-20.04-ga.os-release").read_bytes())
    results: dict[str, Any] = {
        "dpkg_parse_649_packages": timed(lambda: parse_dpkg_status(six_hundred, os_identity)),
    }
    host_status = Path("/var/lib/dpkg/status")
    if host_status.is_file():
        raw = host_status.read_bytes()
        results["dpkg_parse_this_host"] = {"packages": len(parse_dpkg_status(raw)),
                                           **timed(lambda: parse_dpkg_status(raw))}
    with tempfile.TemporaryDirectory() as state:
        ctx = AgentContext(state_dir=Path(state), agent_version="bench")
        collector = InventoryCollector()
        t = time.perf_counter()
        first = collector.collect(ctx)
        results["inventory_first_run_this_host"] = {
            "ms": round((time.perf_counter() - t) * 1000, 1),
            "packages": len(first[0][1]["packages"]) if first else 0,
        }
        results["inventory_no_change_run"] = timed(lambda: collector.collect(ctx))
        fresh = lambda: collector.collect(AgentContext(state_dir=Path(state), agent_version="bench"))
        results["inventory_no_change_run_after_restart"] = timed(fresh, repeat=5)
        runtime = RuntimeCollector()
        t = time.perf_counter()
        runtime.collect(ctx)
        results["runtime_first_run_with_index_build"] = {"ms": round((time.perf_counter() - t) * 1000, 1)}
        results["runtime_cached_index_run"] = timed(lambda: runtime.collect(ctx))
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
        return
    for name, values in results.items():
        print(f"{name:42s} " + "  ".join(f"{k}={v}" for k, v in values.items()))


if __name__ == "__main__":
    main()
