"""Out-of-range input is refused where it enters (4xx, naming the value), never found out by the
database (a 500): each case below answered 500 on SQLite or PostgreSQL (issue 11, item 11).

Integer columns are 32-bit on PostgreSQL, so every id, page and sequence number is bounded by
INT_MAX; dates must be representable in UTC; PostgreSQL text cannot hold U+0000.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError

from garrison.protocol.limits import INT_MAX
from garrison.server.app import create_app
from garrison.server.settings import ServerSettings
from garrison.store.db import Store
from tests.server.conftest import Env, device_headers, device_report, enroll, make_tenant, upload

HUGE = 2**63  # over SQLite's 64-bit integers, and so over PostgreSQL's 32-bit ones too
OVER32 = INT_MAX + 1  # over PostgreSQL's INTEGER only


def _refused(r: Any, *names: str) -> None:
    assert r.status_code in (400, 422), (r.status_code, r.text)
    message = r.json()["error"]["message"]
    for name in names:
        assert name in message, message


@pytest.mark.parametrize("method, path", [
    ("DELETE", "/api/users/{}"), ("DELETE", "/api/apiKeys/{}"), ("DELETE", "/api/enrollmentSecrets/{}"),
    ("GET", "/api/deviceGroups/{}"), ("DELETE", "/api/deviceGroups/{}"), ("GET", "/api/eventTimeline/{}"),
    ("GET", "/api/notificationRules/{}"), ("GET", "/api/recommendationExceptions/{}"),
    ("GET", "/api/integrationConnections/{}"),
])
def test_ids_past_the_column_in_paths(env: Env, method: str, path: str) -> None:
    for value in (HUGE, OVER32):
        _refused(env.client.request(method, path.format(value), headers=env.a.headers()), "2147483647")
    assert env.client.request(method, path.format(INT_MAX), headers=env.a.headers()).status_code == 404


@pytest.mark.parametrize("path, body", [
    ("/api/users", {"username": "bob", "password": "x" * 12, "role": "analyst", "deviceGroupIds": [OVER32]}),
    ("/api/apiKeys", {"role": "analyst", "deviceGroupIds": [OVER32]}),
    ("/api/notificationRules", {"name": "r", "emailRecipients": ["a@example.org"], "webhookConnectionIds": [OVER32]}),
    ("/api/notificationRules", {"name": "r", "emailRecipients": ["a@example.org"], "rbacGroupIds": [HUGE]}),
])
def test_ids_past_the_column_in_bodies(env: Env, path: str, body: dict[str, Any]) -> None:
    _refused(env.client.post(path, json=body, headers=env.a.headers()), "2147483647")


def test_ids_past_the_column_in_queries(env: Env) -> None:
    r = env.client.get("/api/exposureScore/history", params={"rbacGroupId": OVER32}, headers=env.a.headers())
    _refused(r, "rbacGroupId")


@pytest.mark.parametrize("route", ["SoftwareInventoryByMachine", "SoftwareVulnerabilitiesByMachine"])
def test_page_index_past_the_range(env: Env, route: str) -> None:
    for value in (HUGE, OVER32):
        r = env.client.get(f"/api/machines/{route}", params={"pageIndex": value}, headers=env.a.headers())
        _refused(r, "pageIndex")
    assert env.client.get(f"/api/machines/{route}", params={"pageIndex": INT_MAX},
                          headers=env.a.headers()).status_code == 200


def test_assessment_export_top_and_skip(env: Env) -> None:
    path = "/api/machines/SecureConfigurationsAssessmentByMachine"
    _refused(env.client.get(path, params={"$top": "-1"}, headers=env.a.headers()), "$top")
    _refused(env.client.get(path, params={"$skip": str(HUGE)}, headers=env.a.headers()), "$skip")
    _refused(env.client.get(path, params={"$skip": str(OVER32)}, headers=env.a.headers()), "$skip")
    ok = env.client.get(path, params={"$top": "5", "$skip": str(INT_MAX)}, headers=env.a.headers())
    assert ok.status_code == 200 and ok.json()["value"] == []


def test_enrollment_secret_expiry_too_far(env: Env) -> None:
    for expires in ("99999999d", "999999999w"):
        r = env.client.post("/api/enrollmentSecrets", json={"expires": expires}, headers=env.a.headers())
        _refused(r, "duration")
    r = env.client.post("/api/enrollmentSecrets", json={"expires": "3650d"}, headers=env.a.headers())
    assert r.status_code == 201 and r.json()["expiresAt"].startswith(("2036", "2037"))


@pytest.mark.parametrize("path, params", [
    ("/api/eventTimeline", {"fromDate": "0001-01-01T00:00:00+01:00"}),
    ("/api/eventTimeline", {"toDate": "9999-12-31T23:00:00-05:00"}),
    ("/api/machines/SoftwareVulnerabilityChangesByMachine", {"sinceTime": "9999-12-31T23:00:00-05:00"}),
    ("/api/machines/findbyip(ip='10.1.2.3',timestamp=0001-01-01T00:00:00+01:00)", {}),
    ("/api/machines/findbyip(ip='10.1.2.3',timestamp=0001-01-01T00:05:00Z)", {}),
])
def test_dates_outside_utc_in_queries(env: Env, path: str, params: dict[str, str]) -> None:
    _refused(env.client.get(path, params=params, headers=env.a.headers()))


@pytest.mark.parametrize("path, field", [("/api/recommendationExceptions", "expiresOn"),
                                         ("/api/remediationTasks", "dueOn")])
def test_dates_outside_utc_in_bodies(env: Env, path: str, field: str) -> None:
    for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"):
        body = {"recommendationId": "va-_-ubuntu-_-sudo", "justification": "AcceptableRisk", field: value}
        _refused(env.client.post(path, json=body, headers=env.a.headers()), field, "out of range")


def test_batch_sequence_past_the_column(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    for seq in (OVER32, HUGE):
        r = upload(env.client, dev, "device", device_report(), seq=seq)
        assert r.status_code == 422 and "seq" in r.json()["error"]["message"], r.text
    assert upload(env.client, dev, "device", device_report(), seq=INT_MAX).json()["status"] == "accepted"


def test_agent_generation_and_dates_past_the_columns(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    r = upload(env.client, dev, "inventory", {"mode": "snapshot", "generation": OVER32, "packages": []})
    assert r.status_code == 422 and "generation" in r.json()["error"]["message"], r.text
    r = upload(env.client, dev, "device", device_report(boot_time="0001-01-01T00:00:00+01:00"))
    assert r.status_code == 422 and "boot_time" in r.json()["error"]["message"], r.text
    r = env.client.post("/agent/v1/batches", headers=device_headers(dev), json={
        "seq": 99, "kind": "device", "created_at": "9999-12-31T23:00:00-05:00", "payload": device_report()})
    assert r.status_code == 422 and "created_at" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize("method, path, kwargs", [
    ("GET", "/api/machines/ab%00cd", {}),
    ("GET", "/api/vulnerabilities/CVE-2021-3156%00", {}),
    ("GET", "/api/machines", {"params": {"$filter": "computerDnsName eq 'a\x00'"}}),
    ("GET", "/api/machines/findbytag", {"params": {"tag": "prod\x00"}}),
    ("POST", "/api/deviceGroups", {"json": {"name": "web\x00"}}),
    ("POST", "/api/deviceGroups", {"json": {"name": "web", "description": "a\x00b"}}),
    ("POST", "/api/deviceGroups", {"json": {"name": "web", "rules": {"name": ["web-\x00*"]}}}),
    ("POST", "/api/users", {"json": {"username": "bob", "password": "p\x00" * 8, "role": "analyst"}}),
    ("POST", "/api/machines/import?deviceName=ag%00ent", {"content": b"Package: a\n"}),
])
def test_nul_anywhere_in_a_request(env: Env, method: str, path: str, kwargs: dict[str, Any]) -> None:
    r = env.client.request(method, path, headers=env.a.headers(), **kwargs)
    assert r.status_code == 400 and "NUL" in r.json()["error"]["message"], r.text


def test_nul_in_a_form_body(env: Env) -> None:
    """The console's forms: url-encoded bodies are checked as the query string is."""
    r = env.client.post("/console/login", data={"username": "a\x00", "password": "x"})
    assert r.status_code == 400 and "NUL" in r.json()["error"]["message"], r.text


def test_nul_in_agent_bodies(env: Env) -> None:
    r = env.client.post("/agent/v1/enroll", json={"secret": env.a.enroll_secret, "machine_key": "k" * 16,
                                                  "hostname": "h\x00", "agent_version": "1"})
    assert r.status_code == 422 and "NUL" in r.json()["error"]["message"], r.text
    dev = enroll(env.client, env.a.enroll_secret)
    r = upload(env.client, dev, "device", device_report(os_build="Debian\x00"))
    assert r.status_code == 422 and "NUL" in r.json()["error"]["message"], r.text
    # an escaped backslash followed by "u0000" is text, not a NUL
    r = upload(env.client, dev, "device", device_report(os_build="C:\\u0000"))
    assert r.status_code == 200, r.text


def test_the_database_refusal_is_a_400_and_logged(store: Store, tmp_path: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The last line behind the edge checks: a value the database refuses is the client's (400), logged
    as an error to fix where it enters."""
    app = create_app(ServerSettings(data_dir=tmp_path, run_jobs=False, heartbeat_interval=0), store)
    keys = make_tenant(store, "alpha")

    @app.get("/api/test-refused")
    def refused(request: Request) -> None:
        raise DataError("SELECT 1", {}, Exception("integer out of range"))

    with TestClient(app) as client, caplog.at_level(logging.ERROR, logger="garrison.server.app"):
        r = client.get("/api/test-refused", headers=keys.headers())
    assert r.status_code == 400 and r.json()["error"]["code"] == "ValueOutOfRange"
    assert "integer out of range" in caplog.text


def test_the_api_document_states_the_bounds(env: Env) -> None:
    doc = env.client.get("/api/openapi.json").json()
    group = doc["paths"]["/api/deviceGroups/{group_id}"]["get"]["parameters"][0]["schema"]
    assert (group["minimum"], group["maximum"]) == (1, INT_MAX)
    machines = {p["name"]: p["schema"] for p in doc["paths"]["/api/machines"]["get"]["parameters"]}
    assert {"$filter", "$top", "$skip", "$orderby", "$select", "$count"} <= set(machines)
    assert machines["$skip"]["maximum"] == INT_MAX
    pages = {p["name"]: p["schema"] for p in doc["paths"]["/api/machines/SoftwareInventoryByMachine"]["get"]["parameters"]}
    assert pages["pageIndex"]["maximum"] == INT_MAX
