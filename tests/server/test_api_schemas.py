"""Every ``/api`` route documents its answer in ``/api/openapi.json``: a named JSON schema of the
response model (``garrison.server.api.models``), a declared CSV file, or no body (204). The walk covers the
whole route table, so a new route without ``responses=returns(Model)`` fails here. That real answers
match their models is ``tests/tvm/prioritisation/test_api_schemas.py``."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from pydantic import ValidationError

from garrison.server.api import models
from garrison.server.app import all_routes
from tests.server.conftest import Env


def _api_routes(app: Any) -> list[APIRoute]:
    return [r for r in all_routes(app) if isinstance(r, APIRoute) and r.path.startswith("/api/") and r.include_in_schema]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def test_every_api_route_documents_its_response_model(env: Env) -> None:
    doc = env.client.get("/api/openapi.json").json()
    routes = _api_routes(env.app)
    assert len(routes) > 80
    missing = []
    for route in routes:
        status = str(route.status_code or 200)
        for method in route.methods:
            op = doc["paths"][route.path][method.lower()]
            if status == "204":
                assert "content" not in op["responses"]["204"], route.path
                continue
            content = op["responses"].get(status, {}).get("content", {})
            if "text/csv" in content or "application/x-ndjson" in content:
                continue
            schema = content.get("application/json", {}).get("schema", {})
            if "$ref" not in schema:  # a bare {"type": "object"} is what `-> dict[str, Any]` gives
                missing.append(f"{method} {route.path}")
    assert not missing, f"routes without a response model in /api/openapi.json: {missing}"


def test_models_use_defenders_camel_case_names(env: Env) -> None:
    doc = env.client.get("/api/openapi.json").json()
    schemas = doc["components"]["schemas"]
    machine = schemas["Machine"]["properties"]
    assert {"computerDnsName", "osPlatform", "rbacGroupId", "exposureLevel", "machineTags"} <= set(machine)
    vuln = schemas["Vulnerability"]["properties"]
    assert {"cvssV3", "exposedMachines", "publishedOn", "publicExploit", "exploitVerified", "exploitInKit"} <= set(vuln)
    assert "MachineAction" in schemas and "creationDateTimeUtc" in schemas["MachineAction"]["properties"]
    listed = _resolve(doc, doc["paths"]["/api/vulnerabilities"]["get"]["responses"]["200"]["content"]
                      ["application/json"]["schema"])
    assert {"@odata.context", "value"} <= set(listed["properties"])
    ours = [n for n, s in schemas.items() if n.split("_")[0] in vars(models)]
    assert len(ours) > 40
    snake = [f"{n}.{p}" for n in ours for p in schemas[n].get("properties", {}) if "_" in p and not p.startswith("@")]
    assert not snake, f"snake_case names in the response models: {snake}"


# Query parameters a GET route needs to answer 200 (the others take none or have defaults).
QUERIES: dict[str, dict[str, str]] = {
    "/api/machines/findbytag": {"tag": "x"},
    "/api/machines/SoftwareVulnerabilityChangesByMachine": {"sinceTime": "NOW"},
}
# GET routes whose answer depends on something this test cannot make (here: nothing).
NOT_ANSWERED: set[str] = set()
# Lists that stay empty here: open rows (assessment exports, documented as objects), no device with a
# known address, no notification delivered (deliveries happen in the job).
ANSWERED_EMPTY = {"/api/machines/SecureConfigurationsAssessmentByMachine",
                  "/api/machines/{machine_id}/configurationAssessment",
                  "/api/configurationChecks/{check_id}/machineReferences", "/api/machines/findbyip({args})",
                  "/api/notificationRules/{rule_id}/deliveries"}


def test_real_answers_match_their_models(env: Env) -> None:
    import datetime as dt

    from tests.server.test_route_security import _tenant_a_objects, fill

    ids = _tenant_a_objects(env)
    ids["args"] = "ip='10.0.0.1'"
    h = env.a.headers()
    machine = ids["machine_id"]
    assert env.client.post(f"/api/machines/{machine}/tags", json={"Value": "x", "Action": "Add"}, headers=h).is_success
    assert env.client.post(f"/api/machines/{machine}/vulnerabilityAlerts", json={"vulnerabilityId": "CVE-2021-3156"},
                           headers=h).is_success
    checks = env.client.get("/api/configurationChecks", headers=env.a.headers()).json()["value"]
    ids["check_id"] = checks[0]["ConfigurationId"]
    now = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    checked, problems, empty = 0, [], []
    for route in _api_routes(env.app):
        if "GET" not in route.methods or route.path in NOT_ANSWERED:
            continue
        model = (route.responses or {}).get(route.status_code or 200, {}).get("model")
        if model is None:
            continue  # CSV or JSON lines: documented as such by the walk above
        params = {k: (now if v == "NOW" else v) for k, v in QUERIES.get(route.path, {}).items()}
        r = env.client.get(fill(route.path, ids), params=params, headers=env.a.headers("admin"))
        if r.status_code != 200:
            problems.append(f"GET {route.path}: {r.status_code} {r.text[:200]}")
            continue
        body = r.json()
        if isinstance(body, dict) and body.get("value") == []:
            empty.append(route.path)
        try:
            model.model_validate(body)  # extra="forbid": no field the model does not declare
        except ValidationError as exc:
            problems.append(f"GET {route.path} does not match {model.__name__}: {exc}")
        checked += 1
    assert not problems, "\n".join(problems)
    assert checked > 50
    assert set(empty) <= ANSWERED_EMPTY, f"lists answered empty, so their rows went unchecked: {empty}"
