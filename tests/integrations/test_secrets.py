"""Connection secrets at rest: encrypted in the database under a key kept outside it, still used by
the connectors, plaintext rows of earlier versions read and re-encrypted, and a missing or wrong key
reported as the connection's error while the server keeps serving."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from garrison.integrations import secretbox, service
from garrison.integrations import settings as integration_settings
from garrison.server.settings import ServerSettings
from garrison.store.db import Store
from garrison.store.models.prioritisation import IntegrationConnection
from tests.integrations.conftest import connection, fleet, make_env, settings_for, task
from tests.integrations.fakes import Jira, Receiver
from tests.integrations.servers import SmtpServer, basic_auth
from tests.tvm.prioritisation.conftest import Env, api


def raw_secrets(env: Env, cid: int) -> dict[str, str]:
    """The column as the database holds it (no ORM, no tenant filter)."""
    with env.store.engine.connect() as c:
        raw = c.execute(text("SELECT secrets FROM integration_connections WHERE id = :i"), {"i": cid}).scalar_one()
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def plaintext_row(env: Env, tenant_id: int, kind: str, config: dict[str, Any], secrets: dict[str, str],
                  name: str) -> int:
    """A connection saved by a version without encryption."""
    with env.store.tenant(tenant_id) as s:
        c = IntegrationConnection(name=name, kind=kind, config=config, secrets=secrets, created_by="old version")
        s.add(c)
        s.flush()
        return c.id


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_secrets_are_encrypted_at_rest_and_connectors_still_authenticate(env: Env, tmp_path: Any) -> None:
    fleet(env)
    key_file = tmp_path / "secrets.key"
    assert not key_file.exists()
    with Jira() as jira, Receiver("shared-secret") as rx, SmtpServer(username="garrison", password="mail-pass") as smtp:
        jid = connection(env, "jira", {"base_url": jira.url, "project_key": "SEC", "email": "bot@example.org"},
                         {"api_token": "jira-token"})
        hid = connection(env, "webhook", {"url": rx.url + "/hook"}, {"secret": "shared-secret"})
        mid = connection(env, "smtp", {"host": "127.0.0.1", "port": smtp.port, "sender": "g@example.org",
                                       "starttls": False, "username": "garrison"}, {"password": "mail-pass"},
                         name="mail")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # created on first use
        for cid, plain in ((jid, "jira-token"), (hid, "shared-secret"), (mid, "mail-pass")):
            stored = raw_secrets(env, cid)
            assert plain not in json.dumps(stored)
            assert all(v.startswith("enc:v1:") for v in stored.values()), stored
        assert "jira-token" not in str(api(env, "GET", "/api/integrationConnections", role="admin"))

        assert task(env, jid)["tickets"][0]["externalId"] == "SEC-1"
        assert basic_auth(jira.requests[0]) == ("bot@example.org", "jira-token")
        assert task(env, hid)["tickets"][0]["externalId"] == "T-1"  # the receiver checked the HMAC
        assert api(env, "POST", f"/api/integrationConnections/{mid}/test", role="admin",
                   json={"to": "a@example.org"}) == {"ok": True}
        assert smtp.logins == ["garrison"]

        # a patch that does not touch the secrets keeps them; one that does replaces only that value
        before = raw_secrets(env, jid)
        api(env, "PATCH", f"/api/integrationConnections/{jid}", role="admin", json={"name": "jira renamed"})
        assert raw_secrets(env, jid) == before
        jira.token = "rotated"
        api(env, "PATCH", f"/api/integrationConnections/{jid}", role="admin", json={"secrets": {"api_token": "rotated"}})
        assert "rotated" not in json.dumps(raw_secrets(env, jid))
        assert task(env, jid)["tickets"][0]["externalId"] == "SEC-2"


def test_plaintext_rows_are_read_then_encrypted(env: Env, tmp_path: Any) -> None:
    fleet(env)
    with Jira() as jira:
        cfg = {"base_url": jira.url, "project_key": "SEC", "email": "bot@example.org"}
        old = plaintext_row(env, env.a.id, "jira", cfg, {"api_token": "jira-token"}, "old jira")
        assert task(env, old)["tickets"][0]["externalId"] == "SEC-1"  # read as it is
        assert raw_secrets(env, old) == {"api_token": "jira-token"}
        assert not (tmp_path / "secrets.key").exists()
        # the job the worker runs at start encrypts it (and makes the key: none was used yet)
        assert service.encrypt_stored_secrets(env.store) == 1
        assert raw_secrets(env, old)["api_token"].startswith("enc:v1:") and (tmp_path / "secrets.key").exists()
        assert service.encrypt_stored_secrets(env.store) == 0
        assert task(env, old)["tickets"][0]["externalId"] == "SEC-2"
        # the next write of a plaintext row encrypts every value, also the ones it does not change
        edited = plaintext_row(env, env.a.id, "jira", cfg, {"api_token": "jira-token"}, "edited jira")
        api(env, "PATCH", f"/api/integrationConnections/{edited}", role="admin", json={"enabled": True})
        assert raw_secrets(env, edited)["api_token"].startswith("enc:v1:")
        assert task(env, edited)["tickets"][0]["externalId"] == "SEC-3"
        # every tenant's rows, and rows half encrypted
        other = plaintext_row(env, env.b.id, "jira", cfg, {"api_token": "jira-token"}, "b jira")
        mixed = plaintext_row(env, env.a.id, "webhook", {"url": "https://hooks.example.org/x"},
                              {"secret": "hook-secret", "spare": secretbox.encrypt(env.a.id, "spare", "x")}, "mixed")
        assert service.encrypt_stored_secrets(env.store) == 2
        assert service.encrypt_stored_secrets(env.store) == 0
        for cid in (other, mixed):
            assert all(v.startswith("enc:v1:") for v in raw_secrets(env, cid).values())
            assert "hook-secret" not in json.dumps(raw_secrets(env, cid))
        with env.store.tenant(env.a.id) as s:
            assert secretbox.unseal(env.a.id, s.get(IntegrationConnection, mixed).secrets) == {  # type: ignore[union-attr]
                "secret": "hook-secret", "spare": "x"}
        with env.store.tenant(env.b.id) as s:
            assert secretbox.unseal(env.b.id, s.get(IntegrationConnection, other).secrets) == {  # type: ignore[union-attr]
                "api_token": "jira-token"}


def test_rotated_keys_are_replaced_by_the_job(env: Env, tmp_path: Any) -> None:
    fleet(env)
    old, new = new_key(), new_key()
    with Jira() as jira:
        integration_settings.configure(settings_for(tmp_path, secrets_key=old).integrations())
        cid = connection(env, "jira", {"base_url": jira.url, "project_key": "SEC", "email": "bot@example.org"},
                         {"api_token": "jira-token"})
        integration_settings.configure(settings_for(tmp_path, secrets_key=f"{new},{old}").integrations())
        assert service.encrypt_stored_secrets(env.store) == 1
        assert secretbox.key_id_of(raw_secrets(env, cid)["api_token"]) ==             secretbox.key_id(integration_settings.decode_key(new))
        integration_settings.configure(settings_for(tmp_path, secrets_key=new).integrations())  # old key retired
        assert task(env, cid)["tickets"][0]["externalId"] == "SEC-1"
        assert basic_auth(jira.requests[0]) == ("bot@example.org", "jira-token")


def test_a_missing_or_wrong_key_is_the_connections_error(env: Env, tmp_path: Any) -> None:
    fleet(env)
    with Jira() as jira:
        cid = connection(env, "jira", {"base_url": jira.url, "project_key": "SEC", "email": "bot@example.org"},
                         {"api_token": "jira-token"})
        key_file = tmp_path / "secrets.key"
        kid = secretbox.key_id(integration_settings.decode_key(key_file.read_text()))
        # another node, configured with another key
        integration_settings.configure(settings_for(tmp_path, secrets_key=new_key()).integrations())
        t = task(env, cid)
        ticket = t["tickets"][0]
        assert ticket["state"] == "Pending" and f"encrypted with key {kid}, which this server does not have" in \
            ticket["lastError"]
        assert jira.requests == []
        # this node, with its key file gone
        integration_settings.configure(settings_for(tmp_path).integrations())
        saved = key_file.read_text()
        key_file.unlink()
        with pytest.raises(secretbox.SecretsError, match="is missing"):  # the job logs it; no new key
            service.encrypt_stored_secrets(env.store)
        out = api(env, "POST", f"/api/integrationConnections/{cid}/test", role="admin", json={})
        assert not out["ok"] and f"the key file {key_file} is missing" in out["error"]
        got = api(env, "POST", f"/api/remediationTasks/{t['id']}/tickets/sync", role="security_operator")["value"][0]
        assert got["state"] == "Pending" and "is missing" in got["lastError"]
        assert api(env, "GET", "/api/integrationConnections", role="admin")["value"][0]["secretsSet"] == ["api_token"]
        assert not key_file.exists()  # reading never makes a new key
        # the key is back: the ticket is opened on the next try
        key_file.write_text(saved)
        got = api(env, "POST", f"/api/remediationTasks/{t['id']}/tickets/sync", role="security_operator")["value"][0]
        assert got["externalId"] == "SEC-1" and got["lastError"] is None


@pytest.fixture
def unwritable_env(store: Store, tmp_path: Any) -> Iterator[Env]:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    yield from make_env(store, settings_for(blocker))


def test_no_key_can_be_made_is_a_clear_server_error(unwritable_env: Env) -> None:
    env = unwritable_env
    r = api(env, "POST", "/api/integrationConnections", role="admin", expect=503,
            json={"name": "hook", "kind": "webhook", "config": {"url": "https://hooks.example.org/x"},
                  "secrets": {"secret": "s"}})
    assert r["error"]["code"] == "SecretsUnavailable"
    assert "key file" in r["error"]["message"] and "Not a directory" in r["error"]["message"]
    assert api(env, "GET", "/api/integrationConnections", role="admin")["value"] == []


def test_operator_keys_rotation_and_binding(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = new_key(), new_key()
    monkeypatch.setenv("GARRISON_SECRETS_KEY", old)
    try:
        integration_settings.configure(ServerSettings.from_env(data_dir=tmp_path).integrations())
        sealed = secretbox.seal(7, {}, {"token": "t0ken"})
        assert not (tmp_path / "secrets.key").exists()  # an operator key: no key file
        # rotation: the new key encrypts, the old one still decrypts
        monkeypatch.setenv("GARRISON_SECRETS_KEY", f"{new},{old}")
        integration_settings.configure(ServerSettings.from_env(data_dir=tmp_path).integrations())
        assert secretbox.unseal(7, sealed) == {"token": "t0ken"}
        resealed = secretbox.encrypt(7, "token", "t0ken")
        assert resealed.split(":")[2] == secretbox.key_id(integration_settings.decode_key(new)) != \
            sealed["token"].split(":")[2]
        # bound to the tenant and the secret's name; altered values do not decrypt
        with pytest.raises(secretbox.SecretsError, match="another tenant"):
            secretbox.decrypt(8, "token", sealed["token"])
        with pytest.raises(secretbox.SecretsError, match="another tenant"):
            secretbox.decrypt(7, "password", sealed["token"])
        tampered = sealed["token"][:-6] + ("AAAAAA" if not sealed["token"].endswith("AAAAAA") else "BBBBBB")
        with pytest.raises(secretbox.SecretsError, match="altered"):
            secretbox.decrypt(7, "token", tampered)
        monkeypatch.setenv("GARRISON_SECRETS_KEY", "not-a-key")
        with pytest.raises(ValueError, match="32 random bytes"):
            ServerSettings.from_env(data_dir=tmp_path).integrations()
    finally:
        integration_settings.configure(integration_settings.IntegrationSettings())
