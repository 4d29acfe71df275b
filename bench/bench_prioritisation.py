"""Benchmark of risk-based prioritisation on the matching benchmark's fleet.

    python bench/bench_prioritisation.py                        # 10,000 devices, SQLite
    python bench/bench_prioritisation.py --backend postgresql   # the same on a temporary PostgreSQL
    python bench/bench_prioritisation.py --devices 1000 --advisories 50000   # a quick run

Builds the fleet with bench/bench_matching.py's builder (real knowledge-base records, generated
advisories, the real inventories with version drift and PyPI packages; --devices devices), adds the
real KEV and EPSS samples, matches everything, then gives the fleet business context: 10 % of the
devices High value and 10 % Low, 5 % internet-facing, four device groups, runtime context (a share of
the vulnerable packages seen running) and a few exceptions.

Measures (budgets of the issue in capitals):

* RECOMPUTE: every device's exposure score, the organisation and group scores and all
  recommendations after a full match (budget 10 s), three runs;
* the recommendation list API (``GET /api/recommendations``, the full list and a console page of 50)
  and the organisation score API (``GET /api/exposureScore``), p95 over --requests calls each (budget
  200 ms), for a caller who sees everything and one limited to a device group.

Prints a table (and --json); the figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]

import bench_matching as bm
from common import add_fleet_arguments, pct, report
from sqlalchemy import func, select, text

from garrison.core import access
from garrison.store.db import Store
from garrison.store.models import metadata
from garrison.store.models.core import Device, DeviceGroup, Setting
from garrison.store.models.prioritisation import Recommendation, RecommendationException
from garrison.store.models.tvm import DevicePackage, PackageVersionVuln
from garrison.tvm import matching
from garrison.tvm.kb import import_paths
from garrison.tvm.prioritisation import risk_acceptance as exc_mod
from garrison.tvm.prioritisation.engine import refresh_tenant

KB = ROOT / "tests" / "data" / "kb"
GROUPS = ("web", "db", "app", "lab")


def business_context(store: Store, tenant_id: int, ids: list[str], rng: random.Random) -> dict[str, int]:
    """Device values, internet exposure, groups and runtime context, written in bulk."""
    with store.tenant(tenant_id) as s:
        gids = []
        for i, name in enumerate(GROUPS):
            g = DeviceGroup(name=name, rank=10 + i, rules={"name": f"{name}-*"})
            s.add(g)
            s.flush()
            gids.append(g.id)
    t = Device.__table__
    high = low = internet = 0
    with store.engine.begin() as conn:
        for chunk_start in range(0, len(ids), 1000):
            chunk = ids[chunk_start : chunk_start + 1000]
            for gi, gid in enumerate(gids):
                part = [d for j, d in enumerate(chunk) if (chunk_start + j) % len(gids) == gi]
                conn.execute(t.update().where(t.c.id.in_(part)).values(group_id=gid))
        picks = rng.sample(ids, len(ids) // 5)
        hi, lo = picks[: len(picks) // 2], picks[len(picks) // 2 :]
        for i in range(0, len(hi), 1000):
            conn.execute(t.update().where(t.c.id.in_(hi[i : i + 1000])).values(device_value="High"))
        for i in range(0, len(lo), 1000):
            conn.execute(t.update().where(t.c.id.in_(lo[i : i + 1000])).values(device_value="Low"))
        high, low = len(hi), len(lo)
        exposed = rng.sample(ids, len(ids) // 20)
        for i in range(0, len(exposed), 1000):
            conn.execute(t.update().where(t.c.id.in_(exposed[i : i + 1000])).values(internet_facing=True))
        internet = len(exposed)
        # runtime context: a third of the vulnerable package versions seen running on their devices
        dp = DevicePackage.__table__
        vulnerable = [r[0] for r in conn.execute(select(PackageVersionVuln.package_version_id).distinct())]
        running = set(rng.sample(vulnerable, len(vulnerable) // 3)) if vulnerable else set()
        now = dt.datetime.now(dt.UTC)
        run_list = sorted(running)
        for i in range(0, len(run_list), 500):
            conn.execute(dp.update().where(dp.c.tenant_id == tenant_id, dp.c.package_version_id.in_(run_list[i : i + 500]))
                         .values(last_used=now))
    return {"groups": len(gids), "high": high, "low": low, "internet": internet, "running_pvs": len(running),
            "group_ids": gids}


def add_exceptions(store: Store, tenant_id: int, group_ids: list[int]) -> int:
    """Exceptions on a few of the top recommendations (group and global)."""
    from garrison.core.access import Principal

    admin = Principal(tenant_id, "bench", "cli", "admin")
    n = 0
    with store.tenant(tenant_id) as s:
        top = list(s.scalars(select(Recommendation.id).order_by(Recommendation.priority_score.desc()).limit(6)))
        for i, rid in enumerate(top):
            if i == 0:
                exc_mod.create(s, admin, rid, "RiskAccepted", scope="Global", duration_days=30)
            else:
                exc_mod.create(s, admin, rid, ["ThirdPartyControl", "AlternateMitigation", "PlannedRemediation"][i % 3],
                               group_ids=[group_ids[i % len(group_ids)]], duration_days=30)
            n += 1
    return n


def measure_api(store: Store, tenant_id: int, group_id: int, requests: int) -> list[tuple[str, list[float]]]:
    from fastapi.testclient import TestClient

    from garrison.server.app import create_app
    from garrison.server.runner import load_services
    from garrison.server.settings import ServerSettings

    load_services()
    with store.system() as s:
        _row, key = access.create_api_key(s, tenant_id, "analyst", "bench", "bench")
        _row, scoped = access.create_api_key(s, tenant_id, "analyst", "bench scoped", "bench", [group_id])
    app = create_app(ServerSettings(data_dir=Path(tempfile.mkdtemp()), rate_limit_per_minute=10**9, run_jobs=False),
                     store)
    out: list[tuple[str, list[float]]] = []
    with TestClient(app, base_url="https://bench") as client:
        for who, k in (("all groups", key), ("one group", scoped)):
            h = {"Authorization": f"Bearer {k}"}
            for label, path in ((f"GET /api/recommendations (full list, {who})", "/api/recommendations"),
                                (f"GET /api/recommendations?$top=50 ({who})", "/api/recommendations?$top=50"),
                                (f"GET /api/exposureScore ({who})", "/api/exposureScore")):
                r = client.get(path, headers=h)  # warm-up (and key verification)
                assert r.status_code == 200, r.text
                times = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    r = client.get(path, headers=h)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200
                out.append((label + f" [{len(r.json().get('value', [r.json()]))} rows]", times))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fleet_arguments(ap)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--db", type=Path, default=None,
                    help="SQLite file to build the fleet in and keep; an existing one is reused as it is")
    ap.add_argument("--url", default=None,
                    help="database URL (e.g. an existing PostgreSQL database) to build the fleet in or reuse")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="garrison-bench-prio-"))
    pg = None
    reuse = False
    if args.url:
        url = args.url
        probe = Store(url)
        try:
            with probe.system() as s:
                reuse = s.get(Setting, "bench.prioritisation") is not None
        except Exception:  # noqa: BLE001 - an empty database: build
            reuse = False
        probe.dispose()
        args.backend = probe.dialect
    elif args.backend == "postgresql":
        from tests.pg import TempPostgres, create_database

        pg = TempPostgres()
        url = create_database(pg.start())
    elif args.db is not None:
        reuse = args.db.exists()
        url = f"sqlite:///{args.db.resolve()}"
    else:
        url = f"sqlite:///{tmp / 'bench.db'}"
    results: dict[str, Any] = {"backend": args.backend, "devices": args.devices}
    rows: list[tuple[str, str]] = []

    def say(msg: str) -> None:
        if not args.json:
            print(f"  … {msg}", file=sys.stderr, flush=True)

    try:
        store = Store(url)
        if reuse:
            with store.system() as s:
                tenant_id = access.tenant_by_name(s, "bench").id
                ctx = json.loads(s.get(Setting, "bench.prioritisation").value)
                loaded = {"devices": ctx["devices"], "device_packages": ctx["device_packages"],
                          "package_versions": ctx["package_versions"]}
                stats_findings = ctx["pairs"]
            say("reusing " + str(args.db))
        else:
            metadata.create_all(store.engine)
            with store.system() as s:
                tenant_id = access.create_tenant(s, "bench").id
            t0 = time.perf_counter()
            real = [bm.TVM / "ubuntu-focal", bm.TVM / "pypa", bm.TVM / "alpine-secdb", bm.TVM / "debian-tracker",
                    KB / "kev", KB / "epss"]
            if args.pypa:
                real.append(args.pypa)
            import_paths(store, [p for p in real if p.exists()])
            fleet = bm.Fleet(args, bm.lang_pool_from(args.pypa, rng, args.lang_pool))
            bm.generate_kb(store, fleet, args.advisories, rng)
            say(f"knowledge base ready ({time.perf_counter() - t0:.0f} s)")
            t0 = time.perf_counter()
            loaded = bm.load_fleet(store, fleet, tenant_id, args.devices)
            say(f"fleet loaded ({time.perf_counter() - t0:.0f} s)")
            t0 = time.perf_counter()
            stats_findings = matching.match_all(store).findings
            say(f"matched ({time.perf_counter() - t0:.0f} s)")
            ctx = business_context(store, tenant_id, loaded["ids"], rng)
            ctx.update(devices=loaded["devices"], device_packages=loaded["device_packages"],
                       package_versions=loaded["package_versions"], pairs=stats_findings)
            with store.system() as s:
                s.merge(Setting(key="bench.prioritisation", value=json.dumps(ctx)))
            if args.backend == "postgresql":
                with store.engine.begin() as conn:
                    conn.execute(text("ANALYZE"))
        with store.tenant(tenant_id) as s:
            findings = s.scalar(select(func.count()).select_from(DevicePackage).join(
                PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id))
        rows.append(("fleet: devices / device packages / package versions",
                     f"{loaded['devices']:,} / {loaded['device_packages']:,} / {loaded['package_versions']:,}"))
        rows.append(("findings (device x CVE x package rows)", f"{findings:,} ({stats_findings:,} vulnerable pairs)"))
        rows.append(("context: High / Low value, internet-facing, groups",
                     f"{ctx['high']:,} / {ctx['low']:,}, {ctx['internet']:,}, {ctx['groups']}"))

        runs = []
        last = None
        for i in range(args.runs):
            if i == 1:
                with store.tenant(tenant_id) as s:
                    have = s.scalar(select(func.count()).select_from(RecommendationException))
                if not have:
                    add_exceptions(store, tenant_id, ctx["group_ids"])
            t0 = time.perf_counter()
            with store.tenant(tenant_id) as s:
                last = refresh_tenant(s, tenant_id)
            runs.append(time.perf_counter() - t0)
        assert last is not None
        results["recompute_s"] = runs
        results["recompute_breakdown"] = last.timings
        rows.append(("RECOMPUTE: device scores + org/group scores + recommendations (budget 10 s)",
                     ", ".join(f"{x:.2f} s" for x in runs) + f" (median {statistics.median(runs):.2f} s)"))
        rows.append(("  breakdown of the last run", ", ".join(f"{k} {v:.2f}" for k, v in last.timings.items())))
        rows.append(("  result", (f"{last.scored_devices:,} devices scored, {last.recommendations:,} recommendations, "
                                  f"organisation score {last.organisation_score:.1f}")))
        with store.tenant(tenant_id) as s:
            levels = dict(s.execute(select(Device.exposure_level, func.count()).group_by(Device.exposure_level)).all())
        rows.append(("  device exposure levels", ", ".join(f"{k} {v:,}" for k, v in sorted(levels.items()))))

        api_rows = measure_api(store, tenant_id, ctx["group_ids"][0], args.requests)
        results["api_ms"] = {}
        for label, times in api_rows:
            results["api_ms"][label] = {"median": statistics.median(times), "p95": pct(times, 0.95)}
            rows.append((f"API {label} (budget 200 ms p95)",
                         f"median {statistics.median(times):.1f} ms, p95 {pct(times, 0.95):.1f} ms"))
        store.dispose()
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(f"Garrison prioritisation benchmark — {args.backend}", results, rows, args.json)


if __name__ == "__main__":
    main()
