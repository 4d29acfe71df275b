"""Tenants, identities, access, devices, the agent channel and the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from garrison.protocol.limits import AGENT_VERSION_LEN, HOSTNAME_LEN, MACHINE_KEY_LEN, OS_FIELD_LEN
from garrison.store.base import Base, TenantScoped, new_hex_id, utcnow

ROLES = ("admin", "security_operator", "analyst")  # the built-in roles; tenants add custom_roles


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(TenantScoped, Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)  # login names are global
    email: Mapped[str | None] = mapped_column(String(256))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    # None = every device group of the tenant; else the list of group ids the user sees.
    device_group_ids: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiKey(TenantScoped, Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # public lookup part of the key
    key_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    device_group_ids: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class CustomRole(TenantScoped, Base):
    """A role a tenant admin defines: a name and a set of permissions (garrison.core.permissions)."""

    __tablename__ = "custom_roles"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32))  # the users.role / api_keys.role value
    description: Mapped[str] = mapped_column(Text, default="")
    permissions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DeviceGroup(TenantScoped, Base):
    """Defender 'machine group': devices land in the first group (by rank) whose rule matches."""

    __tablename__ = "device_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    rank: Mapped[int] = mapped_column(Integer, default=1000)
    # {"name": "web-*", "tags": ["prod"], "os": "Linux"} — every given key must match.
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class EnrollmentSecret(TenantScoped, Base):
    __tablename__ = "enrollment_secrets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    max_uses: Mapped[int | None] = mapped_column(Integer, default=None)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Device(TenantScoped, Base):
    """A machine (Defender Machine entity)."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("tenant_id", "machine_key"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_hex_id)
    # Stable identity of the physical machine (hash of /etc/machine-id); None for agentless devices.
    machine_key: Mapped[str | None] = mapped_column(String(MACHINE_KEY_LEN))
    credential_hash: Mapped[str | None] = mapped_column(String(128))
    # Columns the agent fills: sized by garrison.protocol.limits, as the wire models are.
    computer_dns_name: Mapped[str] = mapped_column(String(HOSTNAME_LEN), default="", index=True)
    os_platform: Mapped[str] = mapped_column(String(OS_FIELD_LEN), default="")
    os_version: Mapped[str] = mapped_column(String(OS_FIELD_LEN), default="")
    os_build: Mapped[str] = mapped_column(String(OS_FIELD_LEN), default="")
    os_processor: Mapped[str] = mapped_column(String(OS_FIELD_LEN), default="")
    os_architecture: Mapped[str] = mapped_column(String(32), default="")  # 64-bit / 32-bit (derived)
    os_id: Mapped[str] = mapped_column(String(OS_FIELD_LEN), default="")  # os-release ID
    os_codename: Mapped[str] = mapped_column(String(OS_FIELD_LEN), default="")
    kernel: Mapped[str] = mapped_column(String(OS_FIELD_LEN), default="")
    agent_version: Mapped[str] = mapped_column(String(AGENT_VERSION_LEN), default="")
    last_ip_address: Mapped[str] = mapped_column(String(64), default="", index=True)
    last_external_ip_address: Mapped[str] = mapped_column(String(64), default="")
    ip_addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    mac_addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    logged_on_users: Mapped[list[Any]] = mapped_column(JSON, default=list)
    boot_time: Mapped[dt.datetime | None] = mapped_column(default=None)
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
    onboarding_status: Mapped[str] = mapped_column(String(32), default="Onboarded")
    device_value: Mapped[str] = mapped_column(String(16), default="Normal")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("device_groups.id", ondelete="SET NULL"))
    health_state: Mapped[str] = mapped_column(String(48), default="Unknown")
    collector_health: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    drop_counters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    risk_score: Mapped[str] = mapped_column(String(16), default="None")
    exposure_level: Mapped[str] = mapped_column(String(16), default="None")
    exposure_score: Mapped[float] = mapped_column(default=0.0)
    internet_facing: Mapped[bool] = mapped_column(Boolean, default=False)
    agentless: Mapped[bool] = mapped_column(Boolean, default=False)
    offboarded_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class DeviceTag(TenantScoped, Base):
    """Tags as rows as well, so that 'find by tag' is an index lookup."""

    __tablename__ = "device_tags"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)


class AgentBatch(TenantScoped, Base):
    """One acknowledged upload; (device, sequence) makes uploads idempotent."""

    __tablename__ = "agent_batches"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AgentUpload(TenantScoped, Base):
    """An accepted upload waiting for the worker. The upload is acknowledged once this row (and its
    ``agent_batches`` row) is committed; the worker applies it and deletes the row in one transaction,
    device by device in ``id`` order. ``state``: queued, resync (the handler asked the agent for a
    full upload: the server passes it on at the next check-in), failed (kept for the operator)."""

    __tablename__ = "agent_upload_queue"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)  # the request body as received (JSON, maybe gzip)
    source_ip: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    __table_args__ = (Index("ix_agent_upload_queue_state_id", "state", "id"),)


ACTION_STATES = ("Pending", "InProgress", "Succeeded", "Failed", "TimeOut", "Cancelled")


class MachineAction(TenantScoped, Base):
    __tablename__ = "machine_actions"
    __table_args__ = (Index("ix_machine_actions_device_status", "device_id", "status"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="Pending")
    requestor: Mapped[str] = mapped_column(String(128), default="")
    requestor_comment: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    creation_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_update_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class AuditEntry(TenantScoped, Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    actor_type: Mapped[str] = mapped_column(String(16))  # user, apikey, device, cli
    action: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(256), default="")
    method: Mapped[str] = mapped_column(String(8), default="")
    path: Mapped[str] = mapped_column(String(512), default="")
    status_code: Mapped[int] = mapped_column(Integer, default=0)
    source_ip: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Setting(Base):
    """Server-wide key/value settings (e.g. the TLS fingerprint, configuration version)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SensorExclusionSetting(TenantScoped, Base):
    """Sensor exclusions sent to agents at check-in: tenant-wide (``group_id`` None) or for one device group
    (a device gets both). Validated by :mod:`garrison.core.sensor_exclusions`."""

    __tablename__ = "sensor_exclusion_settings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("device_groups.id", ondelete="CASCADE"), index=True)
    exclusions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_by: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
