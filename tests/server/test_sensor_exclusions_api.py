"""/api/settings/sensorExclusions: per tenant and per device group, validated, bounded, audited, delivered
at check-in to the devices it concerns."""

from __future__ import annotations

from garrison.core import sensor_exclusions
from garrison.store.models.core import AuditEntry
from tests.server.conftest import Env, device_headers, enroll

URL = "/api/settings/sensorExclusions"
PATH = {"table": "DeviceFileEvents", "column": "FolderPath", "op": "startswith", "value": "/var/cache/apt"}
IMAGE = {"column": "InitiatingProcessFileName", "value": "backup-agent"}
REMOTE = {"table": "DeviceNetworkEvents", "column": "RemoteIP", "value": "10.9.9.9"}


def _checkin(env: Env, dev: dict) -> list[dict]:
    r = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "0.1.0"})
    assert r.status_code == 200, r.text
    return r.json()["sensor_exclusions"]


def test_tenant_and_group_exclusions_are_delivered_at_check_in(env: Env) -> None:
    admin = env.a.headers("admin")
    web = enroll(env.client, env.a.enroll_secret, "w" * 16, "web-1")
    db = enroll(env.client, env.a.enroll_secret, "d" * 16, "db-1")
    assert _checkin(env, web) == []
    group = env.client.post("/api/deviceGroups", headers=admin,
                            json={"name": "web", "rank": 1, "rules": {"name": "web-*"}}).json()
    r = env.client.put(URL, headers=admin, json={"exclusions": [PATH, IMAGE]})
    assert r.status_code == 200, r.text
    assert [e["column"] for e in r.json()["exclusions"]] == ["FolderPath", "InitiatingProcessFileName"]
    assert env.client.put(URL, headers=admin, params={"groupId": group["id"]},
                          json={"exclusions": [REMOTE]}).status_code == 200
    assert [e["value"] for e in _checkin(env, web)] == ["/var/cache/apt", "backup-agent", "10.9.9.9"]
    assert [e["value"] for e in _checkin(env, db)] == ["/var/cache/apt", "backup-agent"]
    got = env.client.get(URL, headers=env.a.headers("security_operator"), params={"groupId": group["id"]}).json()
    assert got["exclusions"][0]["value"] == "10.9.9.9" and got["updatedBy"]
    # the other tenant sees none of it, and cannot address this tenant's group
    assert env.client.get(URL, headers=env.b.headers("admin")).json()["exclusions"] == []
    assert env.client.get(URL, headers=env.b.headers("admin"), params={"groupId": group["id"]}).status_code == 404
    # every change is audited
    with env.store.tenant(env.a.id) as s:
        entries = [e for e in s.query(AuditEntry).all() if e.path == URL and e.method == "PUT"]
    assert len(entries) == 2 and any(f"groupId={group['id']}" in e.target for e in entries)


def test_exclusions_are_sent_only_when_the_device_s_configuration_version_changes(env: Env) -> None:
    """The check-in answer carries the exclusions only when the agent's config_version is not the device's
    current one: an unchanged configuration is not sent again; a tenant-wide or a group change is."""
    admin = env.a.headers("admin")
    web = enroll(env.client, env.a.enroll_secret, "w" * 16, "web-1")
    db = enroll(env.client, env.a.enroll_secret, "d" * 16, "db-1")

    def checkin(dev: dict, version: int) -> dict:
        r = env.client.post("/agent/v1/checkin", headers=device_headers(dev),
                            json={"agent_version": "0.1.0", "config_version": version})
        assert r.status_code == 200, r.text
        return r.json()

    assert env.client.put(URL, headers=admin, json={"exclusions": [PATH]}).status_code == 200
    first = checkin(web, 0)
    v1 = first["config_version"]
    assert [e["value"] for e in first["sensor_exclusions"]] == ["/var/cache/apt"] and v1 > 0
    unchanged = checkin(web, v1)
    assert unchanged["sensor_exclusions"] is None and unchanged["config_version"] == v1
    assert checkin(db, v1)["sensor_exclusions"] is None  # the same configuration is the same version
    group = env.client.post("/api/deviceGroups", headers=admin,
                            json={"name": "web", "rank": 1, "rules": {"name": "web-*"}}).json()
    assert env.client.put(URL, headers=admin, params={"groupId": group["id"]},
                          json={"exclusions": [REMOTE]}).status_code == 200
    changed = checkin(web, v1)
    assert [e["value"] for e in changed["sensor_exclusions"]] == ["/var/cache/apt", "10.9.9.9"]
    assert changed["config_version"] not in (0, v1)
    assert checkin(db, v1)["sensor_exclusions"] is None  # db-1 is not in the group: its configuration is as it was
    assert env.client.put(URL, headers=admin, json={"exclusions": []}).status_code == 200
    cleared = checkin(db, v1)
    assert cleared["sensor_exclusions"] == [] and cleared["config_version"] not in (0, v1)
    bad = env.client.post("/agent/v1/checkin", headers=device_headers(db),
                          json={"agent_version": "0.1.0", "config_version": -1})
    assert bad.status_code == 422


def test_bad_exclusions_are_refused_and_bounded(env: Env) -> None:
    admin = env.a.headers("admin")
    bad = [
        [{"column": "NoSuchColumn", "value": "x"}],
        [{"table": "NoSuchTable", "column": "FolderPath", "value": "x"}],
        [{"table": "DeviceNetworkEvents", "column": "FolderPath", "value": "x"}],  # not a column of that table
        [{"column": "FolderPath", "value": "", "op": "startswith"}],  # would drop every row
        [{"column": "FolderPath", "value": "x" * (sensor_exclusions.MAX_VALUE_LEN + 1)}],
        [{"column": "FolderPath", "value": "x", "op": "regex"}],
        [{"column": "DeviceId", "value": "x"}],  # filled by the server, never by the agent
        [PATH] * (sensor_exclusions.MAX_EXCLUSIONS + 1),
        ["not an object"],
    ]
    for body in bad:
        r = env.client.put(URL, headers=admin, json={"exclusions": body})
        assert r.status_code in (400, 422), (body[:1], r.status_code, r.text)  # 422: the body's shape
        assert "exclusions" in r.json()["error"]["message"]
    assert env.client.put(URL, headers=admin, json={"other": []}).status_code == 422
    assert env.client.put(URL, headers=admin, params={"groupId": 999999}, json={"exclusions": [PATH]}).status_code == 404
    assert env.client.put(URL, headers=admin, params={"groupId": "x"}, json={"exclusions": []}).status_code in (400, 422)
    assert env.client.get(URL, headers=admin).json()["exclusions"] == []
    # a security operator reads, only an admin changes
    assert env.client.put(URL, headers=env.a.headers("security_operator"), json={"exclusions": []}).status_code == 403
    assert env.client.get(URL, headers=env.a.headers("analyst")).status_code == 403
