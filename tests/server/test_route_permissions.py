"""The route walk of the permission policy: every route of the built app, API and console, checks exactly
the permission it declares.

For each route, a caller holding every permission *except* the route's one is refused (403, never a 5xx),
and a caller holding *only* that permission (plus ``self``, which every role holds) is not refused with
403. Callers are API keys (every route) and console user sessions (console routes), with custom roles
made for the purpose. Public and device routes declare no permission; they are counted, not walked. A
route added later is walked without anyone updating this file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from garrison.core import access, roles
from garrison.core.permissions import ALWAYS, PERMISSIONS
from garrison.core.security import hash_password
from garrison.server.app import all_routes, create_app
from garrison.server.auth import route_device_auth, route_permission, route_public
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.server.web import session
from garrison.server.web.routes import is_console_path
from garrison.store.db import Store
from garrison.store.models import metadata
from garrison.store.models.core import User
from tests.pg import create_database, drop_database

PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
# Permissions a route's caller needs besides the route's own to be let in (none today: a route checks one).
ALSO_NEEDED: dict[str, set[str]] = {}


@dataclass
class Caller:
    key: dict[str, str]  # Authorization header
    cookie: str  # console session
    csrf: str


@dataclass
class Walk:
    app: Any
    client: TestClient
    routes: list[tuple[str, str, APIRoute, str]]  # method, path, route, permission
    without: dict[str, Caller] = field(default_factory=dict)  # every permission except the key
    only: dict[str, Caller] = field(default_factory=dict)  # the key's permission alone


def _caller(s: Any, tenant_id: int, name: str, held: set[str], password_hash: str) -> Caller:
    admin = access.Principal(tenant_id, "walk", "cli", "admin")
    roles.create_role(s, admin, name, "", held)
    _row, key = access.create_api_key(s, tenant_id, name, name)
    user = User(tenant_id=tenant_id, username=f"walk-{name}", password_hash=password_hash, role=name)
    s.add(user)
    s.flush()
    token = session.create(s, user, "127.0.0.1", "route walk")
    return Caller({"Authorization": f"Bearer {key}"}, token, session.csrf_for(token))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def walk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    """One app and one database per backend, with a caller per permission (both kinds)."""
    tmp: Path = tmp_path_factory.mktemp("walk")
    url = f"sqlite:///{tmp / 'state.db'}"
    if request.param == "postgresql":
        url = create_database(request.getfixturevalue("pg_base_url"), template=request.getfixturevalue("pg_template"))
    store = Store(url)
    metadata.create_all(store.engine)
    load_services()
    app = create_app(ServerSettings(data_dir=tmp, rate_limit_per_minute=1_000_000, run_jobs=False,
                                    heartbeat_interval=0), store)
    routes = []
    for route in all_routes(app):
        if not isinstance(route, APIRoute) or route_public(route) or route_device_auth(route):
            continue
        permission = route_permission(route)
        assert permission in PERMISSIONS, f"{route.path} declares no permission"
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, route.path, route, permission))
    declared = {p for *_rest, p in routes}
    password_hash = hash_password("route walk: nobody signs in with this")
    w = Walk(app, TestClient(app, base_url="https://testserver", follow_redirects=False), routes)
    with store.system() as s:
        tenant = access.create_tenant(s, "walk")
        for i, permission in enumerate(sorted(declared)):
            others = set(PERMISSIONS) - {permission}
            if permission not in ALWAYS:
                w.without[permission] = _caller(s, tenant.id, f"without {i}", others, password_hash)
            w.only[permission] = _caller(s, tenant.id, f"only {i}", {permission} | ALSO_NEEDED.get(permission, set()),
                                         password_hash)
    with w.client:
        yield w
    store.dispose()
    if request.param == "postgresql":
        drop_database(url)


def _call(w: Walk, method: str, path: str, caller: Caller, console: bool) -> Any:
    url = PARAM.sub("999999", path)  # no such object: the handler never refuses for its own reasons
    if console:
        w.client.cookies.set(session.COOKIE, caller.cookie, path="/console")
        try:
            return w.client.request(method, url, data={session.CSRF_FIELD: caller.csrf} if method == "POST" else None)
        finally:
            w.client.cookies.clear()
    return w.client.request(method, url, headers=caller.key)


def test_every_route_refuses_a_caller_without_its_permission(walk: Walk) -> None:
    checked = 0
    for method, path, _route, permission in walk.routes:
        if permission in ALWAYS:
            continue  # held by every role: nobody is without it
        kinds = [False, True] if is_console_path(path) else [False]
        for console in kinds:
            r = _call(walk, method, path, walk.without[permission], console)
            assert r.status_code == 403, \
                f"{method} {path} ({permission}) let a {'user' if console else 'key'} without it through: " \
                f"{r.status_code} {r.text[:200]}"
            checked += 1
    assert checked > 120


def test_every_route_lets_in_a_caller_with_only_its_permission(walk: Walk) -> None:
    checked = 0
    seen_console = seen_api = False
    for method, path, _route, permission in walk.routes:
        console_path = is_console_path(path)
        for console in ([False, True] if console_path else [False]):
            r = _call(walk, method, path, walk.only[permission], console)
            assert r.status_code != 403 and r.status_code < 500, \
                f"{method} {path} refused a {'user' if console else 'key'} holding {permission}: " \
                f"{r.status_code} {r.text[:200]}"
            checked += 1
        seen_console |= console_path
        seen_api |= not console_path
    assert checked > 140 and seen_console and seen_api


def test_the_walk_covers_every_declared_permission_and_only_public_and_device_routes_are_skipped(walk: Walk) -> None:
    walked = {(m, p) for m, p, *_ in walk.routes}
    skipped = [r for r in all_routes(walk.app) if isinstance(r, APIRoute)
               and not any((m, r.path) in walked for m in r.methods)]
    assert skipped and all(route_public(r) or route_device_auth(r) for r in skipped)
    assert {p for *_rest, p in walk.routes} <= set(walk.only)
