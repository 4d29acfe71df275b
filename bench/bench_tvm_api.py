"""Latency of the vulnerability-management read APIs on the dense fleet of bench_matching.py.

    python bench/bench_tvm_api.py --devices 2000 --db /tmp/fleet-2k.db          # build once, then measure
    python bench/bench_tvm_api.py --devices 2000 --db /tmp/fleet-2k.db          # later runs reuse the fleet
    python bench/bench_tvm_api.py --backend postgresql --pg-dir /tmp/fleet-pg   # the same on PostgreSQL

The fleet is bench_matching.py's (same generator, seed and density: ~600 packages and ~5,400 findings
per device, 200,000 advisories), built once into --db (SQLite) or --pg-dir (a PostgreSQL data
directory kept between runs), fully matched and summarised. Each endpoint is called through the real
app (TestClient, an analyst API key) --repeat times after one warm-up call; the table gives median and
p95 latency and the response size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]

import bench_matching as bm
import psycopg
from sqlalchemy import select, text

from garrison.core import access
from garrison.store.db import Store
from garrison.store.models import metadata
from garrison.store.models.core import Device, Tenant
from garrison.tvm import matching
from garrison.tvm.kb import import_paths

PATHS = [
    "/api/Software",
    "/api/Software?$top=50&$orderby=impactScore desc",
    "/api/Software/ubuntu-_-libc6",
    "/api/vulnerabilities?$top=50",
    "/api/vulnerabilities/machinesVulnerabilities?$top=100",
    "/api/machines/{device}/vulnerabilities",
    "/api/machines/{device}/vulnerabilities?$top=50&$orderby=cvssV3 desc",
    "/api/machines/{device}/software",
]


class KeptPostgres:
    """A PostgreSQL cluster in a directory that survives the run (tests.pg's server, not deleted)."""

    def __init__(self, root: Path) -> None:
        from tests.pg import TempPostgres, _free_port

        self.pg = TempPostgres()
        os.rmdir(self.pg.root)
        self.pg.root, self.pg.datadir, self.pg.port = root, root / "data", _free_port()

    def start(self) -> tuple[str, bool]:
        """(database URL, whether the database already existed)."""
        fresh = not self.pg.datadir.exists()
        if fresh:
            self.pg.root.mkdir(parents=True, exist_ok=True)
            base = self.pg.start()
        else:
            pg = self.pg
            pg.proc = subprocess.Popen(
                pg._cmd(str(pg.bindir / "postgres"), "-D", str(pg.datadir), "-p", str(pg.port), "-k", str(pg.root),
                        "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                        "-c", "full_page_writes=off"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            base = f"postgresql+psycopg://garrison@127.0.0.1:{pg.port}"
            for _ in range(300):
                try:
                    psycopg.connect(f"postgresql://garrison@127.0.0.1:{pg.port}/postgres", connect_timeout=1).close()
                    break
                except psycopg.OperationalError:
                    time.sleep(0.1)
        if fresh:
            with psycopg.connect(f"postgresql://garrison@127.0.0.1:{self.pg.port}/postgres", autocommit=True) as c:
                c.execute('CREATE DATABASE "fleet"')
        return f"{base}/fleet", not fresh

    def stop(self) -> None:
        if self.pg.proc:
            self.pg.proc.terminate()
            self.pg.proc.wait(30)


def build(url: str, args: argparse.Namespace) -> None:
    """bench_matching's knowledge base and fleet, matched and summarised."""
    import random

    rng = random.Random(args.seed)
    store = Store(url)
    metadata.create_all(store.engine)
    with store.system() as s:
        tenant_id = access.create_tenant(s, "bench").id
    t0 = time.perf_counter()
    real = [bm.TVM / "ubuntu-focal", bm.TVM / "pypa", bm.TVM / "alpine-secdb", bm.TVM / "debian-tracker"]
    if args.pypa:
        real.append(args.pypa)
    import_paths(store, real)
    fleet = bm.Fleet(args, bm.lang_pool_from(args.pypa, rng, args.lang_pool))
    bm.generate_kb(store, fleet, args.advisories, rng)
    loaded = bm.load_fleet(store, fleet, tenant_id, args.devices)
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    matching.match_all(store, summaries=False)
    matching.rebuild_all_summaries(store)
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    print(f"built {loaded['devices']:,} devices, {loaded['device_packages']:,} device packages in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    store.dispose()


def measure(url: str, repeat: int) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from garrison.server.app import create_app
    from garrison.server.runner import load_services
    from garrison.server.settings import ServerSettings

    store = Store(url)
    load_services()
    with store.system() as s:
        tenant_id = s.scalar(select(Tenant.id).where(Tenant.name == "bench"))
        device = s.scalar(select(Device.id).where(Device.tenant_id == tenant_id,
                                                  Device.computer_dns_name == "host-00000"))
        _row, key = access.create_api_key(s, tenant_id, "analyst", "bench-api")
    app = create_app(ServerSettings(data_dir=Path(tempfile.mkdtemp()), rate_limit_per_minute=10**6, run_jobs=False),
                     store)
    out = []
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app, base_url="https://bench") as client:
        for path in PATHS:
            url_path = path.format(device=device)
            client.get(url_path, headers=headers)  # warm-up (caches, compiled statements)
            times, size, items = [], 0, 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                r = client.get(url_path, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text[:300]
                size = len(r.content)
                body = r.json()
                items = len(body["value"]) if "value" in body else 1
            out.append({"path": path, "median_ms": statistics.median(times), "p95_ms": bm.pct(times, 0.95),
                        "items": items, "bytes": size})
    store.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--packages", type=int, default=600)
    ap.add_argument("--advisories", type=int, default=200_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--db", type=Path, default=None, help="SQLite fleet file (built if missing)")
    ap.add_argument("--pg-dir", type=Path, default=None, help="PostgreSQL data directory (built if missing)")
    ap.add_argument("--pypa", type=Path, default=bm.DEFAULT_PYPA if bm.DEFAULT_PYPA.is_dir() else None)
    ap.add_argument("--lang-pool", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    pg = None
    if args.backend == "postgresql":
        pg = KeptPostgres(args.pg_dir or Path(tempfile.mkdtemp(prefix="garrison-fleet-pg-")) / "pg")
        url, exists = pg.start()
    else:
        db = args.db or Path(tempfile.mkdtemp(prefix="garrison-fleet-")) / "fleet.db"
        url, exists = f"sqlite:///{db}", db.exists()
    try:
        if not exists:
            build(url, args)
        else:  # a fleet built before an index was added: create what is missing
            store = Store(url)
            with store.engine.begin() as conn:
                metadata.create_all(conn)
                for table in metadata.sorted_tables:
                    for index in table.indexes:
                        index.create(conn, checkfirst=True)
            store.dispose()
        if args.build_only:
            return
        rows = measure(url, args.repeat)
    finally:
        if pg:
            pg.stop()
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"backend": args.backend, "rows": rows, "load": load}, indent=2))
        return
    print(f"\nvulnerability-management API — {args.backend}, fleet at {url}, n={args.repeat} per endpoint")
    for r in rows:
        print(f"{r['path']:<70} median {r['median_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  "
              f"{r['items']:>6} items  {r['bytes'] / 1024:8.0f} KiB")
    print(f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
