"""Ingest an ``assessment`` upload into the tenant's tables.

A full report replaces the device's results; a delta applies only on top of the generation it
was computed against. A delta that does not fit (the server holds another generation, e.g.
after a restore or a lost batch) is not applied: the device is flagged ``needs_resync`` and the
check-in tells the agent to send the full set again (``resync: ["assessment"]``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from garrison.protocol.assessment import KIND, AssessmentReport
from garrison.store.base import utcnow
from garrison.store.models.assessment import (
    EVENT_TYPE,
    AssessmentEvent,
    DeviceAssessmentResult,
    DeviceAssessmentState,
    TenantAssessmentCheck,
)
from garrison.store.models.core import Device
from garrison.tvm.assessment.kb import ensure_check_kb


@dataclass
class IngestResult:
    applied: bool
    resync_needed: bool = False
    mode: str = ""
    generation: int = 0
    changed: list[str] = field(default_factory=list)  # checks whose status changed on this device
    new_checks: list[str] = field(default_factory=list)  # checks this tenant's fleet reported first now


def _device(session: Session, device: Device | str) -> Device:
    if isinstance(device, Device):
        return device
    found = session.get(Device, device)
    if found is None:
        raise LookupError(f"unknown device {device}")
    return found


def devices_needing_resync(session: Session) -> list[str]:
    """Device ids whose next check-in should ask for a full assessment."""
    return list(
        session.scalars(select(DeviceAssessmentState.device_id).where(DeviceAssessmentState.needs_resync))
    )


def resync_kinds(session: Session, device_id: str) -> list[str]:
    """For the check-in response: ``["assessment"]`` when this device must resend in full."""
    state = session.get(DeviceAssessmentState, device_id)
    return [KIND] if state is not None and state.needs_resync else []


def ingest_assessment(
    session: Session,
    device: Device | str,
    report: AssessmentReport | dict[str, Any],
    *,
    now: dt.datetime | None = None,
) -> IngestResult:
    """Apply one upload of kind ``assessment`` from ``device`` (tenant session)."""
    if not isinstance(report, AssessmentReport):
        report = AssessmentReport.model_validate(report)
    dev = _device(session, device)
    now = now or utcnow()
    ensure_check_kb(session)

    state = session.get(DeviceAssessmentState, dev.id)
    if report.mode == "delta" and (state is None or state.generation != report.base_generation):
        if state is None:
            state = DeviceAssessmentState(device_id=dev.id, generation=0)
            session.add(state)
        state.needs_resync = True
        session.flush()
        return IngestResult(applied=False, resync_needed=True, mode=report.mode, generation=state.generation)
    first_assessment = state is None or state.generation == 0

    rows = {
        r.check_id: r
        for r in session.scalars(
            select(DeviceAssessmentResult).where(DeviceAssessmentResult.device_id == dev.id)
        )
    }
    result = IngestResult(applied=True, mode=report.mode, generation=report.generation)
    for res in report.results:
        evidence = res.evidence.model_dump(exclude_none=True)
        row = rows.get(res.check_id)
        if row is None:
            row = DeviceAssessmentResult(
                device_id=dev.id,
                check_id=res.check_id,
                status=res.status,
                evidence=evidence,
                first_seen=now,
                changed_at=now,
            )
            session.add(row)
            rows[res.check_id] = row
            continue
        if row.status != res.status:
            if not first_assessment:
                session.add(
                    AssessmentEvent(
                        at=now,
                        event_type=EVENT_TYPE,
                        reason="status_changed",
                        check_id=res.check_id,
                        device_id=dev.id,
                        old_status=row.status,
                        new_status=res.status,
                        evidence=evidence,
                    )
                )
                result.changed.append(res.check_id)
            row.status = res.status
            row.changed_at = now
        if row.evidence != evidence:
            row.evidence = evidence

    gone = set(report.removed) if report.mode == "delta" else set(rows) - {r.check_id for r in report.results}
    for check_id in gone:
        row = rows.pop(check_id, None)
        if row is not None:
            session.delete(row)

    result.new_checks = _record_new_checks(session, [r.check_id for r in report.results], rows, now)

    if state is None:
        state = DeviceAssessmentState(device_id=dev.id)
        session.add(state)
    state.generation = report.generation
    state.checks_version = report.checks_version
    state.os_family = report.os_family
    state.assessed_at = report.assessed_at
    state.received_at = now
    state.needs_resync = False
    counts: dict[str, int] = {}
    for row in rows.values():
        counts[row.status] = counts.get(row.status, 0) + 1
    state.counts = counts
    session.flush()
    return result


def _record_new_checks(
    session: Session, check_ids: list[str], rows: dict[str, DeviceAssessmentResult], now: dt.datetime
) -> list[str]:
    """A check reported for the first time in this tenant is a 'check added' event.

    The tenant's very first report sets the baseline: its checks are recorded without events,
    so onboarding does not flood the timeline; later newcomers come from a newer check set.
    """
    if not check_ids:
        return []
    known = set(session.scalars(select(TenantAssessmentCheck.check_id)))
    baseline = not known
    fresh = [c for c in dict.fromkeys(check_ids) if c not in known]
    added: list[str] = []
    for check_id in fresh:
        try:
            with session.begin_nested():
                session.add(TenantAssessmentCheck(check_id=check_id, first_seen=now))
                if not baseline:
                    row = rows.get(check_id)
                    session.add(
                        AssessmentEvent(
                            at=now,
                            event_type=EVENT_TYPE,
                            reason="check_added",
                            check_id=check_id,
                            device_id=None,
                            new_status=row.status if row else None,
                        )
                    )
        except IntegrityError:
            continue  # another device of the tenant reported it at the same moment
        if not baseline:
            added.append(check_id)
    return added
