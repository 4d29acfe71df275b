"""Where integrations may send requests: refused at creation (API error naming the reason) and again
on every connection (a name resolving to a forbidden address), the operator's allow-list, redirects,
and TLS that still verifies the host name after connecting to the checked address."""

from __future__ import annotations

import base64
import ipaddress
import pickle
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from garrison.integrations import egress, secretbox
from garrison.integrations import settings as integration_settings
from garrison.server.runner import run_worker
from garrison.server.settings import ServerSettings
from garrison.server.tls import ensure_certificate
from garrison.store.db import Store
from garrison.store.models.prioritisation import IntegrationConnection
from tests.integrations.conftest import connection, fleet, make_env, settings_for, task
from tests.integrations.fakes import Receiver
from tests.integrations.servers import HttpService, Recorded, Reply, SmtpServer
from tests.tvm.prioritisation.conftest import Env, api

SECRETS = {"webhook": {"secret": "s"}, "jira": {"api_token": "t"}, "github": {"token": "t"},
           "servicenow": {"password": "p"}, "smtp": {}}


@pytest.fixture
def strict_env(store: Store, tmp_path: Any) -> Iterator[Env]:
    """The default: no network allowed beyond public addresses."""
    yield from make_env(store, settings_for(tmp_path, allowed=[]))


@pytest.fixture
def host_env(store: Store, tmp_path: Any) -> Iterator[Env]:
    """An operator who allows one internal address (127.0.0.1) and nothing else."""
    yield from make_env(store, settings_for(tmp_path, allowed=["127.0.0.1/32"]))


def stored_connection(env: Env, kind: str, config: dict[str, Any], secrets: dict[str, str], name: str) -> int:
    """A row as saved when its name still resolved elsewhere (or by an earlier version)."""
    with env.store.tenant(env.a.id) as s:
        c = IntegrationConnection(name=name, kind=kind, config=config, secrets=secretbox.seal(env.a.id, {}, secrets),
                                  created_by="test")
        s.add(c)
        s.flush()
        return c.id


# --- the address classes ---------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd00::1", "private"),
    ("224.0.0.251", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "non-public"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"),  # IPv4-mapped
    ("64:ff9b::a9fe:a9fe", "link-local"), ("2002:7f00:1::1", "loopback"),  # NAT64, 6to4
    ("8.8.8.8", None), ("1.1.1.1", None), ("2606:4700:4700::1111", None),
])
def test_address_classes(address: str, why: str | None) -> None:
    got = egress.reason(ipaddress.ip_address(address))
    assert (got is None) if why is None else (got is not None and why in got), got


def test_allowed_networks_come_from_the_server_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("GARRISON_INTEGRATIONS_ALLOWED_NETWORKS", "10.20.0.0/16, fd00:20::/32")
    settings = ServerSettings.from_env(data_dir=tmp_path)
    assert settings.integrations_allowed_networks == ["10.20.0.0/16", "fd00:20::/32"]
    try:
        integration_settings.configure(settings.integrations())
        assert egress.reason(ipaddress.ip_address("10.20.3.4")) is None
        assert egress.reason(ipaddress.ip_address("fd00:20::5")) is None
        assert "private" in str(egress.reason(ipaddress.ip_address("10.21.0.1")))
        assert "loopback" in str(egress.reason(ipaddress.ip_address("127.0.0.1")))
    finally:
        integration_settings.configure(integration_settings.IntegrationSettings())
    monkeypatch.setenv("GARRISON_INTEGRATIONS_ALLOWED_NETWORKS", "10.20.0.0/16,intranet")
    with pytest.raises(ValueError, match="'intranet' is not a network"):
        ServerSettings.from_env(data_dir=tmp_path).integrations()


# --- at creation -----------------------------------------------------------------------------------

REFUSED = [
    ("webhook", {"url": "http://127.0.0.1:8080/hook"}, "config.url: 127.0.0.1 is a loopback address"),
    ("webhook", {"url": "http://localhost/hook"}, "localhost resolves to 127.0.0.1, a loopback address"),
    ("webhook", {"url": "http://2130706433/hook"}, "resolves to 127.0.0.1, a loopback address"),
    ("webhook", {"url": "http://[::1]:8443/hook"}, "loopback"),
    ("webhook", {"url": "http://[::ffff:127.0.0.1]/hook"}, "loopback"),
    ("jira", {"base_url": "http://169.254.169.254", "project_key": "SEC", "email": "a@example.org"},
     "jira: config.base_url: 169.254.169.254 is a link-local address (such as the cloud metadata service)"),
    ("github", {"repository": "acme/infra", "api_url": "http://[64:ff9b::a9fe:a9fe]/"}, "link-local"),
    ("servicenow", {"instance_url": "https://10.1.2.3", "username": "u"}, "10.1.2.3 is a private address"),
    ("servicenow", {"instance_url": "https://172.16.5.4", "username": "u"}, "private"),
    ("jira", {"base_url": "http://192.168.0.10:8080", "project_key": "SEC", "email": "a@example.org"}, "private"),
    ("webhook", {"url": "https://[fd12:3456::1]/hook"}, "private"),
    ("webhook", {"url": "http://224.0.0.1/hook"}, "multicast"),
    ("webhook", {"url": "http://0.0.0.0:8443/hook"}, "unspecified"),
    ("webhook", {"url": "http://240.0.0.1/hook"}, "reserved"),
    ("webhook", {"url": "http://100.64.0.1/hook"}, "non-public"),
    ("webhook", {"url": "https://hooks.example.org/x", "status_url": "http://127.0.0.1/status/{id}"},
     "webhook: config.status_url: 127.0.0.1 is a loopback"),
    ("smtp", {"host": "127.0.0.1", "port": 25, "sender": "g@example.org"}, "smtp: config.host: 127.0.0.1 is a loopback"),
    ("smtp", {"host": "localhost", "sender": "g@example.org"}, "localhost resolves to 127.0.0.1"),
    ("smtp", {"host": "169.254.169.254", "sender": "g@example.org"}, "link-local"),
    ("webhook", {"url": "file:///etc/passwd"}, "use an http:// or https:// URL"),
    ("webhook", {"url": "gopher://127.0.0.1:70/x"}, "use an http:// or https:// URL"),
]


def test_creation_refuses_every_forbidden_destination(strict_env: Env) -> None:
    env = strict_env
    for kind, config, message in REFUSED:
        r = api(env, "POST", "/api/integrationConnections", role="admin", expect=400,
                json={"name": "x", "kind": kind, "config": config, "secrets": SECRETS[kind]})
        assert message in r["error"]["message"], (config, r)
        if "://" in str(config) and "http" not in message:
            assert "GARRISON_INTEGRATIONS_ALLOWED_NETWORKS" in r["error"]["message"]
    assert api(env, "GET", "/api/integrationConnections", role="admin")["value"] == []
    # an update is checked the same way
    cid = connection(env, "jira", {"base_url": "https://jira.example.org", "project_key": "SEC",
                                   "email": "a@example.org"}, {"api_token": "t"})
    r = api(env, "PATCH", f"/api/integrationConnections/{cid}", role="admin", expect=400,
            json={"config": {"base_url": "http://169.254.169.254/", "project_key": "SEC", "email": "a@example.org"}})
    assert "link-local" in r["error"]["message"]
    assert api(env, "GET", f"/api/integrationConnections/{cid}", role="admin")["config"]["base_url"] == \
        "https://jira.example.org"


# --- at send time ----------------------------------------------------------------------------------

def test_a_name_resolving_to_a_forbidden_address_is_refused_when_sending(strict_env: Env) -> None:
    env = strict_env
    fleet(env)
    with Receiver("s") as rx, SmtpServer() as smtp:
        port = rx.server.server_address[1]
        hook = stored_connection(env, "webhook", {"url": f"http://localhost:{port}/hook"}, {"secret": "s"}, "hook")
        mail = stored_connection(env, "smtp", {"host": "localhost", "port": smtp.port, "sender": "g@example.org",
                                               "starttls": False}, {}, "mail")
        ticket = task(env, hook)["tickets"][0]
        assert ticket["state"] == "Failed" and ticket["externalId"] is None
        assert "localhost resolves to 127.0.0.1, a loopback address" in ticket["lastError"]
        out = api(env, "POST", f"/api/integrationConnections/{hook}/test", role="admin", json={})
        assert not out["ok"] and "loopback" in out["error"]
        out = api(env, "POST", f"/api/integrationConnections/{mail}/test", role="admin", json={"to": "a@example.org"})
        assert not out["ok"] and "SMTP localhost" in out["error"] and "loopback" in out["error"]
        assert rx.requests == [] and smtp.messages == []


def test_the_allow_list_lets_internal_systems_through(host_env: Env) -> None:
    env = host_env
    fleet(env)
    with Receiver("s") as rx, SmtpServer() as smtp:
        port = rx.server.server_address[1]
        hook = connection(env, "webhook", {"url": f"http://localhost:{port}/hook"}, {"secret": "s"})
        assert task(env, hook)["tickets"][0]["externalId"] == "T-1" and len(rx.requests) == 1
        mail = connection(env, "smtp", {"host": "localhost", "port": smtp.port, "sender": "g@example.org",
                                        "starttls": False}, {}, name="mail")
        assert api(env, "POST", f"/api/integrationConnections/{mail}/test", role="admin",
                   json={"to": "a@example.org"}) == {"ok": True}
        assert smtp.messages[0].recipients == ["a@example.org"]
    # only the allowed address: the rest of the loopback network is still refused
    r = api(env, "POST", "/api/integrationConnections", role="admin", expect=400,
            json={"name": "x", "kind": "webhook", "config": {"url": "http://127.0.0.2/hook"}, "secrets": {"secret": "s"}})
    assert "127.0.0.2 is a loopback address" in r["error"]["message"]


def test_redirects_are_not_followed(host_env: Env) -> None:
    env = host_env
    fleet(env)
    with HttpService(lambda r: Reply(200, {"id": "X"}), host="127.0.0.2") as inside, \
            HttpService(lambda r: Reply(302, None, {"Location": inside.url + "/hook"})) as outside, \
            HttpService(lambda r: Reply(307, None, {"Location": "http://169.254.169.254/latest/meta-data/"})) as meta:
        # the redirect target itself may not be configured …
        r = api(env, "POST", "/api/integrationConnections", role="admin", expect=400,
                json={"name": "in", "kind": "webhook", "config": {"url": inside.url + "/hook"},
                      "secrets": {"secret": "s"}})
        assert "loopback" in r["error"]["message"]
        # … nor reached through a redirect
        cid = connection(env, "webhook", {"url": outside.url + "/hook"}, {"secret": "s"})
        t = task(env, cid)
        ticket = t["tickets"][0]
        assert ticket["state"] == "Failed" and "answered 302" in ticket["lastError"]
        assert "redirects are not followed" in ticket["lastError"]
        assert len(outside.requests) == 1 and inside.requests == []
        cid = connection(env, "webhook", {"url": meta.url + "/hook"}, {"secret": "s"}, name="meta")
        ticket = api(env, "POST", f"/api/remediationTasks/{t['id']}/tickets", role="security_operator",
                     expect=201, json={"connectionId": cid})
        assert ticket["state"] == "Failed" and "169.254.169.254" in ticket["lastError"]


def test_tls_verifies_the_name_after_connecting_to_the_checked_address(host_env: Env, tmp_path: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    env = host_env
    fleet(env)
    cert, key = ensure_certificate(tmp_path / "fake-ca")  # names: localhost, 127.0.0.1
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def answer(r: Recorded) -> Reply:
        return Reply(200, {"id": "TLS-1", "state": "Open"})

    with HttpService(answer, tls=ctx) as srv:
        port = srv.server.server_address[1]
        cid = connection(env, "webhook", {"url": f"https://localhost:{port}/hook"}, {"secret": "s"})
        t = task(env, cid)
        ticket = t["tickets"][0]
        # the certificate is not trusted: verification is on, and the name was sent (SNI), not the address
        assert ticket["state"] == "Pending" and "CERTIFICATE_VERIFY_FAILED" in ticket["lastError"]
        assert srv.server_names == ["localhost"] and srv.requests == []
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the operator's internal CA
        got = api(env, "POST", f"/api/remediationTasks/{t['id']}/tickets/sync", role="security_operator")["value"][0]
        assert got["externalId"] == "TLS-1" and got["lastError"] is None
        assert srv.server_names[-1] == "localhost" and len(srv.requests) == 1


def test_the_job_worker_applies_the_server_settings(tmp_path: Any) -> None:
    """The jobs that send tickets and notifications run in a worker process of their own."""
    settings = settings_for(tmp_path, allowed=["10.20.0.0/16"], secrets_key=base64.urlsafe_b64encode(b"k" * 32).decode())
    integrations = pickle.loads(pickle.dumps(settings.integrations()))  # as the spawned process receives them
    stop = threading.Event()
    stop.set()  # configure, then leave the loop at once
    worker = threading.Thread(target=run_worker, args=(settings.db_url, stop, integrations))
    try:
        worker.start()
        worker.join(30)
        assert integration_settings.current() == settings.integrations()
        assert egress.reason(ipaddress.ip_address("10.20.0.9")) is None
    finally:
        integration_settings.configure(integration_settings.IntegrationSettings())
