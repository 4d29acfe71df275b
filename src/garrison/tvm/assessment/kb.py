"""The server's copy of the check definitions (table ``assessment_checks``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from garrison.checks import CheckSet, builtin_checks
from garrison.store.base import utcnow
from garrison.store.models.assessment import AssessmentCheck
from garrison.store.models.core import Setting

VERSION_KEY = "assessment.checks_version"


def sync_check_kb(session: Session, checks: CheckSet | None = None, *, now: dt.datetime | None = None) -> int:
    """Upsert every check; mark checks no longer defined as removed. Returns the number written."""
    checks = checks if checks is not None else builtin_checks()
    now = now or utcnow()
    existing = {c.check_id: c for c in session.scalars(select(AssessmentCheck))}
    written = 0
    for c in checks:
        row = existing.get(c.id)
        values = {
            "title": c.title,
            "description": c.description,
            "rationale": c.rationale,
            "remediation": c.remediation,
            "category": c.category,
            "subcategory": c.subcategory,
            "impact": c.impact,
            "benchmarks": list(c.benchmarks),
            "mitre_techniques": list(c.mitre_techniques),
            "mitre_tactics": list(c.mitre_tactics),
            "platforms": [p.model_dump(exclude_none=True) for p in c.applies_to],
            "checks_version": checks.version,
        }
        if row is None:
            session.add(AssessmentCheck(check_id=c.id, first_seen=now, updated_at=now, **values))
            written += 1
            continue
        changed = any(getattr(row, k) != v for k, v in values.items() if k != "checks_version")
        if changed or row.removed_at is not None:
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = now
            row.removed_at = None
            written += 1
        row.checks_version = checks.version
    for check_id, row in existing.items():
        if check_id not in checks and row.removed_at is None:
            row.removed_at = now
            written += 1
    setting = session.get(Setting, VERSION_KEY)
    if setting is None:
        session.add(Setting(key=VERSION_KEY, value=checks.version))
    else:
        setting.value = checks.version
    session.flush()
    return written


def ensure_check_kb(session: Session, checks: CheckSet | None = None) -> None:
    """Sync the knowledge base when it is older than the checks this server ships."""
    checks = checks if checks is not None else builtin_checks()
    setting = session.get(Setting, VERSION_KEY)
    if setting is not None and setting.value == checks.version:
        return
    try:
        with session.begin_nested():
            sync_check_kb(session, checks)
    except IntegrityError:
        pass  # another worker synced the same version meanwhile
