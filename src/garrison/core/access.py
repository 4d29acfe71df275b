"""Tenants, users, API keys, enrollment secrets and device groups."""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from garrison.core import permissions, roles
from garrison.core.errors import Conflict, Invalid, NotFound, Unauthorized
from garrison.core.security import (
    hash_password,
    new_prefixed_secret,
    secret_matches,
    split_prefixed_secret,
    verify_password,
)
from garrison.store.base import utcnow
from garrison.store.db import SYSTEM
from garrison.store.models.core import (
    ApiKey,
    Device,
    DeviceGroup,
    EnrollmentSecret,
    Tenant,
    User,
)

DEFAULT_GROUP = "Ungrouped devices"
# Failed sign-ins: each address may fail SOURCE_FAILURES times at once, then one more every
# 60/SOURCE_FAILURES_PER_HOUR minutes (the console refuses it before checking any password); an account
# is locked after LOCKOUT_AFTER failures in a row from any addresses. One address alone therefore needs
# more than an hour to lock someone out; the owner's successful sign-in resets the count.
SOURCE_FAILURES = 5
SOURCE_FAILURES_PER_HOUR = 12
LOCKOUT_AFTER = 20
LOCKOUT_FOR = dt.timedelta(minutes=15)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,127}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved once per request, then used for scoping and audit."""

    tenant_id: int
    actor: str
    actor_type: str  # user, apikey, device, cli
    role: str
    group_ids: tuple[int, ...] | None = None  # None = all device groups
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # What the role holds (garrison.core.permissions); None = the built-in role's (nothing for other names).
    permissions: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.permissions is None:
            object.__setattr__(self, "permissions", permissions.of_builtin(self.role) or frozenset())

    def allows(self, permission: str) -> bool:
        """Whether the caller holds ``permission`` (a name of the permission table; a typo raises)."""
        return permissions.known(permission) in (self.permissions or ())


def check_name(value: str, what: str) -> str:
    if not _NAME_RE.match(value or ""):
        raise Invalid(f"invalid {what} {value!r}: use 1-128 letters, digits, space, . _ @ -")
    return value


def check_role(s: Session, tenant_id: int, role: str) -> str:
    """A built-in role or one of the tenant's custom roles (``garrison.core.roles``)."""
    return roles.check_role(s, tenant_id, role)


# --- tenants ----------------------------------------------------------------------------

def create_tenant(s: Session, name: str) -> Tenant:
    check_name(name, "tenant name")
    if s.scalar(select(Tenant).where(Tenant.name == name)):
        raise Conflict(f"tenant {name!r} already exists")
    tenant = Tenant(name=name)
    s.add(tenant)
    s.flush()
    s.add(DeviceGroup(tenant_id=tenant.id, name=DEFAULT_GROUP, rank=1_000_000, is_default=True,
                      description="Devices that match no other group"))
    s.flush()
    return tenant


def tenant_by_name(s: Session, name: str) -> Tenant:
    tenant = s.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant


# --- users ------------------------------------------------------------------------------

def create_user(s: Session, tenant_id: int, username: str, password: str, role: str,
                email: str | None = None, group_ids: list[int] | None = None) -> User:
    check_name(username, "user name")
    check_role(s, tenant_id, role)
    if len(password) < 12:
        raise Invalid("password too short: at least 12 characters")
    if _username_taken(s, username):
        # User names are unique across tenants (sign-in finds the tenant by them); say no more than that.
        raise Conflict(f"user name {username!r} is not available")
    user = User(tenant_id=tenant_id, username=username, email=email, role=role,
                password_hash=hash_password(password), device_group_ids=group_ids)
    s.add(user)
    s.flush()
    return user


def user_tenant(s: Session, username: str) -> int | None:
    """The tenant of the user called ``username`` (a system session: sign-in, before any tenant is known)."""
    return s.scalar(select(User.tenant_id).where(User.username == username))


def _username_taken(s: Session, username: str) -> bool:
    """Whether any tenant has the name; read in a system session of the same database, since the
    caller's tenant session sees only its own users."""
    with Session(s.get_bind(), info={"tenant": SYSTEM}) as everyone:
        return everyone.scalar(select(User.id).where(User.username == username)) is not None


@functools.cache
def _dummy_hash() -> str:
    return hash_password("garrison: no such user")


def authenticate_user(s: Session, username: str, password: str) -> User:
    """Check a password (system session).

    Every refusal — unknown or disabled name, locked account, wrong password — gives the same answer
    after the same Argon2 work, so neither the reply nor its time tells which names exist or which
    accounts are locked. ``LOCKOUT_AFTER`` failures in a row lock the account for ``LOCKOUT_FOR``: the
    counter is incremented in the database and the decision is taken on the value the increment
    returns, so parallel guesses cannot overwrite each other's counts. (Per-address throttling of
    failed sign-ins, which comes first, is the console's: ``garrison.server.web.routes``.)
    """
    user = s.scalar(select(User).where(User.username == username))
    if user is None or user.disabled:
        verify_password(_dummy_hash(), password)
        raise Unauthorized(BAD_SIGN_IN)
    correct = verify_password(user.password_hash, password)
    now = utcnow()
    if user.locked_until and user.locked_until > now:
        raise Unauthorized(BAD_SIGN_IN)
    if not correct:
        _count_failure(s, user.id, now)
        raise Unauthorized(BAD_SIGN_IN)
    if user.failed_logins or user.locked_until:
        user.failed_logins = 0
        user.locked_until = None
    return user


BAD_SIGN_IN = "invalid user name or password"


def _count_failure(s: Session, user_id: int, now: dt.datetime) -> None:
    """One more failure, atomically (the UPDATE holds the row until commit); lock at the limit."""
    failed = s.execute(update(User).where(User.id == user_id).values(failed_logins=User.failed_logins + 1)
                       .returning(User.failed_logins).execution_options(synchronize_session=False)).scalar_one()
    if failed >= LOCKOUT_AFTER:
        s.execute(update(User).where(User.id == user_id).values(failed_logins=0, locked_until=now + LOCKOUT_FOR)
                  .execution_options(synchronize_session=False))


def user_principal(s: Session, user: User) -> Principal:
    groups = tuple(user.device_group_ids) if user.device_group_ids is not None else None
    return Principal(user.tenant_id, user.username, "user", user.role, groups,
                     permissions=roles.permissions_of(s, user.tenant_id, user.role))


# --- API keys ---------------------------------------------------------------------------

def create_api_key(s: Session, tenant_id: int, role: str, name: str = "", created_by: str = "",
                   group_ids: list[int] | None = None) -> tuple[ApiKey, str]:
    """Return the row and the key itself — shown once, only its hash is stored."""
    check_role(s, tenant_id, role)
    full, prefix, digest = new_prefixed_secret("gk")
    key = ApiKey(tenant_id=tenant_id, name=name[:128], prefix=prefix, key_hash=digest, role=role,
                 created_by=created_by, device_group_ids=group_ids)
    s.add(key)
    s.flush()
    return key, full


def authenticate_api_key(s: Session, presented: str) -> Principal:
    prefix = split_prefixed_secret(presented, "gk")
    key = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix)) if prefix else None
    if key is None or key.revoked or not secret_matches(key.key_hash, presented):
        raise Unauthorized("invalid API key")
    groups = tuple(key.device_group_ids) if key.device_group_ids is not None else None
    return Principal(key.tenant_id, f"apikey:{key.prefix}", "apikey", key.role, groups,
                     extra={"key_id": key.id}, permissions=roles.permissions_of(s, key.tenant_id, key.role))


# --- enrollment secrets -----------------------------------------------------------------

def create_enrollment_secret(s: Session, tenant_id: int, expires: dt.timedelta | None = None,
                             uses: int | None = None) -> tuple[EnrollmentSecret, str]:
    if uses is not None and uses < 1:
        raise Invalid("--uses must be at least 1")
    full, prefix, digest = new_prefixed_secret("ge")
    row = EnrollmentSecret(tenant_id=tenant_id, prefix=prefix, secret_hash=digest,
                           expires_at=utcnow() + expires if expires else None, max_uses=uses)
    s.add(row)
    s.flush()
    return row, full


def consume_enrollment_secret(s: Session, presented: str) -> EnrollmentSecret:
    """Validate and use once (system session; the row's tenant is the device's tenant)."""
    prefix = split_prefixed_secret(presented, "ge")
    row = s.scalar(select(EnrollmentSecret).where(EnrollmentSecret.prefix == prefix)) if prefix else None
    if row is None or row.revoked or not secret_matches(row.secret_hash, presented):
        raise Unauthorized("invalid enrollment secret")
    now = utcnow()
    if row.expires_at and row.expires_at < now:
        raise Unauthorized("enrollment secret expired")
    # One conditional UPDATE decides, in the database: parallel enrollments cannot all read
    # "uses < max_uses" and each add one (SQLite has no row lock to take before the read).
    es = EnrollmentSecret
    taken = s.execute(update(es).where(es.id == row.id, es.revoked.is_(False),
                                       or_(es.max_uses.is_(None), es.uses < es.max_uses),
                                       or_(es.expires_at.is_(None), es.expires_at >= now))
                      .values(uses=es.uses + 1).execution_options(synchronize_session=False))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("enrollment secret used up")
    return row


_DURATION_RE = re.compile(r"^([0-9]{1,9})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DURATION = dt.timedelta(days=3650)  # an expiry further out is no expiry; past year 9999 it is a crash


def parse_duration(text: str) -> dt.timedelta:
    m = _DURATION_RE.match(text.strip())
    if not m:
        raise Invalid(f"invalid duration {text!r}: use a number and one of s m h d w, e.g. 7d")
    try:
        duration = dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    except OverflowError:
        duration = dt.timedelta.max
    if duration > MAX_DURATION:
        raise Invalid(f"duration {text!r} is longer than {MAX_DURATION.days} days")
    return duration


# --- device groups ----------------------------------------------------------------------

def create_group(s: Session, name: str, rank: int, rules: dict[str, Any], description: str = "") -> DeviceGroup:
    check_name(name, "device group name")
    validate_group_rules(rules)
    if s.scalar(select(DeviceGroup.id).where(DeviceGroup.name == name)):
        raise Conflict(f"device group {name!r} already exists")
    group = DeviceGroup(name=name, rank=rank, rules=rules, description=description[:2000])
    s.add(group)
    s.flush()
    reassign_all_devices(s)
    return group


def validate_group_rules(rules: dict[str, Any]) -> None:
    allowed = {"name", "tags", "os", "domain"}
    unknown = set(rules) - allowed
    if unknown:
        raise Invalid(f"unknown group rule keys: {', '.join(sorted(unknown))} (allowed: name, tags, os, domain)")
    for key in ("name", "os", "domain"):
        if key in rules and not isinstance(rules[key], str):
            raise Invalid(f"group rule {key!r} must be a string pattern")
    if "tags" in rules and not (isinstance(rules["tags"], list) and all(isinstance(t, str) for t in rules["tags"])):
        raise Invalid("group rule 'tags' must be a list of strings")


def group_matches(rules: dict[str, Any], device: Device) -> bool:
    if not rules:
        return False
    name = device.computer_dns_name.lower()
    if "name" in rules and not fnmatch.fnmatchcase(name, rules["name"].lower()):
        return False
    if "domain" in rules and not name.endswith("." + rules["domain"].lower().lstrip(".")):
        return False
    if "os" in rules and not fnmatch.fnmatchcase(device.os_platform.lower(), rules["os"].lower()):
        return False
    return "tags" not in rules or set(rules["tags"]) <= set(device.tags or [])


def assign_group(s: Session, device: Device, groups: list[DeviceGroup] | None = None) -> None:
    """First group by rank whose rules match; else the tenant's 'Ungrouped devices'."""
    if groups is None:
        groups = list(s.scalars(select(DeviceGroup).order_by(DeviceGroup.rank, DeviceGroup.id)))
    default = None
    for group in groups:
        if group.is_default:
            default = group
            continue
        if group_matches(group.rules, device):
            device.group_id = group.id
            return
    device.group_id = default.id if default else None


def reassign_all_devices(s: Session) -> None:
    groups = list(s.scalars(select(DeviceGroup).order_by(DeviceGroup.rank, DeviceGroup.id)))
    for device in s.scalars(select(Device)):
        assign_group(s, device, groups)
