"""Notification rules end to end: real feed and inventory changes → timeline events → outbox →
e-mail to a local SMTP server and signed webhooks to a local receiver; filters, retries, failures."""

from __future__ import annotations

import datetime as dt

from garrison.integrations import service
from garrison.tvm.prioritisation import derive_events
from tests.integrations.conftest import connection
from tests.integrations.fakes import Receiver
from tests.integrations.servers import SmtpServer
from tests.tvm.prioritisation.conftest import FOCAL, KEV, Agent, Env, api, ga_packages, load_kb, make_group

HIGH = ("High", "Critical")


def smtp_connection(env: Env, port: int, **extra: object) -> int:
    cfg = {"host": "127.0.0.1", "port": port, "sender": "garrison@example.org", "starttls": False, **extra}
    secrets = {"password": "mail-pass"} if "username" in extra else {}
    return connection(env, "smtp", cfg, secrets, name="mail")


def rule(env: Env, expect: int = 201, **body: object) -> dict:
    return dict(api(env, "POST", "/api/notificationRules", role="admin", expect=expect,
                    json={"name": "vulns", "emailRecipients": ["secops@example.org"], **body}))


def news(env: Env) -> None:
    """A first feed load (baseline), a device, then a feed update and the KEV catalog."""
    load_kb(env, FOCAL / "USN-4359-1.json")
    Agent(env, "web-1").inventory(ga_packages())
    load_kb(env, FOCAL)
    load_kb(env, KEV)


def test_rules_send_email_and_signed_webhooks(env: Env) -> None:
    with SmtpServer(username="garrison", password="mail-pass") as smtp, Receiver("hook-secret") as rx:
        smtp_connection(env, smtp.port, username="garrison")
        hook = connection(env, "webhook", {"url": rx.url + "/hook"}, {"secret": "hook-secret"})
        web = make_group(env, "web", "web-*")
        db = make_group(env, "db", "db-*", rank=20)
        high = rule(env, events=["NewVulnerability", "ExploitVerified"], minimumSeverity="High",
                    webhookConnectionIds=[hook], includeOrganizationName=True, rbacGroupIds=[web])
        assert high["rbacGroupNames"] == ["web"] and high["minimumSeverity"] == "High"
        quiet = rule(env, name="db only", rbacGroupIds=[db])
        news(env)
        out = derive_events(env.store, env.a.id)
        evs = api(env, "GET", "/api/eventTimeline", params={"eventType": "NewVulnerability,ExploitVerified"})["value"]
        wanted = [e for e in evs if e["severity"] in HIGH]
        assert wanted and len(wanted) < len(evs)
        assert out["notifications"] == 2 * len(wanted)
        sent = service.deliver_pending(env.store, env.a.id)
        assert sent == {"sent": 2 * len(wanted), "retry": 0, "failed": 0}

        assert smtp.logins and set(smtp.logins) == {"garrison"}
        subjects = sorted(m.message["Subject"].strip() for m in smtp.messages)
        assert subjects == sorted(f"[Garrison] {e['title']}" for e in wanted)
        mail = next(m for m in smtp.messages if "CVE-2021-3156" in m.message["Subject"]
                    and "exploited" in m.message["Subject"])
        assert mail.recipients == ["secops@example.org"] and mail.message["From"] == "garrison@example.org"
        text = mail.message.get_content()
        assert "Organization: alpha" in text and "Event:              ExploitVerified" in text
        assert "notification rule 'vulns'" in text

        assert len(rx.received) == len(wanted)  # every one passed the receiver's signature check
        hooked = {b["event"]["vulnerabilityId"] for b in rx.received}
        assert hooked == {e["vulnerabilityId"] for e in wanted}
        assert all(b["organization"] == "alpha" and b["rule"]["name"] == "vulns" for b in rx.received)
        assert all(r.headers["x-garrison-event"] == "timeline.event" for r in rx.requests)

        deliveries = api(env, "GET", f"/api/notificationRules/{high['id']}/deliveries")["value"]
        assert {d["status"] for d in deliveries} == {"Sent"} and len(deliveries) == 2 * len(wanted)
        assert api(env, "GET", f"/api/notificationRules/{quiet['id']}/deliveries")["value"] == []
        # nothing is sent twice
        assert derive_events(env.store, env.a.id)["notifications"] == 0
        assert service.deliver_pending(env.store, env.a.id)["sent"] == 0


def test_failures_are_retried_or_given_up(env: Env) -> None:
    with SmtpServer(refuse={"nobody@example.org"}) as smtp:
        port = smtp.port
        smtp_connection(env, port)
        rule(env, events=["ExploitVerified"], emailRecipients=["secops@example.org", "nobody@example.org"])
        news(env)
        assert derive_events(env.store, env.a.id)["notifications"] == 2
        assert service.deliver_pending(env.store, env.a.id) == {"sent": 1, "retry": 0, "failed": 1}
        failed = [d for d in api(env, "GET", "/api/notificationRules/1/deliveries")["value"] if d["status"] == "Failed"]
        assert failed[0]["target"] == "nobody@example.org" and "refused" in failed[0]["lastError"]
    # the mail server is down now: a new event waits and is retried later
    rule(env, name="later", events=["SoftwareUpdated"])
    Agent(env, "web-1").inventory(ga_packages())  # the same device (same machine key) again: nothing new
    agent = Agent(env, "web-2")
    agent.inventory(ga_packages())
    agent.inventory([{**p, "version": "1.8.31-1ubuntu1.2", "source_version": "1.8.31-1ubuntu1.2"}
                     if p["source_name"] == "sudo" else p for p in ga_packages()])
    assert derive_events(env.store, env.a.id)["notifications"] == 1
    assert service.deliver_pending(env.store, env.a.id) == {"sent": 0, "retry": 1, "failed": 0}
    pending = api(env, "GET", "/api/notificationRules/2/deliveries")["value"][0]
    assert pending["status"] == "Pending" and pending["attempts"] == 1 and "Connection refused" in pending["lastError"]
    assert service.deliver_pending(env.store, env.a.id)["retry"] == 0  # not due yet (backoff)
    with SmtpServer() as smtp2:
        r = env.client.get("/api/integrationConnections", headers=env.a.headers("admin")).json()["value"]
        api(env, "PATCH", f"/api/integrationConnections/{r[0]['id']}", role="admin",
            json={"config": {**r[0]["config"], "port": smtp2.port}})
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
        assert service.deliver_pending(env.store, env.a.id, now=later) == {"sent": 1, "retry": 0, "failed": 0}
        assert "updated on 1 device" in smtp2.messages[0].message["Subject"]


def test_rule_validation_and_access(env: Env) -> None:
    assert "e-mail" in rule(env, expect=400, emailRecipients=["not an address"])["error"]["message"]
    assert "event type" in rule(env, expect=400, events=["Nope"])["error"]["message"]
    assert "recipients" in rule(env, expect=400, emailRecipients=[])["error"]["message"]
    other = api(env, "POST", "/api/integrationConnections", role="admin", tenant="b", expect=201,
                json={"name": "hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x"},
                      "secrets": {"secret": "x"}})
    rule(env, expect=404, webhookConnectionIds=[other["id"]])
    api(env, "POST", "/api/notificationRules", role="security_operator", expect=403,
        json={"name": "x", "emailRecipients": ["a@example.org"]})
    r = rule(env)
    assert r["events"] == ["NewVulnerability", "NewPublicExploit", "ExploitVerified", "ExploitAddedToKit"]
    upd = api(env, "PATCH", f"/api/notificationRules/{r['id']}", role="admin",
              json={"enabled": False, "minimumSeverity": "Critical"})
    assert not upd["enabled"] and upd["minimumSeverity"] == "Critical"
    api(env, "GET", f"/api/notificationRules/{r['id']}", tenant="b", expect=404)
    api(env, "DELETE", f"/api/notificationRules/{r['id']}", role="admin", expect=204)
    assert api(env, "GET", "/api/notificationRules")["value"] == []
