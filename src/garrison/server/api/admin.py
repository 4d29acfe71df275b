"""Administration API: users, API keys, enrollment secrets, device groups, the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from garrison.core import access, administration, audit, roles
from garrison.core.access import Principal
from garrison.core.permissions import P
from garrison.protocol.bounds import Id
from garrison.server import odata
from garrison.server.api import models as schema
from garrison.server.api.common import ODATA, odata_list, returns, run_list
from garrison.server.auth import require
from garrison.store.models.core import ApiKey, AuditEntry, DeviceGroup, EnrollmentSecret, Tenant, User

router = APIRouter(prefix="/api", tags=["administration"])


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_store(response: Response) -> None:
    """For answers that carry a secret shown once (API keys, enrollment secrets): no cache keeps it."""
    response.headers["Cache-Control"] = "no-store"


# --- whoami / tenant --------------------------------------------------------------------

@router.get("/me", responses=returns(schema.Me))
def whoami(request: Request, principal: Principal = require(P.SELF)) -> dict[str, Any]:
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


@router.get("/users", responses=returns(schema.ODataList[schema.User]))
def list_users(request: Request, principal: Principal = require(P.USERS_MANAGE)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return odata_list(request, "Users", [user_to_api(u) for u in administration.users(s)])


@router.post("/users", status_code=201, responses=returns(schema.User, 201))
def create_user(body: UserCreate, request: Request, principal: Principal = require(P.USERS_MANAGE, all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        roles.check_grant(s, principal, body.role)
        user = access.create_user(s, principal.tenant_id, body.username, body.password, body.role, body.email,
                                  administration.check_group_ids(s, body.deviceGroupIds))
        request.state.audit_target = f"user={user.username}"
        return user_to_api(user)


class UserPatch(Body):
    role: str = Field(min_length=1, max_length=32)


@router.patch("/users/{user_id}", responses=returns(schema.User))
def update_user(user_id: Id, body: UserPatch, request: Request,
                principal: Principal = require(P.USERS_MANAGE, all_groups=True)) -> dict[str, Any]:
    """Give a user another role (built-in or custom); it applies to the user's next request."""
    with request.app.state.store.tenant(principal.tenant_id) as s:
        user = administration.owned(s, User, user_id, "user")
        roles.change_role(s, principal, user, body.role)
        request.state.audit_target = f"user={user.username}"
        return user_to_api(user)


@router.delete("/users/{user_id}", status_code=204)
def delete_user(user_id: Id, request: Request, principal: Principal = require(P.USERS_MANAGE, all_groups=True)) -> None:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        administration.delete_user(s, principal, user_id)


# --- API keys ---------------------------------------------------------------------------

class ApiKeyCreate(Body):
    role: str
    name: str = Field(default="", max_length=128)
    deviceGroupIds: list[Id] | None = None


def key_to_api(k: ApiKey) -> dict[str, Any]:
    return {"id": k.id, "name": k.name, "prefix": k.prefix, "role": k.role, "deviceGroupIds": k.device_group_ids,
            "createdBy": k.created_by, "createdAt": k.created_at, "lastUsedAt": k.last_used_at,
            "revoked": k.revoked}


@router.get("/apiKeys", responses=returns(schema.ODataList[schema.ApiKey]))
def list_api_keys(request: Request, principal: Principal = require(P.APIKEYS_MANAGE)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return odata_list(request, "ApiKeys", [key_to_api(k) for k in administration.api_keys(s)])


@router.post("/apiKeys", status_code=201, responses=returns(schema.NewApiKey, 201))
def create_api_key(body: ApiKeyCreate, request: Request, response: Response,
                   principal: Principal = require(P.APIKEYS_MANAGE, all_groups=True)) -> dict[str, Any]:
    _no_store(response)
    with request.app.state.store.tenant(principal.tenant_id) as s:
        roles.check_grant(s, principal, body.role)
        key, secret = access.create_api_key(s, principal.tenant_id, body.role, body.name, principal.actor,
                                            administration.check_group_ids(s, body.deviceGroupIds))
        return {**key_to_api(key), "key": secret}


@router.delete("/apiKeys/{key_id}", status_code=204)
def revoke_api_key(key_id: Id, request: Request, principal: Principal = require(P.APIKEYS_MANAGE, all_groups=True)) -> None:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        administration.revoke_api_key(s, key_id)
    request.app.state.key_cache.clear()


# --- enrollment secrets -----------------------------------------------------------------

class EnrollmentCreate(Body):
    expires: str | None = Field(default=None, max_length=16, description="duration, e.g. 7d")
    uses: int | None = Field(default=None, ge=1, le=1_000_000)


def enrollment_to_api(e: EnrollmentSecret) -> dict[str, Any]:
    return {"id": e.id, "prefix": e.prefix, "expiresAt": e.expires_at, "maxUses": e.max_uses, "uses": e.uses,
            "createdAt": e.created_at, "revoked": e.revoked}


@router.get("/enrollmentSecrets", responses=returns(schema.ODataList[schema.EnrollmentSecret]))
def list_enrollment(request: Request, principal: Principal = require(P.ENROLLMENT_MANAGE)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return odata_list(request, "EnrollmentSecrets",
                          [enrollment_to_api(e) for e in administration.enrollment_secrets(s)])


@router.post("/enrollmentSecrets", status_code=201, responses=returns(schema.NewEnrollmentSecret, 201))
def create_enrollment(body: EnrollmentCreate, request: Request, response: Response,
                      principal: Principal = require(P.ENROLLMENT_MANAGE, all_groups=True)) -> dict[str, Any]:
    _no_store(response)
    expires = access.parse_duration(body.expires) if body.expires else None
    with request.app.state.store.tenant(principal.tenant_id) as s:
        row, secret = access.create_enrollment_secret(s, principal.tenant_id, expires, body.uses)
        base = request.app.state.settings.base_url
        fp = request.app.state.fingerprint
        cmd = f"garrison agent run --server {base} --enroll {secret}" + (f" --fingerprint {fp}" if fp else "")
        return {**enrollment_to_api(row), "secret": secret, "installCommand": cmd}


@router.delete("/enrollmentSecrets/{secret_id}", status_code=204)
def revoke_enrollment(secret_id: Id, request: Request, principal: Principal = require(P.ENROLLMENT_MANAGE, all_groups=True)) -> None:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        administration.revoke_enrollment_secret(s, secret_id)


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


@router.get("/deviceGroups", responses=returns(schema.ODataList[schema.DeviceGroup]))
def list_groups(request: Request, principal: Principal = require(P.MACHINES_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return odata_list(request, "DeviceGroups", [group_to_api(g) for g in administration.device_groups(s, principal)])


@router.post("/deviceGroups", status_code=201, responses=returns(schema.DeviceGroup, 201))
def create_group(body: GroupCreate, request: Request, principal: Principal = require(P.GROUPS_MANAGE, all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return group_to_api(access.create_group(s, body.name, body.rank, body.rules, body.description))


@router.get("/deviceGroups/{group_id}", responses=returns(schema.DeviceGroup))
def get_group(group_id: Id, request: Request, principal: Principal = require(P.MACHINES_READ)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return group_to_api(administration.device_group(s, principal, group_id))


@router.patch("/deviceGroups/{group_id}", responses=returns(schema.DeviceGroup))
def update_group(group_id: Id, body: GroupUpdate, request: Request,
                 principal: Principal = require(P.GROUPS_MANAGE, all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return group_to_api(administration.update_group(s, group_id, rank=body.rank, rules=body.rules,
                                                        description=body.description))


@router.delete("/deviceGroups/{group_id}", status_code=204)
def delete_group(group_id: Id, request: Request, principal: Principal = require(P.GROUPS_MANAGE, all_groups=True)) -> None:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        administration.delete_group(s, group_id)


# --- audit log --------------------------------------------------------------------------

def audit_fields() -> dict[str, odata.Field]:
    return {"timestamp": odata.Field(AuditEntry.at, dt.datetime), "actor": odata.Field(AuditEntry.actor),
            "action": odata.Field(AuditEntry.action), "target": odata.Field(AuditEntry.target),
            "statusCode": odata.Field(AuditEntry.status_code, int), "sourceIp": odata.Field(AuditEntry.source_ip)}


@router.get("/auditLogs", openapi_extra=ODATA, responses=returns(schema.ODataList[schema.AuditEntry]))
def audit_log(request: Request, principal: Principal = require(P.AUDIT_READ, all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return run_list(s, request, select(AuditEntry), audit_fields(), lambda r: audit.to_api(r[0]), "AuditLogs",
                        default_order=[AuditEntry.at.desc(), AuditEntry.id.desc()])
