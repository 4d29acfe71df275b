"""Remediation activities: requested from a recommendation, progress measured from inventories,
completion by system confirmation or by a person, overdue flag, CSV export, 180-day retention."""

from __future__ import annotations

import csv
import datetime as dt
import io

from garrison.core import access
from garrison.tvm.prioritisation import refresh, remediation
from tests.tvm.prioritisation.conftest import (
    Agent,
    Env,
    api,
    bump,
    focal_kb,
    ga_packages,
    make_group,
    recompute,
    scoped_headers,
)

SUDO = "va-_-ubuntu-_-sudo"
FIXED = "1.8.31-1ubuntu1.2"


def due(days: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).isoformat()


def create(env: Env, **body: object) -> dict:
    return dict(api(env, "POST", "/api/remediationTasks", role="security_operator", expect=201,
                    json={"recommendationId": SUDO, "dueOn": due(14), **body}))


def test_progress_is_measured_and_completion_is_confirmed_by_the_system(env: Env) -> None:
    focal_kb(env)
    agents = [Agent(env, f"web-{i}") for i in range(2)]
    for a in agents:
        a.inventory(ga_packages())
    recompute(env)
    task = create(env, priority="High", requesterNotes="before the audit")
    assert task["status"] == "Active" and task["category"] == "Software" and task["type"] == "Update"
    assert task["title"] == "Update sudo to 1.8.31-1ubuntu1.2" and task["recommendedVersion"] == FIXED
    assert task["targetDevices"] == 2 and task["fixedDevices"] == 0 and not task["overdue"]
    assert task["requesterId"].startswith("apikey:") and task["requesterNotes"] == "before the audit"
    assert task["relatedComponent"] == "sudo" and task["productId"] == "ubuntu-_-sudo" and task["vendorId"] == "ubuntu"

    agents[0].inventory(bump(ga_packages(), "sudo", FIXED))
    recompute(env)
    got = api(env, "GET", f"/api/remediationTasks/{task['id']}")
    assert (got["targetDevices"], got["fixedDevices"], got["status"]) == (2, 1, "Active")
    refs = {m["computerDnsName"]: m["status"] for m in
            api(env, "GET", f"/api/remediationTasks/{task['id']}/machineReferences")["value"]}
    assert refs == {"web-0.corp.example": "Fixed", "web-1.corp.example": "Exposed"}

    agents[0].inventory(ga_packages())  # downgraded again: exposed again
    recompute(env)
    assert api(env, "GET", f"/api/remediationTasks/{task['id']}")["fixedDevices"] == 0

    for a in agents:
        a.inventory(bump(ga_packages(), "sudo", FIXED))
    recompute(env)
    done = api(env, "GET", f"/api/remediationTasks/{task['id']}")
    assert done["status"] == "Completed" and done["completionMethod"] == "Automatic"
    assert done["completedBy"] == "System confirmation" and done["fixedDevices"] == 2
    listed = api(env, "GET", "/api/remediationTasks", params={"$filter": "status eq 'Completed'"})["value"]
    assert [t["id"] for t in listed] == [task["id"]]


def test_new_exposed_devices_join_and_groups_scope_the_targets(env: Env) -> None:
    focal_kb(env)
    web = make_group(env, "web", "web-*")
    Agent(env, "web-1").inventory(ga_packages())
    Agent(env, "db-1").inventory(ga_packages())
    recompute(env)
    task = create(env, rbacGroupIds=[web])
    assert task["targetDevices"] == 1 and task["rbacGroupNames"] == ["web"]
    Agent(env, "web-2").inventory(ga_packages())
    recompute(env)
    assert api(env, "GET", f"/api/remediationTasks/{task['id']}")["targetDevices"] == 2
    # a caller limited to another group does not see it
    db = make_group(env, "db", "db-*", rank=20)
    other = scoped_headers(env, "analyst", [db])
    assert env.client.get(f"/api/remediationTasks/{task['id']}", headers=other).status_code == 404
    assert env.client.get("/api/remediationTasks", headers=other).json()["value"] == []
    mine = scoped_headers(env, "analyst", [web])
    assert [t["id"] for t in env.client.get("/api/remediationTasks", headers=mine).json()["value"]] == [task["id"]]
    # nothing exposed in the chosen groups: refused
    empty = make_group(env, "empty", "nothing-*", rank=30)
    r = api(env, "POST", "/api/remediationTasks", role="security_operator", expect=400,
            json={"recommendationId": SUDO, "dueOn": due(3), "rbacGroupIds": [empty]})
    assert "no device" in r["error"]["message"]


def test_manual_completion_keeps_the_user_and_overdue_and_csv(env: Env) -> None:
    focal_kb(env)
    Agent(env, "web-1").inventory(ga_packages())
    recompute(env)
    late = create(env, dueOn=due(-0.5))
    assert late["overdue"]
    text = api(env, "GET", f"/api/remediationTasks/{late['id']}/export").text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["Remediation activity", "Device ID", "Device name"]
    assert [(r[2], r[6]) for r in rows[1:]] == [("web-1.corp.example", "Exposed")]

    with env.store.system() as s:
        user = access.create_user(s, env.a.id, "carol", "correct horse battery staple", "security_operator",
                                  email="carol@example.org")
        principal = access.user_principal(s, user)
    with env.store.tenant(env.a.id) as s:
        act = remediation.get(s, principal, late["id"])
        remediation.complete(s, principal, act)
    done = api(env, "GET", f"/api/remediationTasks/{late['id']}")
    assert done["status"] == "Completed" and done["completionMethod"] == "Manual"
    assert done["completedBy"] == "carol@example.org" and done["completerId"] == "carol"
    assert not done["overdue"]
    again = api(env, "POST", f"/api/remediationTasks/{late['id']}/complete", role="security_operator", expect=409)
    assert "already completed" in again["error"]["message"]
    # an API key completes as itself
    other = create(env)
    by_key = api(env, "POST", f"/api/remediationTasks/{other['id']}/complete", role="security_operator")
    assert by_key["completedBy"].startswith("apikey:")


def test_completed_activities_are_kept_180_days(env: Env) -> None:
    focal_kb(env)
    Agent(env, "web-1").inventory(ga_packages())
    recompute(env)
    task = create(env)
    api(env, "POST", f"/api/remediationTasks/{task['id']}/complete", role="security_operator")
    now = dt.datetime.now(dt.UTC)
    with env.store.tenant(env.a.id) as s:
        assert remediation.purge_completed(s, now + dt.timedelta(days=179)) == 0
        assert remediation.purge_completed(s, now + dt.timedelta(days=181)) == 1
    api(env, "GET", f"/api/remediationTasks/{task['id']}", expect=404)
    refresh(env.store, env.a.id)  # and nothing else breaks
