"""Sensor exclusions configured on the server: per tenant and optionally per device group, part of the
agent's versioned configuration: a check-in answer carries them (``CheckinResponse.sensor_exclusions``)
only when the agent's ``config_version`` is not the device's current one (:func:`config_version`, a
digest of what the device gets). The sensors' sink drops matching rows before they are recorded
(``garrison.agent.sensors.base.Exclusion``: column op value, in one table or in all)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from garrison.core.errors import Invalid, NotFound
from garrison.protocol import events
from garrison.protocol.models import SensorExclusion
from garrison.store.base import utcnow
from garrison.store.models.core import Device, DeviceGroup, SensorExclusionSetting

MAX_EXCLUSIONS = 100  # per scope (tenant-wide, or one group): a device gets at most twice this
MAX_VALUE_LEN = 1024
_COLUMNS = {t: frozenset(c for c, _ in events.columns(t)) - events.SERVER_COLUMNS for t in events.TABLES}
_ANY_COLUMN = frozenset().union(*_COLUMNS.values())


def validate(raw: Any) -> list[dict[str, str]]:
    """The exclusions as stored and sent, or Invalid naming the bad entry."""
    if not isinstance(raw, list):
        raise Invalid("exclusions must be a list")
    if len(raw) > MAX_EXCLUSIONS:
        raise Invalid(f"at most {MAX_EXCLUSIONS} exclusions")
    out = []
    for i, item in enumerate(raw):
        try:
            ex = SensorExclusion.model_validate(item)
        except ValueError as exc:
            raise Invalid(f"exclusions[{i}]: {str(exc).splitlines()[-1][:200]}") from None
        if ex.table and ex.table not in _COLUMNS:
            raise Invalid(f"exclusions[{i}]: unknown table {ex.table[:64]!r}")
        if ex.column not in (_COLUMNS[ex.table] if ex.table else _ANY_COLUMN):
            raise Invalid(f"exclusions[{i}]: unknown column {ex.column[:128]!r}" + (f" of {ex.table}" if ex.table else ""))
        if not ex.value.strip() or len(ex.value) > MAX_VALUE_LEN:
            # an empty value would match every row (startswith/contains): all telemetry gone
            raise Invalid(f"exclusions[{i}]: the value must be 1 to {MAX_VALUE_LEN} characters, not blank")
        out.append(ex.model_dump())
    return out


def _row(s: Session, group_id: int | None) -> SensorExclusionSetting | None:
    cond = SensorExclusionSetting.group_id.is_(None) if group_id is None else SensorExclusionSetting.group_id == group_id
    return s.scalars(select(SensorExclusionSetting).where(cond).order_by(SensorExclusionSetting.id)).first()


def read(s: Session, group_id: int | None) -> dict[str, Any]:
    if group_id is not None and s.get(DeviceGroup, group_id) is None:
        raise NotFound(f"no device group with id {group_id}")
    row = _row(s, group_id)
    return {"groupId": group_id, "exclusions": list(row.exclusions) if row else [],
            "updatedBy": row.updated_by if row else "", "updatedAt": row.updated_at if row else None}


def update(s: Session, tenant_id: int, group_id: int | None, raw: Any, by: str) -> dict[str, Any]:
    exclusions = validate(raw)
    if group_id is not None and s.get(DeviceGroup, group_id) is None:
        raise NotFound(f"no device group with id {group_id}")
    row = _row(s, group_id)
    if row is None:
        row = SensorExclusionSetting(tenant_id=tenant_id, group_id=group_id)
        s.add(row)
    row.exclusions, row.updated_by, row.updated_at = exclusions, by[:128], utcnow()
    s.flush()
    return read(s, group_id)


_S, _D = SensorExclusionSetting.__table__.c, Device.__table__.c
_FOR_DEVICE = (select(_S.exclusions).where(
    _S.tenant_id == bindparam("t"),
    or_(_S.group_id.is_(None), _S.group_id == select(_D.group_id).where(
        _D.id == bindparam("d"), _D.tenant_id == bindparam("t")).scalar_subquery()))
    .order_by(_S.group_id.is_not(None), _S.id))


def for_device(conn: Connection, tenant_id: int, device_id: str) -> list[dict[str, Any]]:
    """What a device's agent gets at check-in: the tenant-wide exclusions, then its group's."""
    out: list[dict[str, Any]] = []
    for (items,) in conn.execute(_FOR_DEVICE, {"t": tenant_id, "d": device_id}):
        out.extend(items or [])
    return out


def config_version(exclusions: list[dict[str, Any]]) -> int:
    """The version of a device's agent configuration: a digest of its exclusions (the same on every
    server process and after restarts; 1..2^31-1, so never the 0 of an agent that has none yet)."""
    digest = hashlib.sha256(json.dumps(exclusions, sort_keys=True, separators=(",", ":")).encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1) + 1
