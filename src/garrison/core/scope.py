"""Device-group scope: what a caller limited to some device groups may see.

A user or API key may be limited to some device groups (``group_ids``). :class:`AccessScope` is the
one object that says what that means, built once from the caller (``AccessScope.of(principal)``):

* ``devices()`` — the SQL condition on ``Device`` for lists and aggregates;
* ``device(s, id)`` — one device by id, or 404 naming only the id the caller gave (a device of
  another group answers exactly like one that does not exist);
* ``device_ids(s)`` — the devices in scope as a set (``None``: every device of the tenant), which is
  what stores outside the state store take: the event store's read handle is
  ``event_store.scope(access.tenant_id, access.device_ids(s))`` — see :meth:`events`.

The tenant itself is enforced below this, by the storage layer (``garrison.store.db``): a scope only
narrows a tenant session further, to groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from garrison.core.errors import NotFound
from garrison.store.models.core import Device

if TYPE_CHECKING:
    from garrison.core.access import Principal


@dataclass(frozen=True)
class AccessScope:
    tenant_id: int
    group_ids: frozenset[int] | None  # None: every device group of the tenant

    @classmethod
    def of(cls, principal: Principal) -> AccessScope:
        groups = None if principal.group_ids is None else frozenset(principal.group_ids)
        return cls(principal.tenant_id, groups)

    @property
    def limited(self) -> bool:
        return self.group_ids is not None

    def sees_group(self, group_id: int | None) -> bool:
        return self.group_ids is None or group_id in self.group_ids

    def devices(self) -> ColumnElement[bool]:
        """Condition on ``Device`` rows for lists and aggregates (the session adds the tenant)."""
        if self.group_ids is None:
            return true()
        return Device.group_id.in_(sorted(self.group_ids))

    def device(self, s: Session, device_id: str) -> Device:
        """The device, if the caller may see it; else 404 naming only the id it asked for."""
        device = s.get(Device, device_id) if isinstance(device_id, str) and len(device_id) <= 64 else None
        # get() of an identity already in the session skips the criteria: check the tenant as well.
        if device is None or device.tenant_id != self.tenant_id or not self.sees_group(device.group_id):
            raise NotFound(f"no machine with id {device_id[:64]!r}")
        return device

    def device_ids(self, s: Session) -> frozenset[str] | None:
        """The ids of the devices in scope; None when the caller sees every device of the tenant."""
        if self.group_ids is None:
            return None
        return frozenset(s.scalars(select(Device.id).where(self.devices())))

    def events(self, s: Session, event_store: Any) -> Any:
        """The event store's read handle bound to this scope: the tenant and the devices in scope."""
        return event_store.scope(self.tenant_id, self.device_ids(s))
