"""RunAntiVirusScan: the agent's handler on real files, and the whole path through a real server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from garrison.agent.actions import run_action
from garrison.agent.collectors.base import AgentContext
from garrison.agent.protection.background import collect_finished
from garrison.agent.protection.status import protection_health, write_status
from garrison.agent.spool import EVENTS_KIND, Spool
from garrison.protocol import ActionOut
from garrison.protocol.events import EventBatch
from tests.agent.harness import Server, wait_for
from tests.agent.protection.samples import EICAR, RULES, plague_sample
from tests.agent.test_agent_server import run_once_json


@dataclass
class Host:
    ctx: AgentContext
    spool: Spool

    def request_resync(self, kind: str) -> list[str]:
        return []

    def request_stop(self, *, offboard: bool) -> None:
        return None


def install_protection_data(state: Path) -> None:
    shutil.copytree(RULES, state / "protection/rules/signature-base")
    (state / "protection/hashes").mkdir(parents=True)
    (state / "protection/hashes/local.txt").write_text("# none of ours\n0123456789abcdef0123456789abcdef;x\n")


def victims(base: Path) -> Path:
    (base / "drop").mkdir(parents=True)
    (base / "drop/eicar.com").write_bytes(EICAR)
    (base / "drop/plague").write_bytes(plague_sample())
    (base / "drop/clean.txt").write_text("nothing\n")
    return base / "drop"


def test_the_handler_scans_reports_events_and_quarantines(tmp_path: Path) -> None:
    state = tmp_path / "state"
    install_protection_data(state)
    drop = victims(tmp_path)
    spool = Spool(state / "spool.db")
    host = Host(AgentContext(state_dir=state, agent_version="test"), spool)
    # The agent's state directory (rule sources match their own rules) is never scanned.
    action = ActionOut(id="a1", type="RunAntiVirusScan",
                       params={"ScanType": "Custom", "Paths": [str(drop), str(state)], "Quarantine": True})
    started = run_action(action, host)
    assert started.status == "InProgress" and started.result["scanType"] == "Custom", started.result
    spool.add_result(started.id, started.model_dump(mode="json"))  # as the runner does
    assert finish(state, spool) == ["a1"]
    [final] = spool.unposted_results()
    assert final["status"] == "Succeeded", final
    rec = final["result"]
    assert rec["state"] == "Completed" and rec["files_scanned"] == 3 and rec["detections_count"] == 2
    assert rec["engine"]["rulePacks"][0].startswith("signature-base@0+") and rec["engine"]["hashes"] == 1
    assert sorted(rec["quarantined"]) == [str(drop / "eicar.com"), str(drop / "plague")]
    assert sorted(p.name for p in drop.iterdir()) == ["clean.txt"]
    assert len(list((state / "protection/quarantine").glob("*.bin"))) == 2
    [batch] = spool.pending()
    assert batch.kind == EVENTS_KIND
    events = EventBatch.model_validate({"seq": 1, **batch.document()["payload"]}).events
    detections = sorted((e.FileName, e.FolderPath, e.AdditionalFields["ThreatName"], e.AdditionalFields["WasRemediated"])  # type: ignore[attr-defined]
                        for e in events if e.ActionType == "AntivirusDetection")  # type: ignore[attr-defined]
    assert detections == [("eicar.com", str(drop), "Virus:DOS/EICAR_Test_File", True),
                          ("plague", str(drop), "MAL_LNX_PLAGUE_BACKDOOR_Jul25", True)]
    assert [e.ActionType for e in events][-1] == "AntivirusScanCompleted"  # type: ignore[attr-defined]
    spool.close()


def finish(state: Path, spool: Spool) -> list[str]:
    """Wait for the background scans of ``state`` to end, then collect them as the agent does."""
    scans = state / "protection/scans"
    wait_for(lambda: all((scans / f"{p.stem}.json").exists() or not (scans / f"{p.stem}.pid").exists()
                         for p in scans.glob("*.pid")), 120, "the scan process")
    return collect_finished(state, spool)


def test_a_scan_process_that_dies_fails_its_action_with_the_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    host = Host(AgentContext(state_dir=tmp_path, agent_version="test"), spool)
    started = run_action(ActionOut(id="k1", type="RunAntiVirusScan", params={"ScanType": "Full"}), host)
    spool.add_result("k1", started.model_dump(mode="json"))
    assert collect_finished(tmp_path, spool) == []  # still running: nothing to post
    os.kill(started.result["pid"], signal.SIGKILL)
    wait_for(lambda: collect_finished(tmp_path, spool) == ["k1"], 60, "the dead scan collected")
    [final] = spool.unposted_results()
    assert final["status"] == "Failed" and "ended without a result" in final["result"]["error"]
    assert list((tmp_path / "protection/scans").iterdir()) == []
    spool.close()


def test_bad_parameters_fail_with_a_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    host = Host(AgentContext(state_dir=tmp_path, agent_version="test"), spool)
    for params in ({"ScanType": "Custom"}, {"ScanType": "Deep"}, {"ScanType": "Custom", "Paths": ["etc"]},
                   {"ScanType": "Quick", "Paths": ["/etc"]}, {"ScanType": "Quick", "Extra": 1}):
        result = run_action(ActionOut(id="b", type="RunAntiVirusScan", params=params), host)
        assert result.status == "Failed" and "RunAntiVirusScan parameters" in result.result["error"]
    spool.close()


def test_run_antivirus_scan_through_the_server(shared_server: Server, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    code, report = run_once_json(state, "--server", shared_server.url, "--enroll", shared_server.secret)
    assert code == 0, report
    device_id = report["device_id"]
    install_protection_data(state)
    drop = victims(tmp_path)
    with httpx.Client(base_url=shared_server.url, verify=False, timeout=30,
                      headers={"Authorization": f"Bearer {shared_server.api_key}"}) as c:
        for body in ({"ScanType": "Custom", "Paths": ["relative"]}, {"ScanType": "Custom"},
                     {"ScanType": "Full", "Paths": ["/"]}, {"ScanType": "Deep"}, {"Unknown": 1}):
            r = c.post(f"/api/machines/{device_id}/runAntiVirusScan", json=body)
            assert r.status_code == 422, (body, r.status_code, r.text)
    action = shared_server.api("POST", f"/api/machines/{device_id}/runAntiVirusScan",
                               json={"Comment": "check the drop", "ScanType": "Custom", "Paths": [str(drop)]})
    assert action["type"] == "RunAntiVirusScan" and action["status"] == "Pending"
    assert action["params"] == {"ScanType": "Custom", "Paths": [str(drop)], "Quarantine": False}
    _code, report = run_once_json(state)
    # The scan runs in the background: the check-in loop is not held, the action is InProgress…
    assert report["actions"] == [{"id": action["id"], "type": "RunAntiVirusScan", "status": "InProgress"}]
    assert shared_server.api("GET", f"/api/machineactions/{action['id']}")["status"] == "InProgress"
    scans = state / "protection/scans"
    wait_for(lambda: (scans / f"{action['id']}.json").exists(), 120, "the scan process")
    # …and the next run of the agent (another process: the scan outlived `run --once`) posts the result.
    run_once_json(state)
    done = shared_server.api("GET", f"/api/machineactions/{action['id']}")
    assert done["status"] == "Succeeded" and done["result"]["detections_count"] == 2
    assert {d["threat_name"] for d in done["result"]["detections"]} == {
        "Virus:DOS/EICAR_Test_File", "MAL_LNX_PLAGUE_BACKDOOR_Jul25"}
    timeline = shared_server.api("GET", f"/api/machines/{device_id}/timeline?tables=DeviceEvents")
    rows = [r for r in timeline["value"] if r["ActionType"] == "AntivirusDetection"]
    assert sorted(r["FileName"] for r in rows) == ["eicar.com", "plague"]
    extra = rows[0]["AdditionalFields"]
    extra = json.loads(extra) if isinstance(extra, str) else extra
    assert extra["ScanType"] == "Custom" and extra["WasRemediated"] is False
    assert (drop / "eicar.com").exists()  # no Quarantine asked: the files stay
    # The rule pack versions reach device health at the next check-in (shown on the device page).
    run_once_json(state)

    def stored_health() -> dict[str, Any] | None:  # heartbeats are written in buffered batches
        with sqlite3.connect(shared_server.data_dir / "garrison.db") as db:
            (raw,) = db.execute("SELECT collector_health FROM devices WHERE id = ?", (device_id,)).fetchone()
        return json.loads(raw).get("protection")

    health = wait_for(stored_health, 60, "the protection health entry")
    assert health["ok"] is True and health["message"].startswith("rule packs: signature-base@0+")
    assert health["message"].endswith("hashes: 1")


def test_protection_health_reports_versions_and_load_errors(tmp_path: Path) -> None:
    assert protection_health(tmp_path) == {}  # nothing loaded yet: no entry
    (tmp_path / "protection").mkdir()
    write_status(tmp_path / "protection", ["signature-base@2026.04+0123456789ab"], {}, 3357)
    ok = protection_health(tmp_path)["protection"]
    assert ok.ok and ok.message == "rule packs: signature-base@2026.04+0123456789ab; hashes: 3357"
    write_status(tmp_path / "protection", [], {"broken": "cannot read"}, 0)
    bad = protection_health(tmp_path)["protection"]
    assert not bad.ok and bad.error == "broken: cannot read"
