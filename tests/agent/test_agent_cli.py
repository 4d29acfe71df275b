"""`garrison agent …` as a user meets it: status, collect, mistakes, the shipped systemd unit."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.agent.harness import REPO, cli_env, garrison

UNIT = REPO / "src" / "garrison" / "agent" / "data" / "garrison-agent.service"


def test_status_of_a_device_that_never_enrolled(tmp_path: Path) -> None:
    st = json.loads(garrison("agent", "status", "--state-dir", str(tmp_path / "none"), "--json").stdout)
    assert st["enrolled"] is False and st["device_id"] is None and st["spool_pending"] == 0
    assert not (tmp_path / "none").exists()  # looking does not create state
    human = garrison("agent", "status", "--state-dir", str(tmp_path / "none")).stdout
    assert "enrolled" in human and "no" in human


def test_collect_prints_what_would_be_sent(tmp_path: Path) -> None:
    out = json.loads(garrison("agent", "collect", "device", "--state-dir", str(tmp_path), "--json").stdout)
    (upload,) = out["device"]["uploads"]
    assert upload["kind"] == "device" and upload["payload"]["os_platform"] == "Linux"
    assert not (tmp_path / "spool.db").exists()  # nothing spooled
    proc = garrison("agent", "collect", "nonsense", "--state-dir", str(tmp_path), check=False)
    assert proc.returncode == 2 and "unknown collector nonsense" in proc.stderr and "device" in proc.stderr


def test_configuration_mistakes_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text('server = "https://x"\nspool_max_bytes = "big"\n')
    proc = garrison("agent", "run", "--config", str(bad), "--once", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "invalid value for spool_max_bytes" in proc.stderr and "Traceback" not in proc.stderr
    proc = garrison("agent", "run", "--server", "garrison.example.org", "--state-dir", str(tmp_path), "--once",
                    "--json", check=False)
    assert proc.returncode == 2 and "https://" in json.loads(proc.stdout)["error"]
    proc = garrison("agent", "run", "--once", "--state-dir", str(tmp_path), check=False,
                    env=cli_env(GARRISON_AGENT_CHECKIN_INTERVAL="often"))
    assert proc.returncode == 2 and "GARRISON_AGENT_CHECKIN_INTERVAL" in proc.stderr


def test_systemd_unit_is_hardened_and_restarts_on_failure() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    svc = unit["Service"]
    assert svc["Restart"] == "on-failure" and svc["RestartPreventExitStatus"] == "3"
    assert "garrison agent run --config /etc/garrison/agent.toml" in svc["ExecStart"]
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict"
    assert svc["ReadWritePaths"] == "/var/lib/garrison-agent" and svc["StateDirectory"] == "garrison-agent"
    assert svc["StateDirectoryMode"] == "0700" and svc["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # systemd checks that ExecStart's program exists; point it at a real one for the check.
    unit = tmp_path / "garrison-agent.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/env garrison", "/bin/true"))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "garrison-agent.service" not in proc.stderr, proc.stderr
