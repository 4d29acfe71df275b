"""The agent against a real Garrison server process on loopback: enrollment, pinning, uploads,
actions, offboarding, revocation, clean shutdown, and durability through outages and restarts."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from garrison.agent.collectors.base import COLLECTORS, AgentContext, Collector
from garrison.agent.runner import Agent, status
from garrison.agent.spool import Spool, enrollment_floor
from garrison.config import AgentConfig
from tests.agent.harness import Server, cli_env, garrison, start_agent, wait_for, write_agent_config

ONLY_DEVICE = {"GARRISON_AGENT_COLLECTORS_ENABLED": "device", "GARRISON_AGENT_BACKOFF_CAP": "1",
               "GARRISON_AGENT_BACKOFF_BASE": "0.2"}


def run_once(state: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return garrison("agent", "run", "--state-dir", str(state), "--once", *args, check=False,
                    env=cli_env(**(ONLY_DEVICE if env is None else env)))


def run_once_json(state: Path, *args: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    proc = run_once(state, *args, "--json", **kw)
    return proc.returncode, json.loads(proc.stdout)


def server_batches(srv: Server, device_id: str) -> list[tuple[int, str]]:
    """(seq, kind) of every upload the server acknowledged for the device, from its own database."""
    with sqlite3.connect(srv.data_dir / "garrison.db") as db:
        rows = db.execute("SELECT seq, kind FROM agent_batches WHERE device_id = ? ORDER BY seq", (device_id,))
        return [(int(s), str(k)) for s, k in rows]


def test_once_enrolls_pins_and_the_device_shows_up(shared_server: Server, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    code, report = run_once_json(state, "--server", shared_server.url, "--enroll", shared_server.secret)
    assert code == 0, report
    assert report["ok"] and report["enrolled_now"] and report["error"] == ""
    assert report["collected"] == {"device": 1} and report["sent"] == 1 and report["pending"] == 0
    device_id = report["device_id"]

    # Identity on disk: private, and the pinned certificate is the server's.
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "identity.json").stat().st_mode & 0o777 == 0o600
    identity = json.loads((state / "identity.json").read_text())
    assert identity["device_id"] == device_id and identity["server"] == shared_server.url
    assert identity["fingerprint"] == shared_server.fingerprint
    pem = (state / "server.pem").read_text()
    assert hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest() == shared_server.fingerprint

    # The server writes heartbeats in batches: lastSeen shows up within its flush interval.
    machine = wait_for(lambda: next((m for m in shared_server.machines() if m["id"] == device_id and m["lastSeen"]),
                                    None), 30, "the check-in to show in the API")
    assert machine["computerDnsName"] == socket.gethostname().lower() or "." in machine["computerDnsName"]
    assert machine["osPlatform"] == "Linux" and machine["kernelVersion"] == os.uname().release
    assert machine["agentVersion"] and machine["onboardingStatus"] == "Onboarded"

    # The second run needs neither server nor secret: it has an identity.
    code, again = run_once_json(state)
    assert code == 0 and again["ok"] and not again["enrolled_now"] and again["device_id"] == device_id
    seqs = [s for s, kind in server_batches(shared_server, device_id) if kind == "device"]
    local = Spool(state / "spool.db")
    assert seqs[-2:] == [local.last_seq() - 1, local.last_seq()]  # both uploads, in order, each once
    local.close()

    st = json.loads(garrison("agent", "status", "--state-dir", str(state), "--json").stdout)
    assert st["enrolled"] and st["device_id"] == device_id and st["server"] == shared_server.url
    assert st["spool_pending"] == 0 and st["drops"] == {} and st["last"]["last_checkin"]


def test_plain_http_only_when_the_url_says_so(make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server("plain", insecure=True)
    state = tmp_path / "agent"
    code, report = run_once_json(state, "--server", srv.url, "--enroll", srv.secret)
    assert code == 0, report
    assert json.loads((state / "identity.json").read_text())["fingerprint"] is None
    assert not (state / "server.pem").exists()
    assert [m["id"] for m in srv.machines()] == [report["device_id"]]


def test_wrong_secret_and_unreachable_server_are_one_clear_line(shared_server: Server, tmp_path: Path) -> None:
    proc = run_once(tmp_path / "a", "--server", shared_server.url, "--enroll", "ge_not_a_real_secret_000")
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "enrollment refused" in proc.stderr and "401" in proc.stderr
    assert not (tmp_path / "a" / "identity.json").exists()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    proc = run_once(tmp_path / "b", "--server", f"https://127.0.0.1:{dead}", "--enroll", shared_server.secret)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0
    assert f"cannot reach https://127.0.0.1:{dead}" in proc.stderr

    proc = run_once(tmp_path / "c")
    assert proc.returncode == 1 and "not enrolled yet" in proc.stderr


def test_actions_run_and_report_back(shared_server: Server, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    code, report = run_once_json(state, "--server", shared_server.url, "--enroll", shared_server.secret)
    assert code == 0, report
    device_id = report["device_id"]
    action = shared_server.api("POST", f"/api/machines/{device_id}/collectInventory", json={"Comment": "test"})
    env = {**ONLY_DEVICE, "GARRISON_AGENT_COLLECTORS_ENABLED": "device,inventory"}
    # (Whether the server stores the inventory is vulnerability management's business, not this test's.)
    _code, report = run_once_json(state, env=env)
    assert report["actions"] == [{"id": action["id"], "type": "CollectInventory", "status": "Succeeded"}]
    assert report["collected"].get("inventory", 0) >= 2  # the regular run, and the one the action asked for
    done = shared_server.api("GET", f"/api/machineactions/{action['id']}")
    assert done["status"] == "Succeeded"

    # A delivered action is run once: the next run has nothing to do.
    _code, report = run_once_json(state)
    assert report["actions"] == [] and "no enabled collector" not in report["error"]


def test_offboarding_removes_the_credential_for_good(shared_server: Server, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    code, report = run_once_json(state, "--server", shared_server.url, "--enroll", shared_server.secret)
    assert code == 0, report
    device_id = report["device_id"]
    action = shared_server.api("POST", f"/api/machines/{device_id}/offboard", json={"Comment": "decommissioned"})
    code, report = run_once_json(state)
    assert code == 0, report
    assert report["offboarded"] and report["actions"][0]["type"] == "Offboard"
    assert shared_server.api("GET", f"/api/machineactions/{action['id']}")["status"] == "Succeeded"
    assert not (state / "identity.json").exists() and not (state / "server.pem").exists()
    st = json.loads(garrison("agent", "status", "--state-dir", str(state), "--json").stdout)
    assert st["enrolled"] is False and st["offboarded"] is True

    # A secret in the configuration does not silently bring the device back…
    env = {**ONLY_DEVICE, "GARRISON_AGENT_SERVER": shared_server.url, "GARRISON_AGENT_ENROLL_SECRET": shared_server.secret}
    proc = run_once(state, env=env)
    assert proc.returncode == 1 and "offboarded" in proc.stderr
    # …a person giving --enroll does.
    code, report = run_once_json(state, "--server", shared_server.url, "--enroll", shared_server.secret)
    assert code == 0 and report["enrolled_now"] and report["device_id"] == device_id


def test_a_revoked_credential_stops_the_agent(shared_server: Server, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    assert run_once_json(old, "--server", shared_server.url, "--enroll", shared_server.secret)[0] == 0
    # The same machine enrolls again (re-install): the server issues a new credential, the old one is void.
    assert run_once_json(new, "--server", shared_server.url, "--enroll", shared_server.secret)[0] == 0
    code, report = run_once_json(old)
    assert code == 3 and "rejected the device credential" in report["error"]
    assert (old / "identity.json").exists()  # kept: an operator decides what happens next
    # The long-running agent stops too, with the exit status systemd does not restart.
    config = write_agent_config(tmp_path / "old.toml", shared_server, old)
    agent = start_agent(config, tmp_path / "old.log")
    assert agent.wait(60) == 3
    assert "rejected the device credential" in (tmp_path / "old.log").read_text()


def test_sigterm_stops_cleanly(shared_server: Server, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    config = write_agent_config(tmp_path / "agent.toml", shared_server, state, checkin_interval=1)
    agent = start_agent(config, tmp_path / "agent.log")
    try:
        wait_for(lambda: status(state)["last"].get("last_checkin"), 60, "the first check-in")
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
    log = (tmp_path / "agent.log").read_text()
    assert "agent stopped" in log and "Traceback" not in log
    assert status(state)["spool_pending"] == 0


class RootOnly(Collector):
    name = "test_root_only"
    needs_root = True
    kinds: ClassVar[tuple[str, ...]] = ("device",)

    def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
        raise AssertionError("must not run without root")


class Broken(Collector):
    name = "test_broken"

    def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
        raise OSError("database locked")


def test_health_tells_disabled_from_failing(shared_server: Server, tmp_path: Path) -> None:
    COLLECTORS.add(RootOnly.name, RootOnly)
    COLLECTORS.add(Broken.name, Broken)
    try:
        cfg = AgentConfig(server=shared_server.url, enroll_secret=shared_server.secret, state_dir=tmp_path / "a",
                          collectors_enabled=["device", RootOnly.name, Broken.name]).validate()
        agent = Agent(cfg, explicit_enroll=True)
        agent.ctx.is_root = False  # as an ordinary user
        report = agent.run_once()
    finally:
        COLLECTORS.remove(RootOnly.name)
        COLLECTORS.remove(Broken.name)
    assert report.ok, report.error
    health = report.health
    assert health["test_root_only"]["disabled"] is True and health["test_root_only"]["ok"] is True
    assert "needs root" in health["test_root_only"]["error"]
    assert health["test_broken"] == {"ok": False, "error": "OSError: database locked",
                                     "last_run": health["test_broken"]["last_run"], "disabled": False,
                                     "message": None}
    assert health["device"]["ok"] is True and health["device"]["last_run"]
    assert health["inventory"]["disabled"] is True  # not in the enabled list
    assert report.collected == {"device": 1}


def test_pinning_refuses_another_server_on_the_same_address(make_server: Callable[..., Server],
                                                             tmp_path: Path) -> None:
    real = make_server("real")
    state = tmp_path / "agent"
    code, report = run_once_json(state, "--server", real.url, "--enroll", real.secret)
    assert code == 0, report
    real.stop()

    impostor = make_server("impostor", port=real.port)  # its own, different certificate
    assert impostor.fingerprint != real.fingerprint
    code, report = run_once_json(state)
    assert code == 1 and "pinned" in report["error"]
    assert report["pending"] == 1  # what it collected waits for the real server
    assert impostor.machines() == []

    # With the real fingerprint given up front, a fresh agent does not even send the secret.
    proc = run_once(tmp_path / "fresh", "--server", impostor.url, "--enroll", impostor.secret,
                    "--fingerprint", real.fingerprint)
    assert proc.returncode == 1 and "secret was not sent" in proc.stderr
    secrets = impostor.api("GET", "/api/enrollmentSecrets")["value"]
    assert [s.get("uses", 0) for s in secrets] == [0]
    impostor.stop()

    real.start()
    code, report = run_once_json(state)
    assert code == 0 and report["sent"] == 2 and report["pending"] == 0


def test_server_down_for_an_hour_agent_restarted_meanwhile_nothing_is_lost(
        make_server: Callable[..., Server], tmp_path: Path) -> None:
    """The hour is compressed: the device collector runs every second and retries back off to at most 1 s."""
    srv = make_server("durable")
    state = tmp_path / "agent"
    config = write_agent_config(tmp_path / "agent.toml", srv, state, checkin_interval=1, intervals={"device": 1})
    log = tmp_path / "agent.log"
    agent = start_agent(config, log)
    agents = [agent]
    try:
        ident = wait_for(lambda: (state / "identity.json").exists() and json.loads((state / "identity.json").read_text()),
                         60, "enrollment")
        device_id = ident["device_id"]
        wait_for(lambda: len(server_batches(srv, device_id)) >= 2, 60, "the first uploads")

        srv.kill()  # the server vanishes mid-flight
        wait_for(lambda: status(state)["spool_pending"] >= 3, 60, "batches piling up in the spool")

        agent.kill()  # the agent dies too, without any chance to clean up
        agent.wait(30)
        pending_at_crash = status(state)["spool_pending"]
        assert pending_at_crash >= 3

        agent = start_agent(config, log)  # restarted while the server is still down
        agents.append(agent)
        wait_for(lambda: status(state)["spool_pending"] >= pending_at_crash + 2, 60, "more batches after restart")

        srv.start()
        wait_for(lambda: status(state)["spool_pending"] == 0, 90, "the spool to drain")
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
    finally:
        for a in agents:
            if a.poll() is None:
                a.kill()

    st = status(state)
    # The collector runs every second: a batch numbered between the drain and SIGTERM may still wait,
    # durably, in the spool (sent at the next start) — never lost, never dropped.
    assert st["spool_pending"] <= 2 and st["drops"] == {}
    received = server_batches(srv, device_id)
    seqs = [s for s, _ in received]
    # Everything the agent ever numbered arrived exactly once, or is the newest still in the spool:
    # nothing lost across the outage and the crash.
    enrolled_at = dt.datetime.fromisoformat(ident["enrolled_at"]).timestamp()
    assert abs(seqs[0] - enrollment_floor(enrolled_at)) <= 2  # the very first upload is there too
    assert seqs == list(range(seqs[0], st["last_seq"] + 1 - st["spool_pending"]))
    assert {k for _, k in received} == {"device"}
    assert len(seqs) >= pending_at_crash + 4
    text = log.read_text()
    assert "cannot reach" in text and "Traceback" not in text


def test_jitter_spreads_checkins(tmp_path: Path) -> None:
    agent = Agent(AgentConfig(state_dir=tmp_path).validate())
    values = [agent._jittered(100) for _ in range(2000)]
    assert min(values) >= 90 and max(values) <= 110
    assert min(values) < 91 and max(values) > 109  # the whole ±10% band is used


def test_run_in_thread_stops_on_its_event(shared_server: Server, tmp_path: Path) -> None:
    from garrison.agent.runner import run_in_thread

    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(run_in_thread(
        server=shared_server.url, enroll_secret=shared_server.secret, state_dir=tmp_path / "embedded",
        stop=stop, fingerprint=shared_server.fingerprint, checkin_interval=1, collectors_enabled=["device"])))
    t.start()
    wait_for(lambda: status(tmp_path / "embedded")["last"].get("last_checkin"), 60, "the embedded agent's check-in")
    stop.set()
    t.join(30)
    assert not t.is_alive() and result == [0]


@pytest.fixture(autouse=True)
def _no_stray_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("GARRISON_AGENT_"):
            monkeypatch.delenv(key)


def test_first_start_before_the_server_is_up_keeps_trying(make_server: Callable[..., Server],
                                                          tmp_path: Path) -> None:
    srv = make_server("late", start=False)  # provisioned, not yet listening
    state = tmp_path / "agent"
    config = write_agent_config(tmp_path / "agent.toml", srv, state, checkin_interval=1)
    agent = start_agent(config, tmp_path / "agent.log")
    try:
        wait_for(lambda: "retrying in" in (tmp_path / "agent.log").read_text(), 60, "a failed enrollment attempt")
        assert agent.poll() is None  # still running, not given up
        srv.start()
        wait_for(lambda: (state / "identity.json").exists(), 60, "enrollment once the server is up")
        device_id = json.loads((state / "identity.json").read_text())["device_id"]
        wait_for(lambda: any(m["id"] == device_id for m in srv.machines()), 30, "the device in the API")
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
    finally:
        if agent.poll() is None:
            agent.kill()


def test_sensor_exclusions_reach_the_agent_once_per_change(shared_server: Server, tmp_path: Path) -> None:
    """Sensor exclusions are part of the agent's versioned configuration: the first check-in brings them,
    an unchanged configuration is not sent again, and a change reaches the agent at its next check-in (the
    agent keeps what it got for sensors started later)."""
    url = "/api/settings/sensorExclusions"
    rule = {"table": "DeviceProcessEvents", "column": "ProcessCommandLine", "op": "contains", "value": "nightly-backup"}
    shared_server.api("PUT", url, json={"exclusions": [rule]})
    agent = Agent(AgentConfig(state_dir=tmp_path / "agent", server=shared_server.url,
                              enroll_secret=shared_server.secret, collectors_enabled=["device"]))
    agent.open()
    try:
        first = agent.checkin()
        assert [e.value for e in first.sensor_exclusions or []] == ["nightly-backup"]
        assert agent.config_version == first.config_version > 0
        assert [e["value"] for e in agent.server_exclusions] == ["nightly-backup"]
        again = agent.checkin()
        assert again.sensor_exclusions is None and again.config_version == first.config_version  # not resent
        assert [e["value"] for e in agent.server_exclusions] == ["nightly-backup"]  # and kept

        shared_server.api("PUT", url, json={"exclusions": [rule, {**rule, "value": "apt-get"}]})
        changed = agent.checkin()
        assert [e.value for e in changed.sensor_exclusions or []] == ["nightly-backup", "apt-get"]
        assert changed.config_version not in (0, first.config_version) and agent.config_version == changed.config_version
        assert agent.checkin().sensor_exclusions is None
        assert [e["value"] for e in agent.server_exclusions] == ["nightly-backup", "apt-get"]
    finally:
        shared_server.api("PUT", url, json={"exclusions": []})
        agent.close()
