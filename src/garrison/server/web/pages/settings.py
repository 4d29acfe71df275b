"""Settings: users, API keys, device groups, enrollment secrets (with the agent install command)
and the status of the vulnerability feeds."""

from __future__ import annotations

import datetime as dt
import shlex
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from garrison.core import access, administration, permissions, roles
from garrison.core.access import Principal
from garrison.core.errors import GarrisonError, Invalid, NotFound
from garrison.core.permissions import P
from garrison.protocol.limits import INT_MAX
from garrison.server.auth import require
from garrison.server.web import session
from garrison.server.web.common import page, redirect, router
from garrison.server.web.render import Ctx, render
from garrison.store.models.core import DeviceGroup, User

TABS = [("groups", "Device groups", P.MACHINES_READ), ("feeds", "Feed status", P.VULNERABILITIES_READ),
        ("users", "Users", P.USERS_MANAGE), ("roles", "Roles", P.ROLES_MANAGE), ("apikeys", "API keys", P.APIKEYS_MANAGE),
        ("enrollment", "Enrollment", P.ENROLLMENT_MANAGE)]


# The built-in roles in the user and API-key forms, least first (the first is the form's default).
BUILTIN_ORDER = (permissions.ANALYST, permissions.OPERATOR, permissions.ADMIN)


def _role_choices(s: Session, tenant_id: int) -> list[tuple[str, str]]:
    """(value, label) of every role a form may assign: built-in ones, then the tenant's own."""
    return [(r, permissions.ROLE_LABELS[r]) for r in BUILTIN_ORDER] + [(r, r) for r in roles.role_names(s, tenant_id)]


def _tabs(ctx: Ctx) -> list[tuple[str, str, str]]:
    return [(key, label, ctx.url(f"/settings/{key}")) for key, label, permission in TABS if ctx.allows(permission)]


@router.get("/settings")
def settings_home(request: Request, principal: Principal = require(P.SELF)) -> Response:
    """The first settings tab the user may open."""
    for key, _label, permission in TABS:
        if principal.allows(permission):
            return RedirectResponse(request.url_for(f"settings_{key}").path
                                    + (f"?{request.url.query}" if request.url.query else ""), status_code=303)
    with page(request, principal, "settings") as (_s, ctx):
        return render(ctx, "settings.html", title="Settings", tab=None, tabs=[])


# --- device groups ----------------------------------------------------------------------

@router.get("/settings/groups")
def settings_groups(request: Request, principal: Principal = require(P.MACHINES_READ)) -> Response:
    with page(request, principal, "settings") as (s, ctx):
        counts = administration.group_device_counts(s)
        rows = [{"g": g, "devices": counts.get(g.id, 0), "rules": _rules_text(g.rules)}
                for g in administration.device_groups(s, principal)]
        return render(ctx, "settings.html", title="Settings · Device groups", tab="groups", tabs=_tabs(ctx),
                      groups=rows)


def _rules_text(rules: dict[str, Any]) -> str:
    parts = []
    for key in ("name", "domain", "os"):
        if key in rules:
            parts.append(f"{key} {rules[key]}")
    if rules.get("tags"):
        parts.append("tags " + ", ".join(rules["tags"]))
    return "; ".join(parts)


def _rules_from(form: dict[str, str]) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    for key in ("name", "domain", "os"):
        value = form.get(f"rule_{key}", "").strip()
        if value:
            rules[key] = value[:200]
    tags = [t.strip() for t in form.get("rule_tags", "").split(",") if t.strip()]
    if tags:
        rules["tags"] = tags[:20]
    return rules


def _int(value: str, what: str, default: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        if default is not None and not value.strip():
            return default
        raise Invalid(f"{what} must be a whole number") from None
    if abs(number) > INT_MAX:
        raise Invalid(f"{what} is out of range")
    return number


async def _admin_form(request: Request, principal: Principal, work: Any, back: str) -> Response:
    form = await session.checked_form(request)

    def run() -> Response:
        try:
            with request.app.state.store.tenant(principal.tenant_id) as s:
                result = work(s, form)
        except GarrisonError as exc:
            if isinstance(exc, NotFound):
                raise
            return redirect(request, back, str(exc), "error")
        if isinstance(result, Response):
            return result
        return redirect(request, back, result)

    return await run_in_threadpool(run)


@router.post("/settings/groups")
async def create_group(request: Request, principal: Principal = require(P.GROUPS_MANAGE, all_groups=True)) -> Response:
    def work(s: Session, form: dict[str, str]) -> str:
        rules = _rules_from(form)
        if not rules:
            raise Invalid("give at least one rule (name pattern, domain, OS or tags)")
        g = access.create_group(s, form.get("name", "").strip(), _int(form.get("rank", ""), "Rank", 100), rules,
                                form.get("description", ""))
        return f"Device group '{g.name}' created; devices were reassigned."

    return await _admin_form(request, principal, work, "/console/settings/groups")


@router.post("/settings/groups/{group_id}")
async def update_group(group_id: int, request: Request, principal: Principal = require(P.GROUPS_MANAGE, all_groups=True)) -> Response:
    def work(s: Session, form: dict[str, str]) -> str:
        if form.get("action") == "delete":
            return f"Device group '{administration.delete_group(s, group_id).name}' deleted."
        group = administration.owned(s, DeviceGroup, group_id, "device group")
        rules, rank = None, None
        if not group.is_default:
            rules = _rules_from(form)
            if not rules:
                raise Invalid("give at least one rule (name pattern, domain, OS or tags)")
            rank = _int(form.get("rank", ""), "Rank", group.rank)
        group = administration.update_group(s, group_id, rank=rank, rules=rules, description=form.get("description"))
        return f"Device group '{group.name}' saved."

    return await _admin_form(request, principal, work, "/console/settings/groups")


# --- feed status ------------------------------------------------------------------------

STALE_AFTER = dt.timedelta(hours=48)


def feed_rows(request: Request) -> list[dict[str, Any]]:
    """The knowledge base's feed status (:func:`garrison.tvm.kb.feeds_status`), with a state for people."""
    from garrison.tvm.kb import feeds_status

    now = dt.datetime.now(dt.UTC)
    rows = feeds_status(request.app.state.store)
    for r in rows:
        ok = r.get("last_success")
        r["state"] = "error" if r.get("error") else ("stale" if ok is None or now - ok > STALE_AFTER else "ok")
        r["held"] = r.get("advisories", r.get("vulnerabilities"))
    return rows


@router.get("/settings/feeds")
def settings_feeds(request: Request, principal: Principal = require(P.VULNERABILITIES_READ)) -> Response:
    with page(request, principal, "settings") as (_s, ctx):
        return render(ctx, "settings.html", title="Settings · Feed status", tab="feeds", tabs=_tabs(ctx),
                      feeds=feed_rows(request))


# --- users ------------------------------------------------------------------------------

@router.get("/settings/users")
def settings_users(request: Request, principal: Principal = require(P.USERS_MANAGE)) -> Response:
    with page(request, principal, "settings") as (s, ctx):
        users = administration.users(s)
        return render(ctx, "settings.html", title="Settings · Users", tab="users", tabs=_tabs(ctx), users=users,
                      roles=_role_choices(s, ctx.principal.tenant_id),
                      role_labels=permissions.ROLE_LABELS, now=dt.datetime.now(dt.UTC))


def _group_ids(s: Session, form_groups: list[str]) -> list[int] | None:
    try:
        return administration.check_group_ids(s, [_int(raw, "Device group") for raw in form_groups])
    except NotFound as exc:  # a form field, not the page's subject: an error on the form
        raise Invalid(str(exc)) from None


@router.post("/settings/users")
async def create_user(request: Request, principal: Principal = require(P.USERS_MANAGE, all_groups=True)) -> Response:
    multi = await session.checked_multi_form(request)
    groups = [v for k, v in multi if k == "groups"]

    def work(s: Session, form: dict[str, str]) -> str:
        roles.check_grant(s, principal, form.get("role", ""))
        user = access.create_user(s, principal.tenant_id, form.get("username", "").strip(), form.get("password", ""),
                                  form.get("role", ""), form.get("email") or None, _group_ids(s, groups))
        return f"User '{user.username}' created."

    return await _admin_form(request, principal, work, "/console/settings/users")


@router.post("/settings/users/{user_id}")
async def update_user(user_id: int, request: Request, principal: Principal = require(P.USERS_MANAGE, all_groups=True)) -> Response:
    def work(s: Session, form: dict[str, str]) -> str:
        action = form.get("action")
        if action == "delete":
            return f"User '{administration.delete_user(s, principal, user_id).username}' deleted."
        if action == "role":
            user = administration.owned(s, User, user_id, "user")
            roles.change_role(s, principal, user, form.get("role", ""))
            return f"User '{user.username}' is now {permissions.ROLE_LABELS.get(user.role, user.role)}."
        if action == "unlock":
            return f"User '{administration.unlock_user(s, user_id).username}' unlocked."
        if action in ("disable", "enable"):
            user = administration.set_user_disabled(s, principal, user_id, action == "disable")
            return f"User '{user.username}' {action}d."
        raise Invalid("unknown action")

    return await _admin_form(request, principal, work, "/console/settings/users")


# --- roles ------------------------------------------------------------------------------

def _areas() -> list[tuple[str, list[permissions.Permission]]]:
    """The permission table grouped by area, for the role form (``self`` is every role's: not offered)."""
    areas: dict[str, list[permissions.Permission]] = {}
    for p in permissions.PERMISSIONS.values():
        if p.name not in permissions.ALWAYS:
            areas.setdefault(p.area, []).append(p)
    return list(areas.items())


@router.get("/settings/roles")
def settings_roles(request: Request, principal: Principal = require(P.ROLES_MANAGE)) -> Response:
    with page(request, principal, "settings") as (s, ctx):
        rows: list[dict[str, Any]] = [{"name": r, "label": permissions.ROLE_LABELS[r], "builtin": True, "role": None,
                 "permissions": permissions.BUILTIN[r], "usage": roles.role_usage(s, principal.tenant_id, r)}
                for r in reversed(BUILTIN_ORDER)]
        rows += [{"name": r.name, "label": r.name, "builtin": False, "role": r, "permissions": set(r.permissions),
                  "usage": roles.role_usage(s, principal.tenant_id, r.name)}
                 for r in roles.custom_roles(s, principal.tenant_id)]
        return render(ctx, "settings.html", title="Settings · Roles", tab="roles", tabs=_tabs(ctx), role_rows=rows,
                      areas=_areas(), labels={p.name: p.label for p in permissions.PERMISSIONS.values()})


@router.post("/settings/roles")
async def create_role(request: Request, principal: Principal = require(P.ROLES_MANAGE, all_groups=True)) -> Response:
    multi = await session.checked_multi_form(request)
    form = dict(multi)
    chosen = [v for k, v in multi if k == "permissions"]

    def work(s: Session) -> str:
        role = roles.create_role(s, principal, form.get("name", "").strip(), form.get("description", ""), chosen)
        request.state.audit_target = f"role={role.name}"
        return f"Role '{role.name}' created."

    return await _roles_form(request, principal, work)


@router.post("/settings/roles/{role_id}")
async def update_role(role_id: int, request: Request,
                      principal: Principal = require(P.ROLES_MANAGE, all_groups=True)) -> Response:
    multi = await session.checked_multi_form(request)
    form = dict(multi)
    chosen = [v for k, v in multi if k == "permissions"]

    def work(s: Session) -> str:
        role = roles.get_role(s, principal.tenant_id, role_id)
        if form.get("action") == "delete":
            roles.delete_role(s, principal, role)
            return f"Role '{role.name}' deleted."
        if form.get("action") == "update":
            roles.update_role(s, principal, role, form.get("name", "").strip(), form.get("description", ""), chosen)
            return f"Role '{role.name}' changed."
        raise Invalid("unknown action")

    response = await _roles_form(request, principal, work)
    request.app.state.key_cache.clear()  # keys holding the role get its new permissions at once
    return response


async def _roles_form(request: Request, principal: Principal, work: Any) -> Response:
    def run() -> Response:
        try:
            with request.app.state.store.tenant(principal.tenant_id) as s:
                message = work(s)
        except GarrisonError as exc:
            if isinstance(exc, NotFound):
                raise
            return redirect(request, "/console/settings/roles", str(exc), "error")
        return redirect(request, "/console/settings/roles", message)

    return await run_in_threadpool(run)


# --- API keys ---------------------------------------------------------------------------

@router.get("/settings/apikeys")
def settings_apikeys(request: Request, principal: Principal = require(P.APIKEYS_MANAGE)) -> Response:
    with page(request, principal, "settings") as (s, ctx):
        return _apikeys_page(s, ctx)


def _apikeys_page(s: Session, ctx: Ctx, new_key: str | None = None, new_name: str = "") -> Response:
    keys = administration.api_keys(s)
    return render(ctx, "settings.html", title="Settings · API keys", tab="apikeys", tabs=_tabs(ctx), keys=keys,
                  roles=_role_choices(s, ctx.principal.tenant_id),
                  role_labels=permissions.ROLE_LABELS, new_key=new_key, new_name=new_name)


@router.post("/settings/apikeys")
async def create_apikey(request: Request, principal: Principal = require(P.APIKEYS_MANAGE, all_groups=True)) -> Response:
    multi = await session.checked_multi_form(request)
    form = dict(multi)
    groups = [v for k, v in multi if k == "groups"]

    def run() -> Response:
        try:
            with page(request, principal, "settings") as (s, ctx):
                roles.check_grant(s, principal, form.get("role", ""))
                _key, secret = access.create_api_key(s, principal.tenant_id, form.get("role", ""),
                                                     form.get("name", ""), principal.actor, _group_ids(s, groups))
                request.state.audit_target = f"apikey={_key.prefix}"
                return _apikeys_page(s, ctx, new_key=secret, new_name=_key.name)
        except GarrisonError as exc:
            return redirect(request, "/console/settings/apikeys", str(exc), "error")

    return await run_in_threadpool(run)


@router.post("/settings/apikeys/{key_id}")
async def revoke_apikey(key_id: int, request: Request, principal: Principal = require(P.APIKEYS_MANAGE, all_groups=True)) -> Response:
    def work(s: Session, form: dict[str, str]) -> str:
        return f"API key {administration.revoke_api_key(s, key_id).prefix} revoked."

    response = await _admin_form(request, principal, work, "/console/settings/apikeys")
    request.app.state.key_cache.clear()
    return response


# --- enrollment secrets -----------------------------------------------------------------

def server_url(request: Request) -> str:
    """The URL agents should use: the configured one unless it names no real host."""
    settings = request.app.state.settings
    if settings.host in ("0.0.0.0", "::", ""):
        return str(request.base_url).rstrip("/")
    return settings.base_url


def install_command(request: Request, secret: str) -> str:
    fp = request.app.state.fingerprint
    cmd = ["garrison", "agent", "run", "--server", server_url(request), "--enroll", secret]
    if fp:
        cmd += ["--fingerprint", fp]
    return " ".join(shlex.quote(c) for c in cmd)


@router.get("/settings/enrollment")
def settings_enrollment(request: Request, principal: Principal = require(P.ENROLLMENT_MANAGE)) -> Response:
    with page(request, principal, "settings") as (s, ctx):
        return _enrollment_page(s, ctx)


def _enrollment_page(s: Session, ctx: Ctx, new_secret: str | None = None, command: str = "") -> Response:
    secrets = administration.enrollment_secrets(s)
    return render(ctx, "settings.html", title="Settings · Enrollment", tab="enrollment", tabs=_tabs(ctx),
                  secrets=secrets, new_secret=new_secret, command=command, now=dt.datetime.now(dt.UTC),
                  fingerprint=ctx.request.app.state.fingerprint, server=server_url(ctx.request))


@router.post("/settings/enrollment")
async def create_enrollment(request: Request, principal: Principal = require(P.ENROLLMENT_MANAGE, all_groups=True)) -> Response:
    form = await session.checked_form(request)

    def run() -> Response:
        try:
            expires = access.parse_duration(form["expires"]) if form.get("expires", "").strip() else None
            uses = _int(form["uses"], "Uses") if form.get("uses", "").strip() else None
            with page(request, principal, "settings") as (s, ctx):
                row, secret = access.create_enrollment_secret(s, principal.tenant_id, expires, uses)
                request.state.audit_target = f"enrollment={row.prefix}"
                return _enrollment_page(s, ctx, new_secret=secret, command=install_command(request, secret))
        except GarrisonError as exc:
            return redirect(request, "/console/settings/enrollment", str(exc), "error")

    return await run_in_threadpool(run)


@router.post("/settings/enrollment/{secret_id}")
async def revoke_enrollment(secret_id: int, request: Request, principal: Principal = require(P.ENROLLMENT_MANAGE, all_groups=True)) -> Response:
    def work(s: Session, form: dict[str, str]) -> str:
        return f"Enrollment secret {administration.revoke_enrollment_secret(s, secret_id).prefix} revoked."

    return await _admin_form(request, principal, work, "/console/settings/enrollment")


