"""Risk-based prioritisation: exposure scores and their history, materialised security
recommendations, exceptions, remediation activities, the event timeline, notification rules,
integration connections and tickets. Every table here belongs to one tenant.

``group_id`` columns of the score tables are plain integers, not foreign keys: history outlives a
deleted device group, and ``0`` stands for the whole organisation (history) or for devices in no
group (current per-group components), which no real group id can be.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    and_,
    exists,
    or_,
)
from sqlalchemy.orm import Mapped, mapped_column

from garrison.store.base import Base, TenantScoped, utcnow
from garrison.store.groups import Groups, by_group_id, group_scoped, json_keys_have, json_list_has

ORG = 0  # group_id of the organisation in the history, and of group-less devices in components

JUSTIFICATIONS = ("ThirdPartyControl", "AlternateMitigation", "RiskAccepted", "PlannedRemediation")
RISK_REDUCING = ("ThirdPartyControl", "AlternateMitigation")
REMEDIATION_TYPES = ("Update", "Upgrade", "Uninstall", "ConfigurationChange", "AttentionRequired")
PRIORITIES = ("High", "Medium", "Low")


# --- exposure score ---------------------------------------------------------------------

@group_scoped(by_group_id)
class ExposureGroupScore(TenantScoped, Base):
    """Current exposure-score components of one device group (refreshed with every recompute).

    The organisation score, or the score of any set of groups, is assembled from these rows:
    the weight of a High-value device depends on the number of devices in the set, so the
    components are kept apart rather than as one average per group.
    """

    __tablename__ = "exposure_group_scores"
    __table_args__ = (UniqueConstraint("tenant_id", "group_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, default=ORG)
    devices: Mapped[int] = mapped_column(Integer, default=0)  # active devices with data
    high_devices: Mapped[int] = mapped_column(Integer, default=0)
    nl_weight: Mapped[float] = mapped_column(Float, default=0.0)  # Σ weight of Normal (1) and Low (0.75)
    nl_weighted_score: Mapped[float] = mapped_column(Float, default=0.0)  # Σ weight × score of those
    high_score_sum: Mapped[float] = mapped_column(Float, default=0.0)  # Σ score of High-value devices
    levels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # exposure level → device count
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


@group_scoped(by_group_id)
class ExposureScoreHistory(TenantScoped, Base):
    """One point per day per scope: ``group_id`` 0 is the organisation."""

    __tablename__ = "exposure_score_history"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "group_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    group_id: Mapped[int] = mapped_column(Integer, default=ORG)
    score: Mapped[float] = mapped_column(Float)
    devices: Mapped[int] = mapped_column(Integer, default=0)
    levels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    config_score: Mapped[float | None] = mapped_column(Float, default=None)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DeviceVulnerabilityAlert(TenantScoped, Base):
    """'Active alert on this device' for a vulnerability: the hook EDR fills (and the API, for now)."""

    __tablename__ = "device_vulnerability_alerts"
    __table_args__ = (UniqueConstraint("tenant_id", "device_id", "vulnerability_id", "alert_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    vulnerability_id: Mapped[str] = mapped_column(String(128), index=True)
    alert_id: Mapped[str] = mapped_column(String(128), default="")
    title: Mapped[str] = mapped_column(String(512), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(default=None)


# --- recommendations --------------------------------------------------------------------

class Recommendation(TenantScoped, Base):
    """A security recommendation, materialised per tenant by the refresh job (Defender fields)."""

    __tablename__ = "recommendations"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "id"), Index("ix_recommendations_rank", "tenant_id", "priority_score"))
    id: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))  # software | configuration
    product_id: Mapped[str | None] = mapped_column(String(300), default=None, index=True)
    config_id: Mapped[str | None] = mapped_column(String(128), default=None)
    product_name: Mapped[str] = mapped_column(String(256), default="")
    vendor: Mapped[str] = mapped_column(String(256), default="")
    name: Mapped[str] = mapped_column(String(512), default="")
    recommended_version: Mapped[str] = mapped_column(String(256), default="")
    recommended_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # ecosystem → version
    recommended_program: Mapped[str] = mapped_column(String(256), default="")
    recommended_vendor: Mapped[str] = mapped_column(String(256), default="")
    category: Mapped[str] = mapped_column(String(32), default="Application")
    sub_category: Mapped[str] = mapped_column(String(128), default="")
    severity_score: Mapped[float] = mapped_column(Float, default=0.0)
    weaknesses: Mapped[int] = mapped_column(Integer, default=0)
    public_exploit: Mapped[bool] = mapped_column(Boolean, default=False)
    exploit_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    exploit_in_kit: Mapped[bool] = mapped_column(Boolean, default=False)
    kev: Mapped[bool] = mapped_column(Boolean, default=False)
    active_alert: Mapped[bool] = mapped_column(Boolean, default=False)
    associated_threats: Mapped[list[Any]] = mapped_column(JSON, default=list)
    remediation_type: Mapped[str] = mapped_column(String(24), default="Update")
    config_score_impact: Mapped[float] = mapped_column(Float, default=0.0)
    exposure_impact: Mapped[float] = mapped_column(Float, default=0.0)
    total_machine_count: Mapped[int] = mapped_column(Integer, default=0)
    exposed_machines_count: Mapped[int] = mapped_column(Integer, default=0)
    in_use_machines_count: Mapped[int] = mapped_column(Integer, default=0)
    exposed_machines_week_ago: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(24), default="Active")  # Active | Exception | PartialException
    exposed_after_exceptions: Mapped[int] = mapped_column(Integer, default=0)
    exposure_impact_after_exceptions: Mapped[float] = mapped_column(Float, default=0.0)
    related_component: Mapped[str] = mapped_column(String(256), default="")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    zero_day: Mapped[bool] = mapped_column(Boolean, default=False)
    end_of_life: Mapped[bool] = mapped_column(Boolean, default=False)
    priority_score: Mapped[float] = mapped_column(Float, default=0.0)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    priority_reason: Mapped[str] = mapped_column(String(1024), default="")  # explanation's one-line summary
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # software ids, ecosystems, names
    # The API object's fields that do not depend on the caller's device groups, as JSON without the
    # closing brace: list responses append the scoped figures and serialise nothing else.
    api_json: Mapped[str] = mapped_column(Text, default="")
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


@group_scoped(by_group_id)
class RecommendationGroup(TenantScoped, Base):
    """Per device group share of a recommendation: exposed devices and exposure-impact components
    (so that group-scoped callers and 'after exceptions' figures are sums over groups)."""

    __tablename__ = "recommendation_groups"
    __table_args__ = (Index("ix_recommendation_groups_rec", "tenant_id", "recommendation_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recommendation_id: Mapped[str] = mapped_column(String(300))
    group_id: Mapped[int] = mapped_column(Integer, default=ORG)
    exposed: Mapped[int] = mapped_column(Integer, default=0)
    installed: Mapped[int] = mapped_column(Integer, default=0)
    in_use: Mapped[int] = mapped_column(Integer, default=0)
    nl_delta: Mapped[float] = mapped_column(Float, default=0.0)  # Σ weight × score drop, Normal/Low devices
    high_delta: Mapped[float] = mapped_column(Float, default=0.0)  # Σ score drop, High-value devices
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    # The exception in force for this group (None: none); only risk-reducing ones lower the score.
    exception_justification: Mapped[str | None] = mapped_column(String(32), default=None)


class RecommendationHistory(TenantScoped, Base):
    """Exposed devices of a recommendation per day (the trend graph)."""

    __tablename__ = "recommendation_history"
    __table_args__ = (UniqueConstraint("tenant_id", "recommendation_id", "day"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recommendation_id: Mapped[str] = mapped_column(String(300))
    day: Mapped[dt.date] = mapped_column(Date)
    exposed: Mapped[int] = mapped_column(Integer, default=0)


# --- exceptions -------------------------------------------------------------------------

def _exception_in_groups(cls: Any, _tenant: int, groups: Groups) -> Any:
    """A risk acceptance of the whole organisation, or of one of the groups."""
    eg = RecommendationExceptionGroup.__table__
    return or_(cls.scope == "Global", exists().where(eg.c.exception_id == cls.id, eg.c.group_id.in_(groups)))


@group_scoped(_exception_in_groups)
class RecommendationException(TenantScoped, Base):
    __tablename__ = "recommendation_exceptions"
    __table_args__ = (Index("ix_recommendation_exceptions_rec", "tenant_id", "recommendation_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recommendation_id: Mapped[str] = mapped_column(String(300))
    justification: Mapped[str] = mapped_column(String(32))
    context: Mapped[str] = mapped_column(Text, default="")
    scope: Mapped[str] = mapped_column(String(16))  # Global | DeviceGroups
    status: Mapped[str] = mapped_column(String(16), default="Active")  # Active | Expired | Cancelled
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    status_changed_by: Mapped[str] = mapped_column(String(128), default="")


class RecommendationExceptionGroup(TenantScoped, Base):
    __tablename__ = "recommendation_exception_groups"
    __table_args__ = (UniqueConstraint("exception_id", "group_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exception_id: Mapped[int] = mapped_column(ForeignKey("recommendation_exceptions.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(Integer)
    group_name: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), default="Active")  # Active | Cancelled
    cancelled_by: Mapped[str] = mapped_column(String(128), default="")
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(default=None)


# --- remediation ------------------------------------------------------------------------

@group_scoped(lambda cls, _t, groups: and_(cls.group_ids.is_not(None), json_list_has(cls.group_ids, groups)))
class RemediationActivity(TenantScoped, Base):
    __tablename__ = "remediation_activities"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    recommendation_id: Mapped[str] = mapped_column(String(300), index=True)
    title: Mapped[str] = mapped_column(String(512), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32), default="Software")  # Software | SecurityConfiguration
    type: Mapped[str] = mapped_column(String(24), default="Update")
    product_id: Mapped[str | None] = mapped_column(String(300), default=None)
    config_id: Mapped[str | None] = mapped_column(String(128), default=None)
    related_component: Mapped[str] = mapped_column(String(256), default="")
    recommended_version: Mapped[str] = mapped_column(String(256), default="")
    recommended_program: Mapped[str] = mapped_column(String(256), default="")
    recommended_vendor: Mapped[str] = mapped_column(String(256), default="")
    priority: Mapped[str] = mapped_column(String(8), default="Medium")
    due_on: Mapped[dt.datetime | None] = mapped_column(default=None)
    requester_notes: Mapped[str] = mapped_column(Text, default="")
    requester_id: Mapped[str] = mapped_column(String(128), default="")
    requester_email: Mapped[str] = mapped_column(String(256), default="")
    group_ids: Mapped[list[Any] | None] = mapped_column(JSON, default=None)  # None = every group
    group_names: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_on: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(16), default="Active")  # Active | Completed
    status_last_modified_on: Mapped[dt.datetime] = mapped_column(default=utcnow)
    completion_method: Mapped[str | None] = mapped_column(String(16), default=None)  # Automatic | Manual
    completer_id: Mapped[str | None] = mapped_column(String(128), default=None)
    completer_email: Mapped[str | None] = mapped_column(String(256), default=None)
    completed_on: Mapped[dt.datetime | None] = mapped_column(default=None)
    target_devices: Mapped[int] = mapped_column(Integer, default=0)
    fixed_devices: Mapped[int] = mapped_column(Integer, default=0)


class RemediationTarget(TenantScoped, Base):
    __tablename__ = "remediation_targets"
    activity_id: Mapped[str] = mapped_column(ForeignKey("remediation_activities.id", ondelete="CASCADE"),
                                             primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True,
                                           index=True)
    added_on: Mapped[dt.datetime] = mapped_column(default=utcnow)
    fixed_on: Mapped[dt.datetime | None] = mapped_column(default=None)


# --- event timeline ---------------------------------------------------------------------

@group_scoped(lambda cls, _t, groups: json_keys_have(cls.impacted_by_group, groups))
class TimelineEvent(TenantScoped, Base):
    """An event that may change the organisation's risk, derived from feed and inventory changes."""

    __tablename__ = "timeline_events"
    __table_args__ = (UniqueConstraint("tenant_id", "source_key"), Index("ix_timeline_events_at", "tenant_id", "at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    source_key: Mapped[str] = mapped_column(String(400))
    vulnerability_id: Mapped[str | None] = mapped_column(String(128), default=None, index=True)
    product_id: Mapped[str | None] = mapped_column(String(300), default=None)
    config_id: Mapped[str | None] = mapped_column(String(128), default=None)
    recommendation_id: Mapped[str | None] = mapped_column(String(300), default=None)
    related_component: Mapped[str] = mapped_column(String(256), default="")
    title: Mapped[str] = mapped_column(String(512), default="")
    severity: Mapped[str] = mapped_column(String(16), default="Unknown")
    originally_impacted: Mapped[int] = mapped_column(Integer, default=0)
    total_devices: Mapped[int] = mapped_column(Integer, default=0)
    impacted_by_group: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # str(group id) → count
    device_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)  # first devices, bounded
    score_impact: Mapped[float] = mapped_column(Float, default=0.0)  # + raises, − lowers the org score
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PrioritisationCursor(TenantScoped, Base):
    """Per-tenant progress markers of the derivation jobs (e.g. the last software_history id read)."""

    __tablename__ = "prioritisation_cursors"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "name"),)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(256), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- notifications, integrations, tickets -----------------------------------------------

class NotificationRule(TenantScoped, Base):
    __tablename__ = "notification_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    min_severity: Mapped[str] = mapped_column(String(16), default="Low")
    group_ids: Mapped[list[Any] | None] = mapped_column(JSON, default=None)  # None = every group
    emails: Mapped[list[Any]] = mapped_column(JSON, default=list)
    webhook_connection_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    include_org_name: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)  # events up to this one were considered


class NotificationDelivery(TenantScoped, Base):
    """The outbox: one message per rule, event and recipient; the integrations job sends it."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (UniqueConstraint("tenant_id", "rule_id", "event_id", "channel", "target"),
                      Index("ix_notification_deliveries_status", "status", "next_attempt_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("notification_rules.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("timeline_events.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    target: Mapped[str] = mapped_column(String(320))  # address, or the webhook connection id
    subject: Mapped[str] = mapped_column(String(512), default="")
    body: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="Pending")  # Pending | Sent | Failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class IntegrationConnection(TenantScoped, Base):
    """A configured connector: ticketing (webhook, jira, github, servicenow), smtp, notification webhook.

    ``secrets`` (tokens, passwords, HMAC keys) are write-only through the API.
    """

    __tablename__ = "integration_connections"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RemediationTicket(TenantScoped, Base):
    __tablename__ = "remediation_tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[str] = mapped_column(ForeignKey("remediation_activities.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("integration_connections.id", ondelete="SET NULL"))
    connector: Mapped[str] = mapped_column(String(32), default="")
    external_id: Mapped[str] = mapped_column(String(256), default="")
    url: Mapped[str] = mapped_column(String(2048), default="")
    state: Mapped[str] = mapped_column(String(64), default="Pending")  # as the remote system says it
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_checked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
