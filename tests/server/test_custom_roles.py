"""Custom roles (``garrison.core.roles``, ``/api/roles``): a tenant admin's own sets of permissions, given
to users and API keys like the built-in roles, validated against the table, kept inside the tenant,
never a way to gain a permission one does not hold, and never deleted while in use."""

from __future__ import annotations

from typing import Any

from garrison.core import access
from garrison.core.permissions import BUILTIN, PERMISSIONS
from tests.server.conftest import Env


def _key(env: Env, role: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    r = env.client.post("/api/apiKeys", json={"role": role, "name": role}, headers=headers or env.a.headers())
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


def _role(env: Env, name: str, permissions: list[str], headers: dict[str, str] | None = None) -> Any:
    return env.client.post("/api/roles", json={"name": name, "description": f"{name} role", "permissions": permissions},
                           headers=headers or env.a.headers())


def test_custom_role_lifecycle_and_what_its_holders_may_do(env: Env) -> None:
    h = env.a.headers()
    listed = env.client.get("/api/roles", headers=h).json()["value"]
    assert [(r["name"], r["isBuiltIn"]) for r in listed] == [("admin", True), ("security_operator", True),
                                                            ("analyst", True)]
    assert set(listed[2]["permissions"]) == BUILTIN["analyst"]
    table = env.client.get("/api/permissions", headers=h).json()["value"]
    assert {p["id"] for p in table} == set(PERMISSIONS)
    assert next(p for p in table if p["id"] == "machines.act")["builtInRoles"] == ["admin", "security_operator"]

    r = _role(env, "Tagger", ["machines.read", "machines.act"])
    assert r.status_code == 201, r.text
    role = r.json()
    assert role["permissions"] == ["machines.act", "machines.read", "self"] and not role["isBuiltIn"]
    assert role["createdBy"] == "apikey:" + env.a.keys["admin"].split("_")[1]
    # validated against the table, named unlike the built-in roles, unique in the tenant
    assert _role(env, "Flyer", ["machines.fly"]).json()["error"]["code"] == "InvalidRequest"
    assert _role(env, "admin", ["machines.read"]).status_code == 400
    assert _role(env, "Security operator", ["machines.read"]).status_code == 400
    assert _role(env, "Tagger", ["machines.read"]).status_code == 409
    assert _role(env, "x" * 33, ["machines.read"]).status_code == 422

    tagger = _key(env, "Tagger")
    assert env.client.get("/api/machines", headers=tagger).status_code == 200
    assert env.client.get("/api/vulnerabilities", headers=tagger).status_code == 403
    me = env.client.get("/api/me", headers=tagger).json()
    assert me["role"] == "Tagger"

    # a change applies at once to the keys holding the role (the key cache is cleared)
    r = env.client.patch(f"/api/roles/{role['id']}", json={"permissions": ["machines.read", "vulnerabilities.read"]},
                         headers=h)
    assert r.status_code == 200, r.text
    assert env.client.get("/api/vulnerabilities", headers=tagger).status_code == 200
    # a rename follows the role onto its users and keys
    user = env.client.post("/api/users", json={"username": "tina", "password": "correct horse battery",
                                               "role": "Tagger"}, headers=h)
    assert user.status_code == 201, user.text
    r = env.client.patch(f"/api/roles/{role['id']}", json={"name": "Reader"}, headers=h)
    assert r.json()["name"] == "Reader"
    assert {u["username"]: u["role"] for u in env.client.get("/api/users", headers=h).json()["value"]}["tina"] \
        == "Reader"
    assert env.client.get("/api/me", headers=tagger).json()["role"] == "Reader"
    assert env.client.get("/api/machines", headers=tagger).status_code == 200

    # deleting a role in use is refused, clearly; once unused it goes
    r = env.client.delete(f"/api/roles/{role['id']}", headers=h)
    assert r.status_code == 409
    assert "in use by 1 user(s) and 1 API key(s)" in r.json()["error"]["message"]
    assert env.client.delete(f"/api/users/{user.json()['id']}", headers=h).status_code == 204
    key_id = next(k["id"] for k in env.client.get("/api/apiKeys", headers=h).json()["value"] if k["role"] == "Reader")
    assert env.client.delete(f"/api/apiKeys/{key_id}", headers=h).status_code == 204
    assert env.client.delete(f"/api/roles/{role['id']}", headers=h).status_code == 204
    assert env.client.get(f"/api/roles/{role['id']}", headers=h).status_code == 404
    # an unknown role is no role
    assert env.client.post("/api/apiKeys", json={"role": "Reader"}, headers=h).status_code == 400


def test_custom_roles_stay_in_their_tenant(env: Env) -> None:
    role = _role(env, "Alpha only", ["machines.read"]).json()
    hb = env.b.headers()
    assert env.client.get(f"/api/roles/{role['id']}", headers=hb).status_code == 404
    assert env.client.patch(f"/api/roles/{role['id']}", json={"name": "Mine"}, headers=hb).status_code == 404
    assert env.client.delete(f"/api/roles/{role['id']}", headers=hb).status_code == 404
    assert "Alpha only" not in [r["name"] for r in env.client.get("/api/roles", headers=hb).json()["value"]]
    assert env.client.post("/api/apiKeys", json={"role": "Alpha only"}, headers=hb).status_code == 400
    # the same name is free in another tenant, and means that tenant's role
    assert _role(env, "Alpha only", ["vulnerabilities.read"], hb).status_code == 201
    bravo = _key(env, "Alpha only", hb)
    assert env.client.get("/api/machines", headers=bravo).status_code == 403
    assert env.client.get("/api/vulnerabilities", headers=bravo).status_code == 200


def test_no_one_gains_a_permission_through_a_role(env: Env) -> None:
    # A role administrator that is no admin: it may manage roles and keys, nothing on devices.
    assert _role(env, "Role admin", ["roles.manage", "apikeys.manage", "machines.read"]).status_code == 201
    ra = _key(env, "Role admin")
    refused = _role(env, "Operator plus", ["machines.read", "machines.act"], ra)
    assert refused.status_code == 403 and "machines.act" in refused.json()["error"]["message"]
    own = next(r for r in env.client.get("/api/roles", headers=ra).json()["value"] if r["name"] == "Role admin")
    assert env.client.patch(f"/api/roles/{own['id']}", json={"permissions": ["roles.manage", "apikeys.manage",
                                                                            "users.manage"]},
                            headers=ra).status_code == 403
    # nor hand out a built-in role above its own permissions
    assert env.client.post("/api/apiKeys", json={"role": "admin"}, headers=ra).status_code == 403
    assert env.client.post("/api/apiKeys", json={"role": "analyst"}, headers=ra).status_code == 403  # hunt etc.
    assert _role(env, "Viewer", ["machines.read"], ra).status_code == 201
    assert env.client.post("/api/apiKeys", json={"role": "Viewer"}, headers=ra).status_code == 201
    # a role the role admin cannot fully hold is not its to delete or change
    strong = _role(env, "Strong", ["machines.offboard"]).json()
    assert env.client.delete(f"/api/roles/{strong['id']}", headers=ra).status_code == 403
    assert env.client.patch(f"/api/roles/{strong['id']}", json={"permissions": ["machines.read"]},
                            headers=ra).status_code == 403
    # the built-in roles are no rows: they cannot be changed or deleted
    assert env.client.delete("/api/roles/0", headers=env.a.headers()).status_code == 422


def test_a_custom_roles_permissions_at_sign_in(env: Env) -> None:
    with env.store.tenant(env.a.id) as s:
        from garrison.core import roles

        admin = access.Principal(env.a.id, "root", "cli", "admin")
        roles.create_role(s, admin, "Hunter", "", ["hunt", "events.read"])
        user = access.create_user(s, env.a.id, "hank", "correct horse battery", "Hunter")
        principal = access.user_principal(s, user)
    assert principal.permissions == {"hunt", "events.read", "self"}
    assert principal.allows("hunt") and not principal.allows("machines.read")
    with env.store.system() as s:
        # a permission that left the table is dropped, not an error at sign-in
        from sqlalchemy import update

        from garrison.store.models.core import CustomRole

        s.execute(update(CustomRole).values(permissions=["hunt", "teleport"]))
        assert roles.permissions_of(s, env.a.id, "Hunter") == {"hunt", "self"}
        assert roles.permissions_of(s, env.b.id, "Hunter") == frozenset()


def test_a_user_is_given_another_role(env: Env) -> None:
    h = env.a.headers()
    assert _role(env, "Viewer", ["machines.read"]).status_code == 201
    user = env.client.post("/api/users", json={"username": "vic", "password": "correct horse battery",
                                               "role": "analyst"}, headers=h).json()
    r = env.client.patch(f"/api/users/{user['id']}", json={"role": "Viewer"}, headers=h)
    assert r.status_code == 200 and r.json()["role"] == "Viewer"
    assert env.client.patch(f"/api/users/{user['id']}", json={"role": "Nobody"}, headers=h).status_code == 400
    # a user manager without admin's permissions neither promotes past itself nor demotes an admin
    assert _role(env, "User admin", ["users.manage", "machines.read"]).status_code == 201
    ua = _key(env, "User admin")
    assert env.client.patch(f"/api/users/{user['id']}", json={"role": "admin"}, headers=ua).status_code == 403
    boss = env.client.post("/api/users", json={"username": "boss", "password": "correct horse battery",
                                               "role": "admin"}, headers=h).json()
    assert env.client.patch(f"/api/users/{boss['id']}", json={"role": "Viewer"}, headers=ua).status_code == 403
    assert env.client.patch(f"/api/users/{user['id']}", json={"role": "User admin"}, headers=ua).status_code == 200
