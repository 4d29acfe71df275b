"""Secure Score for Devices (formula in docs/secure-score.md).

For a set of devices D (the organisation, or device groups) and the applicable results R of
those devices (status pass, fail or error; not_applicable is left out)::

    score = 100 * sum(impact(c) for (d, c) in R if passed(d, c))
                / sum(impact(c) for (d, c) in R)

``passed`` is status ``pass``, or a fail/error covered by a risk-reducing exception
(third-party control, alternate mitigation) whose scope includes the device's group. The
exceptions come from the recommendations' exceptions engine unless the caller passes
``excepted_check_ids`` (``{}`` for none). An
``error`` is applicable and not passed: a control nobody could verify earns no points.
Per category the same sums run over that category's checks. Devices count when they are not
offboarded and were assessed within the last 30 days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from garrison.checks import CATEGORIES
from garrison.registry import Registry
from garrison.store.base import utcnow
from garrison.store.models.assessment import (
    AssessmentCheck,
    DeviceAssessmentResult,
    DeviceAssessmentState,
    SecureScoreHistory,
)
from garrison.store.models.core import Device, DeviceGroup
from garrison.tvm.assessment.kb import ensure_check_kb

ACTIVE_DAYS = 30
# check id -> device group ids the exception covers; None = every group (global exception).
# Functions taking it read the exceptions in force when it is None; pass {} to ignore them.
Exceptions = Mapping[str, Iterable[int] | None]


ExceptionSource = Callable[[Session, dt.datetime | None], dict[str, list[int] | None]]
EXCEPTION_SOURCES: Registry[ExceptionSource] = Registry("risk-reducing exception source")
"""Who suspends failed checks: the recommendations' risk acceptance (``garrison.tvm.prioritisation.
risk_acceptance`` registers itself; this package sits below prioritisation and never imports it)."""


def risk_reduced_exceptions(session: Session, now: dt.datetime | None = None) -> dict[str, list[int] | None]:
    """The risk-reducing exceptions in force: check id -> device group ids, None for a global exception
    (a global one wins over group ones)."""
    out: dict[str, list[int] | None] = {}
    for source in EXCEPTION_SOURCES.values():
        for check_id, groups in source(session, now).items():
            if groups is None or out.get(check_id, []) is None:
                out[check_id] = None
            else:
                out[check_id] = sorted({*(out.get(check_id) or []), *groups})
    return out


def _covered(exceptions: Exceptions | None, check_id: str, group_id: int | None) -> bool:
    if not exceptions or check_id not in exceptions:
        return False
    scope = exceptions[check_id]
    return scope is None or (group_id is not None and group_id in set(scope))


@dataclass
class _Sums:
    points: float = 0.0
    possible: float = 0.0
    by_cat: dict[str, list[float]] = field(default_factory=lambda: {c: [0.0, 0.0] for c in CATEGORIES})

    def add(self, category: str, impact: int, count: int, passed: bool) -> None:
        weight = float(impact * count)
        self.possible += weight
        cat = self.by_cat.setdefault(category, [0.0, 0.0])
        cat[1] += weight
        if passed:
            self.points += weight
            cat[0] += weight


def _pct(points: float, possible: float) -> float | None:
    return round(100.0 * points / possible, 2) if possible else None


def active_device_filter(now: dt.datetime) -> list[Any]:
    return [
        Device.offboarded_at.is_(None),
        DeviceAssessmentState.assessed_at >= now - dt.timedelta(days=ACTIVE_DAYS),
    ]


def _aggregate(
    session: Session,
    *,
    group_ids: Iterable[int] | None = None,
    device_ids: Iterable[str] | None = None,
    now: dt.datetime,
) -> tuple[list[Any], int]:
    """Rows (category, check_id, impact, group_id, status, count) and the number of devices."""
    ensure_check_kb(session)
    r, k, s = DeviceAssessmentResult, AssessmentCheck, DeviceAssessmentState
    conds = [r.status != "not_applicable", *active_device_filter(now)]
    dev_conds = list(active_device_filter(now))
    if group_ids is not None:
        gids = list(group_ids)
        conds.append(Device.group_id.in_(gids))
        dev_conds.append(Device.group_id.in_(gids))
    if device_ids is not None:
        dids = list(device_ids)
        conds.append(Device.id.in_(dids))
        dev_conds.append(Device.id.in_(dids))
    stmt = (
        select(k.category, r.check_id, k.impact, Device.group_id, r.status, func.count())
        .select_from(r)
        .join(Device, Device.id == r.device_id)
        .join(s, s.device_id == r.device_id)
        .join(k, k.check_id == r.check_id)
        .where(*conds)
        .group_by(k.category, r.check_id, k.impact, Device.group_id, r.status)
    )
    rows = list(session.execute(stmt))
    n_devices = session.scalar(
        select(func.count()).select_from(Device).join(s, s.device_id == Device.id).where(*dev_conds)
    )
    return rows, int(n_devices or 0)


def _secure_score(
    session: Session,
    now: dt.datetime | None,
    excepted_check_ids: Exceptions | None,
    *,
    group_ids: Iterable[int] | None = None,
    device_ids: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The score of the active devices selected as in ``_aggregate``."""
    now = now or utcnow()
    rows, n = _aggregate(session, group_ids=group_ids, device_ids=device_ids, now=now)
    if excepted_check_ids is None:
        excepted_check_ids = risk_reduced_exceptions(session, now)
    sums = _Sums()
    for category, check_id, impact, group_id, status, count in rows:
        passed = status == "pass" or _covered(excepted_check_ids, check_id, group_id)
        sums.add(category, impact, count, passed)
    overall = _pct(sums.points, sums.possible)
    return {
        "time": now,
        "overall": overall,
        "score": overall,  # the name /api/configurationScore uses
        "categories": {c: _pct(p, m) for c, (p, m) in sums.by_cat.items()},
        "points": round(sums.points, 2),
        "max_points": round(sums.possible, 2),
        "devices": n,
    }


def secure_score(
    session: Session,
    group_ids: Iterable[int] | None = None,
    *,
    excepted_check_ids: Exceptions | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Secure Score of the organisation, or of the given device groups: overall and per category.

    Scores are percentages (0-100, higher is better); None when nothing applicable was assessed.
    """
    return _secure_score(session, now, excepted_check_ids, group_ids=group_ids)


def device_secure_score(
    session: Session,
    device_id: str,
    *,
    excepted_check_ids: Exceptions | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The same score for one device."""
    return _secure_score(session, now, excepted_check_ids, device_ids=[device_id])


def configuration_score(
    session: Session,
    group_ids: Iterable[int] | None = None,
    *,
    excepted_check_ids: Exceptions | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Row of ``GET /api/configurationScore`` (Defender shape: time, score, rbacGroupName, rbacGroupId)."""
    gids = list(group_ids) if group_ids is not None else None
    s = secure_score(session, gids, excepted_check_ids=excepted_check_ids, now=now)
    group_name = None
    group_id = None
    if gids is not None and len(gids) == 1:
        group_id = gids[0]
        g = session.get(DeviceGroup, group_id)
        group_name = g.name if g else None
    return {
        "time": s["time"].isoformat().replace("+00:00", "Z"),
        "score": s["overall"] if s["overall"] is not None else 0.0,
        "rbacGroupName": group_name,
        "rbacGroupId": group_id,
        "categories": {c: v for c, v in s["categories"].items()},
        "devices": s["devices"],
    }


def record_daily_history(
    session: Session,
    day: dt.date,
    *,
    excepted_check_ids: Exceptions | None = None,
    now: dt.datetime | None = None,
) -> list[SecureScoreHistory]:
    """Store ``day``'s score for the organisation and every device group (replaces that day's rows)."""
    now = now or utcnow()
    if excepted_check_ids is None:
        excepted_check_ids = risk_reduced_exceptions(session, now)
    session.execute(delete(SecureScoreHistory).where(SecureScoreHistory.day == day))
    out: list[SecureScoreHistory] = []
    scopes: list[tuple[str, int | None]] = [("org", None)]
    scopes += [(f"group:{g.id}", g.id) for g in session.scalars(select(DeviceGroup).order_by(DeviceGroup.id))]
    for scope, gid in scopes:
        s = secure_score(
            session, None if gid is None else [gid], excepted_check_ids=excepted_check_ids, now=now
        )
        row = SecureScoreHistory(
            day=day,
            scope=scope,
            group_id=gid,
            score=s["overall"],
            categories=s["categories"],
            devices=s["devices"],
            recorded_at=now,
        )
        session.add(row)
        out.append(row)
    session.flush()
    return out


def secure_score_history(
    session: Session,
    group_id: int | None = None,
    *,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> list[dict[str, Any]]:
    """Daily scores of the organisation (or one device group), oldest first."""
    scope = "org" if group_id is None else f"group:{group_id}"
    stmt = select(SecureScoreHistory).where(SecureScoreHistory.scope == scope)
    if since is not None:
        stmt = stmt.where(SecureScoreHistory.day >= since)
    if until is not None:
        stmt = stmt.where(SecureScoreHistory.day <= until)
    return [
        {
            "date": h.day.isoformat(),
            "score": h.score,
            "categories": h.categories,
            "devices": h.devices,
            "rbacGroupId": h.group_id,
        }
        for h in session.scalars(stmt.order_by(SecureScoreHistory.day))
    ]


@dataclass
class ConfigurationRecommendation:
    """One failed check as a ConfigurationChange recommendation (consumed by the recommendations engine)."""

    check_id: str
    title: str
    description: str
    remediation: str
    category: str
    subcategory: str
    severity_score: int  # the check's impact, 1-10
    config_score_impact: float  # points the org score gains when every failing device is fixed
    exposed_device_ids: list[str]
    error_device_ids: list[str]
    total_device_count: int  # devices where the check applies
    mitre_techniques: list[str]
    benchmarks: list[str]
    remediation_type: str = "ConfigurationChange"

    @property
    def exposed_machines_count(self) -> int:
        return len(self.exposed_device_ids)


def failed_checks_for_recommendations(
    session: Session,
    *,
    group_ids: Iterable[int] | None = None,
    now: dt.datetime | None = None,
) -> list[ConfigurationRecommendation]:
    """Every check failing on at least one active device, with its devices and configScoreImpact."""
    now = now or utcnow()
    ensure_check_kb(session)
    rows, _ = _aggregate(session, group_ids=group_ids, now=now)
    total = sum(impact * count for _c, _id, impact, _g, _s, count in rows)
    r, s = DeviceAssessmentResult, DeviceAssessmentState
    conds = [r.status.in_(("fail", "error")), *active_device_filter(now)]
    if group_ids is not None:
        conds.append(Device.group_id.in_(list(group_ids)))
    failing: dict[str, dict[str, list[str]]] = {}
    applicable: dict[str, int] = {}
    for _c, check_id, _i, _g, status, count in rows:
        applicable[check_id] = applicable.get(check_id, 0) + count
    stmt = (
        select(r.check_id, r.device_id, r.status)
        .join(Device, Device.id == r.device_id)
        .join(s, s.device_id == r.device_id)
        .where(*conds)
        .order_by(r.check_id, r.device_id)
    )
    for check_id, device_id, status in session.execute(stmt):
        failing.setdefault(check_id, {"fail": [], "error": []})[status].append(device_id)
    checks = {
        c.check_id: c
        for c in session.scalars(select(AssessmentCheck).where(AssessmentCheck.check_id.in_(list(failing))))
    }
    out = []
    for check_id, devs in failing.items():
        k = checks.get(check_id)
        if k is None or not devs["fail"]:
            continue
        gain = 100.0 * k.impact * len(devs["fail"]) / total if total else 0.0
        out.append(
            ConfigurationRecommendation(
                check_id=check_id,
                title=k.title,
                description=k.description,
                remediation=k.remediation,
                category=k.category,
                subcategory=k.subcategory,
                severity_score=k.impact,
                config_score_impact=round(gain, 2),
                exposed_device_ids=devs["fail"],
                error_device_ids=devs["error"],
                total_device_count=applicable.get(check_id, 0),
                mitre_techniques=list(k.mitre_techniques),
                benchmarks=list(k.benchmarks),
            )
        )
    out.sort(key=lambda x: (-x.config_score_impact, x.check_id))
    return out
