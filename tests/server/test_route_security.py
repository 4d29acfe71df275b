"""Every route authenticates, checks its permission, and stays inside its tenant — proven over the
app's full route table, so a route added later cannot be forgotten."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.routing import APIRoute

from garrison.core import access
from garrison.core.access import Principal
from garrison.server.app import all_routes
from garrison.server.auth import route_permission, route_public
from garrison.server.web.routes import is_console_path
from tests.server.conftest import Env, device_report, enroll, upload

ROLES = ["analyst", "security_operator", "admin"]
PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def api_routes(env: Env) -> list[tuple[str, str, APIRoute]]:
    out = []
    for route in all_routes(env.app):
        if not isinstance(route, APIRoute) or route_public(route):
            continue
        if is_console_path(route.path):
            continue  # the web console: proven by tests/web/test_console_security.py
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            out.append((method, route.path, route))
    assert len(out) > 20, "the route table looks empty"
    return out


def fill(path: str, values: dict[str, str]) -> str:
    return PARAM.sub(lambda m: values.get(m.group(1), "x1"), path)


def test_every_route_requires_authentication(env: Env) -> None:
    for method, path, _route in api_routes(env):
        r = env.client.request(method, fill(path, {}))
        assert r.status_code == 401, f"{method} {path} answered {r.status_code} without credentials"


def test_every_route_declares_a_permission_and_refuses_roles_without_it(env: Env) -> None:
    checked = 0
    for method, path, route in api_routes(env):
        if path.startswith("/agent/"):
            continue
        permission = route_permission(route)
        assert permission is not None, f"{method} {path} declares no permission"
        for role in ROLES:
            if Principal(env.a.id, "x", "apikey", role).allows(permission):
                continue
            r = env.client.request(method, fill(path, {}), headers=env.a.headers(role))
            assert r.status_code == 403, f"{method} {path} let {role} through ({r.status_code})"
            checked += 1
    assert checked > 10


def test_bad_and_revoked_keys_are_refused(env: Env) -> None:
    assert env.client.get("/api/machines", headers={"Authorization": "Bearer gk_nothing"}).status_code == 401
    forged = env.a.keys["admin"][:-4] + "AAAA"
    assert env.client.get("/api/machines", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    listed = env.client.get("/api/apiKeys", headers=env.a.headers()).json()["value"]
    analyst = next(k for k in listed if k["role"] == "analyst")
    assert env.client.get("/api/machines", headers=env.a.headers("analyst")).status_code == 200
    assert env.client.delete(f"/api/apiKeys/{analyst['id']}", headers=env.a.headers()).status_code == 204
    assert env.client.get("/api/machines", headers=env.a.headers("analyst")).status_code == 401


# --- cross-tenant: ids of tenant A used by tenant B's admin -----------------------------

def _tenant_a_objects(env: Env) -> dict[str, str]:
    dev = enroll(env.client, env.a.enroll_secret, "a" * 16, "alpha-host")
    assert upload(env.client, dev, "device", device_report("alpha-host")).status_code == 200
    h = env.a.headers()
    action = env.client.post(f"/api/machines/{dev['device_id']}/collectInventory", json={}, headers=h).json()
    user = env.client.post("/api/users", json={"username": "alice", "password": "correct horse battery",
                                               "role": "analyst"}, headers=h).json()
    key = env.client.post("/api/apiKeys", json={"role": "analyst"}, headers=h).json()
    secret = env.client.post("/api/enrollmentSecrets", json={}, headers=h).json()
    group = env.client.post("/api/deviceGroups", json={"name": "web", "rules": {"name": "web-*"}}, headers=h).json()
    ids = {"machine_id": dev["device_id"], "action_id": action["id"], "user_id": str(user["id"]),
           "key_id": str(key["id"]), "secret_id": str(secret["id"]), "group_id": str(group["id"])}
    for provider in EXTRA_ID_PROVIDERS:
        ids.update(provider(env, dev))
    return ids


# Later issues add routes with new id parameters; each adds its provider here.
EXTRA_ID_PROVIDERS: list[Callable[[Env, dict[str, Any]], dict[str, str]]] = [
    lambda env, dev: __import__("tests.tvm.api.ids", fromlist=["tvm_ids"]).tvm_ids(env, dev),  # software, CVE
    lambda env, dev: __import__("tests.tvm.prioritisation.ids", fromlist=["prioritisation_ids"])  # recommendations,
    .prioritisation_ids(env, dev),  # exceptions, remediation tasks, events, rules, connections
    lambda env, dev: __import__("tests.edr.ids", fromlist=["edr_ids"]).edr_ids(env, dev),  # timeline events
    lambda env, dev: __import__("tests.edr.detection.ids", fromlist=["detection_ids"]).detection_ids(env, dev),
    lambda env, dev: {"role_id": str(env.client.post("/api/roles", json={"name": "A role", "permissions": [
        "machines.read"]}, headers=env.a.headers()).json()["id"])},  # custom roles
]

# Parameters that are not ids of a tenant's object: a query inside the path, or an id of the
# shared configuration-check catalog (every tenant has every check; its device list is scoped).
NOT_IDS = {"args", "check_id"}

SAMPLE_BODIES: dict[str, Any] = {
    "machine_tags": {"Value": "x", "Action": "Add"},
    "set_device_value": {"DeviceValue": "High"},
    "offboard_machine": {"Comment": "x"},
    "cancel_action": {"Comment": "x"},
    "request_collectInventory": {"Comment": "x"},
    "request_runConfigurationAssessment": {"Comment": "x"},
    "run_antivirus_scan": {"Comment": "x", "ScanType": "Quick"},
    "update_group": {"rank": 5},
    "set_vulnerability_alert": {"vulnerabilityId": "CVE-2021-3156"},
    "cancel_exception": {},
    "open_remediation_ticket": {"connectionId": 1},
    "update_rule": {"enabled": False},
    "update_connection": {"enabled": False},
    "try_connection": {},
    "update_alert": {"status": "InProgress"},
    "update_incident": {"status": "Resolved"},
    "update_role": {"description": "x"},
    "update_user": {"role": "analyst"},
}


def test_cross_tenant_ids_answer_404(env: Env) -> None:
    ids = _tenant_a_objects(env)
    seen = 0
    for method, path, route in api_routes(env):
        params = set(PARAM.findall(path))
        if not params or path.startswith("/agent/"):
            continue
        if params <= NOT_IDS:
            continue
        missing = params - set(ids) - NOT_IDS
        assert not missing, f"{method} {path}: add an id provider for {missing}"
        body = SAMPLE_BODIES.get(route.name)
        if method in ("POST", "PATCH", "PUT") and body is None and route.body_field is not None:
            pytest.fail(f"{method} {path}: add a sample body for {route.name}")
        r = env.client.request(method, fill(path, ids), json=body, headers=env.b.headers("admin"))
        assert r.status_code == 404, f"{method} {path} with tenant A's ids answered {r.status_code}: {r.text[:200]}"
        seen += 1
    assert seen >= 10


def test_cross_tenant_lists_and_searches_show_nothing(env: Env) -> None:
    ids = _tenant_a_objects(env)
    hb = env.b.headers()
    assert env.client.get("/api/machines", headers=hb).json()["value"] == []
    assert env.client.get("/api/machines/findbyip(ip='10.20.30.40')", headers=hb).json()["value"] == []
    assert env.client.get("/api/machineactions", headers=hb).json()["value"] == []
    names = [g["name"] for g in env.client.get("/api/deviceGroups", headers=hb).json()["value"]]
    assert names == [access.DEFAULT_GROUP]
    audit = env.client.get("/api/auditLogs", headers=hb).json()["value"]
    assert all(e["actor"] != "apikey" or ids["machine_id"] not in e["target"] for e in audit)
    # and tenant A does see its own
    ha = env.a.headers()
    assert [m["id"] for m in env.client.get("/api/machines", headers=ha).json()["value"]] == [ids["machine_id"]]


def test_agent_routes_declare_device_authentication_and_start_up_refuses_one_that_does_not(env: Env) -> None:
    from fastapi import APIRouter, Request

    from garrison.server.agent_api import DEVICE, DeviceAuth
    from garrison.server.app import UnprotectedRoute, check_routes
    from garrison.server.auth import route_device_auth

    agent = [r for r in all_routes(env.app) if getattr(r, "path", "").startswith("/agent/v1/")
             and not route_public(r)]
    assert len(agent) >= 3 and all(route_device_auth(r) for r in agent)
    router = APIRouter(prefix="/agent/v1")

    @router.post("/forgot")
    async def forgot(request: Request) -> dict[str, str]:  # authenticates nothing
        return {}

    @router.post("/declared")
    async def declared(request: Request, who: DeviceAuth = DEVICE) -> dict[str, str]:
        return {"device": who.device_id}

    check_routes([router.routes[1]])
    with pytest.raises(UnprotectedRoute, match="device authentication"):
        check_routes([router.routes[0]])
