"""Vulnerability-management data of one device, for the tabs of the device page.

Findings are rows of ``device_packages`` joined with ``package_version_vulns`` (see
:mod:`garrison.store.models.tvm`); these helpers read them in the page's tenant session.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.server.web.render import Ctx
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
MAX_ROWS = 500


def _severity_rank() -> Any:
    from sqlalchemy import case

    return case(*((Vulnerability.severity == k, v) for k, v in SEVERITY_ORDER.items()), else_=0)


def device_overview(s: Session, ctx: Ctx, device: Device) -> dict[str, Any]:
    inv = s.get(DeviceInventoryState, device.id)
    counts = dict(s.execute(
        select(Vulnerability.severity, func.count(func.distinct(PackageVersionVuln.vulnerability_id)))
        .select_from(DevicePackage)
        .join(PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
        .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
        .where(DevicePackage.device_id == device.id).group_by(Vulnerability.severity)).all())
    software = s.scalar(select(func.count()).select_from(DevicePackage).where(DevicePackage.device_id == device.id))
    from garrison.server.web import tvmviews

    return {"inventory": inv, "severity_counts": counts, "software_count": software or 0,
            "vuln_count": sum(counts.values()), "assessment": tvmviews.device_assessment_summary(s, device)}


def device_software(s: Session, ctx: Ctx, device: Device) -> dict[str, Any]:
    vulns = (select(PackageVersionVuln.package_version_id, func.count().label("n"))
             .group_by(PackageVersionVuln.package_version_id).subquery())
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
        .limit(MAX_ROWS)).all()
    total = s.scalar(select(func.count()).select_from(DevicePackage).where(DevicePackage.device_id == device.id))
    return {"rows": [{"id": r[0], "vendor": r[1], "name": r[2], "version": r[3], "ecosystem": r[4], "manager": r[5], "path": r[6],
                          "first_seen": r[7], "last_used": r[8], "weaknesses": r[9]} for r in rows],
            "total": total or 0, "limit": MAX_ROWS}


def device_vulnerabilities(s: Session, ctx: Ctx, device: Device) -> dict[str, Any]:
    rows = s.execute(
        select(Vulnerability, SoftwareProduct.id, SoftwareProduct.name, PackageVersion.version,
               PackageVersionVuln.fixed_version, PackageVersionVuln.status, PackageVersionVuln.fix_advisory,
               PackageVersion.name, PackageVersion.source_name)
        .select_from(DevicePackage)
        .join(PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
        .join(Vulnerability, Vulnerability.id == PackageVersionVuln.vulnerability_id)
        .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
        .join(SoftwareProduct, SoftwareProduct.id == PackageVersion.software_id)
        .where(DevicePackage.device_id == device.id)
        .order_by(Vulnerability.kev.desc(), _severity_rank().desc(), Vulnerability.cvss_v3_score.desc(),
                  Vulnerability.id)
        .limit(MAX_ROWS)).all()
    total = s.scalar(select(func.count()).select_from(DevicePackage)
                     .join(PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
                     .where(DevicePackage.device_id == device.id))
    return {"rows": [{"v": r[0], "software_id": r[1], "software": r[2], "version": r[3], "fixed": r[4], "status": r[5],
                          "advisory": r[6], "package": r[7], "source": r[8]} for r in rows],
            "total": total or 0, "limit": MAX_ROWS}


def device_configuration(s: Session, ctx: Ctx, device: Device) -> dict[str, Any]:
    from garrison.server.web import tvmviews

    return tvmviews.device_configuration(s, ctx, device)


def device_recommendations(s: Session, ctx: Ctx, device: Device) -> dict[str, Any]:
    from garrison.server.web import tvmviews

    return tvmviews.device_recommendations(s, ctx, device)
