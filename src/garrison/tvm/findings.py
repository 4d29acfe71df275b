"""Findings: a device's package versions JOIN what matching found for them.

A finding is (device, vulnerability, software, installed version) with the fixed version (None:
no fix yet), the advisories that report it, their feed, the distro status, when it was first seen
and — once the vulnerable version left the device — when it was resolved (``resolved_findings``).

``first_seen`` of an open finding is the later of "the version appeared on the device" and "the
knowledge base first reported the version vulnerable". Findings are keyed by installed version: an
update that does not fix a vulnerability resolves the finding of the old version and opens one
for the new version.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, case, select
from sqlalchemy.orm import Session

from garrison.store.base import utcnow
from garrison.store.models.kb import Vulnerability
from garrison.store.models.tvm import DevicePackage, PackageVersion, PackageVersionVuln, ResolvedFinding

IN_USE_WINDOW = dt.timedelta(days=30)  # runtime context: "in use" = running code seen within this
# Weight of a finding in the impact score when its vulnerability has no CVSS v3 score.
SEVERITY_WEIGHT = {"Critical": 9.0, "High": 7.0, "Medium": 5.0, "Low": 2.0, "None": 0.0}
UNKNOWN_WEIGHT = 5.0


def first_seen_expr() -> ColumnElement[Any]:
    return case((DevicePackage.first_seen > PackageVersionVuln.first_seen, DevicePackage.first_seen),
                else_=PackageVersionVuln.first_seen)


def cvss_weight_expr() -> ColumnElement[Any]:
    """CVSS v3 base score, else a score for the severity word: what one finding weighs."""
    by_severity = case(*[(Vulnerability.severity == k, v) for k, v in SEVERITY_WEIGHT.items()],
                       else_=UNKNOWN_WEIGHT)
    return case((Vulnerability.cvss_v3_score.is_not(None), Vulnerability.cvss_v3_score), else_=by_severity)


def findings_select(*columns: Any) -> Select[Any]:
    """Open findings of the session's tenant; add the columns you need (device, vulnerability…)."""
    return (select(*columns)
            .select_from(DevicePackage)
            .join(PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id))


@dataclass
class Finding:
    device_id: str
    vulnerability_id: str
    software_id: str
    package: str
    version: str
    fixed_version: str | None
    advisory_ids: list[str]
    source: str
    status: str
    first_seen: dt.datetime
    resolved_at: dt.datetime | None = None
    last_used: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_findings(s: Session, device_id: str | None = None) -> list[Finding]:
    stmt = findings_select(DevicePackage.device_id, PackageVersionVuln.vulnerability_id, PackageVersion.software_id,
                           PackageVersion.name, PackageVersion.version, PackageVersionVuln.fixed_version,
                           PackageVersionVuln.advisory_ids, PackageVersionVuln.source, PackageVersionVuln.status,
                           first_seen_expr(), DevicePackage.last_used)
    if device_id is not None:
        stmt = stmt.where(DevicePackage.device_id == device_id)
    stmt = stmt.order_by(DevicePackage.device_id, PackageVersion.software_id, PackageVersionVuln.vulnerability_id)
    return [Finding(r[0], r[1], r[2], r[3], r[4], r[5], list(r[6] or []), r[7], r[8], r[9], None, r[10])
            for r in s.execute(stmt)]


def resolved_findings(s: Session, device_id: str | None = None) -> list[Finding]:
    stmt = select(ResolvedFinding).order_by(ResolvedFinding.resolved_at, ResolvedFinding.id)
    if device_id is not None:
        stmt = stmt.where(ResolvedFinding.device_id == device_id)
    out = []
    for r in s.scalars(stmt):
        out.append(Finding(r.device_id, r.vulnerability_id, r.software_id, r.software_id.split("-_-", 1)[-1],
                           r.version, r.fixed_version, [], "", r.reason, r.first_seen, r.resolved_at))
    return out


def in_use(last_used: dt.datetime | None, now: dt.datetime | None = None) -> bool:
    return last_used is not None and last_used >= (now or utcnow()) - IN_USE_WINDOW
