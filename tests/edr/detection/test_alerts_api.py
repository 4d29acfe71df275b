"""Alerts end to end: agent telemetry posted to the real ingest endpoint is evaluated in the event store's
write and raises an alert (Defender's fields, the rule's author), listed and updated through /api/alerts
within the caller's tenant and device groups; repeats update the alert instead of adding more."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from garrison.core import access
from garrison.store.models.core import Device
from tests.edr.conftest import UTC, Env, enroll, post_events, proc

SHADOW = "Copy Passwd Or Shadow From TMP Path"  # SigmaHQ proc_creation_lnx_cp_passwd_or_shadow_tmp (high)


def _alerting_device(env: Env, host: str = "lin-1", seq: int = 1) -> tuple[dict[str, Any], dt.datetime]:
    _ = env.app.state.detection.detector  # compile the shipped ruleset first (the server does it in the background)
    t0 = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    dev = enroll(env.client, env.a.enroll_secret, machine_key=f"{host}-key-00000000", hostname=host)
    events = [proc(t0, 100, "cp", 1, cmd="cp /etc/shadow /tmp/s", AccountName="root"),
              proc(t0, 101, "ls", 1, cmd="ls -l /home")]
    assert post_events(env, dev, seq, events).status_code == 200
    return dev, t0


def _alerts(env: Env, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    r = env.client.get("/api/alerts", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["value"]


def test_agent_telemetry_raises_an_alert_with_defenders_fields(env: Env) -> None:
    dev, t0 = _alerting_device(env)
    got = [a for a in _alerts(env, env.a.headers("analyst"), **{"$expand": "evidence"}) if a["title"] == SHADOW]
    assert len(got) == 1
    a = got[0]
    assert a["id"].startswith("da") and a["machineId"] == dev["device_id"] and a["computerDnsName"] == "lin-1"
    assert (a["severity"], a["status"], a["detectionSource"]) == ("High", "New", "CustomDetection")
    assert a["category"] == "CredentialAccess" and "T1552.001" in a["mitreTechniques"]
    assert a["detectorAuthor"] == a["detectionRule"]["author"] and "Joseliyo" in a["detectorAuthor"]
    assert a["detectionRule"]["license"] == "DRL-1.1" and a["detectionRule"]["references"]
    assert a["firstEventTime"].startswith(t0.strftime("%Y-%m-%dT%H:%M")) and a["eventCount"] == 1
    process = next(e for e in a["evidence"] if e["entityType"] == "Process")
    assert process["processCommandLine"] == "cp /etc/shadow /tmp/s" and process["fileName"] == "cp"
    assert {"entityType": "User", "accountName": "root"}.items() <= next(
        e for e in a["evidence"] if e["entityType"] == "User").items()
    assert "evidence" not in _alerts(env, env.a.headers("analyst"))[0]  # only with $expand=evidence
    # OData filters, as the other list routes take them
    assert [x["id"] for x in _alerts(env, env.a.headers("analyst"), **{"$filter": f"title eq '{SHADOW}'"})] == [a["id"]]
    assert not _alerts(env, env.a.headers("analyst"), **{"$filter": "severity eq 'Low' and status eq 'New'"})
    assert env.client.get("/api/alerts", params={"$filter": "nope eq 1"}, headers=env.a.headers("analyst")
                          ).status_code == 400
    # the same activity again (another batch) updates the alert instead of raising another
    events = [proc(t0 + dt.timedelta(minutes=1), 200, "cp", 1, cmd="cp /etc/shadow /tmp/s", AccountName="root")]
    assert post_events(env, dev, 2, events).status_code == 200
    again = [x for x in _alerts(env, env.a.headers("analyst")) if x["title"] == SHADOW]
    assert len(again) == 1 and again[0]["id"] == a["id"] and again[0]["eventCount"] == 2


def test_alerts_are_scoped_to_tenant_and_device_groups(env: Env) -> None:
    _alerting_device(env, "web-1", 1)
    _alerting_device(env, "db-1", 1)
    mine = _alerts(env, env.a.headers("analyst"), **{"$filter": f"title eq '{SHADOW}'"})
    assert sorted(a["computerDnsName"] for a in mine) == ["db-1", "web-1"]
    assert _alerts(env, env.b.headers("admin")) == []
    assert env.client.get(f"/api/alerts/{mine[0]['id']}", headers=env.b.headers("admin")).status_code == 404
    with env.store.tenant(env.a.id) as s:
        group = access.create_group(s, "web", 1, {"name": "web-*"})
        for d in s.scalars(select(Device)):
            access.assign_group(s, d)
        _row, key = access.create_api_key(s, env.a.id, "security_operator", "web only", "test", group_ids=[group.id])
    web_only = {"Authorization": f"Bearer {key}"}
    seen = _alerts(env, web_only)
    assert {a["computerDnsName"] for a in seen} == {"web-1"}
    db_alert = next(a for a in mine if a["computerDnsName"] == "db-1")
    assert env.client.get(f"/api/alerts/{db_alert['id']}", headers=web_only).status_code == 404
    assert env.client.patch(f"/api/alerts/{db_alert['id']}", json={"status": "Resolved"},
                            headers=web_only).status_code == 404


def test_update_alert_status_assignment_classification_comment(env: Env) -> None:
    _alerting_device(env)
    alert = _alerts(env, env.a.headers("analyst"), **{"$filter": f"title eq '{SHADOW}'"})[0]
    url = f"/api/alerts/{alert['id']}"
    assert env.client.patch(url, json={"status": "InProgress"}, headers=env.a.headers("analyst")).status_code == 403
    assert env.client.patch(url, json={"status": "InProgress"}, headers=env.b.headers("admin")).status_code == 404
    op = env.a.headers("security_operator")
    r = env.client.patch(url, json={"status": "InProgress", "assignedTo": "ana@example.test",
                                    "classification": "TruePositive", "determination": "Malware",
                                    "comment": "looking"}, headers=op)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["assignedTo"], body["classification"], body["determination"]) == (
        "InProgress", "ana@example.test", "TruePositive", "Malware")
    assert body["comments"][0]["comment"] == "looking" and body["resolvedTime"] is None
    for bad in ({"status": "Closed"}, {"classification": "FalsePositive", "determination": "Malware"},
                {"severity": "Low"}, {"comment": "x" * 5000}):
        assert env.client.patch(url, json=bad, headers=op).status_code in (400, 422), bad
    done = env.client.patch(url, json={"status": "Resolved"}, headers=op).json()
    assert done["status"] == "Resolved" and done["resolvedTime"] and done["determination"] == "Malware"
    assert env.client.get(url, headers=env.a.headers("analyst")).json()["status"] == "Resolved"
    assert [a["id"] for a in _alerts(env, env.a.headers("analyst"), **{"$filter": "status eq 'Resolved'"})] == [
        alert["id"]]
