"""Roles API: the permission table and a tenant's custom roles (``garrison.core.roles``).

``GET /api/permissions`` lists the table; ``/api/roles`` lists the built-in roles (``isBuiltIn``, no id)
and the tenant's custom roles, and creates, changes and deletes custom roles. A role in use answers 409
to DELETE. Changing a role clears the API-key cache, so keys holding it get the new permissions at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from garrison.core import permissions, roles
from garrison.core.access import Principal
from garrison.core.permissions import P
from garrison.protocol.bounds import Id
from garrison.server.api import models as schema
from garrison.server.api.common import odata_list, returns
from garrison.server.auth import require
from garrison.store.models.core import CustomRole

router = APIRouter(prefix="/api", tags=["administration"])

PermissionName = Annotated[str, Field(max_length=64)]


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=32)
    description: str = Field(default="", max_length=roles.MAX_DESCRIPTION)
    permissions: list[PermissionName] = Field(max_length=len(permissions.PERMISSIONS) + 1)


class RolePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=32)
    description: str | None = Field(default=None, max_length=roles.MAX_DESCRIPTION)
    permissions: list[PermissionName] | None = Field(default=None, max_length=len(permissions.PERMISSIONS) + 1)


def permission_to_api(p: permissions.Permission) -> dict[str, Any]:
    return {"id": p.name, "label": p.label, "description": p.description, "area": p.area,
            "builtInRoles": list(p.roles)}


def builtin_to_api(name: str) -> dict[str, Any]:
    return {"id": None, "name": name, "description": permissions.ROLE_LABELS[name],
            "permissions": sorted(permissions.BUILTIN[name]), "isBuiltIn": True, "createdBy": None,
            "createdAt": None}


def role_to_api(role: CustomRole) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "description": role.description,
            "permissions": sorted(role.permissions), "isBuiltIn": False, "createdBy": role.created_by,
            "createdAt": role.created_at}


@router.get("/permissions", responses=returns(schema.ODataList[schema.Permission]))
def list_permissions(request: Request, principal: Principal = require(P.ROLES_MANAGE)) -> dict[str, Any]:
    return odata_list(request, "Permissions", [permission_to_api(p) for p in permissions.PERMISSIONS.values()])


@router.get("/roles", responses=returns(schema.ODataList[schema.Role]))
def list_roles(request: Request, principal: Principal = require(P.ROLES_MANAGE)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        custom = [role_to_api(r) for r in s.scalars(select(CustomRole).order_by(CustomRole.name))]
    return odata_list(request, "Roles", [*(builtin_to_api(n) for n in permissions.BUILTIN_ROLES), *custom])


@router.post("/roles", status_code=201, responses=returns(schema.Role, 201))
def create_role(body: RoleCreate, request: Request,
                principal: Principal = require(P.ROLES_MANAGE, all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        role = roles.create_role(s, principal, body.name, body.description, body.permissions)
        request.state.audit_target = f"role={role.name}"
        return role_to_api(role)


@router.get("/roles/{role_id}", responses=returns(schema.Role))
def get_role(role_id: Id, request: Request, principal: Principal = require(P.ROLES_MANAGE)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        return role_to_api(roles.get_role(s, principal.tenant_id, role_id))


@router.patch("/roles/{role_id}", responses=returns(schema.Role))
def update_role(role_id: Id, body: RolePatch, request: Request,
                principal: Principal = require(P.ROLES_MANAGE, all_groups=True)) -> dict[str, Any]:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        role = roles.update_role(s, principal, roles.get_role(s, principal.tenant_id, role_id), body.name,
                                 body.description, body.permissions)
        out = role_to_api(role)
    request.app.state.key_cache.clear()
    return out


@router.delete("/roles/{role_id}", status_code=204)
def delete_role(role_id: Id, request: Request, principal: Principal = require(P.ROLES_MANAGE, all_groups=True)) -> None:
    with request.app.state.store.tenant(principal.tenant_id) as s:
        roles.delete_role(s, principal, roles.get_role(s, principal.tenant_id, role_id))
    request.app.state.key_cache.clear()
