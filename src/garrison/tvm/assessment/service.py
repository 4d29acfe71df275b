"""Wiring of configuration assessment into the server: the ``assessment`` upload kind and the
daily Secure Score history job."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.core.ingest import IngestContext, register_upload
from garrison.core.jobs import tenant_job
from garrison.protocol.assessment import KIND, AssessmentReport
from garrison.store.db import Store
from garrison.store.models.core import Device
from garrison.tvm.assessment.ingest import ingest_assessment
from garrison.tvm.assessment.score import record_daily_history


@register_upload(KIND, AssessmentReport)
def apply_assessment(s: Session, device: Device, report: AssessmentReport, ctx: IngestContext) -> dict[str, Any] | None:
    result = ingest_assessment(s, device, report)
    return {"resync": [KIND]} if result.resync_needed else None


@tenant_job("secure_score_daily_history", 3600)
def daily_history(store: Store, tenant_id: int) -> None:
    """Record today's Secure Score of the tenant (idempotent: today's rows are replaced)."""
    today = dt.datetime.now(dt.UTC).date()
    with store.tenant(tenant_id) as s:
        if s.scalar(select(Device.id).limit(1)) is not None:
            record_daily_history(s, today)
