"""Risk acceptance: exceptions to security recommendations.

* Justifications: ``ThirdPartyControl`` and ``AlternateMitigation`` count as risk reduced (the
  excepted findings leave the exposure score; the configuration score counts the check as met);
  ``RiskAccepted`` and ``PlannedRemediation`` change no score.
* Scope: ``Global`` (every current and future device group; admin role, all groups visible) or
  ``DeviceGroups`` (a partial exception). A group that already has an exception cannot get another.
* While a global exception is active, the group exceptions of the same recommendation are
  *suspended*: the global one decides for every group until it expires or is cancelled.
* Every exception has an end date; the refresh job marks it ``Expired`` when it passes.
* Cancel per group or for all groups (only groups the caller may see).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from garrison.core.access import Principal
from garrison.core.errors import Conflict, Forbidden, Invalid, NotFound
from garrison.protocol.bounds import parse_id
from garrison.store.base import utcnow
from garrison.store.models.core import DeviceGroup
from garrison.store.models.prioritisation import (
    JUSTIFICATIONS,
    RISK_REDUCING,
    Recommendation,
    RecommendationException,
    RecommendationExceptionGroup,
)
from garrison.tvm.assessment.score import EXCEPTION_SOURCES
from garrison.tvm.prioritisation.recommendations import CONFIG_PREFIX

MAX_DURATION = dt.timedelta(days=366 * 3)
DEFAULT_DURATION = dt.timedelta(days=30)

_ALIASES = {j.lower(): j for j in JUSTIFICATIONS} | {
    "third party control": "ThirdPartyControl",
    "alternate mitigation": "AlternateMitigation",
    "risk accepted": "RiskAccepted",
    "planned remediation": "PlannedRemediation",
    "planned remediation (grace)": "PlannedRemediation",
}


def parse_justification(value: str) -> str:
    j = _ALIASES.get((value or "").strip().lower())
    if j is None:
        raise Invalid(f"unknown justification {value!r}; use one of {', '.join(JUSTIFICATIONS)}")
    return j


def reduces_risk(justification: str | None) -> bool:
    return justification in RISK_REDUCING


@dataclass
class Effective:
    """The exceptions in force for one recommendation."""

    global_justification: str | None = None
    global_id: int | None = None
    groups: dict[int, str] = field(default_factory=dict)  # group id → justification (not suspended)
    group_exception_ids: dict[int, int] = field(default_factory=dict)

    def justification(self, group_id: int | None) -> str | None:
        if self.global_justification is not None:
            return self.global_justification
        if group_id is None:
            return None
        return self.groups.get(group_id)


def expire_due(s: Session, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    res: Any = s.execute(update(RecommendationException)
                    .where(RecommendationException.status == "Active", RecommendationException.expires_at <= now)
                    .values(status="Expired", status_changed_at=now, status_changed_by="System")
                    .execution_options(synchronize_session=False))
    return int(res.rowcount or 0)


def effective(s: Session, now: dt.datetime | None = None) -> dict[str, Effective]:
    """Recommendation id → the exceptions in force (active and not past their end date)."""
    now = now or utcnow()
    out: dict[str, Effective] = {}
    active = [e for e in s.scalars(select(RecommendationException)
                                   .where(RecommendationException.status == "Active"))
              if _aware(e.expires_at) > now]
    ids = [e.id for e in active if e.scope != "Global"]
    groups: dict[int, list[RecommendationExceptionGroup]] = {}
    if ids:
        for g in s.scalars(select(RecommendationExceptionGroup).where(
                RecommendationExceptionGroup.exception_id.in_(ids), RecommendationExceptionGroup.status == "Active")):
            groups.setdefault(g.exception_id, []).append(g)
    for e in sorted(active, key=lambda x: x.id):
        eff = out.setdefault(e.recommendation_id, Effective())
        if e.scope == "Global":
            eff.global_justification, eff.global_id = e.justification, e.id
        else:
            for g in groups.get(e.id, []):
                eff.groups.setdefault(g.group_id, e.justification)
                eff.group_exception_ids.setdefault(g.group_id, e.id)
    return out


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _expiry(expires_on: dt.datetime | None, duration_days: int | None, now: dt.datetime) -> dt.datetime:
    if expires_on is not None and duration_days is not None:
        raise Invalid("give either expiresOn or durationDays, not both")
    if expires_on is None:
        expires_on = now + (dt.timedelta(days=duration_days) if duration_days else DEFAULT_DURATION)
    expires_on = _aware(expires_on)
    if expires_on <= now:
        raise Invalid("the exception's end date must be in the future")
    if expires_on - now > MAX_DURATION:
        raise Invalid("an exception can last at most three years")
    return expires_on


def create(s: Session, principal: Principal, recommendation_id: str, justification: str, *,
           context: str = "", scope: str = "DeviceGroups", group_ids: list[int] | None = None,
           expires_on: dt.datetime | None = None, duration_days: int | None = None,
           now: dt.datetime | None = None) -> RecommendationException:
    now = now or utcnow()
    rec = s.get(Recommendation, (principal.tenant_id, recommendation_id))
    if rec is None:
        raise NotFound(f"no recommendation {recommendation_id!r}")
    justification = parse_justification(justification)
    expires = _expiry(expires_on, duration_days, now)
    if scope not in ("Global", "DeviceGroups"):
        raise Invalid("scope must be Global or DeviceGroups")
    eff = effective(s, now).get(recommendation_id, Effective())
    exc = RecommendationException(recommendation_id=recommendation_id, justification=justification,
                                  context=context, scope=scope, created_by=principal.actor, created_at=now,
                                  expires_at=expires, status="Active", status_changed_at=now,
                                  status_changed_by=principal.actor)
    if scope == "Global":
        if not principal.allows("exceptions.global") or principal.group_ids is not None:
            raise Forbidden("a global exception needs the permission exceptions.global and access to every device "
                            "group")
        if group_ids:
            raise Invalid("a global exception takes no device groups")
        if eff.global_id is not None:
            raise Conflict(f"recommendation {recommendation_id!r} already has a global exception "
                           f"(id {eff.global_id})")
        s.add(exc)
        s.flush()
        return exc
    if not group_ids:
        raise Invalid("name the device groups (deviceGroupIds), or use scope Global")
    wanted = list(dict.fromkeys(int(g) for g in group_ids))
    if principal.group_ids is not None and any(g not in principal.group_ids for g in wanted):
        raise NotFound("no such device group")
    found = {g.id: g for g in s.scalars(select(DeviceGroup).where(DeviceGroup.id.in_(wanted)))}
    missing = [g for g in wanted if g not in found]
    if missing:
        raise NotFound(f"no device group with id {missing[0]}")
    taken = [g for g in wanted if g in eff.group_exception_ids]
    if taken:
        raise Conflict(f"device group {found[taken[0]].name!r} already has an exception for this recommendation "
                       f"(id {eff.group_exception_ids[taken[0]]})")
    s.add(exc)
    s.flush()
    for g in wanted:
        s.add(RecommendationExceptionGroup(exception_id=exc.id, group_id=g, group_name=found[g].name))
    s.flush()
    return exc


def get(s: Session, principal: Principal, exception_id: int | str) -> RecommendationException:
    key = parse_id(exception_id)
    if key is None:
        raise NotFound(f"no exception {exception_id!r}")
    exc = s.get(RecommendationException, key)
    if exc is None or exc.tenant_id != principal.tenant_id or not visible(s, principal, exc):
        raise NotFound(f"no exception {exception_id!r}")
    return exc


def visible(s: Session, principal: Principal, exc: RecommendationException) -> bool:
    if principal.group_ids is None or exc.scope == "Global":
        return True
    return any(g.group_id in principal.group_ids for g in groups_of(s, exc))


def groups_of(s: Session, exc: RecommendationException) -> list[RecommendationExceptionGroup]:
    return list(s.scalars(select(RecommendationExceptionGroup)
                          .where(RecommendationExceptionGroup.exception_id == exc.id)
                          .order_by(RecommendationExceptionGroup.group_id)))


def cancel(s: Session, principal: Principal, exc: RecommendationException, group_ids: Iterable[int] | None = None,
           now: dt.datetime | None = None) -> RecommendationException:
    """Cancel for the given groups, or for every group the caller may see (``group_ids`` None)."""
    now = now or utcnow()
    if exc.status != "Active":
        raise Conflict(f"exception {exc.id} is {exc.status.lower()}")
    if exc.scope == "Global":
        if group_ids:
            raise Invalid("a global exception is cancelled as a whole")
        if not principal.allows("exceptions.global") or principal.group_ids is not None:
            raise Forbidden("cancelling a global exception needs the permission exceptions.global and access to "
                            "every device group")
        exc.status, exc.status_changed_at, exc.status_changed_by = "Cancelled", now, principal.actor
        return exc
    rows = [g for g in groups_of(s, exc) if g.status == "Active"]
    allowed = [g for g in rows if principal.group_ids is None or g.group_id in principal.group_ids]
    if group_ids is not None:
        wanted = {int(g) for g in group_ids}
        unknown = wanted - {g.group_id for g in allowed}
        if unknown:
            raise NotFound(f"exception {exc.id} has no active device group {min(unknown)}")
        allowed = [g for g in allowed if g.group_id in wanted]
    for g in allowed:
        g.status, g.cancelled_at, g.cancelled_by = "Cancelled", now, principal.actor
    if all(g.status == "Cancelled" for g in rows):
        exc.status, exc.status_changed_at, exc.status_changed_by = "Cancelled", now, principal.actor
    return exc


def status_of(exc: RecommendationException, eff: Effective | None, now: dt.datetime) -> str:
    if exc.status == "Active" and _aware(exc.expires_at) <= now:
        return "Expired"
    if exc.status == "Active" and exc.scope != "Global" and eff is not None and eff.global_id is not None:
        return "Suspended"
    return exc.status


def to_api(exc: RecommendationException, groups: list[RecommendationExceptionGroup], eff: Effective | None,
           now: dt.datetime, rec: Recommendation | None = None) -> dict[str, Any]:
    status = status_of(exc, eff, now)
    return {
        "id": exc.id,
        "recommendationId": exc.recommendation_id,
        "recommendationName": rec.name if rec else None,
        "justification": exc.justification,
        "riskReduced": reduces_risk(exc.justification),
        "justificationContext": exc.context,
        "scope": exc.scope,
        "status": status,
        "createdBy": exc.created_by,
        "createdOn": exc.created_at,
        "expiresOn": exc.expires_at,
        "statusLastModifiedOn": exc.status_changed_at,
        "statusLastModifiedBy": exc.status_changed_by,
        "deviceGroups": [{"rbacGroupId": g.group_id, "rbacGroupName": g.group_name,
                          "status": "Suspended" if g.status == "Active" and status == "Suspended" else g.status,
                          "cancelledBy": g.cancelled_by or None, "cancelledOn": g.cancelled_at}
                         for g in groups],
    }


def risk_reduced_checks(s: Session, now: dt.datetime | None = None) -> dict[str, list[int] | None]:
    """The configuration checks whose failures a risk-reducing exception suspends: check id -> device
    group ids, None for a global exception (which suspends the group ones). Registered with the
    configuration assessment's score (``EXCEPTION_SOURCES``)."""
    out: dict[str, list[int] | None] = {}
    for rec_id, eff in effective(s, now).items():
        if not rec_id.startswith(CONFIG_PREFIX):
            continue
        check_id = rec_id[len(CONFIG_PREFIX):]
        if eff.global_justification is not None:
            if reduces_risk(eff.global_justification):
                out[check_id] = None
            continue  # a global exception suspends the group ones
        groups = [g for g, j in eff.groups.items() if reduces_risk(j)]
        if groups:
            out[check_id] = groups
    return out


EXCEPTION_SOURCES.add("risk_acceptance", risk_reduced_checks)
