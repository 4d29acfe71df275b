"""The console's security, proven over its full route table (the console's share of
tests/server/test_route_security.py, which leaves console paths to this file):

* every console route needs a session — browsers without one are sent to the sign-in page, other
  methods get 401 — and declares the permission it needs, refusing built-in roles without it;
* sessions: stored hashed, HttpOnly/SameSite/Secure cookie, ended by sign-out, idle time-out and
  lifetime, never accepted by the JSON API;
* every state-changing form checks a CSRF token (and Origin); the sign-in form too;
* lock-out after repeated failures; no open redirect after sign-in; tenants stay apart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from garrison.core import access
from garrison.core.access import Principal
from garrison.server.app import all_routes, create_app
from garrison.server.auth import route_permission, route_public
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.server.web.routes import is_console_path
from garrison.store.models.core import User
from garrison.store.models.web import ConsoleSession
from tests.web.conftest import PASSWORD, USERS, make_store, seed_identities
from tests.web.fleet import find_csrf

ROLES = ["analyst", "security_operator", "admin"]
PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
PUBLIC = {("GET", "/console/login"), ("POST", "/console/login"), ("GET", "/console/static/{name}"), ("GET", "/")}


class Env:
    def __init__(self, tmp: Path, https: bool = False, db_url: str | None = None) -> None:
        load_services()
        self.store = make_store(tmp, db_url)
        self.tenant_id, self.other_id = seed_identities(self.store)
        settings = ServerSettings(data_dir=tmp, insecure_http=not https, rate_limit_per_minute=100_000,
                                  run_jobs=False)
        self.app = create_app(settings, self.store)
        self.base = "https://testserver" if https else "http://testserver"

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=self.base, follow_redirects=False)

    def sign_in(self, role: str = "admin", username: str | None = None) -> TestClient:
        client = self.client()
        token = find_csrf(client.get("/console/login").text)
        r = client.post("/console/login", data={"username": username or USERS[role], "password": PASSWORD,
                                                "csrf_token": token, "next": "/console/devices"})
        assert r.status_code == 303, r.text[:300]
        return client


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    """The real app on a real state store, SQLite and PostgreSQL in turn."""
    e = Env(tmp_path, db_url=db_url)
    yield e
    e.store.dispose()


def console_routes(app: Any) -> list[tuple[str, str, APIRoute]]:
    out = []
    for route in all_routes(app):
        if not isinstance(route, APIRoute) or not is_console_path(route.path):
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            out.append((method, route.path, route))
    assert len(out) > 20, "the console's route table looks empty"
    return out


def fill(path: str) -> str:
    return PARAM.sub("1", path)


def csrf(client: TestClient, path: str = "/console/devices") -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text[:300]
    return find_csrf(r.text)


# --- every route ------------------------------------------------------------------------

def test_only_the_sign_in_page_and_static_files_are_public(env: Env) -> None:
    public = {(m, p) for m, p, r in console_routes(env.app) if route_public(r)}
    assert public == PUBLIC


def test_every_console_route_requires_a_session(env: Env) -> None:
    client = env.client()
    checked = 0
    for method, path, route in console_routes(env.app):
        if (method, path) in PUBLIC:
            continue
        r = client.request(method, fill(path))
        if method == "GET":
            assert r.status_code == 303, f"{method} {path} answered {r.status_code} without a session"
            assert r.headers["location"].startswith("/console/login?next="), (path, r.headers["location"])
        else:
            assert r.status_code == 401, f"{method} {path} answered {r.status_code} without a session"
        checked += 1
    assert checked > 20


def test_a_forged_or_foreign_cookie_is_no_session(env: Env) -> None:
    client = env.client()
    client.cookies.set("garrison_session", "x" * 43, path="/console")
    r = client.get("/console/devices")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")


def test_every_console_route_declares_a_permission_and_refuses_roles_without_it(env: Env) -> None:
    clients = {role: env.sign_in(role) for role in ROLES[:2]}
    tokens = {role: csrf(c) for role, c in clients.items()}
    checked = 0
    for method, path, route in console_routes(env.app):
        if (method, path) in PUBLIC:
            continue
        permission = route_permission(route)
        assert permission is not None, f"{method} {path} declares no permission"
        for lesser in ROLES[:2]:
            if Principal(1, "x", "user", lesser).allows(permission):
                continue
            r = clients[lesser].request(method, fill(path), data={"csrf_token": tokens[lesser]}
                                        if method == "POST" else None)
            assert r.status_code == 403, f"{method} {path} let {lesser} through ({r.status_code})"
            assert "text/html" in r.headers["content-type"]
            checked += 1
    assert checked > 10


def test_every_post_checks_the_csrf_token(env: Env) -> None:
    client = env.sign_in("admin")
    other = env.sign_in("admin")
    foreign_token = csrf(other)
    checked = 0
    for method, path, _route in console_routes(env.app):
        if method != "POST" or (method, path) in PUBLIC:
            continue
        for data in ({}, {"csrf_token": "nope"}, {"csrf_token": foreign_token}):
            r = client.post(fill(path), data=data)
            assert r.status_code == 403, f"POST {path} with {data} answered {r.status_code}"
        checked += 1
    assert checked >= 8
    # a correct token from another site's form is refused by Origin
    r = client.post("/console/devices/x1", data={"csrf_token": csrf(client), "action": "add", "tag": "t"},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


# --- sessions ---------------------------------------------------------------------------

def _cookie_header(response: Any, name: str) -> str:
    for value in response.headers.get_list("set-cookie"):
        if value.startswith(name + "="):
            return value
    raise AssertionError(f"no {name} cookie set")


def test_session_cookie_flags_and_only_a_hash_is_stored(tmp_path: Path) -> None:
    env = Env(tmp_path, https=True)
    client = env.client()
    r = client.get("/console/login")
    assert "secure" in _cookie_header(r, "garrison_login_csrf").lower()
    r = client.post("/console/login", data={"username": "ada", "password": PASSWORD,
                                            "csrf_token": find_csrf(r.text), "next": "/console/"})
    assert r.status_code == 303
    header = _cookie_header(r, "garrison_session").lower()
    for flag in ("httponly", "secure", "samesite=lax", "path=/console"):
        assert flag in header, header
    token = client.cookies.get("garrison_session")
    with env.store.system() as s:
        hashes = list(s.scalars(select(ConsoleSession.token_hash)))
    assert hashes == [hashlib.sha256(token.encode()).hexdigest()]
    env.store.dispose()


def test_sign_out_ends_the_session(env: Env) -> None:
    client = env.sign_in("analyst")
    token = client.cookies.get("garrison_session")
    r = client.post("/console/logout", data={"csrf_token": csrf(client)})
    assert r.status_code == 303 and r.headers["location"] == "/console/login?signedout=1"
    fresh = env.client()
    fresh.cookies.set("garrison_session", token, path="/console")
    assert fresh.get("/console/devices").status_code == 303
    with env.store.system() as s:
        assert s.scalar(select(ConsoleSession.id)) is None


def test_idle_and_lifetime_limits(env: Env) -> None:
    client = env.sign_in("analyst")
    assert client.get("/console/devices").status_code == 200
    with env.store.system() as s:
        s.execute(update(ConsoleSession).values(last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)))
    assert client.get("/console/devices").status_code == 303
    client = env.sign_in("analyst")
    with env.store.system() as s:
        s.execute(update(ConsoleSession).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert client.get("/console/devices").status_code == 303


def test_deleted_or_disabled_users_lose_their_sessions(env: Env) -> None:
    client = env.sign_in("analyst")
    with env.store.system() as s:
        s.execute(update(User).where(User.username == "ann").values(disabled=True))
    assert client.get("/console/devices").status_code == 303


def test_role_changes_apply_at_once(env: Env) -> None:
    client = env.sign_in("security_operator")
    assert client.get("/console/settings/users").status_code == 403
    with env.store.system() as s:
        s.execute(update(User).where(User.username == "sam").values(role="admin"))
    assert client.get("/console/settings/users").status_code == 200


def test_the_console_cookie_is_no_api_credential(env: Env) -> None:
    client = env.sign_in("admin")
    r = client.get("/api/machines")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/json")


# --- sign-in ----------------------------------------------------------------------------

def _attempt(client: TestClient, username: str, password: str) -> Any:
    token = find_csrf(client.get("/console/login").text)
    return client.post("/console/login", data={"username": username, "password": password, "csrf_token": token})


def test_lock_out_after_repeated_failures(env: Env) -> None:
    # One address may fail only access.SOURCE_FAILURES times (tests/server/test_auth_hardening.py):
    # the account's lock-out takes failures from several.
    for i in range(access.LOCKOUT_AFTER):
        client = TestClient(env.app, base_url=env.base, follow_redirects=False,
                            client=(f"203.0.113.{i // access.SOURCE_FAILURES}", 4000))
        r = _attempt(client, "ann", "wrong password!")
        assert r.status_code == 401 and "invalid user name or password" in r.text
    # locked: the right password gets the same answer as a wrong one (no account enumeration)
    r = _attempt(env.client(), "ann", PASSWORD)
    assert r.status_code == 401 and "invalid user name or password" in r.text
    assert "garrison_session" not in r.headers.get("set-cookie", "")
    with env.store.system() as s:
        user = s.scalar(select(User).where(User.username == "ann"))
        assert user.locked_until is not None
    # an admin unlocks it in Settings
    admin = env.sign_in("admin")
    with env.store.system() as s:
        uid = s.scalar(select(User.id).where(User.username == "ann"))
    r = admin.post(f"/console/settings/users/{uid}", data={"csrf_token": csrf(admin), "action": "unlock"})
    assert r.status_code == 303
    assert _attempt(env.client(), "ann", PASSWORD).status_code == 303


def test_the_sign_in_form_needs_its_csrf_cookie(env: Env) -> None:
    client = env.client()
    r = client.post("/console/login", data={"username": "ada", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 400 and "garrison_session" not in r.headers.get("set-cookie", "")


def test_no_open_redirect_after_sign_in(env: Env) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/api/machines", "/console\\@evil"):
        client = env.client()
        token = find_csrf(client.get("/console/login").text)
        r = client.post("/console/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token,
                                                "next": target})
        assert r.status_code == 303 and r.headers["location"] == "/console/", (target, r.headers["location"])


def test_sign_in_returns_to_the_page_asked_for(env: Env) -> None:
    client = env.client()
    r = client.get("/console/devices?exposure=High")
    assert r.status_code == 303
    login = client.get(r.headers["location"])
    token = find_csrf(login.text)
    nxt = re.search(r'name="next" value="([^"]+)"', login.text).group(1).replace("&amp;", "&")
    r = client.post("/console/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token, "next": nxt})
    assert r.headers["location"] == "/console/devices?exposure=High"


def test_tenants_stay_apart(env: Env) -> None:
    with env.store.system() as s:
        _row, secret = access.create_enrollment_secret(s, env.tenant_id)
    r = env.client().post("/agent/v1/enroll", json={"secret": secret, "machine_key": "k" * 16,
                                                    "hostname": "secret-host", "agent_version": "0.1.0"})
    device_id = r.json()["device_id"]
    acme = env.sign_in("admin")
    assert acme.get(f"/console/devices/{device_id}").status_code == 200
    umbrella = env.sign_in(username="otto")
    assert umbrella.get(f"/console/devices/{device_id}").status_code == 404
    assert "secret-host" not in umbrella.get("/console/devices").text
    r = umbrella.post(f"/console/devices/{device_id}", data={"csrf_token": csrf(umbrella), "action": "add",
                                                             "tag": "pwned"})
    assert r.status_code == 404


def test_security_headers_on_pages(env: Env) -> None:
    client = env.sign_in("analyst")
    r = client.get("/console/devices")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    assert "server-timing" in r.headers
