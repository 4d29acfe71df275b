"""Ids of tenant A's prioritisation objects, for the cross-tenant route test
(tests/server/test_route_security.py, EXTRA_ID_PROVIDERS). Runs after the tvm provider, which gave
tenant A's device sudo 1.8.31-1ubuntu1 and the knowledge base USN-4705-1."""

from __future__ import annotations

import datetime as dt
from typing import Any

from garrison.tvm.prioritisation import derive_events, refresh
from tests.server.conftest import Env, upload

SUDO = {"manager": "dpkg", "name": "sudo", "version": "1.8.31-1ubuntu1", "ecosystem": "Ubuntu:20.04:LTS",
        "source_name": "sudo", "source_version": "1.8.31-1ubuntu1", "arch": "amd64"}
BASH = {"manager": "dpkg", "name": "bash", "version": "5.0-6ubuntu1", "ecosystem": "Ubuntu:20.04:LTS",
        "source_name": "bash", "source_version": "5.0-6ubuntu1", "arch": "amd64"}


def prioritisation_ids(env: Env, dev: dict[str, Any]) -> dict[str, str]:
    h = env.a.headers("admin")
    refresh(env.store, env.a.id)
    rec_id = "va-_-ubuntu-_-sudo"
    groups = env.client.get("/api/deviceGroups", headers=h).json()["value"]
    gid = next(g["id"] for g in groups if g["name"] == "Ungrouped devices")
    r = env.client.post("/api/recommendationExceptions", headers=h, json={
        "recommendationId": rec_id, "justification": "RiskAccepted", "rbacGroupIds": [gid], "durationDays": 30})
    assert r.status_code == 201, r.text
    exc_id = r.json()["id"]
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(days=14)).isoformat()
    r = env.client.post("/api/remediationTasks", headers=h, json={"recommendationId": rec_id, "dueOn": due})
    assert r.status_code == 201, r.text
    task_id = r.json()["id"]
    r = env.client.post("/api/integrationConnections", headers=h, json={
        "name": "hook", "kind": "webhook", "config": {"url": "https://hooks.example.org/hook"}, "secrets": {"secret": "s3cr3t"}})
    assert r.status_code == 201, r.text
    conn_id = r.json()["id"]
    r = env.client.post("/api/notificationRules", headers=h, json={
        "name": "all", "emailRecipients": ["secops@example.org"], "webhookConnectionIds": [conn_id]})
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    # bash appears on the device: a 'software installed' event
    r = upload(env.client, dev, "inventory", {"mode": "snapshot", "generation": 2, "packages": [SUDO, BASH]})
    assert r.status_code == 200, r.text
    derive_events(env.store, env.a.id)
    events = env.client.get("/api/eventTimeline", headers=h).json()["value"]
    assert events, "no timeline event derived"
    return {"recommendation_id": rec_id, "exception_id": str(exc_id), "task_id": task_id,
            "event_id": str(events[0]["id"]), "rule_id": str(rule_id), "connection_id": str(conn_id)}
