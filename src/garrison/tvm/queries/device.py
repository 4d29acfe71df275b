"""Vulnerability-management data of one device, for the tabs of the device page (``page(total)``: the
caller's pager for that many rows — an object with ``offset`` and ``size``).

Findings are rows of ``device_packages`` joined with ``package_version_vulns`` (see
:mod:`garrison.store.models.tvm`); these helpers read them in the page's tenant session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from garrison.store.models.core import Device
from garrison.store.models.kb import Vulnerability
from garrison.store.models.tvm import (
    DeviceInventoryState,
    DevicePackage,
    PackageVersion,
    PackageVersionVuln,
    SoftwareProduct,
)

SEVERITY_ORDER = {"Critical": 4, "High": 3, "Medium": 2, "Low": 1}


def _severity_rank() -> Any:
    return case(*((Vulnerability.severity == k, v) for k, v in SEVERITY_ORDER.items()), else_=0)


def device_overview(s: Session, device: Device) -> dict[str, Any]:
    inv = s.get(DeviceInventoryState, device.id)
    counts = dict(s.execute(
        select(Vulnerability.severity, func.count(func.distinct(PackageVersionVuln.vulnerability_id)))
        .select_from(DevicePackage)
        .join(PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
        .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
        .where(DevicePackage.device_id == device.id).group_by(Vulnerability.severity)).all())
    software = s.scalar(select(func.count()).select_from(DevicePackage).where(DevicePackage.device_id == device.id))
    from garrison.tvm.queries import summary

    return {"inventory": inv, "severity_counts": counts, "software_count": software or 0,
            "vuln_count": sum(counts.values()), "assessment": summary.device_assessment_summary(s, device)}


def device_software(s: Session, device: Device, page: Callable[[int], Any]) -> dict[str, Any]:
    """The device's software, most weaknesses first, paged in SQL."""
    vulns = (select(PackageVersionVuln.package_version_id, func.count().label("n"))
             .where(PackageVersionVuln.package_version_id.in_(
                 select(DevicePackage.package_version_id).where(DevicePackage.device_id == device.id)))
             .group_by(PackageVersionVuln.package_version_id).subquery())
    total = s.scalar(select(func.count()).select_from(DevicePackage).where(DevicePackage.device_id == device.id)) or 0
    p = page(total)
    rows = s.execute(
        select(SoftwareProduct.id, SoftwareProduct.vendor, SoftwareProduct.name, PackageVersion.version,
               PackageVersion.ecosystem, PackageVersion.manager, DevicePackage.path, DevicePackage.first_seen,
               DevicePackage.last_used, func.coalesce(vulns.c.n, 0))
        .select_from(DevicePackage)
        .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
        .join(SoftwareProduct, SoftwareProduct.id == PackageVersion.software_id)
        .outerjoin(vulns, vulns.c.package_version_id == PackageVersion.id)
        .where(DevicePackage.device_id == device.id)
        .order_by(func.coalesce(vulns.c.n, 0).desc(), SoftwareProduct.name, PackageVersion.version)
        .limit(p.size).offset(p.offset)).all()
    return {"rows": [{"id": r[0], "vendor": r[1], "name": r[2], "version": r[3], "ecosystem": r[4], "manager": r[5],
                      "path": r[6], "first_seen": r[7], "last_used": r[8], "weaknesses": r[9]} for r in rows],
            "total": total, "p": p}


def device_vulnerabilities(s: Session, device: Device, page: Callable[[int], Any]) -> dict[str, Any]:
    """The device's findings, known exploited and most severe first, paged in SQL."""
    v = Vulnerability
    base = (select(v.id, v.severity, v.cvss_v3_score, v.kev, v.public_exploit, v.exploit_verified, v.exploit_in_kit,
                   v.epss, SoftwareProduct.id, SoftwareProduct.name, PackageVersion.version,
                   PackageVersionVuln.fixed_version, PackageVersionVuln.status, PackageVersionVuln.fix_advisory,
                   PackageVersion.name, PackageVersion.source_name)
            .select_from(DevicePackage)
            .join(PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
            .join(v, v.id == PackageVersionVuln.vulnerability_id)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .join(SoftwareProduct, SoftwareProduct.id == PackageVersion.software_id)
            .where(DevicePackage.device_id == device.id))
    total, cves = s.execute(select(func.count(), func.count(func.distinct(PackageVersionVuln.vulnerability_id)))
                            .select_from(DevicePackage)
                            .join(PackageVersionVuln,
                                  PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
                            .where(DevicePackage.device_id == device.id)).one()
    p = page(total or 0)
    rows = s.execute(base.order_by(v.kev.desc(), _severity_rank().desc(), func.coalesce(v.cvss_v3_score, 0).desc(),
                                   v.id, PackageVersion.name).limit(p.size).offset(p.offset)).all()
    keys = ("id", "severity", "cvss", "kev", "exploit", "verified", "kit", "epss", "software_id", "software",
            "version", "fixed", "status", "advisory", "package", "source")
    return {"rows": [dict(zip(keys, r, strict=True)) for r in rows], "total": total or 0, "cves": cves or 0, "p": p}
