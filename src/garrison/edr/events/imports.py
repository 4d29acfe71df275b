"""Agentless Windows telemetry: event log files imported as a device's events.

Every file is read and mapped completely before anything is stored; then all of it is stored in one
write (one DuckDB transaction): a malformed file stores nothing, of itself or of the others.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select

from garrison.core import access, devices
from garrison.core.errors import Conflict, Invalid, NotFound
from garrison.edr.events.store import BatchIn, EventStore, Stored
from garrison.edr.events.windows import FileResult, parse_file
from garrison.store.base import utcnow
from garrison.store.db import Store
from garrison.store.models.core import Device

_DEVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,254}$")
Progress = Callable[[str, int], None]
Writer = Callable[[list[BatchIn]], list[Stored]]


def parse_files(files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> list[FileResult]:
    out = []
    for name, data in files:
        out.append(parse_file(name, data))
        if progress:
            progress(name, sum(r.records for r in out))
    return out


def resolve_device(store: Store, tenant_id: int, *, device_id: str | None = None, device_name: str | None = None,
                   group_ids: tuple[int, ...] | None = None) -> tuple[str, str, bool]:
    """``(device id, name, created)``: an existing device by id, or by name (an agentless Windows device is
    created for a new name). A caller limited to some device groups reaches only their devices."""
    with store.tenant(tenant_id) as s:
        if device_id is not None:
            device = devices.get_device(s, device_id)
            if group_ids is not None and device.group_id not in group_ids:
                raise NotFound(f"no machine with id {device_id!r}")
            return device.id, device.computer_dns_name, False
        name = (device_name or "").strip().lower()
        if not _DEVICE_NAME.match(name):
            raise Invalid(f"invalid device name {(device_name or '')[:80]!r}: use letters, digits, '.', '_' and '-'")
        found = s.scalar(select(Device).where(Device.computer_dns_name == name).order_by(Device.agentless.desc()))
        if found is not None:
            if group_ids is not None and found.group_id not in group_ids:
                raise Conflict(f"device name {name!r} belongs to a device outside your device groups")
            return found.id, found.computer_dns_name, False
        new = Device(tenant_id=tenant_id, machine_key=None, computer_dns_name=name, agentless=True,
                        onboarding_status="CanBeOnboarded", os_platform="Windows", last_seen=utcnow())
        s.add(new)
        s.flush()
        access.assign_group(s, new)
        if group_ids is not None and new.group_id not in group_ids:
            raise Conflict(f"a new device {name!r} would fall outside your device groups")
        return new.id, name, True


def import_windows(write: Writer, tenant_id: int, device_id: str, device_name: str,
                   parsed: Sequence[FileResult]) -> dict[str, Any]:
    """Store parsed files as the device's events (one batch per file, one write for all)."""
    batches = [BatchIn(tenant_id, device_id, device_name, 0, r.rows) for r in parsed if r.rows]
    stored = write(batches) if batches else []
    tables: Counter[str] = Counter(row["Table"] for r in parsed for row in r.rows)
    skipped: Counter[str] = Counter()
    computers: Counter[str] = Counter()
    for r in parsed:
        skipped.update(r.skipped)
        computers.update(r.computers)
    return {"machineId": device_id, "computerDnsName": device_name, "files": len(parsed),
            "records": sum(r.records for r in parsed), "stored": sum(s.stored for s in stored),
            "tables": dict(sorted(tables.items())), "skipped": dict(skipped.most_common()),
            "sourceComputers": dict(computers.most_common(10))}


def store_writer(events: EventStore) -> Writer:
    return events.write


__all__ = ["import_windows", "parse_files", "resolve_device", "store_writer"]
