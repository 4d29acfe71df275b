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


def iso(t: dt.datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t else None


def rows_stmt(device_ids: Iterable[str] | None, check_ids: Iterable[str] | None) -> Any:
    """One row per (device, check) with the columns every view needs; plain columns, no ORM objects,
    so that exports of a large fleet stay fast."""
    r, k, s = DeviceAssessmentResult, AssessmentCheck, DeviceAssessmentState
    stmt = (
        select(
            r.device_id,
            r.check_id,
            r.status,
            r.evidence,
            r.changed_at,
            Device.computer_dns_name.label("device_name"),
            Device.os_platform,
            k.title,
            k.category,
            k.subcategory,
            k.impact,
            s.assessed_at,
            DeviceGroup.name.label("group_name"),
        )
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


def export_row(row: Any) -> dict[str, Any]:
    """A row of :func:`rows_stmt` in Defender's export-assessment shape."""
    return {
        "DeviceId": row.device_id,
        "DeviceName": row.device_name,
        "OSPlatform": row.os_platform,
        "RbacGroupName": row.group_name,
        "ConfigurationId": row.check_id,
        "ConfigurationName": row.title,
        "ConfigurationCategory": row.category,
        "ConfigurationSubcategory": row.subcategory,
        "ConfigurationImpact": row.impact,
        "IsCompliant": row.status == "pass",
        "IsApplicable": row.status != "not_applicable",
        "IsExpectedUserImpact": None,
        "Timestamp": iso(row.assessed_at),
    }


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
    stmt = rows_stmt(device_ids, check_ids).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [export_row(row) for row in session.execute(stmt)]


def device_assessment(session: Session, device_id: str) -> list[dict[str, Any]]:
    """A device's results with status and evidence (device page)."""
    ensure_check_kb(session)
    return [
        {
            "checkId": row.check_id,
            "title": row.title or row.check_id,
            "category": row.category,
            "subcategory": row.subcategory,
            "impact": row.impact,
            "status": row.status,
            "evidence": row.evidence,
            "changedAt": iso(row.changed_at),
            "assessedAt": iso(row.assessed_at),
        }
        for row in session.execute(rows_stmt([device_id], None))
    ]


def devices_for_check(
    session: Session, check_id: str, statuses: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """The devices a check was evaluated on, with their result (per-check device list)."""
    stmt = rows_stmt(None, [check_id])
    if statuses is not None:
        stmt = stmt.where(DeviceAssessmentResult.status.in_(list(statuses)))
    return [
        {
            "DeviceId": row.device_id,
            "DeviceName": row.device_name,
            "OSPlatform": row.os_platform,
            "status": row.status,
            "evidence": row.evidence,
            "Timestamp": iso(row.assessed_at),
        }
        for row in session.execute(stmt)
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
        {
            "id": ev.id,
            "date": iso(ev.at),
            "eventType": ev.event_type,
            "reason": ev.reason,
            "checkId": ev.check_id,
            "deviceId": ev.device_id,
            "oldStatus": ev.old_status,
            "newStatus": ev.new_status,
            "evidence": ev.evidence,
        }
        for ev in session.scalars(stmt.order_by(e.at.desc(), e.id.desc()).limit(limit))
    ]


def secure_configuration_assessment_rows(
    session: Session, device_ids: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Rows of the hunting table DeviceTvmSecureConfigurationAssessment (tenant-scoped)."""
    ensure_check_kb(session)
    return [
        {
            "DeviceId": row.device_id,
            "DeviceName": row.device_name,
            "OSPlatform": row.os_platform,
            "Timestamp": iso(row.assessed_at),
            "ConfigurationId": row.check_id,
            "ConfigurationCategory": row.category,
            "ConfigurationSubcategory": row.subcategory,
            "ConfigurationImpact": row.impact,
            "IsCompliant": row.status == "pass",
            "IsApplicable": row.status != "not_applicable",
            "Context": row.evidence,
            "IsExpectedUserImpactCompliant": None,
        }
        for row in session.execute(rows_stmt(device_ids, None))
    ]


def secure_configuration_kb_rows(session: Session) -> list[dict[str, Any]]:
    """Rows of the hunting table DeviceTvmSecureConfigurationAssessmentKB."""
    ensure_check_kb(session)
    stmt = (
        select(AssessmentCheck).where(AssessmentCheck.removed_at.is_(None)).order_by(AssessmentCheck.check_id)
    )
    return [
        {
            "ConfigurationId": k.check_id,
            "ConfigurationImpact": k.impact,
            "ConfigurationName": k.title,
            "ConfigurationDescription": k.description,
            "RiskDescription": k.rationale,
            "ConfigurationCategory": k.category,
            "ConfigurationSubcategory": k.subcategory,
            "ConfigurationBenchmarks": list(k.benchmarks),
            "RelatedMitreTechniques": list(k.mitre_techniques),
            "RelatedMitreTactics": list(k.mitre_tactics),
            "RemediationSteps": k.remediation,
        }
        for k in session.scalars(stmt)
    ]
