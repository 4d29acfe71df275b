"""The console's Roles tab (Settings): custom roles defined with the permissions' labels, given to users,
and what a user of such a role sees and may do."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from garrison.store.models.core import User
from tests.web.conftest import PASSWORD
from tests.web.test_console_security import Env, csrf


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    e = Env(tmp_path, db_url=db_url)
    yield e
    e.store.dispose()


def _flash(response: object) -> str:
    cookie = response.headers.get("set-cookie", "")  # type: ignore[attr-defined]
    m = re.search(r"garrison_flash=\"?([^;\"]*)", cookie)
    return unquote(m.group(1)) if m else ""


def _row(page: str, name: str) -> str:
    m = re.search(r'<tr data-role="' + re.escape(name) + r'">(.*?)</tr>', page, re.DOTALL)
    assert m, f"no row for role {name}"
    return html.unescape(m.group(1))


def test_an_admin_defines_a_role_gives_it_to_a_user_and_the_user_gets_just_that(env: Env) -> None:
    admin = env.sign_in("admin")
    page = admin.get("/console/settings/roles")
    assert page.status_code == 200
    # people read labels, not permission ids
    analyst = _row(page.text, "analyst")
    assert "Analyst" in analyst and "View devices" in analyst and "machines.read" not in analyst
    token = csrf(admin, "/console/settings/roles")
    r = admin.post("/console/settings/roles", data={"csrf_token": token, "name": "Triage", "description": "first line",
                                                    "permissions": ["machines.read", "machines.act"]})
    assert r.status_code == 303 and _flash(r).startswith("ok:Role 'Triage' created")
    row = _row(admin.get("/console/settings/roles").text, "Triage")
    assert "View devices, Act on devices" in row and "first line" in row
    # an unknown permission is refused with a message, nothing stored
    r = admin.post("/console/settings/roles", data={"csrf_token": token, "name": "Bad", "permissions": ["x.y"]})
    assert _flash(r).startswith("error:unknown permission")
    assert 'data-role="Bad"' not in admin.get("/console/settings/roles").text

    users_page = admin.get("/console/settings/users").text
    assert '<option value="Triage">Triage</option>' in users_page
    assert '<option value="security_operator">Security operator</option>' in users_page
    r = admin.post("/console/settings/users", data={"csrf_token": csrf(admin, "/console/settings/users"),
                                                    "username": "tess", "password": PASSWORD, "role": "Triage"})
    assert r.status_code == 303 and _flash(r).startswith("ok:"), _flash(r)

    tess = env.sign_in(username="tess")
    assert tess.get("/console/devices").status_code == 200
    assert tess.get("/console/software").status_code == 403
    assert tess.get("/console/settings/users").status_code == 403
    groups = tess.get("/console/settings/groups").text
    assert ">Device groups<" in groups and ">Users<" not in groups and ">Roles<" not in groups
    # the menu offers only what the role may open; Settings opens the first tab it may see
    nav = re.search(r'<nav id="mainnav".*?</nav>', groups, re.DOTALL)
    assert nav and ">Devices<" in nav.group(0) and ">Software inventory<" not in nav.group(0)
    assert tess.get("/console/settings").headers["location"] == "/console/settings/groups"

    # in use: the delete is refused with the reason
    role_id = re.search(r'action="/console/settings/roles/(\d+)"', admin.get("/console/settings/roles").text)
    assert role_id
    r = admin.post(f"/console/settings/roles/{role_id.group(1)}", data={"csrf_token": token, "action": "delete"})
    assert _flash(r).startswith("error:the role 'Triage' is in use by 1 user(s)")
    # a change takes effect on the user's next request
    r = admin.post(f"/console/settings/roles/{role_id.group(1)}",
                   data={"csrf_token": token, "action": "update", "name": "Triage", "description": "",
                         "permissions": ["machines.read", "vulnerabilities.read"]})
    assert _flash(r).startswith("ok:"), _flash(r)
    assert tess.get("/console/software").status_code == 200
    # and a user is given another role from the users table
    with env.store.system() as s:
        tess_id = s.scalar(select(User.id).where(User.username == "tess"))
    assert f'action="/console/settings/users/{tess_id}" class="inline" data-testid="change-role"' in         admin.get("/console/settings/users").text
    r = admin.post(f"/console/settings/users/{tess_id}", data={
        "csrf_token": csrf(admin, "/console/settings/users"), "action": "role", "role": "analyst"})
    assert _flash(r) == "ok:User 'tess' is now Analyst.", _flash(r)
    assert tess.get("/console/").status_code == 200


def test_only_role_managers_reach_the_roles_tab(env: Env) -> None:
    for role in ("analyst", "security_operator"):
        client = env.sign_in(role)
        assert client.get("/console/settings/roles").status_code == 403
        assert ">Roles<" not in client.get("/console/settings/groups").text
    assert ">Roles<" in env.sign_in("admin").get("/console/settings/groups").text
