"""What the prioritisation engine (``garrison.tvm.prioritisation.config``) takes from the
configuration assessment: failed checks as ConfigurationChange recommendations, their catalog
with configScoreImpact, the devices failing a check, change records for the event timeline and
the export rows. All run in a tenant session."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from garrison.store.base import utcnow
from garrison.store.models.assessment import (
    AssessmentCheck,
    AssessmentEvent,
    DeviceAssessmentResult,
    DeviceAssessmentState,
)
from garrison.store.models.core import Device
from garrison.tvm.assessment.kb import ensure_check_kb
from garrison.tvm.assessment.queries import export_row, rows_stmt
from garrison.tvm.assessment.score import active_device_filter, failed_checks_for_recommendations

MAX_CHANGES = 5000


def failed_checks(session: Session, *, now: dt.datetime | None = None) -> list[tuple[str, str, int]]:
    """(device id, check id, ConfigurationImpact 1-10) of every failed check on an active device."""
    now = now or utcnow()
    ensure_check_kb(session)
    r = DeviceAssessmentResult
    stmt = (
        select(r.device_id, r.check_id, AssessmentCheck.impact)
        .join(Device, Device.id == r.device_id)
        .join(DeviceAssessmentState, DeviceAssessmentState.device_id == r.device_id)
        .join(AssessmentCheck, AssessmentCheck.check_id == r.check_id)
        .where(r.status == "fail", *active_device_filter(now))
        .order_by(r.device_id, r.check_id)
    )
    return [(d, c, int(i)) for d, c, i in session.execute(stmt)]


def check_catalog(
    session: Session, check_ids: Iterable[str], *, now: dt.datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Recommendation metadata of checks: name, category, subcategory, impact, remediation, scoreImpact."""
    ids = list(check_ids)
    if not ids:
        return {}
    ensure_check_kb(session)
    gains = {r.check_id: r.config_score_impact for r in failed_checks_for_recommendations(session, now=now)}
    return {
        k.check_id: {
            "name": k.title,
            "description": k.description,
            "category": k.category,
            "subcategory": k.subcategory,
            "impact": k.impact,
            "remediation": k.remediation,
            "scoreImpact": gains.get(k.check_id, 0.0),
            "benchmarks": list(k.benchmarks),
            "mitreTechniques": list(k.mitre_techniques),
        }
        for k in session.scalars(select(AssessmentCheck).where(AssessmentCheck.check_id.in_(ids)))
    }


def failing_devices_stmt(check_id: str) -> Select[Any]:
    """SELECT of the ids of the devices where ``check_id`` fails (run in a tenant session)."""
    r = DeviceAssessmentResult
    return select(r.device_id).where(r.check_id == check_id, r.status == "fail")


def assessment_changes(session: Session, after_id: int) -> list[dict[str, Any]]:
    """Change records after ``after_id`` for the event timeline (``id`` is the cursor).

    A check added to the fleet carries the devices failing it now; result changes to ``fail`` are
    grouped per check and moment (one record per check and upload wave), carrying those devices.
    Changes to pass are not timeline events: they lower no exposure.
    """
    e = AssessmentEvent
    events = list(session.scalars(select(e).where(e.id > after_id).order_by(e.id).limit(MAX_CHANGES)))
    out: list[dict[str, Any]] = []
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in events:
        if ev.reason == "check_added":
            devices = list(session.scalars(failing_devices_stmt(ev.check_id)))
            out.append(
                {
                    "id": ev.id,
                    "at": ev.at,
                    "check_id": ev.check_id,
                    "kind": "check_added",
                    "device_ids": devices,
                }
            )
        elif ev.new_status == "fail" and ev.device_id:
            key = (ev.check_id, ev.at.isoformat())
            rec = grouped.get(key)
            if rec is None:
                rec = grouped[key] = {
                    "id": ev.id,
                    "at": ev.at,
                    "check_id": ev.check_id,
                    "kind": "status_changed",
                    "device_ids": [],
                }
                out.append(rec)
            rec["id"] = max(rec["id"], ev.id)
            rec["device_ids"].append(ev.device_id)
    if events and (not out or out[-1]["id"] < events[-1].id):
        # Keep the cursor moving past events that make no timeline record.
        out.append(
            {
                "id": events[-1].id,
                "at": events[-1].at,
                "check_id": events[-1].check_id,
                "kind": "none",
                "device_ids": [],
            }
        )
    return out


def export_assessments(
    session: Session, scope_group_ids: Iterable[int] | None = None, since: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of ``/api/machines/SecureConfigurationsAssessmentByMachine`` for the caller's device groups,
    optionally only devices assessed since ``since``; streamed."""
    ensure_check_kb(session)
    stmt = rows_stmt(None, None)
    if scope_group_ids is not None:
        stmt = stmt.where(Device.group_id.in_(list(scope_group_ids)))
    if since is not None:
        stmt = stmt.where(DeviceAssessmentState.assessed_at >= since)
    for row in session.execute(stmt.execution_options(yield_per=2000)):
        yield export_row(row)
