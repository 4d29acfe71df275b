"""Alerts raised by the detection engine (Defender's Alert entity)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from garrison.store.base import Base, TenantScoped, utcnow


class Incident(TenantScoped, Base):
    """Related alerts grouped (Defender's Incident entity); severity is the highest of its alerts."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_tenant_device_activity", "tenant_id", "device_id", "last_activity"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"), default=None)
    status: Mapped[str] = mapped_column(String(16), default="Active")  # Active, Resolved
    severity: Mapped[str] = mapped_column(String(16))
    assigned_to: Mapped[str | None] = mapped_column(String(256), default=None)
    classification: Mapped[str | None] = mapped_column(String(40), default=None)
    determination: Mapped[str | None] = mapped_column(String(40), default=None)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    comments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_update_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    first_activity: Mapped[dt.datetime] = mapped_column()
    last_activity: Mapped[dt.datetime] = mapped_column()


class Alert(TenantScoped, Base):
    """One alert: a rule that matched on a device. Repeats of the same rule, device and entity within the
    dedupe window update it (``event_count``, ``last_event_time``) instead of creating another."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_tenant_created", "tenant_id", "alert_creation_time"),
        Index("ix_alerts_dedupe", "tenant_id", "dedupe_key", "last_event_time"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"), default=None,
                                                    index=True)
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16))  # Informational, Low, Medium, High
    status: Mapped[str] = mapped_column(String(16), default="New")  # New, InProgress, Resolved
    classification: Mapped[str | None] = mapped_column(String(40), default=None)
    determination: Mapped[str | None] = mapped_column(String(40), default=None)
    category: Mapped[str] = mapped_column(String(40))
    detection_source: Mapped[str] = mapped_column(String(40))
    detector_id: Mapped[str] = mapped_column(String(64))  # the rule's id
    mitre_techniques: Mapped[list[Any]] = mapped_column(JSON, default=list)
    assigned_to: Mapped[str | None] = mapped_column(String(256), default=None)
    rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # title, author, level, references, path
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    comments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    dedupe_key: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(Integer, default=1)
    first_event_time: Mapped[dt.datetime] = mapped_column()
    last_event_time: Mapped[dt.datetime] = mapped_column()
    alert_creation_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_update_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_time: Mapped[dt.datetime | None] = mapped_column(default=None)


class Indicator(TenantScoped, Base):
    """A custom indicator of compromise (Defender's Indicator entity), matched at ingest."""

    __tablename__ = "indicators"
    __table_args__ = (UniqueConstraint("tenant_id", "indicator_type", "indicator_value"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator_value: Mapped[str] = mapped_column(String(1024))
    indicator_type: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16), default="Informational")
    recommended_actions: Mapped[str] = mapped_column(Text, default="")
    expiration_time: Mapped[dt.datetime | None] = mapped_column(default=None)
    generate_alert: Mapped[bool] = mapped_column(Boolean, default=True)
    rbac_group_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)  # empty: every device
    created_by: Mapped[str] = mapped_column(String(128), default="")
    creation_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_update_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
