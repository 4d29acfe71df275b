"""Recompute one tenant: device exposure scores and levels, organisation and group scores with
their daily history, materialised recommendations, and remediation progress.

The cost is two streaming passes over ``device_packages`` (millions of rows on a 10,000-device
fleet), each in the order of an index so that the database never sorts them:

1. **by device** (primary key order): every device's total hazard;
2. **by package version** (the ``(package_version_id, tenant_id, device_id, …)`` index): per package
   version and device group, the exposed devices, devices in use, each device's predicted score
   drop (computed in SQL with ``exp``) and the priority — one output row per package version.

Both join small staging tables of the transaction: ``prio_pv`` (each vulnerable package version
present in the tenant: its remediation unit, its rank among the binaries built from the same source
version, the sum of its vulnerabilities' hazards — an SQL expression) and ``prio_dev`` (per device:
group, multiplier, weights, and after pass 1 its total hazard). Binaries built from one source
version share its findings: only the first of them present on a device counts (``prio_sib`` lists
the better-ranked siblings), so nothing is counted twice. Python sums package versions into
recommendations; it never sees a row per device and finding.

Exceptions (risk-reducing), active alerts and failed configuration checks are few or already
aggregated; they are applied as corrections from small queries.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import sqlite3
import time
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from garrison.store.base import utcnow
from garrison.store.db import run_sql, tenant_query
from garrison.store.models.core import Device, DeviceGroup
from garrison.store.models.kb import Vulnerability
from garrison.store.models.prioritisation import (
    ORG,
    DeviceVulnerabilityAlert,
    ExposureGroupScore,
    ExposureScoreHistory,
    Recommendation,
    RecommendationGroup,
    RecommendationHistory,
)
from garrison.store.models.tvm import DeviceInventoryState, DevicePackage, PackageVersion, PackageVersionVuln
from garrison.tvm import findings
from garrison.tvm.prioritisation import config, exposure, recommendations, remediation, risk_acceptance
from garrison.tvm.prioritisation.recommendations import RecAcc
from garrison.tvm.software import SOURCE_KEYED, ecosystem_base

log = logging.getLogger("garrison.tvm.prioritisation")

CHUNK = 1000
TREND_DAYS = 7
MAX_GROUP_COLUMNS = 48  # device groups aggregated side by side in pass 2; more: one sorted pass
PARALLEL_WORKERS = min(4, os.cpu_count() or 1)  # SQLite: connections that share pass 2
PARALLEL_MIN_DEVICES = 2000  # below this a second connection costs more than it saves
TEMP_TABLES = ("prio_pv", "prio_sib", "prio_dev", "prio_red", "prio_safe", "prio_safe_sib")


@dataclass
class Dev:
    id: str
    group_id: int | None
    value: str
    internet: bool
    counts: bool  # active and has data: counts for scores and recommendations
    old_score: float
    old_level: str
    covered: bool = True  # its release is covered by some feed (else a "None" level is "not covered")
    hazard: float = 0.0
    e: float = 1.0

    @property
    def gkey(self) -> int:
        return exposure.group_key(self.group_id)

    @property
    def multiplier(self) -> float:
        return exposure.device_multiplier(self.value, self.internet)

    @property
    def w_nl(self) -> float:
        return 0.0 if self.value == "High" else exposure.ORG_WEIGHT.get(self.value, 1.0)

    @property
    def pf(self) -> float:
        return recommendations.BUSINESS_VALUE.get(self.value, 1.0) * \
            (exposure.INTERNET_FACING_MULTIPLIER if self.internet else 1.0)

    def row(self) -> dict[str, Any]:
        """The device's ``prio_dev`` row."""
        return {"d": self.id, "g": self.gkey, "m": self.multiplier, "mk": self.multiplier / exposure.SATURATION,
                "w": self.w_nl, "hi": int(self.value == "High"), "lo": int(self.value == "Low"),
                "net": int(self.internet), "pf": self.pf, "h": self.hazard, "e": self.e, "e100": 100.0 * self.e}


@dataclass
class RefreshStats:
    tenant_id: int
    devices: int = 0
    scored_devices: int = 0
    recommendations: int = 0
    organisation_score: float = 0.0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"tenantId": self.tenant_id, "devices": self.devices, "scoredDevices": self.scored_devices,
                "recommendations": self.recommendations, "organizationScore": round(self.organisation_score, 2),
                "seconds": round(self.seconds, 3), "timings": {k: round(v, 3) for k, v in self.timings.items()}}


def _lock(s: Session, tenant_id: int) -> None:
    """One refresh per tenant at a time (PostgreSQL; SQLite serialises writers anyway)."""
    if s.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"garrison.prioritisation.{tenant_id}".encode())
        run_sql(s, "SELECT pg_advisory_xact_lock(:k)", {"k": key})


class Units:
    """Remediation units (and configuration checks) as small integers for the SQL stages."""

    def __init__(self) -> None:
        self.rec_ids: list[str] = []
        self.index: dict[str, int] = {}
        self._by_key: dict[tuple[str, str, str], int] = {}

    def add(self, rec_id: str) -> int:
        i = self.index.get(rec_id)
        if i is None:
            i = self.index[rec_id] = len(self.rec_ids)
            self.rec_ids.append(rec_id)
        return i

    def of_package(self, eco: str, manager: str, match_name: str) -> int:
        key = (eco, manager, match_name)
        i = self._by_key.get(key)
        if i is None:
            i = self._by_key[key] = self.add(
                recommendations.software_rec_id(recommendations.unit_of(eco, manager, match_name)[0]))
        return i


def version_key(pv_id: int, eco: str, match_name: str, source_version: str) -> tuple[Any, ...]:
    """Package versions with the same key have the same findings: the binaries of one source version."""
    if ecosystem_base(eco) in SOURCE_KEYED:
        return (eco, match_name, source_version)
    return (pv_id,)


def refresh_tenant(s: Session, tenant_id: int, now: dt.datetime | None = None) -> RefreshStats:
    """Recompute everything of the session's tenant (a ``store.tenant(id)`` session)."""
    started = time.perf_counter()
    now = now or utcnow()
    stats = RefreshStats(tenant_id)
    lap = [started]
    pg = s.get_bind().dialect.name == "postgresql"

    def mark(name: str) -> None:
        t = time.perf_counter()
        stats.timings[name] = t - lap[0]
        lap[0] = t

    _lock(s, tenant_id)
    if pg:  # hash the aggregates in memory rather than spill them (this transaction only)
        run_sql(s, "SET LOCAL work_mem = '256MB'")
    risk_acceptance.expire_due(s, now)
    eff = risk_acceptance.effective(s, now)
    devs = _load_devices(s, now)
    stats.devices = len(devs)
    _create_temp_tables(s)
    _ensure_exp(s)
    counting = [d for d in devs.values() if d.counts]
    _insert(s, _DEV_INSERT, [d.row() for d in counting])
    mark("devices")

    # staging: vulnerable package versions with unit, rank among siblings and hazard
    units = Units()
    by_key: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    pv_unit: dict[int, int] = {}
    pv_hz: dict[int, float] = {}
    for pv_id, eco, manager, match_name, source_version, hz in s.execute(_package_version_hazards(tenant_id)):
        pv_unit[pv_id] = units.of_package(eco, manager, match_name)
        pv_hz[pv_id] = float(hz or 0.0)
        by_key[version_key(pv_id, eco, match_name, source_version)].append(pv_id)
    pv_rows, sib_rows = [], []
    for vk_no, pvs in enumerate(by_key.values()):
        pvs.sort()
        for rank, pv_id in enumerate(pvs):
            pv_rows.append({"p": pv_id, "u": pv_unit[pv_id], "r": rank, "n": len(pvs) - 1, "h": pv_hz[pv_id],
                            "k": vk_no})
            sib_rows += [{"p": pv_id, "s": other, "l": int(j < rank)}
                         for j, other in enumerate(pvs) if other != pv_id]
    _insert(s, "INSERT INTO prio_pv (pv_id, unit, vk, rnk, nsib, hz) VALUES (:p, :u, :k, :r, :n, :h)", pv_rows)
    _insert(s, "INSERT INTO prio_sib (pv_id, sib, lower) VALUES (:p, :s, :l)", sib_rows)
    software_units = len(units.rec_ids)
    reduced = _reduced_pairs(s, eff, units)
    _insert(s, "INSERT INTO prio_red (unit, gkey) VALUES (:u, :g)", [{"u": u, "g": g} for u, g in reduced])
    if pg:
        for name in ("prio_pv", "prio_sib", "prio_dev", "prio_red"):
            run_sql(s, f"ANALYZE {name}")
    mark("staging")

    # pass 1: every device's hazard (software, minus risk-reduced units, plus alerts and checks)
    for device_id, hz in run_sql(s, (
            "SELECT dp.device_id, SUM(p.hz) FROM device_packages dp CROSS JOIN prio_pv p "
            f"WHERE dp.tenant_id = :tenant AND p.pv_id = dp.package_version_id AND {_REP} GROUP BY dp.device_id")):
        dev = devs.get(device_id)
        if dev is not None:
            dev.hazard += float(hz or 0.0)
    reduced_units = {u for u, _g in reduced}
    reduced_pvs = sorted(pv for pv, u in pv_unit.items() if u in reduced_units)
    if reduced_pvs:  # driven by the excepted units' package versions (an index lookup each), never a scan
        for device_id, hz in run_sql(s, text(
                "SELECT dp.device_id, SUM(p.hz) FROM prio_pv p CROSS JOIN device_packages dp CROSS JOIN prio_dev d "
                "CROSS JOIN prio_red r WHERE p.pv_id IN :pvs AND dp.package_version_id = p.pv_id "
                "AND dp.tenant_id = :tenant AND d.device_id = dp.device_id AND r.unit = p.unit AND r.gkey = d.gkey "
                f"AND {_REP} GROUP BY dp.device_id").bindparams(bindparam("pvs", expanding=True)),
                {"pvs": reduced_pvs}):
            devs[device_id].hazard -= float(hz or 0.0)
    alerts = _alerts(s, units, now)
    for a in alerts:
        dev = devs.get(a["device"])
        if dev is not None and (a["unit"], dev.gkey) not in reduced:
            dev.hazard += a["extra"]
    check_ids: set[str] = set()
    cfg_items: list[tuple[Dev, int, float]] = []
    for device_id, check_id, impact in config.failed_checks(s):
        dev = devs.get(device_id)
        if dev is None:
            continue
        check_ids.add(check_id)
        u = units.add(recommendations.config_rec_id(check_id))
        hz = exposure.config_hazard(impact)
        cfg_items.append((dev, u, hz))
        if (u, dev.gkey) not in reduced:
            dev.hazard += hz
    mark("pass 1: devices")

    # device scores and levels, group components, history
    comps: dict[int, exposure.Components] = defaultdict(exposure.Components)
    updates: list[dict[str, Any]] = []
    hazards: list[dict[str, Any]] = []
    for dev in devs.values():
        dev.hazard = max(dev.hazard, 0.0)
        if dev.counts:
            score = exposure.rounded(exposure.score_from_hazard(dev.hazard, dev.multiplier))
            level = exposure.level_for(score)
            comps[dev.gkey].add_device(score, dev.value, exposure.counted_level(level, dev.covered))
            stats.scored_devices += 1
            dev.e = math.exp(-dev.multiplier * dev.hazard / exposure.SATURATION)
            hazards.append({"d": dev.id, "h": dev.hazard, "e": dev.e, "e100": 100.0 * dev.e})
        else:
            score, level = 0.0, "None"
        if abs(score - (dev.old_score or 0.0)) > 1e-9 or level != dev.old_level:
            updates.append({"b_id": dev.id, "b_score": score, "b_level": level})
    _insert(s, "UPDATE prio_dev SET h = :h, e = :e, e100 = :e100 WHERE device_id = :d", hazards)
    _update_devices(s, tenant_id, updates)
    org = exposure.Components()
    for c in comps.values():
        org.merge(c)
    stats.organisation_score = org.score
    _write_components(s, tenant_id, comps, now)
    _write_history(s, tenant_id, org, comps, now)
    mark("scores")

    # pass 2: per package version and device group; Python sums them into recommendations
    stage = Staging(pv_rows, sib_rows, [d.row() for d in counting])
    accs = _pass_by_package_version(s, tenant_id, units, pv_unit, pv_hz, sorted(comps), now, stage)
    _count_devices_once(s, tenant_id, units, accs, pv_rows, now)
    _apply_sibling_use(s, tenant_id, units, pv_unit, pv_hz, accs, sorted(comps), now)
    _apply_reduced(s, tenant_id, units, accs, reduced_pvs)
    _apply_alerts(alerts, devs, units, accs, reduced, pv_hz)
    _apply_checks(cfg_items, units, accs, reduced)
    mark("pass 2: recommendations")
    _installed_counts(s, tenant_id, units, accs, sorted(comps))
    mark("installed")
    metas = recommendations.unit_metadata(s, tenant_id, staged=True)
    catalog = config.check_catalog(s, sorted(check_ids))
    mark("metadata")
    stats.recommendations = _write_recommendations(s, tenant_id, accs, metas, catalog, eff, org, comps, now)
    mark("write")

    wanted = sorted(remediation.active_recommendation_ids(s) & set(units.index))
    exposed_sets: dict[str, set[str]] = defaultdict(set)
    soft = [units.index[r] for r in wanted if units.index[r] < software_units]
    for i in range(0, len(soft), 500):
        for device_id, u in run_sql(s, text(
                "SELECT DISTINCT dp.device_id, p.unit FROM prio_pv p CROSS JOIN device_packages dp "
                "WHERE p.unit IN :u AND dp.package_version_id = p.pv_id AND dp.tenant_id = :tenant")
                .bindparams(bindparam("u", expanding=True)), {"u": soft[i : i + 500]}):
            exposed_sets[units.rec_ids[u]].add(device_id)
    for dev, u, _hz in cfg_items:
        if units.rec_ids[u] in wanted:
            exposed_sets[units.rec_ids[u]].add(dev.id)
    remediation.update_progress(s, now, exposed_sets)
    _drop_temp_tables(s)
    mark("remediation")
    stats.seconds = time.perf_counter() - started
    return stats


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _insert(s: Session, sql: str, rows: list[dict[str, Any]], batch: int = 5000) -> None:
    for i in range(0, len(rows), batch):
        run_sql(s, sql, rows[i : i + batch])


# A device's row of a package version counts unless a better-ranked sibling (same source version,
# same findings) is on the device too.
_REP = ("(p.rnk = 0 OR NOT EXISTS (SELECT 1 FROM prio_sib s CROSS JOIN device_packages d2 "
        "WHERE s.pv_id = dp.package_version_id AND s.lower = 1 AND d2.tenant_id = :tenant "
        "AND d2.device_id = dp.device_id AND d2.package_version_id = s.sib))")


# --- staging tables --------------------------------------------------------------------------------

@dataclass
class Staging:
    """The staging rows, kept to give worker connections their own copy (SQLite, pass 2 in parallel)."""

    pv: list[dict[str, Any]]
    sib: list[dict[str, Any]]
    devices: list[dict[str, Any]]


def _sqlite_path(s: Session) -> str | None:
    url = s.get_bind().engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" \
            or url.database.startswith("file:"):
        return None
    return url.database


def _sqlite_time(t: dt.datetime) -> str:
    """A time as SQLAlchemy stores it in SQLite (UTC, no offset), for raw-connection comparisons."""
    return _aware(t).astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")


def _parallel(sql: str, params: dict[str, Any], path: str, stage: Staging) -> list[Any]:
    """Run pass 2 on PARALLEL_WORKERS read-only connections, each over every n-th package version.

    SQLite runs one statement on one core; the package versions are independent, so splitting them
    across connections (each with its own copy of the small staging tables) divides the pass. The
    workers read the last committed state of ``device_packages``, which a refresh does not change.
    ``sql`` and ``params`` come from ``tenant_query``: checked, with the tenant bound by the storage layer.
    """
    workers = PARALLEL_WORKERS

    def work(part: int) -> list[Any]:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-65536")
            try:
                conn.execute("SELECT exp(0.0)")
            except sqlite3.OperationalError:
                conn.create_function("exp", 1, math.exp, deterministic=True)
            for name in ("prio_pv", "prio_sib", "prio_dev"):
                clustered = " WITHOUT ROWID" if name in _CLUSTERED else ""
                conn.execute(f"CREATE TEMPORARY TABLE {name} ({_DDL[name]}){clustered}")
            conn.executemany("INSERT INTO prio_pv (pv_id, unit, vk, rnk, nsib, hz) VALUES (:p, :u, :k, :r, :n, :h)",
                             stage.pv[part::workers])
            conn.executemany("INSERT INTO prio_sib (pv_id, sib, lower) VALUES (:p, :s, :l)", stage.sib)
            conn.executemany(_DEV_INSERT, stage.devices)
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="garrison-prio") as pool:
        parts = list(pool.map(work, range(workers)))
    return [row for part in parts for row in part]


_DDL = {
    "prio_pv": ("pv_id INTEGER PRIMARY KEY, unit INTEGER NOT NULL, vk INTEGER NOT NULL, rnk INTEGER NOT NULL, "
                "nsib INTEGER NOT NULL, hz FLOAT NOT NULL"),
    # siblings: the other package versions with the same findings; ``lower``: ranked before this one
    "prio_sib": "pv_id INTEGER NOT NULL, sib INTEGER NOT NULL, lower INTEGER NOT NULL, PRIMARY KEY (pv_id, sib)",
    "prio_dev": ("device_id VARCHAR(40) PRIMARY KEY, gkey INTEGER, m FLOAT, mk FLOAT, w_nl FLOAT, is_high INTEGER, "
                 "is_low INTEGER, internet INTEGER, pf FLOAT, h FLOAT DEFAULT 0, e FLOAT DEFAULT 1, "
                 "e100 FLOAT DEFAULT 100"),
    "prio_red": "unit INTEGER NOT NULL, gkey INTEGER NOT NULL, PRIMARY KEY (unit, gkey)",
    "prio_safe": "pv_id INTEGER PRIMARY KEY, unit INTEGER NOT NULL, rnk INTEGER NOT NULL",
    "prio_safe_sib": "pv_id INTEGER NOT NULL, sib INTEGER NOT NULL, PRIMARY KEY (pv_id, sib)",
}
_DEV_INSERT = ("INSERT INTO prio_dev (device_id, gkey, m, mk, w_nl, is_high, is_low, internet, pf, h, e, e100) "
               "VALUES (:d, :g, :m, :mk, :w, :hi, :lo, :net, :pf, :h, :e, :e100)")
_CLUSTERED = {"prio_sib", "prio_dev", "prio_red", "prio_safe_sib"}  # SQLite: WITHOUT ROWID, one lookup instead of two


def _create_temp_tables(s: Session) -> None:
    pg = s.get_bind().dialect.name == "postgresql"
    for name in TEMP_TABLES:
        run_sql(s, f"DROP TABLE IF EXISTS {'' if pg else 'temp.'}{name}")
        suffix = " ON COMMIT DROP" if pg else (" WITHOUT ROWID" if name in _CLUSTERED else "")
        run_sql(s, f"CREATE TEMPORARY TABLE {name} ({_DDL[name]}){suffix}")
    run_sql(s, "CREATE INDEX prio_pv_unit ON prio_pv (unit, pv_id)")


def _drop_temp_tables(s: Session) -> None:
    pg = s.get_bind().dialect.name == "postgresql"
    for name in TEMP_TABLES:
        run_sql(s, f"DROP TABLE IF EXISTS {'' if pg else 'temp.'}{name}")


def _ensure_exp(s: Session) -> None:
    """SQLite builds without the math functions get ``exp`` as a Python function on this connection."""
    if s.get_bind().dialect.name != "sqlite":
        return
    try:
        with s.begin_nested():
            run_sql(s, "SELECT exp(0.0)")
    except DBAPIError:
        raw = s.connection().connection.dbapi_connection
        raw.create_function("exp", 1, math.exp, deterministic=True)  # type: ignore[union-attr]


# --- queries --------------------------------------------------------------------------------------

def _load_devices(s: Session, now: dt.datetime) -> dict[str, Dev]:
    has_data = select(DeviceInventoryState.device_id).where(DeviceInventoryState.device_id == Device.id) \
        .correlate(Device).exists()
    rows = s.execute(select(Device.id, Device.group_id, Device.device_value, Device.internet_facing,
                            exposure.is_active_expr(now), has_data, Device.exposure_score, Device.exposure_level,
                            exposure.covered_expr()))
    out: dict[str, Dev] = {}
    for did, gid, value, internet, active, data, score, level, covered in rows:
        out[did] = Dev(did, gid, value or "Normal", bool(internet), bool(active) and bool(data), score or 0.0,
                       level or "None", bool(covered))
    return out


def _package_version_hazards(tenant_id: int) -> Any:
    """Per vulnerable package version present in the tenant: identity and the sum of its hazards."""
    DP = DevicePackage.__table__
    present = (select(DP.c.package_version_id)
               .where(DP.c.package_version_id == PackageVersionVuln.package_version_id, DP.c.tenant_id == tenant_id)
               .exists())
    return (select(PackageVersionVuln.package_version_id, PackageVersion.ecosystem, PackageVersion.manager,
                   PackageVersion.match_name, PackageVersion.source_version,
                   func.sum(exposure.hazard_expr(Vulnerability)))
            .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
            .join(PackageVersion, PackageVersion.id == PackageVersionVuln.package_version_id)
            .where(present)
            .group_by(PackageVersionVuln.package_version_id, PackageVersion.ecosystem, PackageVersion.manager,
                      PackageVersion.match_name, PackageVersion.source_version))


def _alerts(s: Session, units: Units, now: dt.datetime) -> list[dict[str, Any]]:
    """Findings with an active alert on their device: the extra hazard (likelihood raised to the top),
    with the package version's hazard and in-use state for the pass-2 correction."""
    A = DeviceVulnerabilityAlert
    if s.scalar(select(A.id).where(A.active.is_(True)).limit(1)) is None:
        return []
    rows = s.execute(select(A.device_id, PackageVersion.id, PackageVersion.ecosystem, PackageVersion.manager,
                            PackageVersion.match_name, DevicePackage.last_used, Vulnerability)
                     .join(DevicePackage, DevicePackage.device_id == A.device_id)
                     .join(PackageVersionVuln, (PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
                           & (PackageVersionVuln.vulnerability_id == A.vulnerability_id))
                     .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
                     .join(Vulnerability, Vulnerability.id == A.vulnerability_id)
                     .where(A.active.is_(True))).all()
    since = now - findings.IN_USE_WINDOW
    out: dict[tuple[str, int, str], dict[str, Any]] = {}
    for device_id, pv_id, eco, manager, match_name, last_used, v in rows:
        u = units.of_package(eco, manager, match_name)
        key = (device_id, u, v.id)
        if key not in out:
            out[key] = {"device": device_id, "unit": u, "pv": pv_id,
                        "extra": exposure.hazard(v, active_alert=True) - exposure.hazard(v),
                        "used": last_used is not None and _aware(last_used) >= since}
    return list(out.values())


def _reduced_pairs(s: Session, eff: dict[str, risk_acceptance.Effective], units: Units) -> set[tuple[int, int]]:
    """(unit, group key) pairs whose findings a risk-reducing exception takes out of the score."""
    gkeys = [ORG, *s.scalars(select(DeviceGroup.id))]
    out: set[tuple[int, int]] = set()
    for rec_id, e in eff.items():
        u = units.index.get(rec_id)
        if u is None and rec_id.startswith(recommendations.CONFIG_PREFIX):
            u = units.add(rec_id)
        if u is None:
            continue
        for g in gkeys:
            if risk_acceptance.reduces_risk(e.justification(None if g == ORG else g)):
                out.add((u, g))
    return out


def _drop(d: Dev, hz: float, reduced: bool) -> float:
    """A device's predicted score drop if a unit of hazard ``hz`` on it were fixed (see docs)."""
    k = exposure.SATURATION
    if reduced:  # excepted: what it would add back
        return 100.0 * d.e * (1.0 - math.exp(-d.multiplier * hz / k))
    return 100.0 * d.e * (math.exp(d.multiplier * hz / k) - 1.0)


def _acc(accs: dict[str, RecAcc], rec_id: str) -> RecAcc:
    acc = accs.get(rec_id)
    if acc is None:
        kind = "configuration" if rec_id.startswith(recommendations.CONFIG_PREFIX) else "software"
        acc = accs[rec_id] = RecAcc(rec_id, kind)
    return acc


def _pass_by_package_version(s: Session, tenant_id: int, units: Units, pv_unit: dict[int, int],
                             pv_hz: dict[int, float], gkeys: list[int], now: dt.datetime,
                             stage: Staging | None = None) -> dict[str, RecAcc]:
    """Pass 2 (streams the package-version index): per package version and device group the exposed
    devices, in use, Σ weight × predicted drop (Normal/Low and High apart), priority; per package
    version the internet-facing, High- and Low-value devices. Drops use the not-excepted formula;
    :func:`_apply_reduced` corrects the excepted (unit, group) pairs."""
    # Not excepted, the unit's hazard is part of the device's: s(H) − s(H − h) = 100 e (exp(m h / K) − 1);
    # d.e100 = 100 e and d.mk = m / K are precomputed per device.
    drop = "d.e100 * (exp(d.mk * p.hz) - 1.0)"
    used = "dp.last_used >= :since"

    def group_cols(g: str) -> list[str]:
        # Normal/Low and High devices apart (the High weight depends on the caller's device count); each
        # row evaluates one drop, in the one filter it matches. Priority = hz × (Σ pf × 0.5 + Σ pf used × 0.5).
        return [f"COUNT(*) FILTER (WHERE {g})", f"COUNT(*) FILTER (WHERE {g} AND {used})",
                f"SUM(d.w_nl * {drop}) FILTER (WHERE {g} AND d.is_high = 0)",
                f"SUM({drop}) FILTER (WHERE {g} AND d.is_high = 1)",
                f"SUM(d.pf) FILTER (WHERE {g})", f"SUM(d.pf) FILTER (WHERE {g} AND {used})"]

    head = "SUM(d.internet), SUM(d.is_high), SUM(d.is_low)"
    # SQLite aggregates by sorting unless the rows arrive in GROUP BY order: it gets one row per package
    # version (the index order) with the groups side by side. PostgreSQL hashes (package version, group).
    side_by_side = 0 < len(gkeys) <= MAX_GROUP_COLUMNS and s.get_bind().dialect.name == "sqlite"
    joins = ("FROM prio_pv p CROSS JOIN device_packages dp CROSS JOIN prio_dev d "
             f"WHERE dp.package_version_id = p.pv_id AND dp.tenant_id = :tenant AND d.device_id = dp.device_id AND {_REP}")
    if side_by_side:
        cols = ", ".join(c for g in gkeys for c in group_cols(f"d.gkey = {int(g)}"))
        sql = f"SELECT p.pv_id, {head}, {cols} {joins} GROUP BY p.pv_id"
    else:
        group_all = [c.replace(" FILTER (WHERE 1 = 1)", "").replace("WHERE 1 = 1 AND ", "WHERE ")
                     for c in group_cols("1 = 1")]
        sql = f"SELECT p.pv_id, d.gkey, {head}, {', '.join(group_all)} {joins} GROUP BY p.pv_id, d.gkey"
    metrics = group_cols("")
    not_in_use = recommendations.NOT_IN_USE_LIKELIHOOD
    accs: dict[str, RecAcc] = {}
    since = now - findings.IN_USE_WINDOW
    params = {"since": since}
    n = len(metrics)
    path = _sqlite_path(s)
    if side_by_side and stage is not None and path and PARALLEL_WORKERS > 1 \
            and len(stage.devices) >= PARALLEL_MIN_DEVICES:
        rows: Any = _parallel(*tenant_query(s, sql, {**params, "since": _sqlite_time(since)}), path, stage)
    else:
        rows = run_sql(s, sql, params)
    for row in rows:
        pv_id = row[0]
        acc = _acc(accs, units.rec_ids[pv_unit[pv_id]])
        if side_by_side:
            net, hi, lo = row[1:4]
            parts = [(g, row[4 + i * n: 4 + (i + 1) * n]) for i, g in enumerate(gkeys)]
        else:
            net, hi, lo = row[2:5]
            parts = [(int(row[1]), row[5:5 + n])]
        acc.internet_facing += int(net or 0)
        acc.high_value += int(hi or 0)
        acc.low_value += int(lo or 0)
        for g, (cnt, in_use, nl, high, pf, pf_used) in parts:
            if not cnt:
                continue
            grp = acc.group(g)
            grp.exposed += int(cnt)
            grp.in_use += int(in_use or 0)
            grp.nl_delta += float(nl or 0.0)
            grp.high_delta += float(high or 0.0)
            pf, pf_used = float(pf or 0.0), float(pf_used or 0.0)
            grp.priority += pv_hz[pv_id] * (pf * not_in_use + pf_used * (1.0 - not_in_use))
            acc.in_use += int(in_use or 0)
            acc.threat += pv_hz[pv_id] * int(cnt)
    return accs


def _count_devices_once(s: Session, tenant_id: int, units: Units, accs: dict[str, RecAcc],
                        pv_rows: list[dict[str, Any]], now: dt.datetime) -> None:
    """Pass 2 counts (package version, device) pairs; a device with two versions of one unit (pip in the
    system and in a virtualenv) is one device: exposed, in-use, internet-facing and High/Low-value counts
    are corrected for the units whose vulnerable package versions span several source versions."""
    vks: dict[int, set[int]] = defaultdict(set)
    for r in pv_rows:
        vks[r["u"]].add(r["k"])
    multi = sorted(u for u, ks in vks.items() if len(ks) > 1)
    used = "CASE WHEN dp.last_used >= :since THEN 1 ELSE 0 END"
    sql = (f"SELECT p.unit, d.gkey, COUNT(*), SUM({used}), MAX({used}), MAX(d.internet), MAX(d.is_high), "
           "MAX(d.is_low) FROM prio_pv p CROSS JOIN device_packages dp CROSS JOIN prio_dev d "
           "WHERE p.unit IN :u AND dp.package_version_id = p.pv_id AND dp.tenant_id = :tenant "
           f"AND d.device_id = dp.device_id AND {_REP} GROUP BY p.unit, d.gkey, dp.device_id HAVING COUNT(*) > 1")
    for i in range(0, len(multi), 500):
        for unit, gkey, n, n_used, any_used, net, hi, lo in run_sql(
                s, text(sql).bindparams(bindparam("u", expanding=True)),
                {"u": multi[i:i + 500], "since": now - findings.IN_USE_WINDOW}):
            acc = accs.get(units.rec_ids[unit])
            if acc is None:
                continue
            extra = int(n) - 1
            grp = acc.group(int(gkey))
            grp.exposed -= extra
            grp.in_use -= int(n_used or 0) - int(any_used or 0)
            acc.in_use -= int(n_used or 0) - int(any_used or 0)
            acc.internet_facing -= int(net or 0) * extra
            acc.high_value -= int(hi or 0) * extra
            acc.low_value -= int(lo or 0) * extra


def _apply_sibling_use(s: Session, tenant_id: int, units: Units, pv_unit: dict[int, int], pv_hz: dict[int, float],
                       accs: dict[str, RecAcc], gkeys: list[int], now: dt.datetime) -> None:
    """In use is per unit on a device: when the binary that counts for a source version is idle but
    another binary of it runs (``libssl1.1`` mapped by a server, ``openssl`` idle), the unit is in use.
    Such a device is found once, at its first running binary that is not the counted one."""
    lower = ("SELECT 1 FROM prio_sib s CROSS JOIN device_packages d2 WHERE s.pv_id = p.pv_id AND s.lower = 1 "
             "AND d2.package_version_id = s.sib AND d2.tenant_id = :tenant AND d2.device_id = dp.device_id")
    joins = ("FROM prio_pv p CROSS JOIN device_packages dp CROSS JOIN prio_dev d "
             "WHERE p.rnk > 0 AND dp.package_version_id = p.pv_id AND dp.tenant_id = :tenant "
             "AND d.device_id = dp.device_id AND dp.last_used >= :since "
             f"AND EXISTS ({lower}) AND NOT EXISTS ({lower} AND d2.last_used >= :since)")
    params = {"since": now - findings.IN_USE_WINDOW}
    lift = 1.0 - recommendations.NOT_IN_USE_LIKELIHOOD
    if s.get_bind().dialect.name == "postgresql":
        # PostgreSQL hashes (device, source version) directly: any binary running, but not the counted one
        sql = text(
            "SELECT per.unit, d.gkey, COUNT(*), SUM(d.pf * per.hz) FROM ("
            "SELECT dp.device_id, p.vk, MAX(p.unit) AS unit, MAX(p.hz) AS hz, MIN(p.rnk) AS r0, "
            "MIN(p.rnk * 2 + CASE WHEN dp.last_used >= :since THEN 0 ELSE 1 END) AS code, "
            "BOOL_OR(COALESCE(dp.last_used >= :since, FALSE)) AS any_used "
            "FROM prio_pv p JOIN device_packages dp ON dp.package_version_id = p.pv_id "
            "WHERE p.nsib > 0 AND dp.tenant_id = :tenant GROUP BY dp.device_id, p.vk) AS per "
            "JOIN prio_dev d ON d.device_id = per.device_id "
            "WHERE per.any_used AND per.code <> per.r0 * 2 GROUP BY per.unit, d.gkey")
        for u, g, n, pf_hz in run_sql(s, sql, params):
            acc = accs.get(units.rec_ids[u])
            if acc is None or int(g) not in acc.groups:
                continue
            grp = acc.groups[int(g)]
            grp.in_use += int(n)
            acc.in_use += int(n)
            grp.priority += float(pf_hz or 0.0) * lift
        return
    if 0 < len(gkeys) <= MAX_GROUP_COLUMNS:
        cols = ", ".join(f"COUNT(*) FILTER (WHERE d.gkey = {int(g)}), SUM(d.pf) FILTER (WHERE d.gkey = {int(g)})"
                         for g in gkeys)
        result = [(r[0], [(g, r[1 + 2 * i], r[2 + 2 * i]) for i, g in enumerate(gkeys)])
                  for r in run_sql(s, f"SELECT p.pv_id, {cols} {joins} GROUP BY p.pv_id", params)]
    else:
        result = [(pv, [(int(g), n, pf)]) for pv, g, n, pf in run_sql(
            s, f"SELECT p.pv_id, d.gkey, COUNT(*), SUM(d.pf) {joins} GROUP BY p.pv_id, d.gkey", params)]
    for pv_id, parts in result:
        acc = accs.get(units.rec_ids[pv_unit[pv_id]])
        if acc is None:
            continue
        for g, n, pf in parts:
            if not n or g not in acc.groups:
                continue
            grp = acc.groups[g]
            grp.in_use += int(n)
            acc.in_use += int(n)
            grp.priority += pv_hz[pv_id] * float(pf or 0.0) * lift


def _apply_reduced(s: Session, tenant_id: int, units: Units, accs: dict[str, RecAcc], reduced_pvs: list[int]) -> None:
    """Excepted (unit, group) pairs: replace pass 2's drops by what the unit would add back."""
    if not reduced_pvs:
        return
    k = repr(float(exposure.SATURATION))
    sql = text(
        "SELECT p.unit, d.gkey, "
        f"SUM(d.w_nl * 100.0 * d.e * (exp(d.m * p.hz / {k}) - 1.0)), "
        f"SUM(d.is_high * 100.0 * d.e * (exp(d.m * p.hz / {k}) - 1.0)), "
        f"SUM(d.w_nl * 100.0 * d.e * (1.0 - exp(-d.m * p.hz / {k}))), "
        f"SUM(d.is_high * 100.0 * d.e * (1.0 - exp(-d.m * p.hz / {k}))) "
        "FROM prio_pv p CROSS JOIN device_packages dp CROSS JOIN prio_dev d CROSS JOIN prio_red r "
        "WHERE p.pv_id IN :pvs AND dp.package_version_id = p.pv_id AND dp.tenant_id = :tenant "
        f"AND d.device_id = dp.device_id AND r.unit = p.unit AND r.gkey = d.gkey AND {_REP} "
        "GROUP BY p.unit, d.gkey").bindparams(bindparam("pvs", expanding=True))
    for u, g, nl_wrong, hi_wrong, nl_right, hi_right in run_sql(s, sql, {"pvs": reduced_pvs}):
        acc = accs.get(units.rec_ids[u])
        if acc is None or int(g) not in acc.groups:
            continue
        grp = acc.groups[int(g)]
        grp.nl_delta += float(nl_right or 0.0) - float(nl_wrong or 0.0)
        grp.high_delta += float(hi_right or 0.0) - float(hi_wrong or 0.0)


def _apply_alerts(alerts: list[dict[str, Any]], devs: dict[str, Dev], units: Units, accs: dict[str, RecAcc],
                  reduced: set[tuple[int, int]], pv_hz: dict[int, float]) -> None:
    """An alert raises the unit's hazard on that device: correct its drop, priority and threat."""
    per: dict[tuple[str, int], dict[str, Any]] = {}
    for a in alerts:
        cur = per.setdefault((a["device"], a["unit"]), {**a, "extra": 0.0})
        cur["extra"] += a["extra"]
        cur["used"] = cur["used"] or a["used"]
    for (device_id, u), a in per.items():
        dev = devs.get(device_id)
        acc = accs.get(units.rec_ids[u])
        if dev is None or not dev.counts or acc is None:
            continue
        grp = acc.groups.get(dev.gkey)
        if grp is None:
            continue
        acc.active_alert = True
        base = pv_hz.get(a["pv"], 0.0)
        red = (u, dev.gkey) in reduced
        before = _drop(dev, base, red)
        after = _drop(dev, base + a["extra"], red)
        if dev.value == "High":
            grp.high_delta += after - before
        else:
            grp.nl_delta += dev.w_nl * (after - before)
        factor = 1.0 if a["used"] else recommendations.NOT_IN_USE_LIKELIHOOD
        grp.priority += a["extra"] * dev.pf * factor
        acc.threat += a["extra"]


def _apply_checks(items: list[tuple[Dev, int, float]], units: Units, accs: dict[str, RecAcc],
                  reduced: set[tuple[int, int]]) -> None:
    for dev, u, hz in items:
        if not dev.counts:
            continue
        acc = _acc(accs, units.rec_ids[u])
        grp = acc.group(dev.gkey)
        drop = _drop(dev, hz, (u, dev.gkey) in reduced)
        grp.exposed += 1
        grp.in_use += 1
        acc.in_use += 1
        if dev.value == "High":
            grp.high_delta += drop
            acc.high_value += 1
        else:
            grp.nl_delta += dev.w_nl * drop
            acc.low_value += int(dev.value == "Low")
        acc.internet_facing += int(dev.internet)
        grp.priority += hz * dev.pf
        acc.threat += hz


def _installed_counts(s: Session, tenant_id: int, units: Units, accs: dict[str, RecAcc], gkeys: list[int]) -> None:
    """totalMachineCount: the exposed devices plus the devices with only fixed versions of the unit
    (binaries of one source version count once; a device with both a fixed and a vulnerable version of a
    unit is exposed, and counted once)."""
    DP = DevicePackage.__table__
    present = select(DP.c.package_version_id).where(DP.c.package_version_id == PackageVersion.id,
                                                    DP.c.tenant_id == tenant_id).exists()
    vulnerable = select(PackageVersionVuln.package_version_id).where(
        PackageVersionVuln.package_version_id == PackageVersion.id).exists()
    by_key: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    unit_of_pv: dict[int, int] = {}
    for pv_id, eco, manager, match_name, source_version in s.execute(
            select(PackageVersion.id, PackageVersion.ecosystem, PackageVersion.manager, PackageVersion.match_name,
                   PackageVersion.source_version).where(~vulnerable, present)):
        rec_id = recommendations.software_rec_id(recommendations.unit_of(eco, manager, match_name)[0])
        u = units.index.get(rec_id)
        if u is not None and rec_id in accs:
            unit_of_pv[pv_id] = u
            by_key[version_key(pv_id, eco, match_name, source_version)].append(pv_id)
    rows, sibs = [], []
    for pvs in by_key.values():
        pvs.sort()
        for rank, pv_id in enumerate(pvs):
            rows.append({"p": pv_id, "u": unit_of_pv[pv_id], "r": rank})
            sibs += [{"p": pv_id, "s": other} for other in pvs[:rank]]
    if rows:
        _insert(s, "INSERT INTO prio_safe (pv_id, unit, rnk) VALUES (:p, :u, :r)", rows)
        _insert(s, "INSERT INTO prio_safe_sib (pv_id, sib) VALUES (:p, :s)", sibs)
        if s.get_bind().dialect.name == "postgresql":
            run_sql(s, "ANALYZE prio_safe")
            run_sql(s, "ANALYZE prio_safe_sib")
        rep = ("(ps.rnk = 0 OR NOT EXISTS (SELECT 1 FROM prio_safe_sib s CROSS JOIN device_packages d2 "
               "WHERE s.pv_id = ps.pv_id AND d2.tenant_id = :tenant AND d2.device_id = dp.device_id "
               "AND d2.package_version_id = s.sib))")
        joins = ("FROM prio_safe ps CROSS JOIN device_packages dp CROSS JOIN prio_dev d "
                 f"WHERE dp.package_version_id = ps.pv_id AND dp.tenant_id = :tenant AND d.device_id = dp.device_id AND {rep} "
                 "AND NOT EXISTS (SELECT 1 FROM prio_pv p2 CROSS JOIN device_packages d3 WHERE p2.unit = ps.unit "
                 "AND d3.tenant_id = :tenant AND d3.device_id = dp.device_id AND d3.package_version_id = p2.pv_id)")
        if 0 < len(gkeys) <= MAX_GROUP_COLUMNS and s.get_bind().dialect.name == "sqlite":
            cols = ", ".join(f"COUNT(*) FILTER (WHERE d.gkey = {int(g)})" for g in gkeys)
            result = [(pv, list(zip(gkeys, ns))) for pv, *ns in run_sql(
                s, f"SELECT ps.pv_id, {cols} {joins} GROUP BY ps.pv_id")]
        else:
            result = [(pv, [(int(g), n)]) for pv, g, n in run_sql(
                s, f"SELECT ps.pv_id, d.gkey, COUNT(*) {joins} GROUP BY ps.pv_id, d.gkey")]
        for pv_id, parts in result:
            acc = accs[units.rec_ids[unit_of_pv[pv_id]]]
            for g, count in parts:
                if count:
                    acc.group(g).installed += int(count)
    for acc in accs.values():
        for grp in acc.groups.values():
            grp.installed += grp.exposed


def _update_devices(s: Session, tenant_id: int, updates: list[dict[str, Any]]) -> None:
    if not updates:
        return
    t = Device.__table__
    stmt = (t.update().where(t.c.tenant_id == tenant_id, t.c.id == bindparam("b_id"))
            .values(exposure_score=bindparam("b_score"), exposure_level=bindparam("b_level")))
    for i in range(0, len(updates), CHUNK):
        s.execute(stmt, updates[i : i + CHUNK])


def _write_components(s: Session, tenant_id: int, comps: dict[int, exposure.Components], now: dt.datetime) -> None:
    s.execute(delete(ExposureGroupScore))
    rows = [{"tenant_id": tenant_id, "group_id": gkey, "devices": c.devices, "high_devices": c.high_devices,
             "nl_weight": c.nl_weight, "nl_weighted_score": c.nl_weighted_score, "high_score_sum": c.high_score_sum,
             "levels": exposure.levels_summary(c.levels), "computed_at": now} for gkey, c in sorted(comps.items())]
    if not rows:  # remember when the (empty) tenant was computed
        rows = [{"tenant_id": tenant_id, "group_id": ORG, "devices": 0, "high_devices": 0, "nl_weight": 0.0,
                 "nl_weighted_score": 0.0, "high_score_sum": 0.0, "levels": {}, "computed_at": now}]
    s.execute(insert(ExposureGroupScore.__table__), rows)


def _config_score(s: Session, group_ids: list[int] | None) -> float | None:
    try:
        res = config.secure_score(s, group_ids)
    except Exception:
        log.exception("secure score provider failed")
        return None
    if res is None:
        return None
    if isinstance(res, (int, float)):
        return float(res)
    if isinstance(res, dict) and isinstance(res.get("score"), (int, float)):
        return float(res["score"])
    value = getattr(res, "score", None)
    return float(value) if isinstance(value, (int, float)) else None


def _write_history(s: Session, tenant_id: int, org: exposure.Components, comps: dict[int, exposure.Components],
                   now: dt.datetime) -> None:
    day = now.date()
    s.execute(delete(ExposureScoreHistory).where(ExposureScoreHistory.day == day))
    rows = [{"tenant_id": tenant_id, "day": day, "group_id": ORG, "score": round(org.score, 2),
             "devices": org.devices, "levels": exposure.levels_summary(org.levels),
             "config_score": _config_score(s, None), "recorded_at": now}]
    for gkey, c in sorted(comps.items()):
        if gkey == ORG:
            continue  # devices in no group count for the organisation only
        rows.append({"tenant_id": tenant_id, "day": day, "group_id": gkey, "score": round(c.score, 2),
                     "devices": c.devices, "levels": exposure.levels_summary(c.levels), "config_score": None,
                     "recorded_at": now})
    s.execute(insert(ExposureScoreHistory.__table__), rows)


def _write_recommendations(s: Session, tenant_id: int, accs: dict[str, RecAcc],
                           metas: dict[str, recommendations.UnitMeta], catalog: dict[str, dict[str, Any]],
                           eff: dict[str, risk_acceptance.Effective], org: exposure.Components,
                           comps: dict[int, exposure.Components], now: dt.datetime) -> int:
    first_seen = dict(s.execute(select(Recommendation.id, Recommendation.first_seen)).all())
    day = now.date()
    week_ago = dict(s.execute(select(RecommendationHistory.recommendation_id, RecommendationHistory.exposed)
                              .where(RecommendationHistory.day == day - dt.timedelta(days=TREND_DAYS)))
                    .all())
    group_names = dict(s.execute(select(DeviceGroup.id, DeviceGroup.name)).all())
    rec_rows: list[dict[str, Any]] = []
    group_rows: list[dict[str, Any]] = []
    hist_rows: list[dict[str, Any]] = []
    for rec_id, acc in accs.items():
        if acc.exposed == 0:
            continue
        if acc.kind == "software":
            meta = metas.get(rec_id[len(recommendations.SOFTWARE_PREFIX):])
            if meta is None or not meta.vulns:
                continue
            row = recommendations.software_recommendation(meta, acc, now)
        else:
            check_id = rec_id[len(recommendations.CONFIG_PREFIX):]
            row = recommendations.config_recommendation(check_id, catalog.get(check_id, {}), acc)
        e = eff.get(rec_id)
        nl = sum(g.nl_delta for g in acc.groups.values())
        high = sum(g.high_delta for g in acc.groups.values())
        after = [g for gk, g in acc.groups.items()
                 if not (e and risk_acceptance.reduces_risk(e.justification(None if gk == ORG else gk)))]
        covered = [gk for gk in acc.groups if e and e.justification(None if gk == ORG else gk) is not None]
        if e and e.global_justification is not None or (covered and len(covered) == len(acc.groups)):
            status = "Exception"
        elif covered:
            status = "PartialException"
        else:
            status = "Active"
        top = row.pop("top")
        row["details"]["groupNames"] = {str(k): group_names.get(k, "") for k in sorted(acc.groups) if k != ORG}
        row.update({
            "tenant_id": tenant_id,
            "exposure_impact": round(org.impact(nl, high), 4),
            "exposure_impact_after_exceptions": round(org.impact(sum(g.nl_delta for g in after),
                                                                  sum(g.high_delta for g in after)), 4),
            "total_machine_count": sum(g.installed for g in acc.groups.values()),
            "exposed_machines_count": acc.exposed,
            "exposed_after_exceptions": sum(g.exposed for g in after),
            "in_use_machines_count": acc.in_use,
            "exposed_machines_week_ago": week_ago.get(rec_id),
            "status": status,
            "priority_score": round(acc.priority, 6),
            "explanation": (expl := recommendations.explanation({**row, "top": top}, acc)),
            "priority_reason": str(expl.get("summary", ""))[:1024],
            "first_seen": first_seen.get(rec_id, now),
            "updated_at": now,
        })
        row["api_json"] = recommendations.api_fragment(row)
        rec_rows.append(row)
        for gk, g in sorted(acc.groups.items()):
            j = e.justification(None if gk == ORG else gk) if e else None
            group_rows.append({"tenant_id": tenant_id, "recommendation_id": rec_id, "group_id": gk,
                               "exposed": g.exposed, "installed": g.installed, "in_use": g.in_use,
                               "nl_delta": g.nl_delta, "high_delta": g.high_delta, "priority": g.priority,
                               "exception_justification": j})
        hist_rows.append({"tenant_id": tenant_id, "recommendation_id": rec_id, "day": day, "exposed": acc.exposed})
    s.execute(delete(RecommendationGroup))
    s.execute(delete(Recommendation))
    s.execute(delete(RecommendationHistory).where(RecommendationHistory.day == day))
    for table, rows in ((Recommendation.__table__, rec_rows), (RecommendationGroup.__table__, group_rows),
                        (RecommendationHistory.__table__, hist_rows)):
        for i in range(0, len(rows), CHUNK):
            s.execute(insert(table), rows[i : i + CHUNK])
    return len(rec_rows)
