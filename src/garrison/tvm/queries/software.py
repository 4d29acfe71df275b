"""Reads of one software product for the software page (the console's ``pages/software.py``), scoped
to the page's device groups (:class:`garrison.tvm.queries.summary.PageScope`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from garrison.store.models.core import Device
from garrison.store.models.kb import Vulnerability
from garrison.store.models.prioritisation import Recommendation, TimelineEvent
from garrison.store.models.tvm import (
    DevicePackage,
    PackageVersion,
    PackageVersionVuln,
    SoftwareHistory,
    SoftwareProduct,
)
from garrison.tvm.queries.summary import PageScope, recommendations_of_package_versions, severity_rank


def product(s: Session, software_id: str) -> SoftwareProduct | None:
    return s.get(SoftwareProduct, software_id[:300])


def versions(s: Session, software_id: str) -> dict[int, str]:
    """The product's package versions (id -> version): a short list, read first."""
    return dict(s.execute(select(PackageVersion.id, PackageVersion.version)
                          .where(PackageVersion.software_id == software_id)).all())


def installations(s: Session, ctx: PageScope, pv_ids: list[int]) -> list[tuple[str, int]]:
    """(device id, package version id) of these package versions on the page's devices."""
    if not pv_ids:
        return []
    stmt = select(DevicePackage.device_id, DevicePackage.package_version_id) \
        .where(DevicePackage.package_version_id.in_(pv_ids))
    if ctx.scope is not None:
        stmt = stmt.join(Device, Device.id == DevicePackage.device_id).where(ctx.device_cond())
    return [(r[0], r[1]) for r in s.execute(stmt)]


def findings(s: Session, pv_ids: list[int]) -> list[tuple[int, str, str | None]]:
    """(package version, vulnerability, fixed version) of these package versions."""
    if not pv_ids:
        return []
    return [(pv, vid, fix) for pv, vid, fix in s.execute(
        select(PackageVersionVuln.package_version_id, PackageVersionVuln.vulnerability_id,
               PackageVersionVuln.fixed_version).where(PackageVersionVuln.package_version_id.in_(pv_ids)))]


def vulnerabilities(s: Session, ids: list[str]) -> list[Vulnerability]:
    """These vulnerabilities, known exploited and most severe first."""
    if not ids:
        return []
    return list(s.scalars(select(Vulnerability).where(Vulnerability.id.in_(sorted(ids)))
                          .order_by(Vulnerability.kev.desc(), severity_rank().desc(),
                                    func.coalesce(Vulnerability.cvss_v3_score, 0).desc(), Vulnerability.id)))


def recommendations(s: Session, software_id: str) -> list[Recommendation]:
    """The recommendations whose remediation unit includes this software's package versions."""
    return recommendations_of_package_versions(s, select(PackageVersion.id)
                                               .where(PackageVersion.software_id == software_id))


def installed_devices(s: Session, ctx: PageScope, pv_ids: list[int],
                      page: Callable[[int], Any]) -> tuple[list[Any], Any]:
    """(device, package version, path, last used) of these versions on the page's devices, most exposed first."""
    cond = [DevicePackage.package_version_id.in_(pv_ids), ctx.device_cond()]
    total = (s.scalar(select(func.count()).select_from(DevicePackage).join(Device, Device.id == DevicePackage.device_id)
                      .where(*cond)) or 0) if pv_ids else 0
    p = page(total)
    if not pv_ids:
        return [], p
    rows = s.execute(select(Device, DevicePackage.package_version_id, DevicePackage.path, DevicePackage.last_used)
                     .join(Device, Device.id == DevicePackage.device_id).where(*cond)
                     .order_by(Device.exposure_score.desc(), Device.computer_dns_name)
                     .limit(p.size).offset(p.offset)).all()
    return list(rows), p


def history(s: Session, ctx: PageScope, software_id: str) -> dict[str, Any]:
    """The product's installs/updates/removals on the page's devices and its timeline events (100 each)."""
    hist = (select(SoftwareHistory, Device.computer_dns_name)
            .join(Device, Device.id == SoftwareHistory.device_id)
            .where(SoftwareHistory.software_id == software_id, ctx.device_cond())
            .order_by(SoftwareHistory.at.desc(), SoftwareHistory.id.desc()).limit(100))
    events = list(s.scalars(select(TimelineEvent).where(or_(TimelineEvent.product_id == software_id,
                                                            and_(TimelineEvent.recommendation_id.is_not(None),
                                                                 TimelineEvent.related_component == software_id)))
                            .order_by(TimelineEvent.at.desc()).limit(100)))
    return {"history": s.execute(hist).all(), "events": events}
