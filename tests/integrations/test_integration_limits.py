"""Integration inputs and outputs under abuse (issue 11, items 15 and 16): an outbound call has an
overall deadline however slowly the receiver answers, and a connection's config is bounded in depth
and size before it is saved."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from garrison.integrations import httpclient
from tests.integrations.fakes import Receiver
from tests.tvm.prioritisation.conftest import Env, api

# --- 15: a receiver that answers one byte at a time ------------------------------------------

ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n' + b'{"ok": true, "pad": "' + b"x" * 38 + b'"}'


@contextlib.contextmanager
def trickling_server(head_at_once: bool, every: float = 0.2) -> Iterator[str]:
    """Reads the request, then sends ANSWER a byte every ``every`` seconds (the head in one go when
    ``head_at_once``): each read gets its byte long before the per-read timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                head, body = ANSWER.split(b"\r\n\r\n", 1)
                start = 0
                if head_at_once:
                    conn.sendall(head + b"\r\n\r\n")
                    data = body
                else:
                    data = ANSWER
                for i in range(start, len(data)):
                    if stop.wait(every):
                        return
                    try:
                        conn.sendall(data[i:i + 1])
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("head_at_once", [False, True], ids=["trickled-head", "trickled-body"])
def test_a_trickling_receiver_is_cut_off_at_the_deadline(local_integrations: None, head_at_once: bool) -> None:
    with trickling_server(head_at_once) as url, httpclient.client() as c:
        start = time.monotonic()
        with pytest.raises(httpclient.IntegrationError, match="timed out") as caught:
            httpclient.request(c, "POST", url, json_body={"event": "test"}, deadline=1.5)
        took = time.monotonic() - start
    assert caught.value.retryable
    assert 1.4 < took < 8, f"held for {took:.1f} s"  # the answer needs ~25 s at this pace


def test_a_prompt_answer_is_unaffected_by_the_deadline(local_integrations: None) -> None:
    with Receiver("s") as rx, httpclient.client() as c:
        # unsigned: the receiver answers 401 at once, well within any deadline
        with pytest.raises(httpclient.IntegrationError, match="answered 401"):
            httpclient.request(c, "POST", rx.url + "/hook", json_body={"event": "x"}, deadline=1.0)
        time.sleep(1.2)  # the deadline of the previous request does not follow the pooled connection
        with pytest.raises(httpclient.IntegrationError, match="answered 401"):
            httpclient.request(c, "POST", rx.url + "/hook", json_body={"event": "x"}, deadline=1.0)


def test_requests_have_a_deadline_by_default() -> None:
    assert 0 < httpclient.DEADLINE <= 60


# --- 16: a connection config nested hundreds deep ----------------------------------------------

def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_deeply_nested_config_is_refused_before_saving(env: Env) -> None:
    with Receiver("s") as rx:
        body = {"name": "deep", "kind": "webhook", "config": {"url": rx.url + "/hook", "extra": _nested(900)},
                "secrets": {"secret": "s"}}
        r = env.client.post("/api/integrationConnections", json=body, headers=env.a.headers("admin"))
        assert r.status_code == 400 and "nested deeper" in r.text, r.text[:300]
        listed = api(env, "GET", "/api/integrationConnections", role="admin")
        assert listed["value"] == []  # nothing saved; the list still works
        # moderately nested is fine, and an update cannot nest it deep either
        ok = api(env, "POST", "/api/integrationConnections", role="admin", expect=201,
                 json={**body, "config": {"url": rx.url + "/hook", "extra": _nested(3)}})
        r = env.client.patch(f"/api/integrationConnections/{ok['id']}", headers=env.a.headers("admin"),
                             json={"config": {"url": rx.url + "/hook", "extra": [_nested(899)]}})
        assert r.status_code == 400 and "nested deeper" in r.text
        wide = {"url": rx.url + "/hook", "extra": ["x" * 100] * 400}
        r = env.client.patch(f"/api/integrationConnections/{ok['id']}", headers=env.a.headers("admin"),
                             json={"config": wide})
        assert r.status_code == 400 and "larger than" in r.text
        listed = api(env, "GET", "/api/integrationConnections", role="admin")["value"]
        assert [c["config"]["extra"] for c in listed] == [_nested(3)]


def test_a_trickling_smtp_server_is_cut_off_at_the_deadline(local_integrations: None) -> None:
    from garrison.integrations.notify.email import SmtpConfig, send_email

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def greet_slowly() -> None:
        conn, _ = listener.accept()
        with conn:
            for ch in b"220 " + b"x" * 200:  # a greeting line that never ends in time
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(bytes([ch]))
                except OSError:
                    return

    thread = threading.Thread(target=greet_slowly, daemon=True)
    thread.start()
    try:
        cfg = SmtpConfig(host="127.0.0.1", port=listener.getsockname()[1], starttls=False)
        start = time.monotonic()
        with pytest.raises(httpclient.IntegrationError, match="SMTP 127.0.0.1"):
            send_email(cfg, "ops@example.org", "s", "t", deadline=1.5)
        took = time.monotonic() - start
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert 1.4 < took < 8, f"held for {took:.1f} s"
