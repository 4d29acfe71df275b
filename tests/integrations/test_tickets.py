"""Ticket connectors against local servers that speak each service's API subset: what is sent, what
is stored, how state is read back, and what happens when the remote side fails."""

from __future__ import annotations

import datetime as dt

import pytest

from garrison.integrations import connections, service
from garrison.integrations.tickets import CONNECTORS
from tests.integrations.conftest import connection, fleet, task
from tests.integrations.fakes import GitHub, Jira, Receiver, ServiceNow
from tests.integrations.servers import basic_auth
from tests.tvm.prioritisation.conftest import Env, api


def sync(env: Env, task_id: str) -> dict:
    return api(env, "POST", f"/api/remediationTasks/{task_id}/tickets/sync", role="security_operator")["value"][0]


def test_registry_has_the_four_connectors() -> None:
    assert set(CONNECTORS) == {"webhook", "jira", "github", "servicenow"}
    assert connections.connection_kinds() == ["github", "jira", "servicenow", "smtp", "webhook"]


def test_jira(env: Env) -> None:
    fleet(env)
    with Jira() as jira:
        cid = connection(env, "jira", {"base_url": jira.url, "project_key": "SEC", "email": "bot@example.org",
                                       "priority_names": {"High": "Highest"}}, {"api_token": "jira-token"})
        t = task(env, cid)
        ticket = t["tickets"][0]
        assert ticket["externalId"] == "SEC-1" and ticket["url"] == f"{jira.url}/browse/SEC-1"
        assert ticket["state"] == "To Do" and not ticket["closed"] and ticket["connector"] == "jira"
        post = jira.requests[0]
        assert (post.method, post.path) == ("POST", "/rest/api/3/issue")
        assert basic_auth(post) == ("bot@example.org", "jira-token")
        fields = post.json()["fields"]
        assert fields["project"] == {"key": "SEC"} and fields["issuetype"] == {"name": "Task"}
        assert fields["summary"] == "Update sudo to 1.8.31-1ubuntu1.2"
        assert fields["priority"] == {"name": "Highest"} and fields["duedate"] == t["dueOn"][:10]
        text = " ".join(c["text"] for p in fields["description"]["content"] for c in p["content"])
        assert "web-0.corp.example" in text and "patch window Friday" in text and t["id"] in text
        assert fields["labels"] == ["garrison", "security-remediation"]

        jira.transition("SEC-1", "Done", "done")
        got = sync(env, t["id"])
        assert got["state"] == "Done" and got["closed"]
        assert api(env, "GET", f"/api/remediationTasks/{t['id']}")["tickets"][0]["closed"]


def test_github(env: Env) -> None:
    fleet(env)
    with GitHub() as gh:
        cid = connection(env, "github", {"api_url": gh.url, "repository": "acme/infra", "labels": ["security"]},
                         {"token": "ghp_test"})
        t = task(env, cid)
        ticket = t["tickets"][0]
        assert ticket["externalId"] == "1" and ticket["url"] == "https://github.example/acme/infra/issues/1"
        assert ticket["state"] == "open"
        post = gh.requests[0]
        assert post.headers["accept"] == "application/vnd.github+json"
        assert post.headers["x-github-api-version"] == "2022-11-28"
        assert post.json()["labels"] == ["security"] and "Recommended version: 1.8.31-1ubuntu1.2" in post.json()["body"]
        gh.close(1)
        got = sync(env, t["id"])
        assert got["state"] == "closed (completed)" and got["closed"]


def test_servicenow(env: Env) -> None:
    fleet(env)
    with ServiceNow() as sn:
        cid = connection(env, "servicenow", {"instance_url": sn.url, "username": "garrison",
                                             "assignment_group": "Linux Ops"}, {"password": "now-pass"})
        t = task(env, cid)
        ticket = t["tickets"][0]
        sys_id = ticket["externalId"]
        assert sn.records[sys_id]["urgency"] == "1" and sn.records[sys_id]["correlation_id"] == t["id"]
        assert sn.records[sys_id]["assignment_group"] == "Linux Ops"
        assert sn.records[sys_id]["due_date"] == t["dueOn"][:10] + " 23:59:59"
        assert ticket["state"] == "New" and ticket["url"].endswith(f"incident.do?sys_id={sys_id}")
        sn.set_state(sys_id, "2")
        assert sync(env, t["id"])["state"] == "In Progress"
        sn.set_state(sys_id, "6")
        got = sync(env, t["id"])
        assert got["state"] == "Resolved" and got["closed"]
        get = sn.requests[-1]
        assert get.query["sysparm_fields"] == ["sys_id,number,state"]


def test_signed_webhook(env: Env) -> None:
    fleet(env)
    with Receiver("shared-secret") as rx:
        cid = connection(env, "webhook", {"url": rx.url + "/hook", "status_url": rx.url + "/status/{id}"},
                         {"secret": "shared-secret"})
        t = task(env, cid)
        ticket = t["tickets"][0]
        assert ticket["externalId"] == "T-1" and ticket["state"] == "Open"
        body = rx.received[0]
        assert body["event"] == "remediation.created" and body["activity"]["activity_id"] == t["id"]
        assert body["activity"]["device_names"] == ["web-0.corp.example"]
        rx.tickets["T-1"] = {"state": "Resolved", "closed": True}
        got = sync(env, t["id"])
        assert got["state"] == "Resolved" and got["closed"]
        # a receiver with another secret refuses the signature: the ticket fails for good
        bad = connection(env, "webhook", {"url": rx.url + "/hook"}, {"secret": "wrong"}, name="bad hook")
        t2 = task(env, bad)
        assert t2["tickets"][0]["state"] == "Failed" and "401" in t2["tickets"][0]["lastError"]


def test_remote_failures_are_retried(env: Env) -> None:
    fleet(env)
    with Jira() as jira:
        cid = connection(env, "jira", {"base_url": jira.url, "project_key": "SEC", "email": "bot@example.org"},
                         {"api_token": "jira-token"})
        jira.fail_next = 503
        t = task(env, cid)
        ticket = t["tickets"][0]
        assert ticket["state"] == "Pending" and ticket["externalId"] is None and "503" in ticket["lastError"]
        # the job tries again
        n = service.sync_tickets(env.store, env.a.id, now=dt.datetime.now(dt.UTC))
        assert n == 1
        got = api(env, "GET", f"/api/remediationTasks/{t['id']}")["tickets"][0]
        assert got["externalId"] == "SEC-1" and got["lastError"] is None and got["attempts"] == 2
        # a refused login is not retried
        bad = connection(env, "jira", {"base_url": jira.url, "project_key": "SEC", "email": "bot@example.org"},
                         {"api_token": "nope"}, name="jira bad")
        t2 = task(env, bad)
        assert t2["tickets"][0]["state"] == "Failed" and "401" in t2["tickets"][0]["lastError"]
    # the server is gone: a connection error is recorded, not raised
    t3 = api(env, "POST", f"/api/remediationTasks/{t['id']}/tickets", role="security_operator", expect=201,
             json={"connectionId": cid})
    assert t3["state"] == "Pending" and "ConnectError" in t3["lastError"]


@pytest.mark.parametrize(("kind", "config", "secrets", "message"), [
    ("jira", {"base_url": "https://x.atlassian.net", "project_key": "SEC"}, {"api_token": "t"}, "config.email"),
    ("jira", {"base_url": "ftp://x", "project_key": "SEC", "email": "a@b.c"}, {"api_token": "t"}, "http"),
    ("github", {"repository": "no-slash"}, {"token": "t"}, "owner/name"),
    ("servicenow", {"instance_url": "https://user:pw@x.service-now.com", "username": "u"}, {"password": "p"},
     "credentials"),
    ("webhook", {"url": "http://127.0.0.1/x"}, {}, "secrets.secret"),
    ("smtp", {"host": "mail", "sender": "not-an-address"}, {}, "sender"),
    ("telegraph", {}, {}, "unknown kind"),
])
def test_connection_validation(env: Env, kind: str, config: dict, secrets: dict, message: str) -> None:
    r = api(env, "POST", "/api/integrationConnections", role="admin", expect=400,
            json={"name": "x", "kind": kind, "config": config, "secrets": secrets})
    assert message in r["error"]["message"]


def test_connections_are_admin_only_and_secrets_write_only(env: Env) -> None:
    api(env, "GET", "/api/integrationConnections", role="security_operator", expect=403)
    cid = connection(env, "github", {"repository": "acme/infra"}, {"token": "ghp_secret"})
    listed = api(env, "GET", "/api/integrationConnections", role="admin")["value"]
    assert "ghp_secret" not in str(listed) and listed[0]["config"]["api_url"] == "https://api.github.com"
    out = api(env, "PATCH", f"/api/integrationConnections/{cid}", role="admin", json={"config": {"repository": "acme/web"}})
    assert out["config"]["repository"] == "acme/web" and out["secretsSet"] == ["token"]
    api(env, "GET", f"/api/integrationConnections/{cid}", role="admin", tenant="b", expect=404)
    api(env, "DELETE", f"/api/integrationConnections/{cid}", role="admin", expect=204)
