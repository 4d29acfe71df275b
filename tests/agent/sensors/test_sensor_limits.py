"""What keeps the sensor from becoming the problem: the rate cap, and running without root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_the_rate_cap_drops_and_counts_what_exceeds_it(start_sensor) -> None:
    run = start_sensor({"rate_limit": 20, "burst": 50})
    marker = f"capped-{os.getpid()}"
    subprocess.run(["/bin/sh", "-c", f"i=0; while [ $i -lt 300 ]; do /bin/true {marker} $i; i=$((i+1)); done"],
                   check=True, timeout=60)
    run.recorder.wait_for(lambda r: False, timeout=1.5)  # let the sensor catch up
    kept = [r for r in run.recorder.rows("DeviceProcessEvents") if marker in r["ProcessCommandLine"]]
    dropped = run.manager.drops().get("events.rate_cap", 0)
    assert 50 <= len(kept) < 300
    assert dropped >= 300 - len(kept)  # every one not kept was counted (plus whatever else ran meanwhile)


UNPRIVILEGED = textwrap.dedent("""
    import json, os, subprocess, time
    from garrison.agent.sensors.manager import SensorManager, load_sensors
    load_sensors()  # imported as root: the interpreter lives where nobody may not read
    os.setgid(65534); os.setgroups([]); os.setuid(65534)
    rows = []
    m = SensorManager(lambda kind, payload: rows.extend(payload["events"]), self_pids={-1})
    m.sink.flush_interval = 0.1
    m.start()
    p = subprocess.Popen(["sleep", "3"])
    time.sleep(2.5)
    health = {k: v.model_dump(mode="json") for k, v in m.health().items()}
    m.stop()
    p.kill()
    print(json.dumps({"health": health, "pids": [r.get("ProcessId") for r in rows], "sleep": p.pid}))
""")


def test_without_root_it_collects_what_it_can_and_says_what_it_cannot(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", UNPRIVILEGED], check=True, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    result = json.loads(out.stdout)
    audit, poll = result["health"]["sensor.audit"], result["health"]["sensor.procpoll"]
    assert audit["ok"] is False and "needs root" in audit["error"] and "DeviceNetworkEvents" in audit["error"]
    assert "shorter-lived ones are missed" in poll["error"] and "network, file, logon" in poll["error"]
    assert result["sleep"] in result["pids"]  # a process that lived long enough was seen


def test_device_and_network_snapshots_at_start_and_on_change_only(tmp_path: Path) -> None:
    from garrison.agent.sensors.manager import SensorManager
    from tests.agent.sensors.conftest import Recorder

    rec = Recorder()
    mgr = SensorManager(rec.put, enabled=["snapshot"], settings={"snapshot_check": 0.2})
    mgr.sink.flush_interval = 0.1
    mgr.start()
    try:
        info = rec.wait_for(lambda r: True, "DeviceInfo")
        nets = rec.wait_for(lambda r: r["NetworkAdapterName"] == "lo", "DeviceNetworkInfo")
        rec.wait_for(lambda r: False, timeout=1.0)  # several more looks: nothing changed, nothing sent
    finally:
        mgr.stop()
    assert len(rec.rows("DeviceInfo")) == 1
    assert info[0]["OSPlatform"] == "Linux" and info[0]["ClientVersion"] and info[0]["OSArchitecture"]
    lo = json.loads(nets[0]["IPAddresses"])
    assert {"IPAddress": "127.0.0.1", "SubnetPrefix": 8, "AddressType": "Static"} in lo
    assert nets[0]["NetworkAdapterType"] == "SoftwareLoopback"


def test_sensor_settings_from_agent_toml_are_validated(tmp_path: Path) -> None:
    import pytest

    from garrison.config import ConfigError, load_agent_config

    good = tmp_path / "agent.toml"
    good.write_text('[sensors]\nrate_limit = 500\nfile_paths = ["/etc"]\n'
                    'exclusions = [{column = "FolderPath", op = "startswith", value = "/var/cache/"}]\n')
    cfg = load_agent_config(good, env={})
    assert cfg.sensors_enabled and cfg.sensors["rate_limit"] == 500 and cfg.sensors["file_paths"] == ["/etc"]
    assert not load_agent_config(good, env={"GARRISON_AGENT_SENSORS": "off"}).sensors_enabled
    for bad in ('[sensors]\nrate_limit = 0\n', '[sensors]\nfile_paths = ["relative"]\n',
                '[sensors]\nexclusions = [{column = "X", op = "regex", value = "y"}]\n', '[sensors]\nnope = 1\n'):
        (tmp_path / "bad.toml").write_text(bad)
        with pytest.raises(ConfigError):
            load_agent_config(tmp_path / "bad.toml", env={})
