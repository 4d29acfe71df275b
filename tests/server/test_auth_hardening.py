"""Sign-in and API-key authentication under attack (issue 11, items 6, 7, 9 and 12):

* parallel wrong passwords lock an account after exactly ``LOCKOUT_AFTER`` failures (no lost
  updates on the counter), on SQLite and PostgreSQL;
* a locked account answers like a wrong password, after the same Argon2 work;
* failed sign-ins are throttled per address before any account is locked, so one address cannot lock
  someone else out, and successes cost nothing;
* unknown API keys from one address never get a valid key refused;
* a real server process believes X-Forwarded-For only from ``--trusted-proxy`` networks.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from garrison.core import access
from garrison.core.errors import Unauthorized
from garrison.server.app import create_app
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.store.db import Store
from garrison.store.models.core import User
from tests.server.conftest import make_tenant
from tests.server.test_server_process import cli, free_port, start_server
from tests.web.conftest import PASSWORD, USERS, seed_identities
from tests.web.fleet import find_csrf

WRONG = "not the password at all"


def _try(store: Store, username: str, password: str) -> str:
    """'ok' or the refusal's message."""
    with store.system() as s:
        try:
            access.authenticate_user(s, username, password)
        except Unauthorized as exc:
            return str(exc)
    return "ok"


def _user(store: Store, name: str) -> User:
    with store.system() as s:
        return s.scalar(select(User).where(User.username == name))


def test_parallel_wrong_passwords_lock_after_exactly_the_limit(store: Store) -> None:
    seed_identities(store)
    barrier = threading.Barrier(access.LOCKOUT_AFTER)
    answers: list[str] = []

    def guess() -> None:
        barrier.wait()
        answers.append(_try(store, "ann", WRONG))

    threads = [threading.Thread(target=guess) for _ in range(access.LOCKOUT_AFTER)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [access.BAD_SIGN_IN] * access.LOCKOUT_AFTER
    user = _user(store, "ann")
    assert user.locked_until is not None, f"not locked after {access.LOCKOUT_AFTER} parallel failures " \
                                          f"(counter at {user.failed_logins}: lost updates)"
    assert user.failed_logins == 0
    assert _try(store, "ann", PASSWORD) == access.BAD_SIGN_IN  # locked: even the right password is refused


def test_a_locked_account_answers_like_a_wrong_password(store: Store) -> None:
    seed_identities(store)
    for _ in range(access.LOCKOUT_AFTER):
        assert _try(store, "sam", WRONG) == access.BAD_SIGN_IN
    assert _user(store, "sam").locked_until is not None

    def timed(name: str, password: str) -> tuple[str, float]:
        start = time.perf_counter()
        answer = _try(store, name, password)
        return answer, time.perf_counter() - start

    locked = [timed("sam", PASSWORD) for _ in range(5)]
    wrong = [timed("ann", WRONG) for _ in range(5)]
    unknown = [timed("nobody-here", WRONG) for _ in range(5)]
    assert {a for a, _ in locked + wrong + unknown} == {access.BAD_SIGN_IN}
    # The Argon2 verification is most of the cost of each (tens of milliseconds); a locked account
    # that skips it answers in about a millisecond (margin for a loaded machine: a third).
    median = statistics.median(t for _, t in wrong)
    assert statistics.median(t for _, t in locked) > median / 3
    assert statistics.median(t for _, t in unknown) > median / 3
    assert _user(store, "ann").failed_logins == 5


# --- the console: per-address throttling before account lock-out ----------------------------

def _console(store: Store, tmp_path: Path) -> Any:
    load_services()
    seed_identities(store)
    return create_app(ServerSettings(data_dir=tmp_path, insecure_http=True, run_jobs=False), store)


def _sign_in(client: TestClient, username: str, password: str) -> int:
    token = find_csrf(client.get("/console/login").text)
    r = client.post("/console/login", data={"username": username, "password": password, "csrf_token": token})
    assert r.status_code != 401 or access.BAD_SIGN_IN in r.text
    return r.status_code


def test_one_address_cannot_lock_someone_out(store: Store, tmp_path: Path) -> None:
    app = _console(store, tmp_path)
    with TestClient(app, base_url="http://testserver", follow_redirects=False, client=("198.51.100.7", 4000)) as bad:
        codes = [_sign_in(bad, "ann", WRONG) for _ in range(access.SOURCE_FAILURES + 3)]
    assert codes == [401] * access.SOURCE_FAILURES + [429] * 3
    assert _user(store, "ann").locked_until is None
    assert _user(store, "ann").failed_logins == access.SOURCE_FAILURES  # refused ones never reached it
    with TestClient(app, base_url="http://testserver", follow_redirects=False, client=("192.0.2.1", 4000)) as owner:
        assert _sign_in(owner, "ann", PASSWORD) == 303
    assert _user(store, "ann").failed_logins == 0


def test_parallel_guesses_do_not_slip_past_the_address_budget(store: Store, tmp_path: Path) -> None:
    app = _console(store, tmp_path)
    codes: list[int] = []
    with TestClient(app, base_url="http://testserver", follow_redirects=False, client=("198.51.100.8", 4000)) as c:
        token = find_csrf(c.get("/console/login").text)  # the form's token and cookie serve every post
        barrier = threading.Barrier(12)

        def guess(token: str) -> None:
            barrier.wait()
            codes.append(c.post("/console/login", data={"username": "ann", "password": WRONG,
                                                         "csrf_token": token}).status_code)

        threads = [threading.Thread(target=guess, args=(token,)) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted(codes) == [401] * access.SOURCE_FAILURES + [429] * (12 - access.SOURCE_FAILURES)
    assert _user(store, "ann").failed_logins <= access.SOURCE_FAILURES


def test_successful_sign_ins_cost_no_budget(store: Store, tmp_path: Path) -> None:
    app = _console(store, tmp_path)
    with TestClient(app, base_url="http://testserver", follow_redirects=False, client=("192.0.2.2", 4000)) as c:
        for _ in range(access.SOURCE_FAILURES + 3):
            assert _sign_in(c, USERS["analyst"], PASSWORD) == 303
            c.cookies.clear()  # signed out again, to see the form
        assert _sign_in(c, "ann", WRONG) == 401


def test_distributed_guesses_still_lock_the_account(store: Store, tmp_path: Path) -> None:
    app = _console(store, tmp_path)
    per_address = access.SOURCE_FAILURES
    addresses = -(-access.LOCKOUT_AFTER // per_address)
    for i in range(addresses):
        with TestClient(app, base_url="http://testserver", follow_redirects=False, client=(f"203.0.113.{i}", 4000)) as c:
            for _ in range(per_address):
                assert _sign_in(c, "sam", WRONG) == 401
    assert _user(store, "sam").locked_until is not None


# --- API keys --------------------------------------------------------------------------------

def test_bad_api_keys_never_lock_out_a_valid_key(store: Store, tmp_path: Path) -> None:
    app = create_app(ServerSettings(data_dir=tmp_path, run_jobs=False), store)
    a = make_tenant(store, "alpha")
    with TestClient(app, client=("198.51.100.9", 5000)) as client:
        junk = [f"gk_{i:08x}_{'x' * 40}" for i in range(20)] + ["not-a-key"] * 20
        codes = [client.get("/api/deviceGroups", headers={"Authorization": f"Bearer {t}"}).status_code for t in junk]
        assert set(codes) <= {401, 429} and 429 in codes, codes  # failures are budgeted per address
        with store.system() as s:
            _row, fresh = access.create_api_key(s, a.id, "analyst", "fresh", "test")
        # a valid key, never seen before, from the same address: never refused for those failures
        for _ in range(3):
            assert client.get("/api/deviceGroups", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
        assert client.get("/api/deviceGroups", headers=a.headers("admin")).status_code == 200
        # the address's bad keys are still budgeted (it refills by one a second, hence several)
        again = [client.get("/api/deviceGroups", headers={"Authorization": "Bearer nope"}).status_code
                 for _ in range(10)]
        assert 429 in again, again


def test_valid_keys_do_not_spend_the_failure_budget(store: Store, tmp_path: Path) -> None:
    app = create_app(ServerSettings(data_dir=tmp_path, run_jobs=False, rate_limit_per_minute=100_000), store)
    a = make_tenant(store, "alpha")
    with TestClient(app, client=("198.51.100.10", 5000)) as client:
        with store.system() as s:
            keys = [access.create_api_key(s, a.id, "analyst", f"k{i}", "test")[1] for i in range(30)]
        for key in keys:  # each one new to the key cache
            assert client.get("/api/deviceGroups", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert client.get("/api/deviceGroups", headers={"Authorization": "Bearer nope"}).status_code == 401


# --- X-Forwarded-For in a real server process -----------------------------------------------

def _source_ip_seen(data_dir: Path, *server_args: str) -> str:
    key = cli("apikey", "create", "--tenant", "acme", "--role", "admin", "--data-dir", str(data_dir))["key"]
    port = free_port()
    proc = start_server(data_dir, port, "--insecure-http", "--no-jobs", *server_args)
    try:
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx.post(f"{base}/api/deviceGroups", json={"name": f"g{port}", "rules": {"name": "x*"}},
                       headers={**auth, "X-Forwarded-For": "203.0.113.9"})
        assert r.status_code in (200, 201), r.text
        entries = httpx.get(f"{base}/api/auditLogs", headers=auth).json()["value"]
        return str(entries[0]["sourceIp"])
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    cli("tenant", "create", "acme", "--data-dir", str(d))
    return d


def test_forwarded_for_from_loopback_is_not_believed_without_trusted_proxy(data_dir: Path) -> None:
    assert _source_ip_seen(data_dir) == "127.0.0.1"
    assert _source_ip_seen(data_dir, "--trusted-proxy", "127.0.0.1/32") == "203.0.113.9"

