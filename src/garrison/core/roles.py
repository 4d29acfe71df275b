"""Roles: the built-in ones (rows of the permission table) and the custom roles a tenant admin defines.

A user's or API key's ``role`` column holds a role name: ``admin``, ``security_operator``, ``analyst`` or
the name of one of its tenant's ``custom_roles``. Its permissions are looked up when the caller
authenticates (:func:`permissions_of`). Two rules keep custom roles from becoming a way around the
policy:

* no escalation — a caller may create, change or hand out (to a user or key) only a role whose
  permissions it holds itself (:func:`check_grant`);
* a role in use (by a user, or an API key that is not revoked) cannot be deleted (409); renaming one
  renames it on its users and keys in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from garrison.core import permissions
from garrison.core.errors import Conflict, Forbidden, Invalid, NotFound
from garrison.store.models.core import ApiKey, CustomRole, User

if TYPE_CHECKING:
    from garrison.core.access import Principal

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,31}$")
MAX_DESCRIPTION = 2000
MAX_ROLES = 200  # per tenant


def permissions_of(s: Session, tenant_id: int, role: str) -> frozenset[str]:
    """What ``role`` holds in the tenant (any session: the tenant is named in the query). A name that
    is neither built in nor defined holds nothing."""
    builtin = permissions.of_builtin(role)
    if builtin is not None:
        return builtin
    stored = s.scalar(select(CustomRole.permissions).where(CustomRole.tenant_id == tenant_id,
                                                          CustomRole.name == role))
    if stored is None:
        return frozenset()
    # A permission later removed from the table is dropped, never an error at sign-in.
    return frozenset(p for p in stored if p in permissions.PERMISSIONS) | permissions.ALWAYS


def check_role(s: Session, tenant_id: int, role: str) -> str:
    """``role`` if it names a built-in role or one of the tenant's custom roles."""
    if role in permissions.BUILTIN:
        return role
    if s.scalar(select(CustomRole.id).where(CustomRole.tenant_id == tenant_id, CustomRole.name == role)) is None:
        names = [*permissions.BUILTIN_ROLES, *role_names(s, tenant_id)]
        raise Invalid(f"unknown role {role!r}; roles are {', '.join(names)}")
    return role


def role_names(s: Session, tenant_id: int) -> list[str]:
    """The tenant's custom role names, sorted."""
    return list(s.scalars(select(CustomRole.name).where(CustomRole.tenant_id == tenant_id)
                          .order_by(CustomRole.name)))


def custom_roles(s: Session, tenant_id: int) -> list[CustomRole]:
    """The tenant's custom roles, by name."""
    return list(s.scalars(select(CustomRole).where(CustomRole.tenant_id == tenant_id).order_by(CustomRole.name)))


def check_grant(s: Session, granter: Principal, role: str) -> None:
    """Refuse to let ``granter`` hand out a role holding a permission ``granter`` lacks."""
    check_role(s, granter.tenant_id, role)
    _within(granter, permissions_of(s, granter.tenant_id, role), f"the role {role}")


def _within(granter: Principal, wanted: Iterable[str], what: str) -> None:
    missing = sorted(set(wanted) - set(granter.permissions or ()))
    if missing:
        raise Forbidden(f"{what} holds permissions you do not have ({', '.join(missing)}); "
                        "you can give only permissions you hold")


def _check_fields(s: Session, tenant_id: int, name: str, description: str, names: Iterable[str],
                  role_id: int | None = None) -> frozenset[str]:
    if not _NAME_RE.match(name or ""):
        raise Invalid(f"invalid role name {name!r}: use 1-32 letters, digits, space, . _ -")
    if name.lower() in permissions.BUILTIN or name.lower().replace(" ", "_") in permissions.BUILTIN:
        raise Invalid(f"{name!r} is a built-in role")
    if len(description) > MAX_DESCRIPTION:
        raise Invalid(f"description longer than {MAX_DESCRIPTION} characters")
    taken = s.scalar(select(CustomRole.id).where(CustomRole.tenant_id == tenant_id, CustomRole.name == name))
    if taken is not None and taken != role_id:
        raise Conflict(f"a role named {name!r} already exists")
    try:
        return permissions.check_permissions(names)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def create_role(s: Session, granter: Principal, name: str, description: str, names: Iterable[str]) -> CustomRole:
    held = _check_fields(s, granter.tenant_id, name, description, names)
    _within(granter, held, f"the role {name}")
    count = s.scalar(select(func.count()).select_from(CustomRole).where(CustomRole.tenant_id == granter.tenant_id))
    if (count or 0) >= MAX_ROLES:
        raise Invalid(f"a tenant has at most {MAX_ROLES} custom roles")
    role = CustomRole(tenant_id=granter.tenant_id, name=name, description=description,
                      permissions=sorted(held), created_by=granter.actor)
    s.add(role)
    s.flush()
    return role


def get_role(s: Session, tenant_id: int, role_id: int) -> CustomRole:
    role = s.get(CustomRole, role_id)
    if role is None or role.tenant_id != tenant_id:
        raise NotFound(f"no role with id {role_id}")
    return role


def update_role(s: Session, granter: Principal, role: CustomRole, name: str | None = None,
                description: str | None = None, names: Iterable[str] | None = None) -> CustomRole:
    """Change a custom role; a rename is carried to its users and API keys in the same transaction."""
    new_name = role.name if name is None else name
    new_description = role.description if description is None else description
    held = _check_fields(s, role.tenant_id, new_name, new_description,
                         role.permissions if names is None else names, role.id)
    # Changing a role changes what its holders may do: the granter must hold the old and the new set.
    _within(granter, held | set(role.permissions), f"the role {role.name}")
    if new_name != role.name:
        for model in (User, ApiKey):
            s.execute(update(model).where(model.tenant_id == role.tenant_id, model.role == role.name)
                      .values(role=new_name).execution_options(synchronize_session=False))
    role.name, role.description, role.permissions = new_name, new_description, sorted(held)
    s.flush()
    return role


def change_role(s: Session, granter: Principal, holder: User | ApiKey, role: str) -> None:
    """Give a user or an API key another role: the granter must hold both the old and the new role's
    permissions (no one demotes a holder of more than they have, nor promotes past themselves)."""
    check_grant(s, granter, role)
    _within(granter, permissions_of(s, granter.tenant_id, holder.role), f"the role {holder.role}")
    holder.role = role


def role_usage(s: Session, tenant_id: int, name: str) -> tuple[int, int]:
    """(users, API keys that are not revoked) holding the role."""
    users = s.scalar(select(func.count()).select_from(User).where(User.tenant_id == tenant_id, User.role == name))
    keys = s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.tenant_id == tenant_id,
                                                                    ApiKey.role == name, ApiKey.revoked.is_(False)))
    return users or 0, keys or 0


def delete_role(s: Session, granter: Principal, role: CustomRole) -> None:
    _within(granter, role.permissions, f"the role {role.name}")
    users, keys = role_usage(s, role.tenant_id, role.name)
    if users or keys:
        raise Conflict(f"the role {role.name!r} is in use by {users} user(s) and {keys} API key(s); "
                       "give them another role first")
    s.delete(role)
    s.flush()
