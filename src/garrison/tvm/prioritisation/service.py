"""Entry points and background jobs of prioritisation.

* ``tvm.prioritisation.engine`` (every minute): recompute a tenant when anything its scores depend
  on changed — inventories, findings, the knowledge base, devices, exceptions, alerts — and at
  least hourly (devices age out of the 30-day window, runtime context moves on).
* ``tvm.prioritisation.timeline`` (every two minutes): derive timeline events and queue the
  notifications they trigger.
* ``tvm.prioritisation.housekeeping`` (hourly): delete remediation activities completed more than
  180 days ago.

Matching or any other service that changed findings can call :func:`refresh` directly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from garrison.core.access import Principal
from garrison.core.jobs import tenant_job
from garrison.store.base import utcnow
from garrison.store.db import Store
from garrison.store.models.core import Device, Tenant
from garrison.store.models.kb import KbChange
from garrison.store.models.prioritisation import (
    DeviceVulnerabilityAlert,
    RecommendationException,
    RecommendationExceptionGroup,
)
from garrison.store.models.tvm import DeviceInventoryState, PackageVersion, PackageVersionVuln
from garrison.tvm.prioritisation import notifications, remediation, risk_acceptance, timeline
from garrison.tvm.prioritisation.engine import RefreshStats, refresh_tenant

log = logging.getLogger("garrison.tvm.prioritisation")

FORCED_EVERY = dt.timedelta(hours=1)
BUSY_SHARE = 30  # automatic refreshes at most every 30 × the last one's duration (≤ ~3 % of the time)
BUSY_MIN_SECONDS = 1.0  # … for tenants whose refresh takes this long; smaller ones refresh on every change
TOKEN = "refresh.token"
LAST = "refresh.at"
DURATION = "refresh.seconds"


def change_token(s: Session, now: dt.datetime) -> str:
    """A digest of what the scores depend on; cheap aggregates only."""
    parts: list[Any] = []
    parts += list(s.execute(select(func.max(DeviceInventoryState.updated_at), func.count())).one())
    parts += list(s.execute(select(func.count(), func.max(PackageVersionVuln.first_seen))
                            .select_from(PackageVersionVuln)).one())
    parts.append(s.scalar(select(func.max(PackageVersion.matched_at))))
    parts.append(s.scalar(select(func.max(KbChange.id))))
    value_code = case((Device.device_value == "High", 3), (Device.device_value == "Low", 1), else_=2)
    parts += list(s.execute(select(func.count(), func.sum(value_code), func.sum(case((Device.internet_facing, 1), else_=0)),
                                   func.sum(func.coalesce(Device.group_id, 0)),
                                   func.sum(case((Device.offboarded_at.is_(None), 0), else_=1)))).one())
    parts += list(s.execute(select(func.count(), func.max(RecommendationException.status_changed_at),
                                   func.min(case((RecommendationException.status == "Active",
                                                  RecommendationException.expires_at))))).one())
    parts.append(s.scalar(select(func.max(RecommendationExceptionGroup.cancelled_at))))
    parts += list(s.execute(select(func.count(), func.sum(case((DeviceVulnerabilityAlert.active, 1), else_=0)),
                                   func.max(DeviceVulnerabilityAlert.resolved_at))).one())
    expiring = s.scalar(select(func.count()).select_from(RecommendationException)
                        .where(RecommendationException.status == "Active", RecommendationException.expires_at <= now))
    parts.append(expiring)
    raw = "|".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def refresh(store: Store, tenant_id: int, now: dt.datetime | None = None) -> RefreshStats:
    now = now or utcnow()
    with store.tenant(tenant_id) as s:
        stats = refresh_tenant(s, tenant_id, now)
        timeline.set_cursor(s, tenant_id, TOKEN, change_token(s, now), now)
        timeline.set_cursor(s, tenant_id, LAST, now.isoformat(), now)
        timeline.set_cursor(s, tenant_id, DURATION, f"{stats.seconds:.3f}", now)
    log.info("prioritisation refresh of tenant %s: %s", tenant_id, stats.as_dict())
    return stats


def refresh_if_changed(store: Store, tenant_id: int, now: dt.datetime | None = None, *,
                       throttle: bool = True) -> RefreshStats | None:
    """Recompute when something changed; ``throttle``: not more often than the last refresh's cost allows."""
    now = now or utcnow()
    with store.tenant(tenant_id) as s:
        token = change_token(s, now)
        last_token = timeline.get_cursor(s, TOKEN, "")
        last_at = timeline.get_cursor(s, LAST, "")
        last_seconds = timeline.get_cursor(s, DURATION, "0")
    try:
        since = now - dt.datetime.fromisoformat(last_at) if last_at else None
        cost = float(last_seconds)
        busy = dt.timedelta(seconds=BUSY_SHARE * cost if cost >= BUSY_MIN_SECONDS else 0)
    except ValueError:
        since, busy = None, dt.timedelta(0)
    if since is not None and since < FORCED_EVERY and (token == last_token or throttle and since < busy):
        return None  # nothing changed, or changes keep coming and the last refresh was recent for its cost
    return refresh(store, tenant_id, now)


INLINE_MAX_SECONDS = 2.0


def refresh_after_change(store: Store, tenant_id: int) -> bool:
    """After a change made through the API (an exception): recompute now when that is quick for this
    tenant (its last refresh took under INLINE_MAX_SECONDS), else leave it to the job, which sees the
    change within a minute. Returns whether it recomputed."""
    with store.tenant(tenant_id) as s:
        last = timeline.get_cursor(s, DURATION, "0")
    try:
        quick = float(last) < INLINE_MAX_SECONDS
    except ValueError:
        quick = True
    if quick:
        refresh(store, tenant_id)
    return quick


def create_exception(store: Store, principal: Principal, recommendation_id: str, justification: str,
                     **options: Any) -> int:
    """Create a risk-acceptance exception (API and console alike; ``options`` as
    :func:`risk_acceptance.create`), then refresh the scores when that is quick. Returns its id."""
    with store.tenant(principal.tenant_id) as s:
        exc_id = risk_acceptance.create(s, principal, recommendation_id, justification, **options).id
    refresh_after_change(store, principal.tenant_id)
    return exc_id


def cancel_exception(store: Store, principal: Principal, exception_id: int | str,
                     group_ids: list[int] | None = None) -> tuple[int, str]:
    """Cancel an exception for ``group_ids`` (None: every group the caller may see), then refresh the
    scores when that is quick. Returns its id and its status afterwards."""
    with store.tenant(principal.tenant_id) as s:
        exc = risk_acceptance.cancel(s, principal, risk_acceptance.get(s, principal, exception_id), group_ids)
        out = (exc.id, exc.status)
    refresh_after_change(store, principal.tenant_id)
    return out


def tenant_ids(store: Store) -> list[int]:
    with store.system() as s:
        return list(s.scalars(select(Tenant.id).order_by(Tenant.id)))


def refresh_all(store: Store, force: bool = True) -> list[RefreshStats]:
    out = []
    for tid in tenant_ids(store):
        st = refresh(store, tid) if force else refresh_if_changed(store, tid)
        if st is not None:
            out.append(st)
    return out


def derive_events(store: Store, tenant_id: int, now: dt.datetime | None = None) -> dict[str, int]:
    """Derive timeline events and queue notifications; scores are brought up to date first, since an
    event's score impact is estimated from the devices' current scores."""
    now = now or utcnow()
    # Unthrottled: an event's impact read from stale scores would be wrong (0 for a new finding), and
    # this runs every 2 minutes at most.
    refresh_if_changed(store, tenant_id, now, throttle=False)
    with store.tenant(tenant_id) as s:
        events = timeline.derive(s, tenant_id, now)
        queued = notifications.evaluate(s, tenant_id, now)
    return {"events": len(events), "notifications": queued}


@tenant_job("tvm.prioritisation.refresh", interval=60)
def refresh_job(store: Store, tenant_id: int) -> None:
    refresh_if_changed(store, tenant_id)


# derive_events refreshes the scores first: it would do the refresh job's work beside it.
@tenant_job("tvm.prioritisation.timeline", interval=120, conflicts=("tvm.prioritisation.refresh",))
def timeline_job(store: Store, tenant_id: int) -> None:
    derive_events(store, tenant_id)


# Purging activities under a refresh that updates their progress would race it.
@tenant_job("tvm.prioritisation.housekeeping", interval=3600, conflicts=("tvm.prioritisation.refresh",))
def housekeeping_job(store: Store, tenant_id: int) -> None:
    with store.tenant(tenant_id) as s:
        n = remediation.purge_completed(s)
    if n:
        log.info("deleted %d remediation activities completed over 180 days ago (tenant %s)", n, tenant_id)
