"""Export assessment: per-device software inventory, software vulnerabilities (full and delta)
and secure configuration, as rows for JSON lines (field names of Defender's export APIs).

Rows are produced in batches straight from the database (``yield_per``), so an export of a large
fleet streams in constant memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, aliased

from garrison.store.models.core import Device, DeviceGroup
from garrison.store.models.kb import Vulnerability
from garrison.store.models.tvm import (
    DevicePackage,
    PackageVersion,
    PackageVersionVuln,
    ResolvedFinding,
    SoftwareProduct,
)
from garrison.tvm import findings
from garrison.tvm.prioritisation import config, exposure, recommendations

BATCH = 2000
Group = aliased(DeviceGroup)


def _device_cols() -> tuple[Any, ...]:
    return (Device.id, Device.computer_dns_name, Device.os_platform, Device.os_version, Device.os_architecture,
            Device.group_id, Group.name)


def _device_fields(r: Any) -> dict[str, Any]:
    return {"deviceId": r[0], "deviceName": r[1], "osPlatform": r[2], "osVersion": r[3], "osArchitecture": r[4],
            "rbacGroupId": r[5], "rbacGroupName": r[6]}


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).isoformat().replace("+00:00", "Z")


def software_inventory(s: Session, scope: ColumnElement[bool], now: dt.datetime) -> Iterator[dict[str, Any]]:
    n_weak = (select(func.count()).select_from(PackageVersionVuln)
              .where(PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
              .correlate(DevicePackage).scalar_subquery())
    stmt = (select(*_device_cols(), SoftwareProduct.vendor, SoftwareProduct.name, PackageVersion.version,
                   PackageVersion.ecosystem, PackageVersion.manager, PackageVersion.name, DevicePackage.path,
                   DevicePackage.first_seen, DevicePackage.last_used, n_weak)
            .select_from(DevicePackage)
            .join(Device, Device.id == DevicePackage.device_id)
            .outerjoin(Group, Group.id == Device.group_id)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .join(SoftwareProduct, SoftwareProduct.id == PackageVersion.software_id)
            .where(scope, exposure.is_active_expr(now))
            .order_by(Device.id, SoftwareProduct.vendor, SoftwareProduct.name, PackageVersion.version)
            .execution_options(yield_per=BATCH))
    for r in s.execute(stmt):
        d = _device_fields(r)
        yield {"id": f"{d['deviceId']}_{r[7]}_{r[8]}_{r[9]}", **d, "softwareVendor": r[7], "softwareName": r[8],
               "softwareVersion": r[9], "ecosystem": r[10], "packageManager": r[11], "packageName": r[12],
               "numberOfWeaknesses": int(r[16] or 0), "diskPaths": [r[13]] if r[13] else [], "registryPaths": [],
               "softwareFirstSeenTimestamp": _iso(r[14]), "lastUsedTimestamp": _iso(r[15]),
               "endOfSupportStatus": "", "endOfSupportDate": None}


def software_vulnerabilities(s: Session, scope: ColumnElement[bool], now: dt.datetime) -> Iterator[dict[str, Any]]:
    stmt = (select(*_device_cols(), SoftwareProduct.vendor, SoftwareProduct.name, PackageVersion.version,
                   PackageVersion.ecosystem, PackageVersion.manager, PackageVersion.match_name,
                   DevicePackage.path, findings.first_seen_expr(), DevicePackage.last_used,
                   PackageVersionVuln.fixed_version, PackageVersionVuln.fix_advisory, PackageVersionVuln.status,
                   Vulnerability)
            .select_from(DevicePackage)
            .join(Device, Device.id == DevicePackage.device_id)
            .outerjoin(Group, Group.id == Device.group_id)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .join(SoftwareProduct, SoftwareProduct.id == PackageVersion.software_id)
            .join(PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
            .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
            .where(scope, exposure.is_active_expr(now))
            .order_by(Device.id, SoftwareProduct.vendor, SoftwareProduct.name, Vulnerability.id)
            .execution_options(yield_per=BATCH))
    nowiso = _iso(now)
    for r in s.execute(stmt):
        d = _device_fields(r)
        v = r[19]
        unit = recommendations.unit_of(r[10], r[11], r[12])[0]
        yield {"id": f"{d['deviceId']}_{r[7]}_{r[8]}_{r[9]}_{v.id}", **d, "softwareVendor": r[7],
               "softwareName": r[8], "softwareVersion": r[9], "cveId": v.id,
               "vulnerabilitySeverityLevel": v.severity, "cvssScore": v.cvss_v3_score,
               "cvssV4Score": v.cvss_v4_score, "epss": v.epss, "epssPercentile": v.epss_percentile,
               "exploitabilityLevel": _exploitability(v), "knownExploited": bool(v.kev),
               "recommendedSecurityUpdate": r[17] or None, "recommendedSecurityUpdateId": r[16],
               "securityUpdateAvailable": r[16] is not None, "findingStatus": r[18],
               "diskPaths": [r[13]] if r[13] else [], "registryPaths": [],
               "firstSeenTimestamp": _iso(r[14]), "lastSeenTimestamp": nowiso, "lastUsedTimestamp": _iso(r[15]),
               "recommendationReference": recommendations.software_rec_id(unit)}


def software_vulnerability_changes(s: Session, scope: ColumnElement[bool], since: dt.datetime,
                                   now: dt.datetime) -> Iterator[dict[str, Any]]:
    """Delta since ``since``: findings that appeared (New) and that ended (Fixed)."""
    for row in software_vulnerabilities(s, scope & (findings.first_seen_expr() >= since), now):
        row["status"] = "New"
        row["eventTimestamp"] = row["firstSeenTimestamp"]
        yield row
    stmt = (select(*_device_cols(), ResolvedFinding, Vulnerability.severity, Vulnerability.cvss_v3_score)
            .select_from(ResolvedFinding)
            .join(Device, Device.id == ResolvedFinding.device_id)
            .outerjoin(Group, Group.id == Device.group_id)
            .outerjoin(Vulnerability, Vulnerability.id == ResolvedFinding.vulnerability_id)
            .where(scope, ResolvedFinding.resolved_at >= since)
            .order_by(ResolvedFinding.resolved_at, ResolvedFinding.id)
            .execution_options(yield_per=BATCH))
    for r in s.execute(stmt):
        d = _device_fields(r)
        f: ResolvedFinding = r[7]
        vendor, _, name = f.software_id.partition("-_-")
        yield {"id": f"{d['deviceId']}_{vendor}_{name}_{f.version}_{f.vulnerability_id}", **d,
               "softwareVendor": vendor, "softwareName": name, "softwareVersion": f.version,
               "cveId": f.vulnerability_id, "vulnerabilitySeverityLevel": r[8], "cvssScore": r[9],
               "recommendedSecurityUpdateId": f.fixed_version, "status": "Fixed", "reason": f.reason,
               "firstSeenTimestamp": _iso(f.first_seen), "eventTimestamp": _iso(f.resolved_at)}


def secure_configuration(s: Session, scope_group_ids: tuple[int, ...] | None,
                         since: dt.datetime | None = None) -> Iterator[dict[str, Any]] | None:
    """Rows of the configuration assessment, when that service provides ``export_assessments``."""
    rows = config.export_assessments(s, scope_group_ids, since)
    return None if rows is None else iter(rows)


def _exploitability(v: Vulnerability) -> str:
    if v.kev or v.exploit_verified:
        return "ExploitIsVerified"
    if v.exploit_in_kit:
        return "ExploitIsInKit"
    if v.public_exploit:
        return "ExploitIsPublic"
    return "NoExploit"
