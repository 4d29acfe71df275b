"""Notification rules: which timeline events reach whom.

A rule names event types, a minimum severity, device groups (None: all) and recipients — e-mail
addresses and webhook connections. Evaluating the rules turns each new matching event into
outbox rows (``notification_deliveries``, one per recipient, idempotent); the integrations service
sends them (SMTP, signed webhook) and retries failures.

Severity: an event passes when its severity ranks at least the rule's minimum (Low < Medium <
High < Critical). Events of unknown severity pass rules up to Medium; software events carry the
worst severity of the findings they brought or removed ("None" when there were none).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.core.access import Principal
from garrison.core.errors import Invalid, NotFound
from garrison.protocol.bounds import parse_id
from garrison.store.base import utcnow
from garrison.store.models.core import DeviceGroup, Tenant
from garrison.store.models.prioritisation import (
    IntegrationConnection,
    NotificationDelivery,
    NotificationRule,
    TimelineEvent,
)
from garrison.tvm.prioritisation.timeline import EVENT_TYPES, SEVERITY_RANK, score_trend

SEVERITIES = ("Low", "Medium", "High", "Critical")
DEFAULT_EVENTS = ("NewVulnerability", "NewPublicExploit", "ExploitVerified", "ExploitAddedToKit")
MAX_RECIPIENTS = 50
_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


def validate(s: Session, principal: Principal, *, name: str, events: Iterable[str] | None, min_severity: str,
             group_ids: list[int] | None, emails: Iterable[str], webhook_connection_ids: Iterable[int]) -> dict[str, Any]:
    name = (name or "").strip()
    if not name or len(name) > 128:
        raise Invalid("a rule needs a name of 1-128 characters")
    ev = list(dict.fromkeys(events or DEFAULT_EVENTS))
    bad = [e for e in ev if e not in EVENT_TYPES]
    if bad:
        raise Invalid(f"unknown event type {bad[0]!r}; use {', '.join(EVENT_TYPES)}")
    if not ev:
        raise Invalid("name at least one event type")
    if min_severity not in SEVERITIES:
        raise Invalid(f"minimum severity must be one of {', '.join(SEVERITIES)}")
    addrs = list(dict.fromkeys(e.strip() for e in emails))
    for a in addrs:
        if not _EMAIL.match(a):
            raise Invalid(f"invalid e-mail address {a[:100]!r}")
    hooks = list(dict.fromkeys(int(x) for x in webhook_connection_ids))
    if not addrs and not hooks:
        raise Invalid("a rule needs recipients: e-mail addresses or webhook connections")
    if len(addrs) + len(hooks) > MAX_RECIPIENTS:
        raise Invalid(f"at most {MAX_RECIPIENTS} recipients per rule")
    for hid in hooks:
        conn = s.get(IntegrationConnection, hid)
        if conn is None or conn.tenant_id != principal.tenant_id or conn.kind != "webhook":
            raise NotFound(f"no webhook connection with id {hid}")
    if group_ids is not None:
        group_ids = sorted({int(g) for g in group_ids})
        if principal.group_ids is not None and any(g not in principal.group_ids for g in group_ids):
            raise NotFound("no such device group")
        found = set(s.scalars(select(DeviceGroup.id).where(DeviceGroup.id.in_(group_ids))))
        if set(group_ids) - found:
            raise NotFound(f"no device group with id {min(set(group_ids) - found)}")
    elif principal.group_ids is not None:
        group_ids = sorted(principal.group_ids)  # only a caller who sees every group covers all
    return {"name": name, "events": ev, "min_severity": min_severity, "group_ids": group_ids, "emails": addrs,
            "webhook_connection_ids": hooks}


def get(s: Session, principal: Principal, rule_id: int | str) -> NotificationRule:
    key = parse_id(rule_id)
    if key is None:
        raise NotFound(f"no notification rule {rule_id!r}")
    rule = s.get(NotificationRule, key)
    if rule is None or rule.tenant_id != principal.tenant_id or not visible(principal, rule):
        raise NotFound(f"no notification rule {rule_id!r}")
    return rule


def visible(principal: Principal, rule: NotificationRule) -> bool:
    if principal.group_ids is None:
        return True
    return rule.group_ids is not None and set(rule.group_ids) <= set(principal.group_ids)


def start_after_latest(s: Session) -> int:
    """A new rule notifies about events from now on, not the whole history."""
    return int(s.scalar(select(func.max(TimelineEvent.id))) or 0)


def passes(rule: NotificationRule, e: TimelineEvent) -> bool:
    if not rule.enabled or e.kind not in (rule.events or []):
        return False
    sev = SEVERITY_RANK.get(e.severity or "Unknown", 2)
    if e.kind.startswith("Software") and sev == 0:
        sev = 1  # software changes without findings still reach 'Low' rules
    if sev < SEVERITY_RANK[rule.min_severity]:
        return False
    if rule.group_ids is not None:
        groups = {int(k) for k, n in (e.impacted_by_group or {}).items() if int(n) > 0}
        if not groups & set(rule.group_ids):
            return False
    return True


def evaluate(s: Session, tenant_id: int, now: dt.datetime | None = None) -> int:
    """Queue deliveries for events newer than each rule's mark; returns the number queued."""
    now = now or utcnow()
    rules = list(s.scalars(select(NotificationRule).where(NotificationRule.enabled.is_(True))))
    if not rules:
        return 0
    low = min(r.last_event_id for r in rules)
    events = list(s.scalars(select(TimelineEvent).where(TimelineEvent.id > low).order_by(TimelineEvent.id)))
    if not events:
        return 0
    org = s.get(Tenant, tenant_id)
    existing = {(d.rule_id, d.event_id, d.channel, d.target) for d in s.scalars(
        select(NotificationDelivery).where(NotificationDelivery.event_id >= events[0].id))}
    queued = 0
    for rule in rules:
        for e in events:
            if e.id <= rule.last_event_id or not passes(rule, e):
                continue
            body = message(e, org.name if (org and rule.include_org_name) else None, rule)
            subject = f"[Garrison] {e.title}"[:512]
            targets = [("email", a) for a in rule.emails or []] + \
                      [("webhook", str(h)) for h in rule.webhook_connection_ids or []]
            for channel, target in targets:
                if (rule.id, e.id, channel, target) in existing:
                    continue
                s.add(NotificationDelivery(tenant_id=tenant_id, rule_id=rule.id, event_id=e.id, channel=channel,
                                           target=target, subject=subject, body=body, status="Pending",
                                           created_at=now, next_attempt_at=now))
                existing.add((rule.id, e.id, channel, target))
                queued += 1
        rule.last_event_id = max(rule.last_event_id, events[-1].id)
    s.flush()
    return queued


def message(e: TimelineEvent, org_name: str | None, rule: NotificationRule) -> dict[str, Any]:
    """The notification as data; the senders render it (text e-mail, JSON webhook)."""
    body: dict[str, Any] = {
        "type": "garrison.timeline_event",
        "rule": {"id": rule.id, "name": rule.name},
        "event": {
            "id": e.id, "date": e.at.isoformat() if e.at else None, "eventType": e.kind, "title": e.title,
            "relatedComponent": e.related_component, "vulnerabilityId": e.vulnerability_id,
            "recommendationId": e.recommendation_id, "severity": e.severity,
            "originallyImpactedDevices": e.originally_impacted, "scoreTrend": score_trend(e.score_impact),
            "scoreImpact": e.score_impact,
        },
    }
    if rule.group_ids is not None:
        body["event"]["impactedDevicesInRuleGroups"] = sum(
            int(n) for k, n in (e.impacted_by_group or {}).items() if int(k) in set(rule.group_ids))
    if org_name:
        body["organization"] = org_name
    return body


def to_api(rule: NotificationRule, group_names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": rule.id, "name": rule.name, "description": rule.description, "enabled": rule.enabled,
        "events": rule.events, "minimumSeverity": rule.min_severity,
        "rbacGroupIds": rule.group_ids,
        "rbacGroupNames": [group_names.get(g, "") for g in rule.group_ids] if rule.group_ids is not None else None,
        "emailRecipients": rule.emails, "webhookConnectionIds": rule.webhook_connection_ids,
        "includeOrganizationName": rule.include_org_name, "createdBy": rule.created_by, "createdOn": rule.created_at,
    }


def delivery_to_api(d: NotificationDelivery) -> dict[str, Any]:
    return {"id": d.id, "ruleId": d.rule_id, "eventId": d.event_id, "channel": d.channel, "target": d.target,
            "subject": d.subject, "status": d.status, "attempts": d.attempts, "lastError": d.last_error or None,
            "createdOn": d.created_at, "sentOn": d.sent_at}
