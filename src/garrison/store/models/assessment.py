"""Configuration assessment: the check knowledge base, each device's current results, the
history of changes ("new configuration assessment" events) and the daily Secure Score.

Two SQL views mirror Defender's hunting tables over these tables. They are created with the
tables (``metadata.create_all``) and dropped before them; migrations create them from
:data:`VIEWS`. Both are plain SQL that SQLite and PostgreSQL accept.
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
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from garrison.protocol.limits import CHECKS_VERSION_LEN, OS_FAMILY_LEN
from garrison.store.base import TENANT_VIEWS, Base, TenantScoped, utcnow


class AssessmentCheck(Base):
    """A check definition as the server knows it (shared by all tenants, synced from garrison.checks)."""

    __tablename__ = "assessment_checks"
    check_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    rationale: Mapped[str] = mapped_column(Text, default="")
    remediation: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32), index=True)
    subcategory: Mapped[str] = mapped_column(String(200), default="")
    impact: Mapped[int] = mapped_column(Integer)
    benchmarks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    mitre_techniques: Mapped[list[Any]] = mapped_column(JSON, default=list)
    mitre_tactics: Mapped[list[Any]] = mapped_column(JSON, default=list)
    platforms: Mapped[list[Any]] = mapped_column(JSON, default=list)
    checks_version: Mapped[str] = mapped_column(String(32), default="")
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class DeviceAssessmentState(TenantScoped, Base):
    """Per device: which generation of results the server holds and when it was assessed."""

    __tablename__ = "device_assessment_state"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    checks_version: Mapped[str] = mapped_column(String(CHECKS_VERSION_LEN), default="")  # sized by the protocol
    os_family: Mapped[str] = mapped_column(String(OS_FAMILY_LEN), default="")
    assessed_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    needs_resync: Mapped[bool] = mapped_column(Boolean, default=False)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeviceAssessmentResult(TenantScoped, Base):
    """The current result of one check on one device."""

    __tablename__ = "device_assessment_results"
    __table_args__ = (Index("ix_device_assessment_results_check_status", "tenant_id", "check_id", "status"),)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    check_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TenantAssessmentCheck(TenantScoped, Base):
    """When a tenant's fleet first reported a check (decides the 'check added' event)."""

    __tablename__ = "tenant_assessment_checks"
    __table_args__ = (UniqueConstraint("tenant_id", "check_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_id: Mapped[str] = mapped_column(String(96))
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)


EVENT_TYPE = "NewConfigurationAssessment"


class AssessmentEvent(TenantScoped, Base):
    """A 'new configuration assessment' event: a check added to the fleet, or a device's result changed."""

    __tablename__ = "assessment_events"
    __table_args__ = (Index("ix_assessment_events_tenant_at", "tenant_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    event_type: Mapped[str] = mapped_column(String(40), default=EVENT_TYPE)
    reason: Mapped[str] = mapped_column(String(32))  # check_added | status_changed
    check_id: Mapped[str] = mapped_column(String(96), index=True)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    old_status: Mapped[str | None] = mapped_column(String(16), default=None)
    new_status: Mapped[str | None] = mapped_column(String(16), default=None)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SecureScoreHistory(TenantScoped, Base):
    """One day's Secure Score for Devices of the organisation (scope 'org') or a device group."""

    __tablename__ = "secure_score_history"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "scope"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    scope: Mapped[str] = mapped_column(String(32))  # "org" or "group:<id>"
    group_id: Mapped[int | None] = mapped_column(Integer, default=None)
    score: Mapped[float | None] = mapped_column(Float, default=None)
    categories: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    devices: Mapped[int] = mapped_column(Integer, default=0)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- hunting-table views --------------------------------------------------------------------

VIEWS: dict[str, str] = {
    "DeviceTvmSecureConfigurationAssessment": """
        SELECT r.tenant_id AS "TenantId",
               r.device_id AS "DeviceId",
               d.computer_dns_name AS "DeviceName",
               d.os_platform AS "OSPlatform",
               s.assessed_at AS "Timestamp",
               r.check_id AS "ConfigurationId",
               k.category AS "ConfigurationCategory",
               k.subcategory AS "ConfigurationSubcategory",
               k.impact AS "ConfigurationImpact",
               (r.status = 'pass') AS "IsCompliant",
               (r.status <> 'not_applicable') AS "IsApplicable",
               r.evidence AS "Context",
               CAST(NULL AS BOOLEAN) AS "IsExpectedUserImpactCompliant"
          FROM device_assessment_results r
          JOIN devices d ON d.id = r.device_id AND d.tenant_id = r.tenant_id
          LEFT JOIN device_assessment_state s ON s.device_id = r.device_id AND s.tenant_id = r.tenant_id
          LEFT JOIN assessment_checks k ON k.check_id = r.check_id
    """,
    "DeviceTvmSecureConfigurationAssessmentKB": """
        SELECT check_id AS "ConfigurationId",
               impact AS "ConfigurationImpact",
               title AS "ConfigurationName",
               description AS "ConfigurationDescription",
               rationale AS "RiskDescription",
               category AS "ConfigurationCategory",
               subcategory AS "ConfigurationSubcategory",
               benchmarks AS "ConfigurationBenchmarks",
               mitre_techniques AS "RelatedMitreTechniques",
               mitre_tactics AS "RelatedMitreTactics",
               remediation AS "RemediationSteps"
          FROM assessment_checks
         WHERE removed_at IS NULL
    """,
}
# The KB view is global (the checks, no TenantId): only views with a tenant column are tenant views.
TENANT_VIEWS.update(name for name, sql in VIEWS.items() if '"TenantId"' in sql)
_VIEW_TABLES = ("devices", "device_assessment_results", "device_assessment_state", "assessment_checks")


def create_views(connection: Connection) -> None:
    """(Re)create the hunting views; skipped when a table they read is missing."""
    insp = inspect(connection)
    if not all(insp.has_table(t) for t in _VIEW_TABLES):
        return
    for name, body in VIEWS.items():
        connection.execute(text(f'DROP VIEW IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE VIEW "{name}" AS {body}'))


def drop_views(connection: Connection) -> None:
    for name in VIEWS:
        connection.execute(text(f'DROP VIEW IF EXISTS "{name}"'))


@event.listens_for(Base.metadata, "after_create")
def _after_create(_target: Any, connection: Connection, **_kw: Any) -> None:
    create_views(connection)


@event.listens_for(Base.metadata, "before_drop")
def _before_drop(_target: Any, connection: Connection, **_kw: Any) -> None:
    drop_views(connection)
