"""`garrison demo`: server, admin, knowledge base, demo fleet and the local agent; Ctrl-C stops it;
a second run reuses the data directory."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server.test_server_process import free_port


def _start(data: Path, port: int) -> tuple[subprocess.Popen[str], dict]:
    proc = subprocess.Popen([sys.executable, "-m", "garrison.cli.main", "demo", "--data-dir", str(data),
                             "--port", str(port), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line, proc.stderr.read()  # type: ignore[union-attr]
    return proc, json.loads(line)


def test_demo_runs_and_reuses_its_data(tmp_path: Path) -> None:
    data, port = tmp_path / "demo", free_port()
    proc, info = _start(data, port)
    try:
        assert info["url"] == f"https://127.0.0.1:{port}" and info["username"] == "admin"
        pinned = ssl.create_default_context(cafile=str(data / "tls" / "server.crt"))
        pinned.check_hostname = False
        client = httpx.Client(base_url=info["api"], verify=pinned,
                              headers={"Authorization": f"Bearer {info['apiKey']}"})
        deadline, machines = time.monotonic() + 90, []
        while time.monotonic() < deadline:
            machines = client.get("/machines").json()["value"]
            if any(not m["isAgentless"] and m["lastSeen"] for m in machines):
                break
            time.sleep(1)
        local = [m for m in machines if not m["isAgentless"]]
        assert local and local[0]["healthStatus"] in ("Active", "ImpairedCommunication"), machines
        assert any(m["isAgentless"] for m in machines), "the demo fleet is missing"
        vulns = client.get("/vulnerabilities", params={"$filter": "id eq 'CVE-2021-3156'"}).json()["value"]
        assert vulns and vulns[0]["exposedMachines"] >= 1  # sudo on the Ubuntu 20.04 demo device
        # the imported Windows sample device has its telemetry on the timeline
        assert info["windowsSampleEvents"] > 100
        win = next(m for m in machines if m["computerDnsName"] == info["windowsSample"])
        events = client.get(f"/machines/{win['id']}/timeline", params={"tables": "DeviceProcessEvents"}).json()
        assert any(e["FileName"] == "SharpView.exe" for e in events["value"])
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    proc, again = _start(data, port)
    try:
        assert again["apiKey"] == info["apiKey"] and again["password"] == info["password"]
        assert again["windowsSampleEvents"] == "already imported"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
