"""The load simulator against a real server: every simulated agent enrolls, uploads and checks in."""

from __future__ import annotations

import json
import random
from pathlib import Path

from garrison.agent.simulate import inventory_variants, load_packages, percentiles
from garrison.protocol import InventoryReport
from tests.agent.harness import Server, garrison

DPKG_STATUS = Path(__file__).resolve().parents[1] / "data" / "inventories" / "ubuntu-20.04-ga.dpkg-status"


def test_inventories_come_from_a_real_package_database() -> None:
    packages, os_id = load_packages(DPKG_STATUS)
    assert len(packages) == 221 and all(p.manager == "dpkg" for p in packages)
    variants = inventory_variants(packages, os_id, random.Random(1))
    assert len(variants) == 16 and len(set(variants)) == 16  # a fleet with variety
    for raw in variants:
        report = InventoryReport.model_validate_json(raw)
        assert report.mode == "snapshot" and 150 < len(report.packages) <= 221


def test_percentiles() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentiles(values) == {"count": 100, "p50": 51.0, "p95": 96.0, "p99": 100.0, "max": 100.0}
    assert percentiles([])["count"] == 0


def test_simulated_fleet_against_a_real_server(shared_server: Server, tmp_path: Path) -> None:
    n = 40
    state = tmp_path / "fleet.json"
    proc = garrison("simulate", "--server", shared_server.url, "--enroll", shared_server.secret, "--agents", str(n),
                    "--interval", "0.5", "--duration", "4", "--ramp", "1", "--concurrency", "8",
                    "--inventory", str(DPKG_STATUS), "--state", str(state), "--json", timeout=180)
    result = json.loads(proc.stdout)
    assert result["agents"] == n and result["enrolled"] == n and result["reused"] == 0
    assert result["batches"]["device"] == n and result["batches_not_accepted"]["device"] == 0
    # Each agent sent one inventory snapshot. (Whether this server stores inventories yet is
    # vulnerability management's business; the simulator must send one per agent and count the outcome.)
    assert result["batches"]["inventory"] + result["batches_not_accepted"]["inventory"] == n
    assert all(e.startswith("batch: ") for e in result["errors"]), result["errors"]  # see above
    assert result["checkins"] >= n * 2  # every agent checked in, repeatedly
    lat = result["latency_ms"]["checkin"]
    assert lat["count"] == result["checkins"] and 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    names = {m["computerDnsName"] for m in shared_server.machines()}
    assert {f"sim-{i:05d}.sim.garrison.test" for i in range(n)} <= names

    # A second run with the saved credentials measures check-ins alone: no enrollment, no uploads.
    assert state.stat().st_mode & 0o777 == 0o600
    proc = garrison("simulate", "--server", shared_server.url, "--enroll", shared_server.secret, "--agents", str(n),
                    "--interval", "0.5", "--duration", "2", "--ramp", "0.5", "--state", str(state), "--json",
                    timeout=180)
    again = json.loads(proc.stdout)
    assert again["seed"] == result["seed"] and again["reused"] == n and again["enrolled"] == 0
    assert again["batches"] == {"device": 0, "inventory": 0} and again["errors"] == {}
    assert again["checkins"] >= n * 2
