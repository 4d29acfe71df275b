"""The event timeline: events that may change the organisation's risk, derived — never entered.

Sources:

* knowledge-base changes (``kb_changes``): ``vulnerability_added`` → **NewVulnerability**,
  ``exploit_added`` → **NewPublicExploit**, ``exploit_verified`` (added to KEV) →
  **ExploitVerified**, ``exploit_in_kit`` → **ExploitAddedToKit** — each only when it affects the
  tenant. The devices counted are those that already had the vulnerable software when the change
  happened (a device onboarded later brings its findings as its baseline, not as news), and the
  first load of a feed is a baseline too (no events);
* software history (``software_history``): **SoftwareInstalled**, **SoftwareUninstalled**,
  **SoftwareUpdated**, one event per software product, kind and day;
* configuration-assessment change records, when that service provides them:
  **NewConfigurationAssessment**.

Each event keeps the related component, the originally impacted devices (count, per device group,
share of the organisation), and its score impact: the change of the organisation's exposure score
it accounts for (positive raises, negative lowers), estimated from the devices' current scores.
Currently impacted devices are counted when the events are read.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, distinct, func, select
from sqlalchemy.orm import Session

from garrison.store.base import utcnow
from garrison.store.models.core import Device
from garrison.store.models.kb import KbChange, Vulnerability
from garrison.store.models.prioritisation import PrioritisationCursor, TimelineEvent
from garrison.store.models.tvm import (
    DevicePackage,
    PackageVersion,
    PackageVersionVuln,
    ResolvedFinding,
    SoftwareHistory,
)
from garrison.tvm.prioritisation import config, exposure, recommendations

KB_KINDS = {
    "vulnerability_added": "NewVulnerability",
    "exploit_added": "NewPublicExploit",
    "exploit_verified": "ExploitVerified",
    "exploit_in_kit": "ExploitAddedToKit",
}
SOFTWARE_KINDS = {"installed": "SoftwareInstalled", "uninstalled": "SoftwareUninstalled", "updated": "SoftwareUpdated"}
EVENT_TYPES = (*KB_KINDS.values(), "NewConfigurationAssessment", *SOFTWARE_KINDS.values())
VULNERABILITY_EVENTS = tuple(KB_KINDS.values())
SETTLE = dt.timedelta(minutes=15)  # kb changes younger than this are looked at again (matching may lag)
MAX_DEVICE_IDS = 200
BATCH = 2000
SEVERITY_RANK = {"None": 0, "Low": 1, "Unknown": 2, "Medium": 2, "High": 3, "Critical": 4}


# --- cursors ------------------------------------------------------------------------------------

def get_cursor(s: Session, name: str, default: str = "0") -> str:
    row = s.scalar(select(PrioritisationCursor).where(PrioritisationCursor.name == name))
    return row.value if row else default


def set_cursor(s: Session, tenant_id: int, name: str, value: str, now: dt.datetime | None = None) -> None:
    row = s.scalar(select(PrioritisationCursor).where(PrioritisationCursor.name == name))
    if row is None:
        s.add(PrioritisationCursor(tenant_id=tenant_id, name=name, value=value, updated_at=now or utcnow()))
    else:
        row.value, row.updated_at = value, now or utcnow()
    s.flush()


# --- score impact ---------------------------------------------------------------------------------

class ScoreModel:
    """Current device scores, to estimate how much a hazard change moves the organisation score."""

    def __init__(self, s: Session, now: dt.datetime) -> None:
        self.devices: dict[str, tuple[float, str, bool, bool]] = {}
        for did, score, value, internet, active in s.execute(
                select(Device.id, Device.exposure_score, Device.device_value, Device.internet_facing,
                       exposure.is_active_expr(now))):
            self.devices[did] = (float(score or 0.0), value or "Normal", bool(internet), bool(active))
        comps = exposure.components_for(s)
        self.weight = comps.total_weight
        self.n = comps.devices

    def impact(self, hazard_change: dict[str, float]) -> float:
        """Organisation score change if each device's hazard moved by the given amount."""
        if self.weight <= 0:
            return 0.0
        total = 0.0
        for did, dh in hazard_change.items():
            d = self.devices.get(did)
            if d is None or not d[3] or dh == 0:
                continue
            score, value, internet, _ = d
            m = exposure.device_multiplier(value, internet)
            x = -math.log(max(1e-12, 1.0 - min(score, 99.9999) / 100.0))  # m·H/SATURATION now
            if dh > 0:  # the hazard is in the current score: what it adds
                before = 100.0 * (1.0 - math.exp(-max(0.0, x - m * dh / exposure.SATURATION)))
                delta = score - before
            else:  # the hazard left the score: what removing it took away
                after = 100.0 * (1.0 - math.exp(-(x + m * -dh / exposure.SATURATION)))
                delta = score - after
            total += exposure.org_weight(value, self.n) * delta
        return total / self.weight


# --- derivation ---------------------------------------------------------------------------------

def derive(s: Session, tenant_id: int, now: dt.datetime | None = None) -> list[TimelineEvent]:
    """Derive new events of the session's tenant from every source; returns the events created."""
    now = now or utcnow()
    model = ScoreModel(s, now)
    created = _from_kb(s, tenant_id, now, model)
    created += _from_software(s, tenant_id, now, model)
    created += _from_assessment(s, tenant_id, now)
    s.flush()
    return created


def start_baseline(s: Session, tenant_id: int, now: dt.datetime) -> None:
    """Everything the knowledge base recorded so far is the tenant's baseline, not news: later
    derivations start after it (a history replay's first day, where the fleet and the feeds arrive
    together)."""
    last = s.scalar(select(func.max(KbChange.id)))
    if last is not None:
        set_cursor(s, tenant_id, "timeline.kb", str(last), now)


def _existing_keys(s: Session, keys: Iterable[str]) -> set[str]:
    out: set[str] = set()
    key_list = list(keys)
    for i in range(0, len(key_list), 500):
        out.update(s.scalars(select(TimelineEvent.source_key).where(TimelineEvent.source_key.in_(key_list[i : i + 500]))))
    return out


def _total_devices(s: Session, now: dt.datetime) -> int:
    return int(s.scalar(select(func.count()).select_from(Device).where(exposure.is_active_expr(now))) or 0)


def _from_kb(s: Session, tenant_id: int, now: dt.datetime, model: ScoreModel) -> list[TimelineEvent]:
    cursor = int(get_cursor(s, "timeline.kb", "0"))
    settled = cursor
    changes = s.execute(select(KbChange.id, KbChange.at, KbChange.kind, KbChange.vulnerability_id, KbChange.details)
                        .where(KbChange.id > cursor, KbChange.kind.in_(list(KB_KINDS)),
                               KbChange.vulnerability_id.is_not(None))
                        .order_by(KbChange.id)).all()
    created: list[TimelineEvent] = []
    total = None
    for i in range(0, len(changes), BATCH):
        batch = changes[i : i + BATCH]
        for c in batch:
            if _aware(c.at) <= now - SETTLE:
                settled = max(settled, c.id)
        wanted = [c for c in batch if not (c.kind == "vulnerability_added" and (c.details or {}).get("initial_load"))]
        if not wanted:
            continue
        keys = {f"kb:{c.id}": c for c in wanted}
        done = _existing_keys(s, keys)
        todo = [c for c in wanted if f"kb:{c.id}" not in done]
        if not todo:
            continue
        impacted = _kb_impacted(s, [c.id for c in todo], now)
        if not impacted:
            continue
        vulns = {v.id: v for v in s.scalars(select(Vulnerability).where(
            Vulnerability.id.in_({c.vulnerability_id for c in todo if c.id in impacted})))}
        if total is None:
            total = _total_devices(s, now)
        for c in todo:
            info = impacted.get(c.id)
            v = vulns.get(c.vulnerability_id)
            if not info or v is None:
                continue
            created.append(_kb_event(s, c, v, info, total, model))
    if settled != cursor:
        set_cursor(s, tenant_id, "timeline.kb", str(settled), now)
    return created


def _kb_impacted(s: Session, change_ids: list[int], now: dt.datetime) -> dict[int, dict[str, Any]]:
    """Per kb change: devices that had the vulnerable software at the time, by group; components."""
    stmt = (select(KbChange.id, Device.group_id, DevicePackage.device_id, PackageVersion.ecosystem,
                   PackageVersion.manager, PackageVersion.match_name)
            .select_from(KbChange)
            .join(PackageVersionVuln, PackageVersionVuln.vulnerability_id == KbChange.vulnerability_id)
            .join(DevicePackage, and_(DevicePackage.package_version_id == PackageVersionVuln.package_version_id,
                                      DevicePackage.first_seen <= KbChange.at))
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .join(Device, Device.id == DevicePackage.device_id)
            .where(KbChange.id.in_(change_ids), exposure.is_active_expr(now))
            .distinct())
    out: dict[int, dict[str, Any]] = {}
    for cid, gid, did, eco, manager, match_name in s.execute(stmt):
        info = out.setdefault(cid, {"devices": {}, "units": set()})
        info["devices"][did] = exposure.group_key(gid)
        info["units"].add(recommendations.unit_of(eco, manager, match_name))
    return out


def _kb_event(s: Session, c: Any, v: Vulnerability, info: dict[str, Any], total: int,
              model: ScoreModel) -> TimelineEvent:
    kind = KB_KINDS[c.kind]
    devices: dict[str, int] = info["devices"]
    by_group: dict[str, int] = defaultdict(int)
    for gkey in devices.values():
        by_group[str(gkey)] += 1
    units = sorted(info["units"])
    component = ", ".join(sorted({u[2] for u in units}))[:256]
    h = exposure.hazard(v)
    impact = model.impact({d: h for d in devices})
    n = len(devices)
    titles = {
        "NewVulnerability": f"New vulnerability {v.id} in {component} on {n} device{'s' if n != 1 else ''}",
        "NewPublicExploit": f"Public exploit for {v.id} ({component}) on {n} device{'s' if n != 1 else ''}",
        "ExploitVerified": f"{v.id} ({component}) is exploited in the wild (KEV): {n} device{'s' if n != 1 else ''}",
        "ExploitAddedToKit": f"Exploit for {v.id} ({component}) added to an exploit kit: {n} device{'s' if n != 1 else ''}",
    }
    rec_id = recommendations.software_rec_id(units[0][0]) if len(units) == 1 else None
    ev = TimelineEvent(
        at=_aware(c.at), kind=kind, source_key=f"kb:{c.id}", vulnerability_id=v.id, product_id=units[0][0] if units else None,
        recommendation_id=rec_id, related_component=component, title=titles[kind][:512], severity=v.severity or "Unknown",
        originally_impacted=n, total_devices=total, impacted_by_group=dict(by_group),
        device_ids=sorted(devices)[:MAX_DEVICE_IDS], score_impact=round(impact, 4),
        details={"kbChange": c.id, "cvssV3": v.cvss_v3_score, "epss": v.epss, "kev": bool(v.kev),
                 "kevDateAdded": str(v.kev_date_added) if v.kev_date_added else None,
                 "kevRansomware": v.kev_ransomware or None, "units": [u[0] for u in units],
                 "hazard": round(h, 4), "reason": exposure.threat_reason(v)})
    s.add(ev)
    return ev


def _from_software(s: Session, tenant_id: int, now: dt.datetime, model: ScoreModel) -> list[TimelineEvent]:
    cursor = int(get_cursor(s, "timeline.software", "0"))
    rows = s.execute(select(SoftwareHistory.id, SoftwareHistory.device_id, SoftwareHistory.software_id,
                            SoftwareHistory.old_version, SoftwareHistory.new_version, SoftwareHistory.event,
                            SoftwareHistory.at, Device.group_id)
                     .join(Device, Device.id == SoftwareHistory.device_id)
                     .where(SoftwareHistory.id > cursor).order_by(SoftwareHistory.id).limit(200_000)).all()
    if not rows:
        return []
    groups: dict[tuple[str, str, dt.date], list[Any]] = defaultdict(list)
    for r in rows:
        groups[(r.software_id, r.event, _aware(r.at).date())].append(r)
    keys = {f"sw:{ev}:{sw}:{day.isoformat()}": (sw, ev, day) for sw, ev, day in groups}
    existing = {e.source_key: e for e in _events_by_key(s, keys)}
    total = _total_devices(s, now)
    created: list[TimelineEvent] = []
    verbs = {"installed": "installed on", "uninstalled": "uninstalled from", "updated": "updated on"}
    for key, (sw, event, day) in keys.items():
        entries = groups[(sw, event, day)]
        devices = {r.device_id: exposure.group_key(r.group_id) for r in entries}
        versions = {f"{r.old_version or ''} -> {r.new_version or ''}" for r in entries}
        impact = model.impact(_software_hazard_change(s, sw, event, entries))
        ev = existing.get(key)
        if ev is None:  # the same day's changes may arrive in several runs: one event, merged
            ev = TimelineEvent(at=min(_aware(r.at) for r in entries), kind=SOFTWARE_KINDS[event], source_key=key,
                               product_id=sw, related_component=sw.split("-_-", 1)[-1][:256], severity="None",
                               originally_impacted=0, impacted_by_group={}, device_ids=[], score_impact=0.0,
                               details={"versions": []})
            s.add(ev)
            created.append(ev)
        known = set(ev.device_ids or [])
        fresh = [d for d in devices if d not in known]
        by_group = dict(ev.impacted_by_group or {})
        for d in fresh:
            by_group[str(devices[d])] = int(by_group.get(str(devices[d]), 0)) + 1
        ev.impacted_by_group = by_group
        ev.originally_impacted = (ev.originally_impacted or 0) + len(fresh)
        ev.device_ids = sorted(known | set(fresh))[:MAX_DEVICE_IDS]
        ev.details = {**(ev.details or {}),
                      "versions": sorted(set((ev.details or {}).get("versions", [])) | versions)[:20]}
        ev.score_impact = round((ev.score_impact or 0.0) + impact, 4)
        ev.total_devices = total
        n = ev.originally_impacted
        ev.title = f"{ev.related_component} {verbs[event]} {n} device{'s' if n != 1 else ''}"[:512]
        worst = _worst_severity(s, sw, event, entries)
        if worst and SEVERITY_RANK.get(worst, 0) > SEVERITY_RANK.get(ev.severity or "None", 0):
            ev.severity = worst
    set_cursor(s, tenant_id, "timeline.software", str(max(r.id for r in rows)), now)
    return created


def _events_by_key(s: Session, keys: Iterable[str]) -> list[TimelineEvent]:
    out: list[TimelineEvent] = []
    key_list = list(keys)
    for i in range(0, len(key_list), 500):
        out.extend(s.scalars(select(TimelineEvent).where(TimelineEvent.source_key.in_(key_list[i : i + 500]))))
    return out


def _software_hazard_change(s: Session, software_id: str, event: str, entries: list[Any]) -> dict[str, float]:
    """Per device: hazard the change brought (findings of the new version) minus what it removed
    (findings resolved by it)."""
    device_ids = sorted({r.device_id for r in entries})
    out: dict[str, float] = defaultdict(float)
    hz = exposure.hazard_expr(Vulnerability)
    if event in ("installed", "updated"):
        new_versions = {r.new_version for r in entries if r.new_version}
        rows = s.execute(select(DevicePackage.device_id, func.sum(hz))
                         .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
                         .join(PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
                         .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
                         .where(PackageVersion.software_id == software_id, PackageVersion.version.in_(new_versions),
                                DevicePackage.device_id.in_(device_ids))
                         .group_by(DevicePackage.device_id))
        for did, h in rows:
            out[did] += float(h or 0.0)
    if event in ("uninstalled", "updated"):
        old_versions = {r.old_version for r in entries if r.old_version}
        at_min = min(_aware(r.at) for r in entries) - dt.timedelta(minutes=1)
        at_max = max(_aware(r.at) for r in entries) + dt.timedelta(minutes=1)
        rows = s.execute(select(ResolvedFinding.device_id, func.sum(hz))
                         .join(Vulnerability, Vulnerability.id == ResolvedFinding.vulnerability_id)
                         .where(ResolvedFinding.software_id == software_id, ResolvedFinding.version.in_(old_versions),
                                ResolvedFinding.device_id.in_(device_ids),
                                ResolvedFinding.resolved_at >= at_min, ResolvedFinding.resolved_at <= at_max)
                         .group_by(ResolvedFinding.device_id))
        for did, h in rows:
            out[did] -= float(h or 0.0)
    return dict(out)


def _worst_severity(s: Session, software_id: str, event: str, entries: list[Any]) -> str | None:
    """The worst severity among the findings the change brought (new versions) or removed (old ones)."""
    found: list[str] = []
    new_versions = {r.new_version for r in entries if r.new_version}
    old_versions = {r.old_version for r in entries if r.old_version}
    if event in ("installed", "updated") and new_versions:
        found += s.scalars(select(Vulnerability.severity).distinct()
                           .join(PackageVersionVuln, PackageVersionVuln.vulnerability_id == Vulnerability.id)
                           .join(PackageVersion, PackageVersion.id == PackageVersionVuln.package_version_id)
                           .where(PackageVersion.software_id == software_id, PackageVersion.version.in_(new_versions)))
    if event in ("uninstalled", "updated") and old_versions:
        found += s.scalars(select(Vulnerability.severity).distinct()
                           .join(ResolvedFinding, ResolvedFinding.vulnerability_id == Vulnerability.id)
                           .where(ResolvedFinding.software_id == software_id, ResolvedFinding.version.in_(old_versions),
                                  ResolvedFinding.device_id.in_({r.device_id for r in entries})))
    found = [x for x in found if x]
    return max(found, key=lambda x: SEVERITY_RANK.get(x, 0)) if found else None


def _from_assessment(s: Session, tenant_id: int, now: dt.datetime) -> list[TimelineEvent]:
    cursor = int(get_cursor(s, "timeline.assessment", "0"))
    changes = config.assessment_changes(s, cursor)
    if not changes:
        return []
    total = _total_devices(s, now)
    keys = {f"cfg:{c['id']}": c for c in changes}
    done = _existing_keys(s, keys)
    groups = dict(s.execute(select(Device.id, Device.group_id)).all())
    catalog = config.check_catalog(s, sorted({str(c.get("check_id")) for c in changes}))
    created: list[TimelineEvent] = []
    for key, c in keys.items():
        if key in done:
            continue
        device_ids = [d for d in c.get("device_ids") or [] if d in groups]
        if not device_ids:
            continue
        by_group: dict[str, int] = defaultdict(int)
        for d in device_ids:
            by_group[str(exposure.group_key(groups[d]))] += 1
        info = catalog.get(str(c.get("check_id")), {})
        name = str(info.get("name") or c.get("check_id"))
        impact = float(info.get("impact") or 0)
        ev = TimelineEvent(at=_aware(c.get("at") or now), kind="NewConfigurationAssessment", source_key=key,
                           config_id=str(c.get("check_id")),
                           recommendation_id=recommendations.config_rec_id(str(c.get("check_id"))),
                           related_component=str(info.get("category") or "")[:256],
                           title=f"New configuration assessment: {name}"[:512],
                           severity=_impact_severity(impact), originally_impacted=len(device_ids), total_devices=total,
                           impacted_by_group=dict(by_group), device_ids=sorted(device_ids)[:MAX_DEVICE_IDS],
                           details={"change": c.get("kind"), "impact": impact})
        s.add(ev)
        created.append(ev)
    set_cursor(s, tenant_id, "timeline.assessment", str(max(int(c["id"]) for c in changes)), now)
    return created


def _impact_severity(impact: float) -> str:
    if impact >= 9:
        return "Critical"
    if impact >= 7:
        return "High"
    if impact >= 4:
        return "Medium"
    return "Low"


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


# --- reading --------------------------------------------------------------------------------------

def currently_impacted(s: Session, events: list[TimelineEvent], group_ids: tuple[int, ...] | None,
                       now: dt.datetime) -> dict[int, int]:
    """Devices exposed now to each event's vulnerability (vulnerability events) or software."""
    out: dict[int, int] = {}
    vids = {e.vulnerability_id for e in events if e.vulnerability_id}
    sws = {e.product_id for e in events if e.vulnerability_id is None and e.product_id}
    scope = [exposure.is_active_expr(now)]
    if group_ids is not None:
        scope.append(Device.group_id.in_(group_ids))
    by_vuln: dict[str, int] = {}
    if vids:
        by_vuln = dict(s.execute(select(PackageVersionVuln.vulnerability_id, func.count(distinct(DevicePackage.device_id)))
                                 .join(DevicePackage, DevicePackage.package_version_id == PackageVersionVuln.package_version_id)
                                 .join(Device, Device.id == DevicePackage.device_id)
                                 .where(PackageVersionVuln.vulnerability_id.in_(vids), *scope)
                                 .group_by(PackageVersionVuln.vulnerability_id)).all())
    by_sw: dict[str, int] = {}
    if sws:
        by_sw = dict(s.execute(select(PackageVersion.software_id, func.count(distinct(DevicePackage.device_id)))
                               .join(DevicePackage, DevicePackage.package_version_id == PackageVersion.id)
                               .join(PackageVersionVuln, PackageVersionVuln.package_version_id == PackageVersion.id)
                               .join(Device, Device.id == DevicePackage.device_id)
                               .where(PackageVersion.software_id.in_(sws), *scope)
                               .group_by(PackageVersion.software_id)).all())
    for e in events:
        if e.vulnerability_id:
            out[e.id] = int(by_vuln.get(e.vulnerability_id, 0))
        elif e.product_id:
            out[e.id] = int(by_sw.get(e.product_id, 0))
    return out


def visible_count(e: TimelineEvent, group_ids: tuple[int, ...] | None) -> int:
    if group_ids is None:
        return e.originally_impacted
    return sum(int(n) for k, n in (e.impacted_by_group or {}).items() if int(k) in group_ids)


def score_trend(impact: float) -> str:
    if impact > 0.005:
        return "Raised"
    if impact < -0.005:
        return "Lowered"
    return "Unchanged"


def to_api(e: TimelineEvent, group_ids: tuple[int, ...] | None, current: int | None) -> dict[str, Any]:
    original = visible_count(e, group_ids)
    total = e.total_devices or 0
    return {
        "id": e.id,
        "date": e.at,
        "eventType": e.kind,
        "title": e.title,
        "relatedComponent": e.related_component,
        "vulnerabilityId": e.vulnerability_id,
        "softwareId": e.product_id if e.vulnerability_id is None else None,
        "productId": e.product_id,
        "scid": e.config_id,
        "recommendationId": e.recommendation_id,
        "severity": e.severity,
        "originallyImpactedDevices": original,
        "originallyImpactedPercentage": round(100.0 * original / total, 1) if total and group_ids is None else None,
        "currentlyImpactedDevices": current,
        "types": _types(e),
        "scoreImpact": e.score_impact if group_ids is None else None,
        "scoreTrend": score_trend(e.score_impact),
        "details": e.details,
    }


def _types(e: TimelineEvent) -> list[str]:
    d = e.details or {}
    out = []
    if d.get("kev") or e.kind == "ExploitVerified":
        out.append("ExploitVerified")
    if e.kind == "NewPublicExploit":
        out.append("PublicExploit")
    if e.kind == "ExploitAddedToKit":
        out.append("ExploitKit")
    if e.kind.startswith("Software"):
        out.append("Software")
    if e.kind == "NewConfigurationAssessment":
        out.append("Configuration")
    if e.kind == "NewVulnerability":
        out.append("Vulnerability")
    return out
