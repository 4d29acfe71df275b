"""A real `garrison server` killed with SIGKILL in the middle of telemetry ingest, restarted, and an agent
that re-sends what was not acknowledged (and some that was, as after a lost ack): every event is stored
exactly once."""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
from pathlib import Path

import duckdb
import httpx

from tests.server.test_server_process import cli, free_port, start_server

BATCHES = 80
PER_BATCH = 200


def _batch(seq: int) -> dict:
    now = dt.datetime.now(dt.UTC).isoformat()
    return {"seq": seq, "events": [
        {"Table": "DeviceProcessEvents", "Timestamp": now, "ActionType": "ProcessCreated", "ProcessId": seq * 1000 + i,
         "FileName": "sleep", "ProcessCommandLine": f"marker-{seq}-{i}"} for i in range(PER_BATCH)]}


def _send(base: str, headers: dict, pending: dict[int, dict], acked: set[int], stop: threading.Event) -> None:
    with httpx.Client(base_url=base, headers=headers, timeout=5) as client:
        while pending and not stop.is_set():
            for seq in sorted(pending)[:8]:
                body = pending.get(seq)  # another sender may have had it acknowledged meanwhile
                if body is None:
                    continue
                try:
                    r = client.post("/agent/v1/events", json=body)
                except httpx.HTTPError:
                    return  # the server is gone: the batch stays in the spool
                if r.status_code == 200 and r.json()["status"] in ("accepted", "duplicate"):
                    acked.add(seq)
                    pending.pop(seq, None)


def test_sigkill_mid_ingest_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cli("tenant", "create", "acme", "--data-dir", str(data))
    secret = cli("enrollment", "create", "--tenant", "acme", "--data-dir", str(data))["secret"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(data, port, "--insecure-http", "--no-jobs")
    try:
        enrolled = httpx.post(f"{base}/agent/v1/enroll", json={"secret": secret, "machine_key": "k" * 16,
                                                                "hostname": "crash-1", "agent_version": "0.1"}).json()
        headers = {"Authorization": f"Device {enrolled['device_id']}:{enrolled['credential']}"}
        pending = {seq: _batch(seq) for seq in range(1, BATCHES + 1)}
        acked: set[int] = set()
        stop = threading.Event()
        senders = [threading.Thread(target=_send, args=(base, headers, pending, acked, stop)) for _ in range(3)]
        for t in senders:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < BATCHES // 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # mid-stream: requests are in flight
        proc.wait(10)
        stop.set()
        for t in senders:
            t.join(10)
        assert BATCHES // 4 <= len(acked) < BATCHES, "the kill must land mid-stream"
        before_kill = set(acked)

        proc = start_server(data, port, "--insecure-http", "--no-jobs")
        # the restarted agent re-sends its spool, plus a few acknowledged batches whose ack it "lost"
        resend = {seq: _batch(seq) for seq in range(1, BATCHES + 1) if seq not in acked}
        resend.update({seq: _batch(seq) for seq in sorted(before_kill)[:5]})
        _send(base, headers, resend, acked, threading.Event())
        assert not resend and len(acked) == BATCHES
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    with duckdb.connect(str(data / "events.duckdb"), read_only=True) as db:
        total, distinct = db.execute('SELECT count(*), count(DISTINCT "ProcessCommandLine") '
                                     'FROM "DeviceProcessEvents"').fetchone()
        batches = db.execute('SELECT count(*) FROM "EventBatches"').fetchone()[0]
    assert (total, distinct, batches) == (BATCHES * PER_BATCH, BATCHES * PER_BATCH, BATCHES)
