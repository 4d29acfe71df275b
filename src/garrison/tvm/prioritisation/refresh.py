"""Recompute one tenant: device exposure scores and levels, organisation and group scores with
their daily history, materialised recommendations, and remediation progress.

Everything heavy is set-based SQL over ``device_packages ⨝ package_version_vulns``, staged in
temporary tables of the transaction:

* ``prio_pv`` — each vulnerable package version present in the tenant: its remediation unit (as an
  integer) and the sum of its vulnerabilities' hazards (the hazard is an SQL expression);
* ``prio_du`` — per (device, unit): the riskiest package version of the unit on that device (binaries
  built from one source share its findings, so nothing is counted twice) and whether it is in use;
  failed configuration checks are added as units of their own;
* ``prio_dev`` — per device: group, multiplier, weights, and after the first pass its total hazard;
* ``prio_red`` / ``prio_alert`` — (unit, group) pairs under a risk-reducing exception, and the extra
  hazard of findings with an active alert.

Python then sees one row per device (to turn hazards into scores) and one row per (unit, device
group) (the recommendation figures, with each device's predicted score drop computed in SQL with
``exp``) — never a query or a loop per device and finding.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from garrison.store.base import utcnow
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
from garrison.tvm.prioritisation import config, exceptions, exposure, recommendations, remediation
from garrison.tvm.prioritisation.recommendations import GroupAcc, RecAcc

log = logging.getLogger("garrison.tvm.prioritisation")

CHUNK = 1000
TREND_DAYS = 7
TEMP_TABLES = ("prio_pv", "prio_du", "prio_dev", "prio_red", "prio_alert", "prio_safe")


@dataclass
class Dev:
    id: str
    group_id: int | None
    value: str
    internet: bool
    counts: bool  # active and has data: counts for scores and recommendations
    old_score: float
    old_level: str

    @property
    def gkey(self) -> int:
        return exposure.group_key(self.group_id)

    @property
    def multiplier(self) -> float:
        return exposure.device_multiplier(self.value, self.internet)


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
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


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


def refresh_tenant(s: Session, tenant_id: int, now: dt.datetime | None = None) -> RefreshStats:
    """Recompute everything of the session's tenant (a ``store.tenant(id)`` session)."""
    started = time.perf_counter()
    now = now or utcnow()
    stats = RefreshStats(tenant_id)
    lap = [started]

    def mark(name: str) -> None:
        t = time.perf_counter()
        stats.timings[name] = t - lap[0]
        lap[0] = t

    _lock(s, tenant_id)
    exceptions.expire_due(s, now)
    eff = exceptions.effective(s, now)
    devs = _load_devices(s, now)
    stats.devices = len(devs)
    _create_temp_tables(s)
    _ensure_exp(s)
    s.execute(text("INSERT INTO prio_dev (device_id, gkey, m, w_nl, is_high, is_low, internet, pf, counts) "
                   "VALUES (:d, :g, :m, :w, :hi, :lo, :net, :pf, :c)"),
              [{"d": d.id, "g": d.gkey, "m": d.multiplier, "w": 0.0 if d.value == "High" else
                exposure.ORG_WEIGHT.get(d.value, 1.0), "hi": int(d.value == "High"), "lo": int(d.value == "Low"),
                "net": int(d.internet), "c": int(d.counts),
                "pf": recommendations.BUSINESS_VALUE.get(d.value, 1.0) *
                (exposure.INTERNET_FACING_MULTIPLIER if d.internet else 1.0)} for d in devs.values()] or
              [{"d": "", "g": 0, "m": 1.0, "w": 0.0, "hi": 0, "lo": 0, "net": 0, "pf": 0.0, "c": 0}])
    mark("devices")

    # 1. hazard per vulnerable package version, then per (device, unit)
    units = Units()
    pv_rows = []
    for pv_id, eco, manager, match_name, hz in s.execute(_package_version_hazards(tenant_id)):
        pv_rows.append({"p": pv_id, "u": units.of_package(eco, manager, match_name), "h": float(hz or 0.0)})
    for i in range(0, len(pv_rows), 5000):
        s.execute(text("INSERT INTO prio_pv (pv_id, unit, hz) VALUES (:p, :u, :h)"), pv_rows[i : i + 5000])
    software_units = len(units.rec_ids)
    s.execute(text("INSERT INTO prio_du (device_id, unit, hz, used) "
                   "SELECT dp.device_id, p.unit, MAX(p.hz), "
                   "MAX(CASE WHEN dp.last_used >= :since THEN 1 ELSE 0 END) "
                   "FROM prio_pv p JOIN device_packages dp ON dp.package_version_id = p.pv_id "
                   "WHERE dp.tenant_id = :t GROUP BY dp.device_id, p.unit"),
              {"since": now - findings.IN_USE_WINDOW, "t": tenant_id})
    mark("hazards")

    # failed configuration checks are units of their own
    check_ids: set[str] = set()
    cfg_rows = []
    for device_id, check_id, impact in config.failed_checks(s):
        if device_id in devs:
            check_ids.add(check_id)
            cfg_rows.append({"d": device_id, "u": units.add(recommendations.config_rec_id(check_id)),
                             "h": exposure.config_hazard(impact)})
    for i in range(0, len(cfg_rows), 5000):
        s.execute(text("INSERT INTO prio_du (device_id, unit, hz, used) VALUES (:d, :u, :h, 1)"),
                  cfg_rows[i : i + 5000])
    alert_rows = [{"d": d, "u": units.of_package(e, m, n), "x": x} for d, e, m, n, x in _alert_extras(s)]
    merged: dict[tuple[str, int], float] = defaultdict(float)
    for r in alert_rows:
        merged[(r["d"], r["u"])] += r["x"]
    if merged:
        s.execute(text("INSERT INTO prio_alert (device_id, unit, extra) VALUES (:d, :u, :x)"),
                  [{"d": d, "u": u, "x": x} for (d, u), x in merged.items()])
    reduced = _reduced_pairs(s, eff, units)
    if reduced:
        s.execute(text("INSERT INTO prio_red (unit, gkey) VALUES (:u, :g)"), [{"u": u, "g": g} for u, g in reduced])
    mark("config")

    # 2. device scores and levels, group components, history
    totals = {d: (float(h or 0.0), float(r or 0.0)) for d, h, r in s.execute(text(
        "SELECT du.device_id, SUM(du.hz + COALESCE(a.extra, 0)), "
        "SUM(CASE WHEN r.unit IS NULL THEN 0 ELSE du.hz + COALESCE(a.extra, 0) END) "
        "FROM prio_du du JOIN prio_dev d ON d.device_id = du.device_id "
        "LEFT JOIN prio_red r ON r.unit = du.unit AND r.gkey = d.gkey "
        "LEFT JOIN prio_alert a ON a.device_id = du.device_id AND a.unit = du.unit "
        "GROUP BY du.device_id"))}
    comps: dict[int, exposure.Components] = defaultdict(exposure.Components)
    updates: list[dict[str, Any]] = []
    hazards: list[dict[str, Any]] = []
    for dev in devs.values():
        total, red = totals.get(dev.id, (0.0, 0.0))
        h = max(total - red, 0.0)
        if dev.counts:
            raw = exposure.score_from_hazard(h, dev.multiplier)
            score = exposure.rounded(raw)
            level = exposure.level_for(score)
            comps[dev.gkey].add_device(score, dev.value, level)
            stats.scored_devices += 1
            if dev.id in totals:
                hazards.append({"d": dev.id, "h": h, "e": math.exp(-dev.multiplier * h / exposure.SATURATION)})
        else:
            score, level = 0.0, "None"
        if abs(score - (dev.old_score or 0.0)) > 1e-9 or level != dev.old_level:
            updates.append({"b_id": dev.id, "b_score": score, "b_level": level})
    for i in range(0, len(hazards), 5000):
        s.execute(text("UPDATE prio_dev SET h = :h, e = :e WHERE device_id = :d"), hazards[i : i + 5000])
    _update_devices(s, tenant_id, updates)
    org = exposure.Components()
    for c in comps.values():
        org.merge(c)
    stats.organisation_score = org.score
    _write_components(s, tenant_id, comps, now)
    _write_history(s, tenant_id, org, comps, now)
    mark("scores")

    # 3. recommendation figures per (unit, device group); each device's score drop in SQL
    accs = _accumulate(s, units)
    mark("accumulate")
    _installed_counts(s, tenant_id, units, accs, software_units)
    mark("installed")
    metas = recommendations.unit_metadata(s, tenant_id)
    catalog = config.check_catalog(s, sorted(check_ids))
    mark("metadata")
    stats.recommendations = _write_recommendations(s, tenant_id, accs, metas, catalog, eff, org, comps, now)
    mark("recommendations")

    wanted = sorted(remediation.active_recommendation_ids(s) & set(units.index))
    exposed_sets: dict[str, set[str]] = defaultdict(set)
    for i in range(0, len(wanted), 500):
        ids = [units.index[r] for r in wanted[i : i + 500]]
        for device_id, u in s.execute(text("SELECT device_id, unit FROM prio_du WHERE unit IN :u")
                                      .bindparams(bindparam("u", expanding=True)), {"u": ids}):
            exposed_sets[units.rec_ids[u]].add(device_id)
    remediation.update_progress(s, now, exposed_sets)
    _drop_temp_tables(s)
    mark("remediation")
    stats.seconds = time.perf_counter() - started
    return stats


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


# --- staging tables --------------------------------------------------------------------------------

_DDL = {
    "prio_pv": "pv_id INTEGER PRIMARY KEY, unit INTEGER NOT NULL, hz FLOAT NOT NULL",
    "prio_du": "device_id VARCHAR(40) NOT NULL, unit INTEGER NOT NULL, hz FLOAT NOT NULL, used INTEGER NOT NULL",
    "prio_dev": ("device_id VARCHAR(40) PRIMARY KEY, gkey INTEGER, m FLOAT, w_nl FLOAT, is_high INTEGER, "
                 "is_low INTEGER, internet INTEGER, pf FLOAT, counts INTEGER, h FLOAT DEFAULT 0, e FLOAT DEFAULT 1"),
    "prio_red": "unit INTEGER NOT NULL, gkey INTEGER NOT NULL, PRIMARY KEY (unit, gkey)",
    "prio_alert": "device_id VARCHAR(40) NOT NULL, unit INTEGER NOT NULL, extra FLOAT, PRIMARY KEY (device_id, unit)",
    "prio_safe": "pv_id INTEGER PRIMARY KEY, unit INTEGER NOT NULL",
}


def _create_temp_tables(s: Session) -> None:
    pg = s.get_bind().dialect.name == "postgresql"
    for name in TEMP_TABLES:
        s.execute(text(f"DROP TABLE IF EXISTS {'' if pg else 'temp.'}{name}"))
        s.execute(text(f"CREATE TEMPORARY TABLE {name} ({_DDL[name]})" + (" ON COMMIT DROP" if pg else "")))


def _drop_temp_tables(s: Session) -> None:
    pg = s.get_bind().dialect.name == "postgresql"
    for name in TEMP_TABLES:
        s.execute(text(f"DROP TABLE IF EXISTS {'' if pg else 'temp.'}{name}"))


def _ensure_exp(s: Session) -> None:
    """SQLite builds without the math functions get ``exp`` as a Python function on this connection."""
    if s.get_bind().dialect.name != "sqlite":
        return
    try:
        with s.begin_nested():
            s.execute(text("SELECT exp(0.0)"))
    except DBAPIError:
        raw = s.connection().connection.dbapi_connection
        raw.create_function("exp", 1, math.exp, deterministic=True)  # type: ignore[union-attr]


# --- queries --------------------------------------------------------------------------------------

def _tenant(table: Any, tenant_id: int) -> Any:
    return table.c.tenant_id == tenant_id


def _load_devices(s: Session, now: dt.datetime) -> dict[str, Dev]:
    has_data = select(DeviceInventoryState.device_id).where(DeviceInventoryState.device_id == Device.id) \
        .correlate(Device).exists()
    rows = s.execute(select(Device.id, Device.group_id, Device.device_value, Device.internet_facing,
                            exposure.is_active_expr(now), has_data, Device.exposure_score, Device.exposure_level))
    out: dict[str, Dev] = {}
    for did, gid, value, internet, active, data, score, level in rows:
        out[did] = Dev(did, gid, value or "Normal", bool(internet), bool(active) and bool(data), score or 0.0,
                       level or "None")
    return out


def _package_version_hazards(tenant_id: int) -> Any:
    """Per vulnerable package version present in the tenant: unit key and the sum of its hazards."""
    DP = DevicePackage.__table__
    present = (select(DP.c.package_version_id)
               .where(DP.c.package_version_id == PackageVersionVuln.package_version_id, _tenant(DP, tenant_id))
               .exists())
    return (select(PackageVersionVuln.package_version_id, PackageVersion.ecosystem, PackageVersion.manager,
                   PackageVersion.match_name, func.sum(exposure.hazard_expr(Vulnerability)))
            .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
            .join(PackageVersion, PackageVersion.id == PackageVersionVuln.package_version_id)
            .where(present)
            .group_by(PackageVersionVuln.package_version_id, PackageVersion.ecosystem, PackageVersion.manager,
                      PackageVersion.match_name))


def _alert_extras(s: Session) -> list[tuple[str, str, str, str, float]]:
    """Extra hazard of findings with an active alert on their device: likelihood raised to the top."""
    A = DeviceVulnerabilityAlert
    rows = s.execute(select(A.device_id, PackageVersion.ecosystem, PackageVersion.manager,
                            PackageVersion.match_name, Vulnerability)
                     .join(DevicePackage, DevicePackage.device_id == A.device_id)
                     .join(PackageVersionVuln, (PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
                           & (PackageVersionVuln.vulnerability_id == A.vulnerability_id))
                     .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
                     .join(Vulnerability, Vulnerability.id == A.vulnerability_id)
                     .where(A.active.is_(True))).all()
    seen: set[tuple[str, str, str, str, str]] = set()
    out = []
    for device_id, eco, manager, match_name, v in rows:
        key = (device_id, eco, manager, match_name, v.id)
        if key in seen:
            continue
        seen.add(key)
        extra = exposure.hazard(v, active_alert=True) - exposure.hazard(v)
        out.append((device_id, eco, manager, match_name, extra))
    return out


def _reduced_pairs(s: Session, eff: dict[str, exceptions.Effective], units: Units) -> set[tuple[int, int]]:
    """(unit, group key) pairs whose findings a risk-reducing exception takes out of the score."""
    gkeys = [ORG, *s.scalars(select(DeviceGroup.id))]
    out: set[tuple[int, int]] = set()
    for rec_id, e in eff.items():
        u = units.index.get(rec_id)
        if u is None:
            continue
        for g in gkeys:
            if exceptions.reduces_risk(e.justification(None if g == ORG else g)):
                out.add((u, g))
    return out


_X = "(du.hz + COALESCE(a.extra, 0))"  # a unit's hazard on a device, with an active alert's extra
_DROP = ("100.0 * CASE WHEN r.unit IS NULL "
         "THEN exp(-d.m * (CASE WHEN d.h > {x} THEN d.h - {x} ELSE 0 END) / {k}) - d.e "
         "ELSE d.e - exp(-d.m * (d.h + {x}) / {k}) END")


def _accumulate(s: Session, units: Units) -> dict[str, RecAcc]:
    """Per (unit, device group): exposed devices, in use, weighted score drops, priority, threat.

    A device's score drop if the unit were fixed: with the unit counted (no risk-reducing exception),
    ``s(H) − s(H − h)``; excepted, what it would add back: ``s(H + h) − s(H)``, where
    ``s(x) = 100 (1 − exp(−m x / SATURATION))`` and ``d.e = exp(−m H / SATURATION)``.
    """
    drop = _DROP.format(x=_X, k=repr(float(exposure.SATURATION)))
    not_in_use = repr(float(recommendations.NOT_IN_USE_LIKELIHOOD))
    sql = text(
        "SELECT du.unit, d.gkey, COUNT(*), SUM(du.used), "
        f"SUM(d.w_nl * ({drop})), SUM(d.is_high * ({drop})), "
        f"SUM({_X} * d.pf * CASE WHEN du.used = 1 THEN 1.0 ELSE {not_in_use} END), SUM({_X}), "
        "SUM(d.internet), SUM(d.is_high), SUM(d.is_low), MAX(CASE WHEN a.unit IS NULL THEN 0 ELSE 1 END) "
        "FROM prio_du du JOIN prio_dev d ON d.device_id = du.device_id AND d.counts = 1 "
        "LEFT JOIN prio_alert a ON a.device_id = du.device_id AND a.unit = du.unit "
        "LEFT JOIN prio_red r ON r.unit = du.unit AND r.gkey = d.gkey "
        "GROUP BY du.unit, d.gkey")
    accs: dict[str, RecAcc] = {}
    for u, gkey, exposed, in_use, nl, high, prio, threat, net, hi, lo, alert in s.execute(sql):
        rec_id = units.rec_ids[u]
        acc = accs.get(rec_id)
        if acc is None:
            acc = accs[rec_id] = RecAcc(rec_id, "configuration" if rec_id.startswith(recommendations.CONFIG_PREFIX)
                                        else "software")
        acc.groups[int(gkey)] = GroupAcc(exposed=int(exposed), in_use=int(in_use or 0), nl_delta=float(nl or 0.0),
                                         high_delta=float(high or 0.0), priority=float(prio or 0.0))
        acc.threat += float(threat or 0.0)
        acc.in_use += int(in_use or 0)
        acc.internet_facing += int(net or 0)
        acc.high_value += int(hi or 0)
        acc.low_value += int(lo or 0)
        acc.active_alert = acc.active_alert or bool(alert)
    return accs


def _installed_counts(s: Session, tenant_id: int, units: Units, accs: dict[str, RecAcc], software_units: int) -> None:
    """totalMachineCount: exposed devices plus devices that have the unit only in fixed versions."""
    vulnerable = (select(PackageVersion.ecosystem, PackageVersion.match_name)
                  .join(PackageVersionVuln, PackageVersionVuln.package_version_id == PackageVersion.id).distinct()
                  .subquery())
    DP = DevicePackage.__table__
    safe = s.execute(select(PackageVersion.id, PackageVersion.ecosystem, PackageVersion.manager,
                            PackageVersion.match_name)
                     .join(vulnerable, (vulnerable.c.ecosystem == PackageVersion.ecosystem)
                           & (vulnerable.c.match_name == PackageVersion.match_name))
                     .where(~select(PackageVersionVuln.package_version_id)
                            .where(PackageVersionVuln.package_version_id == PackageVersion.id).exists(),
                            select(DP.c.package_version_id).where(DP.c.package_version_id == PackageVersion.id,
                                                                  _tenant(DP, tenant_id)).exists())).all()
    rows = []
    for pv_id, eco, manager, match_name in safe:
        rec_id = recommendations.software_rec_id(recommendations.unit_of(eco, manager, match_name)[0])
        u = units.index.get(rec_id)
        if u is not None and u < software_units:
            rows.append({"p": pv_id, "u": u})
    if rows:
        for i in range(0, len(rows), 5000):
            s.execute(text("INSERT INTO prio_safe (pv_id, unit) VALUES (:p, :u)"), rows[i : i + 5000])
        s.execute(text("CREATE INDEX prio_du_device_unit ON prio_du (device_id, unit)"))
        for u, gkey, n in s.execute(text(
                "SELECT ps.unit, d.gkey, COUNT(DISTINCT dp.device_id) FROM prio_safe ps "
                "JOIN device_packages dp ON dp.package_version_id = ps.pv_id AND dp.tenant_id = :t "
                "JOIN prio_dev d ON d.device_id = dp.device_id AND d.counts = 1 "
                "WHERE NOT EXISTS (SELECT 1 FROM prio_du du WHERE du.device_id = dp.device_id AND du.unit = ps.unit) "
                "GROUP BY ps.unit, d.gkey"), {"t": tenant_id}):
            acc = accs.get(units.rec_ids[u])
            if acc is not None:
                acc.group(int(gkey)).installed += int(n)
    for acc in accs.values():
        for g in acc.groups.values():
            g.installed += g.exposed


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
    except Exception:  # noqa: BLE001 - a failing optional provider must not stop the refresh
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
                           eff: dict[str, exceptions.Effective], org: exposure.Components,
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
                 if not (e and exceptions.reduces_risk(e.justification(None if gk == ORG else gk)))]
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
