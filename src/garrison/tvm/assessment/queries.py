"""Read side: rows for the API routes and the hunting tables, all through the tenant session."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.store.models.assessment import (
    AssessmentCheck,
    AssessmentEvent,
    DeviceAssessmentResult,
    DeviceAssessmentState,
)
from garrison.store.models.core import Device, DeviceGroup
from garrison.tvm.assessment.kb import ensure_check_kb


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t else None


def _base(device_ids: Iterable[str] | None, check_ids: Iterable[str] | None) -> Any:
    r, k, s = DeviceAssessmentResult, AssessmentCheck, DeviceAssessmentState
    stmt = (
        select(r, Device, k, s.assessed_at, DeviceGroup.name)
        .join(Device, Device.id == r.device_id)
        .outerjoin(k, k.check_id == r.check_id)
        .outerjoin(s, s.device_id == r.device_id)
        .outerjoin(DeviceGroup, DeviceGroup.id == Device.group_id)
    )
    if device_ids is not None:
        stmt = stmt.where(r.device_id.in_(list(device_ids)))
    if check_ids is not None:
        stmt = stmt.where(r.check_id.in_(list(check_ids)))
    return stmt.order_by(r.device_id, r.check_id)


def assessment_by_machine(
    session: Session,
    device_ids: Iterable[str] | None = None,
    *,
    check_ids: Iterable[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """``/api/machines/SecureConfigurationsAssessmentByMachine``: one row per device and check
    (Defender's export-assessment shape); ``device_ids`` implements ``$filter=DeviceId eq '…'``."""
    ensure_check_kb(session)
    stmt = _base(device_ids, check_ids).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    out = []
    for r, d, k, assessed_at, group_name in session.execute(stmt):
        out.append({
            "DeviceId": d.id,
            "DeviceName": d.computer_dns_name,
            "OSPlatform": d.os_platform,
            "RbacGroupName": group_name,
            "ConfigurationId": r.check_id,
            "ConfigurationName": k.title if k else None,
            "ConfigurationCategory": k.category if k else None,
            "ConfigurationSubcategory": k.subcategory if k else None,
            "ConfigurationImpact": k.impact if k else None,
            "IsCompliant": r.status == "pass",
            "IsApplicable": r.status != "not_applicable",
            "IsExpectedUserImpact": None,
            "Timestamp": _iso(assessed_at),
        })
    return out


def device_assessment(session: Session, device_id: str) -> list[dict[str, Any]]:
    """A device's results with status and evidence (device page)."""
    ensure_check_kb(session)
    out = []
    for r, _d, k, assessed_at, _g in session.execute(_base([device_id], None)):
        out.append({
            "checkId": r.check_id,
            "title": k.title if k else r.check_id,
            "category": k.category if k else None,
            "subcategory": k.subcategory if k else None,
            "impact": k.impact if k else None,
            "status": r.status,
            "evidence": r.evidence,
            "changedAt": _iso(r.changed_at),
            "assessedAt": _iso(assessed_at),
        })
    return out


def devices_for_check(session: Session, check_id: str, statuses: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The devices a check was evaluated on, with their result (per-check device list)."""
    stmt = _base(None, [check_id])
    if statuses is not None:
        stmt = stmt.where(DeviceAssessmentResult.status.in_(list(statuses)))
    return [
        {"DeviceId": d.id, "DeviceName": d.computer_dns_name, "OSPlatform": d.os_platform, "status": r.status,
         "evidence": r.evidence, "Timestamp": _iso(assessed_at)}
        for r, d, _k, assessed_at, _g in session.execute(stmt)
    ]


def assessment_events(
    session: Session,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    check_id: str | None = None,
    device_id: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """'New configuration assessment' events (check added, device result changed), newest first."""
    e = AssessmentEvent
    stmt = select(e)
    if since is not None:
        stmt = stmt.where(e.at >= since)
    if until is not None:
        stmt = stmt.where(e.at < until)
    if check_id is not None:
        stmt = stmt.where(e.check_id == check_id)
    if device_id is not None:
        stmt = stmt.where(e.device_id == device_id)
    return [
        {"id": ev.id, "date": _iso(ev.at), "eventType": ev.event_type, "reason": ev.reason,
         "checkId": ev.check_id, "deviceId": ev.device_id, "oldStatus": ev.old_status, "newStatus": ev.new_status,
         "evidence": ev.evidence}
        for ev in session.scalars(stmt.order_by(e.at.desc(), e.id.desc()).limit(limit))
    ]


def secure_configuration_assessment_rows(session: Session, device_ids: Iterable[str] | None = None
                                         ) -> list[dict[str, Any]]:
    """Rows of the hunting table DeviceTvmSecureConfigurationAssessment (tenant-scoped)."""
    ensure_check_kb(session)
    return [
        {"DeviceId": d.id, "DeviceName": d.computer_dns_name, "OSPlatform": d.os_platform,
         "Timestamp": _iso(assessed_at), "ConfigurationId": r.check_id,
         "ConfigurationCategory": k.category if k else None,
         "ConfigurationSubcategory": k.subcategory if k else None,
         "ConfigurationImpact": k.impact if k else None,
         "IsCompliant": r.status == "pass", "IsApplicable": r.status != "not_applicable",
         "Context": r.evidence, "IsExpectedUserImpactCompliant": None}
        for r, d, k, assessed_at, _g in session.execute(_base(device_ids, None))
    ]


def secure_configuration_kb_rows(session: Session) -> list[dict[str, Any]]:
    """Rows of the hunting table DeviceTvmSecureConfigurationAssessmentKB."""
    ensure_check_kb(session)
    stmt = select(AssessmentCheck).where(AssessmentCheck.removed_at.is_(None)).order_by(AssessmentCheck.check_id)
    return [
        {"ConfigurationId": k.check_id, "ConfigurationImpact": k.impact, "ConfigurationName": k.title,
         "ConfigurationDescription": k.description, "RiskDescription": k.rationale,
         "ConfigurationCategory": k.category, "ConfigurationSubcategory": k.subcategory,
         "ConfigurationBenchmarks": list(k.benchmarks), "RelatedMitreTechniques": list(k.mitre_techniques),
         "RelatedMitreTactics": list(k.mitre_tactics), "RemediationSteps": k.remediation}
        for k in session.scalars(stmt)
    ]
