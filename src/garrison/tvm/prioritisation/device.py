"""One device's exposure, explained: which findings and failed checks contribute how much.

Computed live from the device's findings with the same formula and the same rules as the refresh
(binaries built from one source version count once; risk-reducing exceptions of the device's group
leave the score), so the contributions add up to the score.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.store.base import utcnow
from garrison.store.models.core import Device
from garrison.store.models.kb import Vulnerability
from garrison.store.models.prioritisation import DeviceVulnerabilityAlert
from garrison.store.models.tvm import DeviceInventoryState, DevicePackage, PackageVersion, PackageVersionVuln
from garrison.tvm import findings
from garrison.tvm.prioritisation import config, exposure, recommendations, risk_acceptance
from garrison.tvm.prioritisation.engine import version_key


def device_items(s: Session, device: Device, now: dt.datetime) -> list[dict[str, Any]]:
    """The device's software units and failed checks with their hazards and vulnerabilities."""
    rows = s.execute(select(PackageVersion.id, PackageVersion.ecosystem, PackageVersion.manager,
                            PackageVersion.match_name, PackageVersion.software_id, PackageVersion.name,
                            PackageVersion.version, DevicePackage.last_used, PackageVersionVuln.fixed_version,
                            PackageVersionVuln.status, Vulnerability, PackageVersion.source_version)
                     .select_from(DevicePackage)
                     .join(PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
                     .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
                     .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
                     .where(DevicePackage.device_id == device.id)).all()
    alerts = set(s.scalars(select(DeviceVulnerabilityAlert.vulnerability_id)
                           .where(DeviceVulnerabilityAlert.device_id == device.id,
                                  DeviceVulnerabilityAlert.active.is_(True))))
    # unit → version key (binaries of one source version share findings) → package version → findings
    units: dict[str, dict[tuple[Any, ...], dict[int, list[Any]]]] = defaultdict(lambda: defaultdict(dict))
    meta: dict[str, tuple[str, str]] = {}
    for r in rows:
        unit_id, vendor, name = recommendations.unit_of(r[1], r[2], r[3])
        key = version_key(r[0], r[1], r[3], r[11])
        units[unit_id][key].setdefault(r[0], []).append(r)
        meta[unit_id] = (vendor, name)
    in_use_since = now - findings.IN_USE_WINDOW
    items: list[dict[str, Any]] = []
    for unit_id, by_key in units.items():
        vulns = []
        last_used = None
        software: set[str] = set()
        for by_pv in by_key.values():
            chosen = by_pv[min(by_pv)]  # the first binary of the source version counts, as in the refresh
            for frs in by_pv.values():
                for fr in frs:
                    software.add(f"{fr[5]} {fr[6]}")
                    if fr[7] is not None and (last_used is None or fr[7] > last_used):
                        last_used = fr[7]
            for fr in chosen:
                v = fr[10]
                alert = v.id in alerts
                vulns.append({"id": v.id, "severity": v.severity, "cvssV3": v.cvss_v3_score,
                              "cvssV4": v.cvss_v4_score, "epss": v.epss, "epssPercentile": v.epss_percentile,
                              "kev": bool(v.kev), "publicExploit": bool(v.public_exploit),
                              "exploitVerified": bool(v.exploit_verified), "exploitInKit": bool(v.exploit_in_kit),
                              "activeAlert": alert, "fixedVersion": fr[8], "noFixYet": fr[8] is None,
                              "status": fr[9], "impact": round(exposure.impact(v), 4),
                              "likelihood": round(exposure.likelihood(v, alert), 4),
                              "hazard": exposure.hazard(v, alert), "reason": exposure.threat_reason(v, alert)})
        vulns.sort(key=lambda x: (-x["hazard"], x["id"]))
        if last_used is not None and last_used.tzinfo is None:
            last_used = last_used.replace(tzinfo=dt.UTC)
        items.append({"recommendationId": recommendations.software_rec_id(unit_id), "kind": "software",
                      "relatedComponent": meta[unit_id][1], "vendor": meta[unit_id][0],
                      "software": sorted(software), "hazard": sum(v["hazard"] for v in vulns),
                      "inUse": last_used is not None and last_used >= in_use_since,
                      "lastUsed": last_used, "vulnerabilities": vulns})
    for device_id, check_id, impact in config.failed_checks(s):
        if device_id != device.id:
            continue
        items.append({"recommendationId": recommendations.config_rec_id(check_id), "kind": "configuration",
                      "relatedComponent": check_id, "configurationImpact": impact,
                      "hazard": exposure.config_hazard(impact), "inUse": True, "vulnerabilities": []})
    return items


def device_exposure(s: Session, device: Device, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    items = device_items(s, device, now)
    eff = risk_acceptance.effective(s, now)
    has_data = s.get(DeviceInventoryState, device.id) is not None
    active = exposure.is_active(device, now)
    total = 0.0
    for it in items:
        e = eff.get(it["recommendationId"])
        j = e.justification(device.group_id) if e else None
        it["exceptionJustification"] = j
        it["riskReduced"] = risk_acceptance.reduces_risk(j)
        if not it["riskReduced"]:
            total += it["hazard"]
    m = exposure.device_multiplier(device.device_value, device.internet_facing)
    counts = active and has_data
    score = exposure.score_from_hazard(total, m) if counts else 0.0
    for it in items:
        share = 0.0 if it["riskReduced"] or total <= 0 else it["hazard"] / total
        it["share"] = round(share, 6)
        it["contribution"] = round(score * share, 4)
        it["hazard"] = round(it["hazard"], 6)
        for v in it["vulnerabilities"]:
            vshare = 0.0 if it["riskReduced"] or total <= 0 else v["hazard"] / total
            v["contribution"] = round(score * vshare, 4)
            v["hazard"] = round(v["hazard"], 6)
    items.sort(key=lambda x: (-x["contribution"], -x["hazard"], x["recommendationId"]))
    return {
        "machineId": device.id,
        "computerDnsName": device.computer_dns_name,
        "exposureScore": device.exposure_score,
        "exposureLevel": device.exposure_level,
        "exposureLevelReason": exposure.no_data_reason(s, device, now),
        "computedScore": exposure.rounded(score),
        "computedLevel": exposure.level_for(score, counts),
        "deviceValue": device.device_value,
        "internetFacing": device.internet_facing,
        "multiplier": m,
        "totalHazard": round(total, 6),
        "saturation": exposure.SATURATION,
        "active": active,
        "hasData": has_data,
        "formula": "score = 100 × (1 − exp(−multiplier × totalHazard / saturation)); "
                   "contribution = score × hazard / totalHazard",
        "contributions": items,
    }


def device_recommendation_ids(s: Session, device: Device) -> set[str]:
    rows = s.execute(select(PackageVersion.ecosystem, PackageVersion.manager, PackageVersion.match_name)
                     .select_from(DevicePackage)
                     .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
                     .where(DevicePackage.device_id == device.id,
                            select(PackageVersionVuln.package_version_id)
                            .where(PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
                            .exists())
                     .distinct())
    out = {recommendations.software_rec_id(recommendations.unit_of(e, m, n)[0]) for e, m, n in rows}
    out |= {recommendations.config_rec_id(c) for d, c, _ in config.failed_checks(s) if d == device.id}
    return out
