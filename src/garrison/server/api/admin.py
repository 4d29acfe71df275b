"""Administration API: users, API keys, enrollment secrets, device groups, the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from garrison.core import access, audit
from garrison.core.access import Principal
from garrison.core.errors import Invalid, NotFound
from garrison.protocol.bounds import Id
from garrison.server import odata
from garrison.server.api.common import ODATA, odata_list, run_list
from garrison.server.auth import require
from garrison.store.models.core import ApiKey, AuditEntry, DeviceGroup, EnrollmentSecret, Tenant, User

router = APIRouter(prefix="/api", tags=["administration"])


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_store(response: Response) -> None:
    """For answers that carry a secret shown once (API keys, enrollment secrets): no cache keeps it."""
    response.headers["Cache-Control"] = "no-store"


def _get(s: Any, model: Any, ident: int, what: str) -> Any:
    row = s.get(model, ident)
    if row is None or row.tenant_id != s.info["tenant"]:
        raise NotFound(f"no {what} with id {ident}")
    return row


# --- whoami / tenant --------------------------------------------------------------------

@router.get("/me")
def whoami(request: Request, principal: Principal = require("analyst")) -> dict[str, Any]:
    with request.app.state.store.system() as s:
        tenant = s.get(Tenant, principal.tenant_id)
    return {"actor": principal.actor, "actorType": principal.actor_type, "role": principal.role,
            "tenant": tenant.name if tenant else None, "deviceGroupIds": principal.group_ids}


# --- users ------------------------------------------------------------------------------

class UserCreate(Body):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=12, max_length=1024)
    role: str
    email: str | None = Field(default=None, max_length=256)
    deviceGroupIds: list[Id] | None = None


def user_to_api(u: User) -> dict[str, Any]:
    return {"id": u.id, "username": u.username, "email": u.email, "role": u.role,
            "deviceGroupIds": u.device_group_ids, "createdAt": u.created_at, "disabled": u.disabled,
            "lockedUntil": u.locked_until}


@router.get("/users")
def list_users(request: Request, principal: Principal = require("admin")) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return odata_list(request, "Users", [user_to_api(u) for u in s.scalars(select(User).order_by(User.id))])


@router.post("/users", status_code=201)
def create_user(body: UserCreate, request: Request, principal: Principal = require("admin", all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        _check_groups(s, body.deviceGroupIds)
        user = access.create_user(s, principal.tenant_id, body.username, body.password, body.role, body.email,
                                  body.deviceGroupIds)
        request.state.audit_target = f"user={user.username}"
        return user_to_api(user)


@router.delete("/users/{user_id}", status_code=204)
def delete_user(user_id: Id, request: Request, principal: Principal = require("admin", all_groups=True)) -> None:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        user = _get(s, User, user_id, "user")
        if user.username == principal.actor and principal.actor_type == "user":
            raise Invalid("you cannot delete your own account")
        s.delete(user)


def _check_groups(s: Any, ids: list[int] | None) -> None:
    for gid in ids or []:
        _get(s, DeviceGroup, gid, "device group")


# --- API keys ---------------------------------------------------------------------------

class ApiKeyCreate(Body):
    role: str
    name: str = Field(default="", max_length=128)
    deviceGroupIds: list[Id] | None = None


def key_to_api(k: ApiKey) -> dict[str, Any]:
    return {"id": k.id, "name": k.name, "prefix": k.prefix, "role": k.role, "deviceGroupIds": k.device_group_ids,
            "createdBy": k.created_by, "createdAt": k.created_at, "lastUsedAt": k.last_used_at,
            "revoked": k.revoked}


@router.get("/apiKeys")
def list_api_keys(request: Request, principal: Principal = require("admin")) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return odata_list(request, "ApiKeys", [key_to_api(k) for k in s.scalars(select(ApiKey).order_by(ApiKey.id))])


@router.post("/apiKeys", status_code=201)
def create_api_key(body: ApiKeyCreate, request: Request, response: Response,
                   principal: Principal = require("admin", all_groups=True)) -> dict[str, Any]:
    _no_store(response)
    with request.app.state.store.tenant(principal.tenant_id) as s:
        _check_groups(s, body.deviceGroupIds)
        key, secret = access.create_api_key(s, principal.tenant_id, body.role, body.name, principal.actor,
                                            body.deviceGroupIds)
        return {**key_to_api(key), "key": secret}


@router.delete("/apiKeys/{key_id}", status_code=204)
def revoke_api_key(key_id: Id, request: Request, principal: Principal = require("admin", all_groups=True)) -> None:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        _get(s, ApiKey, key_id, "API key").revoked = True
    request.app.state.key_cache.clear()


# --- enrollment secrets -----------------------------------------------------------------

class EnrollmentCreate(Body):
    expires: str | None = Field(default=None, max_length=16, description="duration, e.g. 7d")
    uses: int | None = Field(default=None, ge=1, le=1_000_000)


def enrollment_to_api(e: EnrollmentSecret) -> dict[str, Any]:
    return {"id": e.id, "prefix": e.prefix, "expiresAt": e.expires_at, "maxUses": e.max_uses, "uses": e.uses,
            "createdAt": e.created_at, "revoked": e.revoked}


@router.get("/enrollmentSecrets")
def list_enrollment(request: Request, principal: Principal = require("admin")) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        rows = s.scalars(select(EnrollmentSecret).order_by(EnrollmentSecret.id))
        return odata_list(request, "EnrollmentSecrets", [enrollment_to_api(e) for e in rows])


@router.post("/enrollmentSecrets", status_code=201)
def create_enrollment(body: EnrollmentCreate, request: Request, response: Response,
                      principal: Principal = require("admin", all_groups=True)) -> dict[str, Any]:
    _no_store(response)
    expires = access.parse_duration(body.expires) if body.expires else None
    with request.app.state.store.tenant(principal.tenant_id) as s:
        row, secret = access.create_enrollment_secret(s, principal.tenant_id, expires, body.uses)
        base = request.app.state.settings.base_url
        fp = request.app.state.fingerprint
        cmd = f"garrison agent run --server {base} --enroll {secret}" + (f" --fingerprint {fp}" if fp else "")
        return {**enrollment_to_api(row), "secret": secret, "installCommand": cmd}


@router.delete("/enrollmentSecrets/{secret_id}", status_code=204)
def revoke_enrollment(secret_id: Id, request: Request, principal: Principal = require("admin", all_groups=True)) -> None:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        _get(s, EnrollmentSecret, secret_id, "enrollment secret").revoked = True


# --- device groups ----------------------------------------------------------------------

class GroupCreate(Body):
    name: str = Field(min_length=1, max_length=128)
    rank: int = Field(default=100, ge=0, le=999_999)
    rules: dict[str, Any] = Field(default_factory=dict)
    description: str = Field(default="", max_length=2000)


class GroupUpdate(Body):
    rank: int | None = Field(default=None, ge=0, le=999_999)
    rules: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=2000)


def group_to_api(g: DeviceGroup) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "rank": g.rank, "rules": g.rules, "description": g.description,
            "isDefault": g.is_default}


@router.get("/deviceGroups")
def list_groups(request: Request, principal: Principal = require("analyst")) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        rows = s.scalars(select(DeviceGroup).order_by(DeviceGroup.rank, DeviceGroup.id))
        visible = [g for g in rows if principal.group_ids is None or g.id in principal.group_ids]
        return odata_list(request, "DeviceGroups", [group_to_api(g) for g in visible])


@router.post("/deviceGroups", status_code=201)
def create_group(body: GroupCreate, request: Request, principal: Principal = require("admin", all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return group_to_api(access.create_group(s, body.name, body.rank, body.rules, body.description))


@router.get("/deviceGroups/{group_id}")
def get_group(group_id: Id, request: Request, principal: Principal = require("analyst")) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        group = _get(s, DeviceGroup, group_id, "device group")
        if principal.group_ids is not None and group.id not in principal.group_ids:
            raise NotFound(f"no device group with id {group_id}")
        return group_to_api(group)


@router.patch("/deviceGroups/{group_id}")
def update_group(group_id: Id, body: GroupUpdate, request: Request,
                 principal: Principal = require("admin", all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        group = _get(s, DeviceGroup, group_id, "device group")
        if body.rules is not None:
            if group.is_default:
                raise Invalid("the default group has no rules")
            access.validate_group_rules(body.rules)
            group.rules = body.rules
        if body.rank is not None and not group.is_default:
            group.rank = body.rank
        if body.description is not None:
            group.description = body.description
        s.flush()
        access.reassign_all_devices(s)
        return group_to_api(group)


@router.delete("/deviceGroups/{group_id}", status_code=204)
def delete_group(group_id: Id, request: Request, principal: Principal = require("admin", all_groups=True)) -> None:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        group = _get(s, DeviceGroup, group_id, "device group")
        if group.is_default:
            raise Invalid("the default group cannot be deleted")
        s.delete(group)
        s.flush()
        access.reassign_all_devices(s)


# --- audit log --------------------------------------------------------------------------

def audit_fields() -> dict[str, odata.Field]:
    return {"timestamp": odata.Field(AuditEntry.at, dt.datetime), "actor": odata.Field(AuditEntry.actor),
            "action": odata.Field(AuditEntry.action), "target": odata.Field(AuditEntry.target),
            "statusCode": odata.Field(AuditEntry.status_code, int), "sourceIp": odata.Field(AuditEntry.source_ip)}


@router.get("/auditLogs", openapi_extra=ODATA)
def audit_log(request: Request, principal: Principal = require("admin", all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return run_list(s, request, select(AuditEntry), audit_fields(), lambda r: audit.to_api(r[0]), "AuditLogs",
                        default_order=[AuditEntry.at.desc(), AuditEntry.id.desc()])
