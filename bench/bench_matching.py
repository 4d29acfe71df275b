"""Benchmark of vulnerability matching at fleet scale.

    python bench/bench_matching.py                       # 10,000 devices, 200,000 advisories, SQLite
    python bench/bench_matching.py --backend postgresql  # the same on a temporary PostgreSQL
    python bench/bench_matching.py --devices 1000 --advisories 50000   # a quick run

What it builds (all in a fresh state store):

* Knowledge base: the real records in tests/data/tvm (Ubuntu 20.04 USNs, PYSEC, Alpine secdb, Debian
  tracker), the full PyPA database when --pypa points at it, then generated advisories of realistic shape
  up to --advisories: per-CVE distro records (ECOSYSTEM ranges [0, fixed) or open, explicit ``versions``
  lists as Ubuntu publishes them, several releases per record) and language records (multi-range
  events, versions lists). A few percent target the fleet's own packages, the rest the rest of the
  world, as in a real knowledge base.
* Fleet: --devices devices, each one of the real inventories in tests/data/inventories (Ubuntu 20.04,
  Ubuntu 18.04, Debian bookworm/sid, Alpine 3.14) with version drift (a share of its source packages at one
  of a few newer builds), topped up to about --packages packages with language packages drawn
  (popularity-skewed) from a pool of names and versions. Devices are loaded in bulk (Core inserts);
  a sample of snapshots also goes through the real ingest path, timed.

What it measures: full matching (in a fresh process, for a clean peak RSS), the findings JOIN, one
device's inventory delta through the real ingest path (the new package version matched inline), and a
feed update followed by rematch_changed. Prints a table (and --json).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]

from common import add_fleet_arguments, pct, report
from sqlalchemy import func, insert, select, text

from garrison.core import access
from garrison.inventory import ecosystem_for, parse_apk_installed, parse_dpkg_status, parse_os_release
from garrison.protocol import InventoryReport, OsIdentity, SoftwarePackage
from garrison.store.base import new_hex_id, utcnow
from garrison.store.db import Store
from garrison.store.models import metadata
from garrison.store.models.core import Device
from garrison.store.models.kb import Advisory, AdvisoryVulnerability, AffectedPackage, Vulnerability
from garrison.store.models.tvm import DeviceInventoryState, DevicePackage, PackageVersionVuln
from garrison.tvm import inventory, matching
from garrison.tvm.kb import import_bytes, import_paths
from garrison.tvm.software import identity_of

INV = ROOT / "tests" / "data" / "inventories"
TVM = ROOT / "tests" / "data" / "tvm"

# (name, weight, inventory file, os identity)
TEMPLATES = [
    ("ubuntu-20.04", 40, "ubuntu-20.04-ga.dpkg-status", "ubuntu-20.04-ga.os-release"),
    ("ubuntu-18.04", 25, "ubuntu-18.04.dpkg-status", None),
    ("debian-bookworm", 20, "debian-sid-riscv64.dpkg-status", "debian-sid-riscv64.os-release"),
    ("alpine-3.14", 15, "alpine-3.14.0.apk-installed", "alpine-3.14.0.os-release"),
]
DRIFT_SHARE = 0.15  # share of a device's source packages at a newer build
DRIFT_BUILDS = 6  # how many newer builds exist per source package
OTHER_RELEASES = {"Ubuntu": ["Ubuntu:16.04:LTS", "Ubuntu:22.04:LTS", "Ubuntu:24.04:LTS"],
                  "Debian": ["Debian:11", "Debian:13"], "Alpine": ["Alpine:v3.13", "Alpine:v3.15", "Alpine:v3.16"]}


# --- versions --------------------------------------------------------------------------------

def bumped(version: str, eco: str, k: int) -> str:
    """The k-th newer build of a distro version (k >= 1), in the distro's own style."""
    if eco.startswith("Alpine"):
        head, _, rel = version.rpartition("-r")
        return f"{head}-r{int(rel) + k}" if head and rel.isdigit() else f"{version}-r{k}"
    if eco.startswith("Ubuntu"):
        return f"{version}.{k}" if "ubuntu" in version.rpartition("-")[2] else f"{version}ubuntu0.{k}"
    return f"{version}+deb12u{k}"


def older(version: str, eco: str) -> str:
    if eco.startswith("Alpine"):
        head, _, rel = version.rpartition("-r")
        return f"{head}-r{int(rel) - 1}" if head and rel.isdigit() and int(rel) > 0 else "0.0.1-r0"
    return f"{version}~pre1"


# --- fleet -------------------------------------------------------------------------------------

class Fleet:
    def __init__(self, args: argparse.Namespace, lang_pool: dict[str, list[str]]) -> None:
        self.args = args
        self.templates: list[tuple[str, int, OsIdentity, list[SoftwarePackage]]] = []
        for name, weight, inv, osf in TEMPLATES:
            os_ident = parse_os_release((INV / osf).read_bytes()) if osf else OsIdentity(id="ubuntu", version_id="18.04")
            data = (INV / inv).read_bytes()
            pkgs = parse_apk_installed(data, os_ident) if inv.endswith("apk-installed") else parse_dpkg_status(data, os_ident)
            self.templates.append((name, weight, os_ident, pkgs))
        self.weights = [t[1] for t in self.templates]
        self.lang_names = sorted(lang_pool)
        self.lang_pool = lang_pool
        # Popularity: Zipf-like, so that some libraries are on most devices and most on few.
        order = random.Random(args.seed).sample(self.lang_names, len(self.lang_names))
        self.lang_by_rank = order
        self.lang_cum = list(itertools.accumulate(1 / (r + 1) ** 1.1 for r in range(len(order))))

    def device(self, i: int) -> tuple[OsIdentity, list[SoftwarePackage]]:
        rng = random.Random(self.args.seed * 1_000_003 + i)
        _name, _w, os_ident, base = rng.choices(self.templates, weights=self.weights)[0]
        sources = sorted({p.source_name for p in base})
        drift = {s: rng.randint(1, DRIFT_BUILDS) for s in sources if rng.random() < DRIFT_SHARE}
        out: list[SoftwarePackage] = []
        for p in base:
            k = drift.get(p.source_name)
            if k:
                eco = p.ecosystem
                p = p.model_copy(update={"version": bumped(p.version, eco, k),
                                         "source_version": bumped(p.source_version, eco, k)})
            out.append(p)
        n_lang = max(0, self.args.packages - len(out))
        picks = rng.choices(self.lang_by_rank, cum_weights=self.lang_cum, k=n_lang * 2) if n_lang else []
        chosen = list(dict.fromkeys(picks))[:n_lang]
        if len(chosen) < n_lang:  # popular names repeat: top up with less popular ones
            rest = [n for n in self.lang_by_rank if n not in set(chosen)]
            chosen += rng.sample(rest, min(n_lang - len(chosen), len(rest)))
        for name in sorted(chosen):
            versions = self.lang_pool[name]
            v = versions[min(int(rng.expovariate(0.5)), len(versions) - 1)]
            out.append(SoftwarePackage(manager="python", name=name, version=v, ecosystem="PyPI",
                                       path=f"/usr/lib/python3/dist-packages/{name}-{v}.dist-info"))
        return os_ident, out


def lang_pool_from(pypa: Path | None, rng: random.Random, size: int) -> dict[str, list[str]]:
    """PyPI names with versions: the real PyPA database's packages and affected versions when given,
    else generated names (the advisories for them are generated too)."""
    pool: dict[str, list[str]] = {}
    if pypa and pypa.is_dir():
        import yaml

        for d in sorted(pypa.iterdir()):
            versions: list[str] = []
            for f in sorted(d.glob("*.yaml"))[:3]:
                doc = yaml.load(f.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                for aff in doc.get("affected") or []:
                    versions += [str(v) for v in aff.get("versions") or []]
            versions = sorted(set(versions))[-12:]
            if versions:
                pool[d.name.lower().replace("_", "-").replace(".", "-")] = versions
    i = 0
    while len(pool) < size:
        pool[f"lib{i:05d}"] = [f"{a}.{b}.{c}" for a in (1, 2) for b in range(3) for c in (0, 1)][: 4 + i % 8]
        i += 1
    return pool


# --- knowledge base -----------------------------------------------------------------------------

def generate_kb(store: Store, fleet: Fleet, total: int, rng: random.Random) -> dict[str, int]:
    """Generated advisories up to ``total`` (counting what is already there)."""
    with store.system() as s:
        have = s.scalar(select(func.count()).select_from(Advisory)) or 0
    todo = max(0, total - have)
    fleet_pkgs: list[tuple[str, str, str]] = []  # (ecosystem, package, installed version)
    for _n, _w, _os, pkgs in fleet.templates:
        seen = set()
        for p in pkgs:
            if p.source_name not in seen:
                seen.add(p.source_name)
                fleet_pkgs.append((p.ecosystem, p.source_name, p.source_version))
    lang = [(n, vs) for n, vs in fleet.lang_pool.items()]
    now = utcnow()
    stats = {"generated": 0, "affected_rows": 0}
    batch = 5000
    n = 0
    while n < todo:
        adv_rows, vuln_rows, link_rows, aff_rows = [], [], [], []
        for _ in range(min(batch, todo - n)):
            n += 1
            cve = f"CVE-{2000 + n % 25}-{100000 + n}"
            roll = rng.random()
            if roll < 0.04 and fleet_pkgs:  # a distro advisory about a package the fleet has
                eco, pkg, installed = rng.choice(fleet_pkgs)
                base = eco.split(":")[0]
                fixed = (older(installed, eco) if rng.random() < 0.5
                         else bumped(installed, eco, rng.randint(1, DRIFT_BUILDS + 1)))
                ecos = [eco] + rng.sample(OTHER_RELEASES.get(base, []), k=min(2, len(OTHER_RELEASES.get(base, []))))
                aid = f"{base.upper()}-{cve}"
                for e in ecos:
                    events: list[dict[str, str]] = [{"introduced": "0"}]
                    if rng.random() < 0.85:
                        events.append({"fixed": fixed})
                    aff_rows.append({"advisory_id": aid, "ecosystem": e, "package": pkg,
                                     "ranges": [{"type": "ECOSYSTEM", "events": events}],
                                     "versions": [older(installed, e), installed][: rng.randint(0, 2)],
                                     "status": "affected", "severity": rng.choice(["low", "medium", "high"])})
            elif roll < 0.10 and lang:  # a language advisory about a fleet library
                name, versions = rng.choice(lang)
                aid = f"GHSA-{n:04x}-bnch-{n % 9973:04x}"
                cut = rng.randrange(len(versions))
                events = [{"introduced": "0"}, {"fixed": versions[cut]}]
                if rng.random() < 0.3 and cut + 2 < len(versions):
                    events += [{"introduced": versions[cut + 1]}, {"fixed": versions[cut + 2]}]
                aff_rows.append({"advisory_id": aid, "ecosystem": "PyPI", "package": name,
                                 "ranges": [{"type": "ECOSYSTEM", "events": events}], "versions": versions[:cut],
                                 "status": "affected", "severity": None})
            else:  # the rest of the world: packages no device of this fleet has
                base = rng.choice(["Ubuntu", "Debian", "Alpine", "PyPI", "npm", "Maven", "Go"])
                pkg = f"world-{base.lower()}-{rng.randrange(30000)}"
                aid = f"GEN-{base.upper()}-{cve}"
                ecos = ([rng.choice(OTHER_RELEASES[base] + [f"{base}:x"])] if base in OTHER_RELEASES
                        else [base])
                for e in ecos:
                    fixed = f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
                    versions = [f"{fixed.split('.')[0]}.0.{k}" for k in range(rng.randint(0, 12))]
                    aff_rows.append({"advisory_id": aid, "ecosystem": e, "package": pkg,
                                     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},
                                                                                 {"fixed": fixed}]}],
                                     "versions": versions, "status": "affected", "severity": None})
            adv_rows.append({"id": aid, "source": "bench", "withdrawn": False, "summary": "generated",
                             "aliases": [cve], "content_hash": "", "imported_at": now})
            score = round(rng.uniform(2.0, 9.8), 1)
            vuln_rows.append({"id": cve, "description": "generated", "severity": "High" if score >= 7 else "Medium",
                              "cvss_v3_score": score, "sources": [aid], "created_at": now, "modified_at": now})
            link_rows.append({"advisory_id": aid, "vulnerability_id": cve})
        with store.engine.begin() as conn:
            conn.execute(insert(Vulnerability.__table__), vuln_rows)
            conn.execute(insert(Advisory.__table__), adv_rows)
            conn.execute(insert(AdvisoryVulnerability.__table__), link_rows)
            conn.execute(insert(AffectedPackage.__table__), aff_rows)
        stats["generated"] += len(adv_rows)
        stats["affected_rows"] += len(aff_rows)
    return stats


# --- loading the fleet -----------------------------------------------------------------------------

def load_fleet(store: Store, fleet: Fleet, tenant_id: int, n_devices: int) -> dict[str, Any]:
    """Devices, package versions and device_packages in bulk (Core inserts), batch by batch."""
    now = utcnow()
    rows_total = 0
    pv_ids: dict[str, int] = {}
    batch = 250
    ids: list[str] = []
    for start in range(0, n_devices, batch):
        devices, states, dps = [], [], []
        idents: dict[str, Any] = {}
        per_device: list[tuple[str, list[str], list[str]]] = []
        for i in range(start, min(start + batch, n_devices)):
            os_ident, pkgs = fleet.device(i)
            did = new_hex_id()
            ids.append(did)
            distro = ecosystem_for(os_ident)
            devices.append({"id": did, "tenant_id": tenant_id, "machine_key": None, "computer_dns_name": f"host-{i:05d}",
                            "os_platform": "Linux", "os_version": os_ident.version_id, "os_id": os_ident.id,
                            "agentless": True, "last_seen": now, "first_seen": now})
            states.append({"device_id": did, "tenant_id": tenant_id, "generation": 1, "os_id": os_ident.id,
                           "os_version_id": os_ident.version_id, "os_codename": os_ident.codename,
                           "ecosystem": distro, "package_count": len(pkgs), "source": "import", "updated_at": now})
            keys, paths = [], []
            for p in pkgs:
                ident = identity_of(p, distro)
                k = ident.key
                if k not in pv_ids and k not in idents:
                    idents[k] = (ident, p.purl)
                keys.append(k)
                paths.append(p.path)
            per_device.append((did, keys, paths))
        with store.system() as s:
            if idents:
                got, _ = inventory.ensure_package_versions(s, idents)
                pv_ids.update(got)
            s.execute(insert(Device.__table__), devices)
            s.execute(insert(DeviceInventoryState.__table__), states)
            for did, keys, paths in per_device:
                seen: set[int] = set()
                for k, path in zip(keys, paths):
                    pv = pv_ids[k]
                    if pv not in seen:
                        seen.add(pv)
                        dps.append({"tenant_id": tenant_id, "device_id": did, "package_version_id": pv,
                                    "path": path[:1024], "first_seen": now, "last_used": None})
            for j in range(0, len(dps), 20000):
                s.execute(insert(DevicePackage.__table__), dps[j : j + 20000])
        rows_total += len(dps)
    return {"devices": n_devices, "device_packages": rows_total, "package_versions": len(pv_ids), "ids": ids}


# --- phases -------------------------------------------------------------------------------------

def phase_match(url: str) -> None:
    """Run in a fresh process: full matching, with its own peak RSS."""
    store = Store(url)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    stats = matching.match_all(store, summaries=False)
    secs = time.perf_counter() - t0
    t1 = time.perf_counter()
    matching.rebuild_all_summaries(store)
    rebuild = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": secs, "rebuild_seconds": rebuild, "peak_rss_mb": peak / 1024,
                      "start_rss_mb": rss0 / 1024, **stats.as_dict()}))


def measure_deltas(store: Store, fleet: Fleet, tenant_id: int, ids: list[str], n: int,
                   rng: random.Random) -> list[float]:
    """One device's delta (one package replaced by a build never seen before), through apply_inventory."""
    times = []
    for j in range(n):
        i = rng.randrange(len(ids))
        os_ident, pkgs = fleet.device(i)
        old = rng.choice([p for p in pkgs if p.manager in ("dpkg", "apk")])
        new = old.model_copy(update={"version": old.version + f"+bench{j}",
                                     "source_version": old.source_version + f"+bench{j}"})
        t0 = time.perf_counter()
        with store.tenant(tenant_id) as s:
            device = s.get(Device, ids[i])
            state = s.get(DeviceInventoryState, ids[i])
            report = InventoryReport(mode="delta", generation=state.generation + 1, base_generation=state.generation,
                                     os=os_ident, added=[new], removed=[old])
            reply = inventory.apply_inventory(s, device, report)
        times.append((time.perf_counter() - t0) * 1000)
        assert "inventory" in reply, reply
    return times


def measure_snapshots(store: Store, fleet: Fleet, tenant_id: int, n: int, offset: int) -> list[float]:
    times = []
    for i in range(offset, offset + n):
        os_ident, pkgs = fleet.device(i)
        t0 = time.perf_counter()
        with store.tenant(tenant_id) as s:
            device = Device(tenant_id=tenant_id, machine_key=None, computer_dns_name=f"ingest-{i}", agentless=True)
            s.add(device)
            s.flush()
            inventory.apply_inventory(s, device, InventoryReport(mode="snapshot", generation=1, os=os_ident,
                                                                 packages=pkgs))
        times.append((time.perf_counter() - t0) * 1000)
    return times


def feed_update(store: Store, fleet: Fleet, rng: random.Random, n: int) -> dict[str, Any]:
    """``n`` new OSV records about fleet packages, imported through the kb pipeline, then rematch."""
    records = []
    _name, _w, _os, pkgs = fleet.templates[0]
    for k in range(n):
        p = rng.choice(pkgs)
        records.append({"id": f"UBUNTU-CVE-2099-{10000 + k}", "modified": "2099-01-01T00:00:00Z",
                        "affected": [{"package": {"ecosystem": p.ecosystem, "name": p.source_name},
                                      "ranges": [{"type": "ECOSYSTEM", "events": [
                                          {"introduced": "0"}, {"fixed": bumped(p.source_version, p.ecosystem, 3)}]}]}]})
    t0 = time.perf_counter()
    result = import_bytes(store, json.dumps(records).encode(), "bench-update.json")
    t1 = time.perf_counter()
    stats = matching.rematch_changed(store, result.changed_packages)
    t2 = time.perf_counter()
    return {"records": n, "import_s": t1 - t0, "rematch_s": t2 - t1, "changed_packages": len(result.changed_packages),
            "rematched_pvs": stats.package_versions, "added": stats.added}


def measure_api(store: Store, tenant_id: int, device_id: str) -> list[tuple[str, str]]:
    """Latency of the main list endpoints on the whole fleet (the real app, an analyst key)."""
    from fastapi.testclient import TestClient

    from garrison.server.app import create_app
    from garrison.server.runner import load_services
    from garrison.server.settings import ServerSettings

    load_services()
    with store.system() as s:
        _row, key = access.create_api_key(s, tenant_id, "analyst", "bench")
    app = create_app(ServerSettings(data_dir=Path(tempfile.mkdtemp()), rate_limit_per_minute=10**6, run_jobs=False),
                     store)
    out = []
    with TestClient(app, base_url="https://bench") as client:
        for path in ("/api/Software?$top=50&$orderby=impactScore desc", "/api/Software/ubuntu-_-libc6",
                     "/api/vulnerabilities?$top=50", "/api/vulnerabilities/machinesVulnerabilities?$top=100",
                     f"/api/machines/{device_id}/vulnerabilities", f"/api/machines/{device_id}/software"):
            t0 = time.perf_counter()
            r = client.get(path, headers={"Authorization": f"Bearer {key}"})
            ms = (time.perf_counter() - t0) * 1000
            assert r.status_code == 200, r.text[:300]
            out.append((f"API: GET {path.split('?')[0]}", f"{ms:.0f} ms"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fleet_arguments(ap)
    ap.add_argument("--deltas", type=int, default=200)
    ap.add_argument("--snapshots", type=int, default=50)
    ap.add_argument("--keep", action="store_true", help="keep the SQLite database (printed) for inspection")
    ap.add_argument("--phase", choices=["all", "match"], default="all")
    ap.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "match":
        phase_match(args.url)
        return

    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="garrison-bench-"))
    pg = None
    if args.backend == "postgresql":
        from tests.pg import TempPostgres, create_database

        pg = TempPostgres()
        url = create_database(pg.start())
    else:
        url = f"sqlite:///{tmp / 'bench.db'}"
    results: dict[str, Any] = {"backend": args.backend, "devices": args.devices}
    timings: list[tuple[str, str]] = []
    try:
        store = Store(url)
        metadata.create_all(store.engine)
        with store.system() as s:
            tenant_id = access.create_tenant(s, "bench").id

        t0 = time.perf_counter()
        real = [TVM / "ubuntu-focal", TVM / "pypa", TVM / "alpine-secdb", TVM / "debian-tracker"]
        if args.pypa:
            real.append(args.pypa)
        r = import_paths(store, real)
        t_real = time.perf_counter() - t0
        fleet = Fleet(args, lang_pool_from(args.pypa, rng, args.lang_pool))
        t0 = time.perf_counter()
        gen = generate_kb(store, fleet, args.advisories, rng)
        t_gen = time.perf_counter() - t0
        with store.system() as s:
            n_adv = s.scalar(select(func.count()).select_from(Advisory))
            n_aff = s.scalar(select(func.count()).select_from(AffectedPackage))
        timings.append(("knowledge base: real records imported", f"{r.records:,} in {t_real:.1f} s"))
        timings.append(("knowledge base: advisories / affected rows",
                        f"{n_adv:,} / {n_aff:,} ({gen['generated']:,} generated in {t_gen:.1f} s)"))

        t0 = time.perf_counter()
        loaded = load_fleet(store, fleet, tenant_id, args.devices)
        t_load = time.perf_counter() - t0
        timings.append(("fleet: devices / device packages",
                        f"{loaded['devices']:,} / {loaded['device_packages']:,} (bulk load {t_load:.1f} s)"))
        timings.append(("fleet: distinct package versions", f"{loaded['package_versions']:,}"))
        if args.backend == "postgresql":
            with store.engine.begin() as conn:
                conn.execute(text("ANALYZE"))

        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
        proc = subprocess.run([sys.executable, __file__, "--phase", "match", "--url", url], capture_output=True,
                              text=True, env=env, check=True)
        m = json.loads(proc.stdout.strip().splitlines()[-1])
        results["full_match"] = m
        timings.append(("FULL MATCHING (budget 60 s, 2 GB)",
                        (f"{m['seconds']:.1f} s, peak RSS {m['peak_rss_mb']:.0f} MB "
                         f"({m['packageVersions']:,} package versions, {m['findings']:,} vulnerable pairs)")))
        timings.append(("summaries rebuilt from scratch (per-group device counts)", f"{m['rebuild_seconds']:.1f} s"))

        with store.tenant(tenant_id) as s:
            t0 = time.perf_counter()
            open_findings = s.scalar(select(func.count()).select_from(DevicePackage).join(
                PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id))
            t_join = time.perf_counter() - t0
        timings.append(("findings: device x CVE x software rows (JOIN)", f"{open_findings:,} counted in {t_join:.2f} s"))

        snaps = measure_snapshots(store, fleet, tenant_id, args.snapshots, args.devices)
        timings.append((f"ingest: snapshot of ~{args.packages} packages, real path (n={len(snaps)})",
                        f"median {statistics.median(snaps):.0f} ms, p95 {pct(snaps, 0.95):.0f} ms"))
        deltas = measure_deltas(store, fleet, tenant_id, loaded["ids"], args.deltas, rng)
        results["delta_ms"] = {"median": statistics.median(deltas), "p95": pct(deltas, 0.95), "max": max(deltas)}
        timings.append((f"ONE DEVICE'S DELTA incl. matching (budget 50 ms, n={len(deltas)})",
                        (f"median {statistics.median(deltas):.1f} ms, p95 {pct(deltas, 0.95):.1f} ms, "
                         f"max {max(deltas):.1f} ms")))
        for label, ms in measure_api(store, tenant_id, loaded["ids"][0]):
            timings.append((label, ms))
        upd = feed_update(store, fleet, rng, 500)
        results["feed_update"] = upd
        timings.append(("feed update: 500 records import + rematch_changed",
                        (f"{upd['import_s']:.2f} s + {upd['rematch_s']:.2f} s "
                         f"({upd['rematched_pvs']:,} package versions re-matched)")))
        store.dispose()
    finally:
        if pg:
            pg.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    timings.append(("machine load average at the end (1/5/15 min; other work shares these CPUs)",
                    f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"))
    report(f"Garrison matching benchmark — {args.backend}", results, timings, args.json)

if __name__ == "__main__":
    main()
