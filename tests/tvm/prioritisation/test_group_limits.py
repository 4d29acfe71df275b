"""Callers limited to device groups (issue 11 item 10): the four known leaks, each reproduced.

* the remediation CSV export listed devices outside the caller's groups;
* a group-limited security operator could create an agentless device in a group it cannot see;
* a group-limited admin read the whole tenant's audit log;
* a 404 named another group's device id.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from tests.tvm.prioritisation.conftest import (
    GA_OS,
    GA_STATUS,
    Agent,
    Env,
    api,
    focal_kb,
    ga_packages,
    make_group,
    recompute,
    scoped_headers,
)

SUDO = "va-_-ubuntu-_-sudo"


def test_remediation_export_lists_only_the_callers_groups(env: Env) -> None:
    focal_kb(env)
    web = make_group(env, "web", "web-*")
    dbs = make_group(env, "db", "db-*", rank=20)
    Agent(env, "web-1").inventory(ga_packages())
    db = Agent(env, "db-1")
    db.inventory(ga_packages())
    recompute(env)
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(days=14)).isoformat()
    task = api(env, "POST", "/api/remediationTasks", role="security_operator", expect=201,
               json={"recommendationId": SUDO, "dueOn": due, "rbacGroupIds": [web, dbs]})  # both groups
    everyone = list(csv.DictReader(io.StringIO(api(env, "GET", f"/api/remediationTasks/{task['id']}/export").text)))
    assert sorted(r["Device name"] for r in everyone) == ["db-1.corp.example", "web-1.corp.example"]
    mine = scoped_headers(env, "analyst", [web])
    r = env.client.get(f"/api/remediationTasks/{task['id']}/export", headers=mine)
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["Device name"] for row in rows] == ["web-1.corp.example"]
    assert db.id not in r.text
    refs = env.client.get(f"/api/remediationTasks/{task['id']}/machineReferences", headers=mine).json()["value"]
    assert [m["computerDnsName"] for m in refs] == ["web-1.corp.example"]


def test_a_limited_operator_cannot_create_a_device_in_a_group_it_cannot_see(env: Env) -> None:
    web = make_group(env, "web", "web-*")
    make_group(env, "db", "db-*", rank=20)
    operator = scoped_headers(env, "security_operator", [web])

    def imported(name: str) -> int:
        return env.client.post("/api/machines/import", headers=operator, data={"deviceName": name},
                               files={"file": ("status", GA_STATUS.read_bytes()),
                                      "osRelease": ("os-release", GA_OS.read_bytes())}).status_code

    assert imported("db-9") == 403
    assert imported("web-9") == 200
    names = [m["computerDnsName"] for m in api(env, "GET", "/api/machines")["value"]]
    assert names == ["web-9"]  # db-9 was not created (the whole import was rolled back)


def test_a_limited_admin_does_not_read_the_tenants_audit_log(env: Env) -> None:
    web = make_group(env, "web", "web-*")
    admin = scoped_headers(env, "admin", [web])
    r = env.client.get("/api/auditLogs", headers=admin)
    assert r.status_code == 403 and "every device group" in r.text
    assert api(env, "GET", "/api/auditLogs", role="admin")["value"]  # an admin of every group still does


def test_not_found_never_names_another_groups_device(env: Env) -> None:
    web = make_group(env, "web", "web-*")
    db = Agent(env, "db-1")
    db.inventory(ga_packages())
    action = api(env, "POST", f"/api/machines/{db.id}/collectInventory", role="security_operator", expect=201,
                 json={"Comment": "x"})
    mine = scoped_headers(env, "security_operator", [web])
    for method, path in (("GET", f"/api/machineactions/{action['id']}"),
                         ("POST", f"/api/machineactions/{action['id']}/cancel")):
        r = env.client.request(method, path, headers=mine, json={"Comment": "x"})
        assert r.status_code == 404 and db.id not in r.text, (method, path, r.text)
