"""Tenant administration: the reads and the actions on users, API keys, enrollment secrets and device
groups, written once for the API (``server/api/admin.py``) and the console (``web/pages/settings.py``).

Creation lives in :mod:`garrison.core.access` (with the secrets and hashing); this module holds what
both front ends do to existing rows. Every function takes a tenant session: the storage layer scopes
it to the tenant, and :func:`owned` re-checks the tenant of a row found by primary key.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.core import access
from garrison.core.access import Principal
from garrison.core.errors import Invalid, NotFound
from garrison.store.models.core import ApiKey, Device, DeviceGroup, EnrollmentSecret, Tenant, User

T = TypeVar("T")


def owned(s: Session, model: type[T], ident: int, what: str) -> T:
    """The row of this tenant with primary key ``ident``, else 404 (``get`` of an identity already in
    the session skips the tenant criteria, so the tenant is checked here too)."""
    row = s.get(model, ident)
    if row is None or getattr(row, "tenant_id", None) != s.info.get("tenant"):
        raise NotFound(f"no {what} with id {ident}")
    return row


# --- reads ------------------------------------------------------------------------------

def tenant_name(s: Session, tenant_id: int) -> str:
    tenant = s.get(Tenant, tenant_id)
    return tenant.name if tenant else ""


def users(s: Session) -> list[User]:
    return list(s.scalars(select(User).order_by(User.username, User.id)))


def api_keys(s: Session) -> list[ApiKey]:
    """Active keys first, newest first."""
    return list(s.scalars(select(ApiKey).order_by(ApiKey.revoked, ApiKey.id.desc())))


def enrollment_secrets(s: Session) -> list[EnrollmentSecret]:
    """Active secrets first, newest first."""
    return list(s.scalars(select(EnrollmentSecret).order_by(EnrollmentSecret.revoked, EnrollmentSecret.id.desc())))


def device_groups(s: Session, principal: Principal) -> list[DeviceGroup]:
    """The device groups the caller may see, by rank (a group-limited caller sees its own groups)."""
    rows = s.scalars(select(DeviceGroup).order_by(DeviceGroup.rank, DeviceGroup.id))
    return [g for g in rows if principal.group_ids is None or g.id in principal.group_ids]


def device_group(s: Session, principal: Principal, group_id: int) -> DeviceGroup:
    group = owned(s, DeviceGroup, group_id, "device group")
    if principal.group_ids is not None and group.id not in principal.group_ids:
        raise NotFound(f"no device group with id {group_id}")
    return group


def group_device_counts(s: Session) -> dict[int | None, int]:
    return {gid: n for gid, n in s.execute(select(Device.group_id, func.count()).group_by(Device.group_id))}


def check_group_ids(s: Session, ids: list[int] | None) -> list[int] | None:
    """``ids`` when each names a device group of the tenant (else 404); an empty list is ``None`` (all)."""
    for gid in ids or []:
        owned(s, DeviceGroup, gid, "device group")
    return list(ids) if ids else None


# --- users ------------------------------------------------------------------------------

def _not_self(user: User, principal: Principal, what: str) -> None:
    if principal.actor_type == "user" and user.username == principal.actor:
        raise Invalid(f"you cannot {what} your own account")


def delete_user(s: Session, principal: Principal, user_id: int) -> User:
    user = owned(s, User, user_id, "user")
    _not_self(user, principal, "delete")
    s.delete(user)
    s.flush()
    return user


def unlock_user(s: Session, user_id: int) -> User:
    user = owned(s, User, user_id, "user")
    user.locked_until, user.failed_logins = None, 0
    return user


def set_user_disabled(s: Session, principal: Principal, user_id: int, disabled: bool) -> User:
    user = owned(s, User, user_id, "user")
    if disabled:
        _not_self(user, principal, "disable")
    user.disabled = disabled
    return user


# --- API keys and enrollment secrets ----------------------------------------------------

def revoke_api_key(s: Session, key_id: int) -> ApiKey:
    """Revoke the key. The caller clears the server's key cache (``app.state.key_cache``) once the
    transaction has committed, so a cached key is refused from the next request on."""
    key = owned(s, ApiKey, key_id, "API key")
    key.revoked = True
    return key


def revoke_enrollment_secret(s: Session, secret_id: int) -> EnrollmentSecret:
    row = owned(s, EnrollmentSecret, secret_id, "enrollment secret")
    row.revoked = True
    return row


# --- device groups ----------------------------------------------------------------------

def update_group(s: Session, group_id: int, *, rank: int | None = None, rules: dict[str, Any] | None = None,
                 description: str | None = None) -> DeviceGroup:
    """Change a group (``None``: leave as is) and reassign every device. The default group has no rules
    and no rank."""
    group = owned(s, DeviceGroup, group_id, "device group")
    if rules is not None:
        if group.is_default:
            raise Invalid("the default group has no rules")
        access.validate_group_rules(rules)
        group.rules = rules
    if rank is not None and not group.is_default:
        group.rank = rank
    if description is not None:
        group.description = description[:2000]
    s.flush()
    access.reassign_all_devices(s)
    return group


def delete_group(s: Session, group_id: int) -> DeviceGroup:
    group = owned(s, DeviceGroup, group_id, "device group")
    if group.is_default:
        raise Invalid("the default group cannot be deleted")
    s.delete(group)
    s.flush()
    access.reassign_all_devices(s)
    return group
