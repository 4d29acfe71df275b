"""Recompute one tenant: device exposure scores and levels, organisation and group scores with
their daily history, materialised recommendations, and remediation progress.

The heavy part is three aggregate queries over ``device_packages ⨝ package_version_vulns``:

1. hazard per (device, remediation unit) — the per-vulnerability hazard is an SQL expression summed
   per package version, then the riskiest package version of a unit counts for the device (binaries
   built from one source share its findings, so nothing is counted twice);
2. devices with each vulnerable unit installed (``totalMachineCount``);
3. the vulnerabilities, fixed versions and statuses of each unit (recommendation fields).

Everything after that works on aggregated rows — one per exposed (device, unit) — never a query
per device.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, distinct, func, insert, select, text, tuple_
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
from garrison.tvm.prioritisation.recommendations import RecAcc

log = logging.getLogger("garrison.tvm.prioritisation")

CHUNK = 1000
TREND_DAYS = 7


@dataclass
class Dev:
    id: str
    group_id: int | None
    value: str
    internet: bool
    counts: bool  # active and has data: counts for scores and recommendations
    old_score: float
    old_level: str
    hazard: float = 0.0
    items: list[tuple[str, float, bool, bool]] = field(default_factory=list)  # rec, hazard, reduced, in use

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
    devs = _load_devices(s, tenant_id, now)
    stats.devices = len(devs)
    mark("devices")

    unit_names: dict[tuple[str, str, str], str] = {}

    def unit(eco: str, manager: str, match_name: str) -> str:
        key = (eco, manager, match_name)
        u = unit_names.get(key)
        if u is None:
            u = unit_names[key] = recommendations.unit_of(eco, manager, match_name)[0]
        return u

    # 1. hazard per (device, unit)
    per_dev_unit: dict[tuple[str, str], list[Any]] = {}
    in_use_since = now - findings.IN_USE_WINDOW
    for device_id, eco, manager, match_name, hz, last_used in s.execute(_device_unit_hazards()):
        key = (device_id, unit(eco, manager, match_name))
        used = last_used is not None and _aware(last_used) >= in_use_since
        cur = per_dev_unit.get(key)
        if cur is None:
            per_dev_unit[key] = [float(hz or 0.0), used]
        else:
            cur[0] = max(cur[0], float(hz or 0.0))
            cur[1] = cur[1] or used
    mark("hazards")

    alert_units: set[str] = set()
    for device_id, eco, manager, match_name, extra in _alert_extras(s):
        key = (device_id, unit(eco, manager, match_name))
        if key in per_dev_unit:
            per_dev_unit[key][0] += extra
            alert_units.add(recommendations.software_rec_id(key[1]))
    alert_pairs = {(d, recommendations.software_rec_id(u)) for d, u in per_dev_unit if
                   recommendations.software_rec_id(u) in alert_units}

    for (device_id, unit_id), (hz, used) in per_dev_unit.items():
        dev = devs.get(device_id)
        if dev is None:
            continue
        rec_id = recommendations.software_rec_id(unit_id)
        e = eff.get(rec_id)
        reduced = exceptions.reduces_risk(e.justification(dev.group_id)) if e else False
        if not reduced:
            dev.hazard += hz
        dev.items.append((rec_id, hz, reduced, used))
    del per_dev_unit

    config_rows = config.failed_checks(s)
    check_ids: set[str] = set()
    for device_id, check_id, impact in config_rows:
        dev = devs.get(device_id)
        if dev is None:
            continue
        check_ids.add(check_id)
        rec_id = recommendations.config_rec_id(check_id)
        hz = exposure.config_hazard(impact)
        e = eff.get(rec_id)
        reduced = exceptions.reduces_risk(e.justification(dev.group_id)) if e else False
        if not reduced:
            dev.hazard += hz
        dev.items.append((rec_id, hz, reduced, True))
    mark("config")

    # 2. device scores and levels, group components, history
    comps: dict[int, exposure.Components] = defaultdict(exposure.Components)
    updates: list[dict[str, Any]] = []
    for dev in devs.values():
        if dev.counts:
            score = exposure.rounded(exposure.score_from_hazard(dev.hazard, dev.multiplier))
            level = exposure.level_for(score)
            comps[dev.gkey].add_device(score, dev.value, level)
            stats.scored_devices += 1
        else:
            score, level = 0.0, "None"
        if abs(score - (dev.old_score or 0.0)) > 1e-9 or level != dev.old_level:
            updates.append({"b_id": dev.id, "b_score": score, "b_level": level})
    _update_devices(s, tenant_id, updates)
    org = exposure.Components()
    for c in comps.values():
        org.merge(c)
    stats.organisation_score = org.score
    _write_components(s, tenant_id, comps, now)
    _write_history(s, tenant_id, org, comps, now)
    mark("scores")

    # 3. recommendations
    accs: dict[str, RecAcc] = {}
    exposed_sets: dict[str, set[str]] = defaultdict(set)
    wanted = remediation.active_recommendation_ids(s)
    for dev in devs.values():
        if not dev.items:
            continue
        for rec_id, _hz, _reduced, _used in dev.items:
            if rec_id in wanted:
                exposed_sets[rec_id].add(dev.id)
        if not dev.counts:
            continue
        m = dev.multiplier
        base = exposure.score_from_hazard(dev.hazard, m)
        w = exposure.ORG_WEIGHT.get(dev.value, 1.0)
        for rec_id, hz, reduced, used in dev.items:
            if reduced:
                delta = exposure.score_from_hazard(dev.hazard + hz, m) - base
            else:
                delta = base - exposure.score_from_hazard(max(dev.hazard - hz, 0.0), m)
            acc = accs.get(rec_id)
            if acc is None:
                acc = accs[rec_id] = RecAcc(rec_id, "configuration" if rec_id.startswith("scid-") else "software")
            g = acc.group(dev.gkey)
            g.exposed += 1
            if dev.value == "High":
                g.high_delta += delta
                acc.high_value += 1
            else:
                g.nl_delta += w * delta
                if dev.value == "Low":
                    acc.low_value += 1
            if used:
                g.in_use += 1
                acc.in_use += 1
            if dev.internet:
                acc.internet_facing += 1
            if (dev.id, rec_id) in alert_pairs:
                acc.active_alert = True
            g.priority += recommendations.priority(hz, used, dev.internet, dev.value)
            acc.threat += hz
    mark("accumulate")

    _installed_counts(s, tenant_id, now, accs, unit)
    mark("installed")
    metas = recommendations.unit_metadata(s, tenant_id)
    catalog = config.check_catalog(s, sorted(check_ids))
    mark("metadata")
    stats.recommendations = _write_recommendations(s, tenant_id, accs, metas, catalog, eff, org, comps, now)
    mark("recommendations")

    remediation.update_progress(s, now, exposed_sets)
    mark("remediation")
    stats.seconds = time.perf_counter() - started
    return stats


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


# --- queries --------------------------------------------------------------------------------------

def _load_devices(s: Session, tenant_id: int, now: dt.datetime) -> dict[str, Dev]:
    has_data = select(DeviceInventoryState.device_id).where(DeviceInventoryState.device_id == Device.id) \
        .correlate(Device).exists()
    rows = s.execute(select(Device.id, Device.group_id, Device.device_value, Device.internet_facing,
                            exposure.is_active_expr(now), has_data, Device.exposure_score, Device.exposure_level))
    out: dict[str, Dev] = {}
    for did, gid, value, internet, active, data, score, level in rows:
        out[did] = Dev(did, gid, value or "Normal", bool(internet), bool(active) and bool(data), score or 0.0,
                       level or "None")
    return out


def _device_unit_hazards() -> Any:
    hz = exposure.hazard_expr(Vulnerability)
    pvh = (select(PackageVersionVuln.package_version_id.label("pvid"), func.sum(hz).label("hz"))
           .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
           .group_by(PackageVersionVuln.package_version_id)).subquery("pvh")
    return (select(DevicePackage.device_id, PackageVersion.ecosystem, PackageVersion.manager,
                   PackageVersion.match_name, func.max(pvh.c.hz), func.max(DevicePackage.last_used))
            .select_from(pvh)
            .join(DevicePackage, DevicePackage.package_version_id == pvh.c.pvid)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .group_by(DevicePackage.device_id, PackageVersion.ecosystem, PackageVersion.manager,
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


def _installed_counts(s: Session, tenant_id: int, now: dt.datetime, accs: dict[str, RecAcc], unit: Any) -> None:
    vulnerable = (select(PackageVersion.ecosystem, PackageVersion.match_name)
                  .join(PackageVersionVuln, PackageVersionVuln.package_version_id == PackageVersion.id).distinct())
    has_data = select(DeviceInventoryState.device_id).where(DeviceInventoryState.device_id == Device.id) \
        .correlate(Device).exists()
    stmt = (select(PackageVersion.ecosystem, PackageVersion.manager, PackageVersion.match_name, Device.group_id,
                   func.count(distinct(DevicePackage.device_id)))
            .select_from(DevicePackage)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .join(Device, Device.id == DevicePackage.device_id)
            .where(tuple_(PackageVersion.ecosystem, PackageVersion.match_name).in_(vulnerable),
                   exposure.is_active_expr(now), has_data)
            .group_by(PackageVersion.ecosystem, PackageVersion.manager, PackageVersion.match_name, Device.group_id))
    per: dict[tuple[str, int], int] = defaultdict(int)
    for eco, manager, match_name, gid, n in s.execute(stmt):
        per[(unit(eco, manager, match_name), exposure.group_key(gid))] += int(n)
    for (unit_id, gkey), n in per.items():
        acc = accs.get(recommendations.software_rec_id(unit_id))
        if acc is not None:
            g = acc.group(gkey)
            g.installed = max(g.installed, min(n, 10**9))
    for acc in accs.values():
        for g in acc.groups.values():
            g.installed = max(g.installed, g.exposed)


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
            "explanation": recommendations.explanation({**row, "top": top}, acc),
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
