"""Benchmark of the web console on the benchmark fleet: server time of every page.

    python tests/web/bench_console.py                         # 10,000 devices, SQLite
    python tests/web/bench_console.py --devices 2000 --quick  # a quick run
    python tests/web/bench_console.py --backend postgresql

The fleet is the one of ``bench/bench_matching.py`` (its builders are reused): real inventories with
version drift and language packages, the real feed records plus generated advisories, then full
matching and the prioritisation job. Every console page is then requested ``--requests`` times
(after one warm-up request, as a user's first visit after a prioritisation run would be) through the
real app with a signed-in session, for the whole organisation and for one device group. The server
time is read from the ``Server-Timing`` header. Budget: p95 at most 300 ms per page.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

BUDGET_MS = 300.0
PASSWORD = "benchmark password 1"


def _bench_matching() -> Any:
    spec = importlib.util.spec_from_file_location("bench_matching", ROOT / "bench" / "bench_matching.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def build(url: str, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import select

    from garrison.core import access
    from garrison.store.db import Store
    from garrison.store.models import metadata
    from garrison.store.models.core import Device
    from garrison.tvm import matching, prioritisation
    from garrison.tvm.kb import import_paths

    bm = _bench_matching()
    rng = random.Random(args.seed)
    store = Store(url)
    metadata.create_all(store.engine)
    info: dict[str, Any] = {}
    with store.system() as s:
        tenant = access.create_tenant(s, "bench")
        tid = tenant.id
        access.create_user(s, tid, "bench", PASSWORD, "admin")
    t0 = time.perf_counter()
    import_paths(store, [bm.TVM / "ubuntu-focal", bm.TVM / "pypa", bm.TVM / "alpine-secdb", bm.TVM / "debian-tracker",
                         ROOT / "tests" / "data" / "kb" / "kev", ROOT / "tests" / "data" / "kb" / "epss"])
    fleet_args = SimpleNamespace(seed=args.seed, packages=args.packages)
    fleet = bm.Fleet(fleet_args, bm.lang_pool_from(None, rng, args.lang_pool))
    bm.generate_kb(store, fleet, args.advisories, rng)
    info["kb_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded = bm.load_fleet(store, fleet, tid, args.devices)
    info["load_s"] = time.perf_counter() - t0
    info["device_packages"] = loaded["device_packages"]
    t0 = time.perf_counter()
    with store.tenant(tid) as s:
        # three device groups by name; the default group takes the rest
        for n, (name, pattern) in enumerate((("Group A", "host-0*"), ("Group B", "host-1*"), ("Group C", "host-2*"))):
            access.create_group(s, name, 10 + n, {"name": pattern})
        group_id = s.scalar(select(access.DeviceGroup.id).where(access.DeviceGroup.name == "Group A"))
        device_id = s.scalar(select(Device.id).order_by(Device.id).limit(1))
    info["groups_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = matching.match_all(store)
    info["match_s"] = time.perf_counter() - t0
    info["findings"] = getattr(stats, "findings", None)
    # Planner statistics, as a running deployment has them (PostgreSQL's autovacuum; SQLite's ANALYZE or
    # PRAGMA optimize). Without them SQLite picks the tenant_id index of device_packages over the
    # package_version_id one and lookups by package scan the whole tenant.
    from sqlalchemy import text

    t0 = time.perf_counter()
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    info["analyze_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    prioritisation.refresh(store, tid)
    prioritisation.derive_events(store, tid)
    info["refresh_s"] = time.perf_counter() - t0
    info.update(rebuild_counts(store, tid))
    store.dispose()
    return {"tenant_id": tid, "group_id": group_id, "device_id": device_id, **info}


def rebuild_counts(store: Any, tenant_id: int) -> dict[str, Any]:
    """The per-group device counts (``tvm_group_*``): the fleet was bulk-loaded past ingest, so they
    are rebuilt as the server's job does."""
    from garrison.store.models import metadata
    from garrison.tvm import findings

    metadata.create_all(store.engine)  # a database kept from an older build gains new tables…
    from sqlalchemy import inspect, text

    insp = inspect(store.engine)
    with store.engine.begin() as conn:  # … and new columns (nullable or with a default: a bench shortcut)
        for table in metadata.sorted_tables:
            if not insp.has_table(table.name):
                continue
            have = {c["name"] for c in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name not in have:
                    ddl = col.type.compile(dialect=store.engine.dialect)
                    default = col.default.arg if col.default is not None and not callable(col.default.arg) else None
                    extra = f" DEFAULT {default!r}" if isinstance(default, (int, float, str)) else ""
                    conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {ddl}{extra}'))
    t0 = time.perf_counter()
    out = findings.rebuild_summaries(store, tenant_id)
    return {"counts_s": time.perf_counter() - t0, "counted": out}


PAGES = [
    "/console/", "/console/recommendations", "/console/recommendations?sort=exposed&dir=desc",
    "/console/recommendations?open={rec}", "/console/remediation", "/console/remediation?tab=exceptions",
    "/console/software", "/console/software?q=libssl", "/console/software/{software}",
    "/console/software/{software}?tab=vulnerabilities", "/console/software/{software}?tab=devices",
    "/console/software/{software}?tab=versions", "/console/weaknesses", "/console/weaknesses?open={cve}",
    "/console/timeline", "/console/devices", "/console/devices?exposure=High&sort=name",
    "/console/devices?q=host-09", "/console/devices/{device}", "/console/devices/{device}?tab=software",
    "/console/devices/{device}?tab=vulnerabilities", "/console/devices/{device}?tab=recommendations",
    "/console/devices/{device}?tab=configuration", "/console/settings/groups", "/console/settings/feeds",
    "/console/settings/users",
]


def measure(url: str, built: dict[str, Any], requests: int) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from garrison.server.app import create_app
    from garrison.server.runner import load_services
    from garrison.server.settings import ServerSettings
    from garrison.store.db import Store
    from garrison.store.models.prioritisation import Recommendation
    from tests.web.fleet import find_csrf

    load_services()
    store = Store(url)
    tmp = Path(tempfile.mkdtemp(prefix="garrison-console-bench-"))
    app = create_app(ServerSettings(data_dir=tmp, insecure_http=True, rate_limit_per_minute=10_000_000,
                                    run_jobs=False), store)
    with store.tenant(built["tenant_id"]) as s:
        rec = s.scalar(select(Recommendation.id).order_by(Recommendation.priority_score.desc()).limit(1))
        top = s.scalar(select(Recommendation).order_by(Recommendation.priority_score.desc()).limit(1))
        software = ((top.details or {}).get("softwareIds") or [top.product_id])[0] if top else "x"
    values = {"rec": rec or "x", "software": software, "device": built["device_id"]}
    out = []
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        token = find_csrf(client.get("/console/login").text)
        r = client.post("/console/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303, r.text[:300]
        r = client.get("/console/weaknesses")
        cve = re.search(r'open=(CVE-[0-9-]+|[A-Z]+-[0-9A-Za-z_-]+)"', r.text)
        values["cve"] = cve.group(1) if cve else "CVE-2021-3156"
        for scope in ("", f"group={built['group_id']}"):
            for page in PAGES:
                path = page.format(**values)
                if scope:
                    path += ("&" if "?" in path else "?") + scope
                client.get(path)  # warm-up: the first visit after a prioritisation run
                server, wall = [], []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    r = client.get(path)
                    wall.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, (path, r.status_code, r.text[:300])
                    m = re.search(r"app;dur=([0-9.]+)", r.headers.get("server-timing", ""))
                    server.append(float(m.group(1)) if m else wall[-1])
                out.append({"page": path, "p50": statistics.median(server), "p95": pct(server, 0.95),
                            "max": max(server), "wall_p95": pct(wall, 0.95), "bytes": len(r.content)})
    store.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--packages", type=int, default=600)
    ap.add_argument("--advisories", type=int, default=50_000)
    ap.add_argument("--lang-pool", type=int, default=1500)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--db", help="reuse (or keep) this SQLite database file")
    ap.add_argument("--quick", action="store_true", help="5 requests per page")
    ap.add_argument("--analyze", action="store_true", help="run ANALYZE on a reused --db first")
    ap.add_argument("--recount", action="store_true", help="rebuild the per-group counts of a reused --db first")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.requests = 5
    pg = None
    tmp = Path(tempfile.mkdtemp(prefix="garrison-console-db-"))
    meta_file = None
    try:
        if args.backend == "postgresql":
            from tests.pg import TempPostgres, create_database

            pg = TempPostgres()
            url = create_database(pg.start())
            built = build(url, args)
        else:
            db = Path(args.db) if args.db else tmp / "bench.db"
            url = f"sqlite:///{db}"
            meta_file = db.with_suffix(".json")
            if db.exists() and meta_file.exists():
                built = json.loads(meta_file.read_text())
                if args.recount:
                    from garrison.store.db import Store

                    store = Store(url)
                    built.update(rebuild_counts(store, built["tenant_id"]))
                    store.dispose()
                if args.analyze or args.recount:
                    import sqlite3

                    with sqlite3.connect(db) as conn:
                        conn.execute("ANALYZE")
            else:
                built = build(url, args)
                meta_file.write_text(json.dumps(built, default=str))
        rows = measure(url, built, args.requests)
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    over = [r for r in rows if r["p95"] > BUDGET_MS]
    if args.json:
        print(json.dumps({"build": built, "pages": rows, "over_budget": len(over)}, indent=2, default=str))
    else:
        print(f"\nGarrison console benchmark — {args.backend}, {args.devices:,} devices, "
              f"{built.get('device_packages', 0):,} installed packages, {os.cpu_count()} CPUs")
        print("build: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in built.items()))
        width = max(len(r["page"]) for r in rows)
        print(f"{'page'.ljust(width)}  server p50   p95    max  (ms)")
        for r in rows:
            flag = "  OVER BUDGET" if r["p95"] > BUDGET_MS else ""
            print(f"{r['page'].ljust(width)}  {r['p50']:8.1f} {r['p95']:6.1f} {r['max']:6.1f}{flag}")
        print(f"\n{len(rows) - len(over)} of {len(rows)} pages within {BUDGET_MS:.0f} ms (p95)")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
