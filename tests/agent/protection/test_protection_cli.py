"""``garrison protection scan|quarantine|rules`` as an administrator runs them (real processes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.agent.harness import garrison
from tests.agent.protection.samples import EICAR, RULES, plague_sample


def test_scan_quarantine_and_restore_from_the_command_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(RULES, state / "protection/rules/signature-base")
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "eicar.com").write_bytes(EICAR)
    (drop / "plague").write_bytes(plague_sample())
    (drop / "plague").chmod(0o750)

    rules = json.loads(garrison("protection", "rules", "--state-dir", str(state), "--json").stdout)
    assert rules["packs"][0]["version"].startswith("signature-base@0+") and rules["packs"][0]["rules"] == 2
    assert json.loads((state / "protection/status.json").read_text())["rulePacks"] == [rules["packs"][0]["version"]]

    proc = garrison("protection", "scan", str(drop), "--quarantine", "--state-dir", str(state), "--json",
                    check=False)
    assert proc.returncode == 3, proc.stderr  # something was found
    record = json.loads(proc.stdout)
    assert record["scan_type"] == "Custom" and record["detections_count"] == 2
    assert sorted(record["quarantined"]) == [str(drop / "eicar.com"), str(drop / "plague")]
    assert list(drop.iterdir()) == []

    listed = json.loads(garrison("protection", "quarantine", "list", "--state-dir", str(state), "--json").stdout)
    plague = next(e for e in listed if e["original_path"] == str(drop / "plague"))
    assert plague["threat_name"] == "MAL_LNX_PLAGUE_BACKDOOR_Jul25" and plague["mode"] == 0o750
    garrison("protection", "quarantine", "restore", plague["id"], "--state-dir", str(state), "--json")
    assert (drop / "plague").read_bytes() == plague_sample() and (drop / "plague").stat().st_mode & 0o777 == 0o750
    eicar = next(e for e in listed if e["original_path"] == str(drop / "eicar.com"))
    garrison("protection", "quarantine", "delete", eicar["id"], "--state-dir", str(state), "--json")
    assert json.loads(garrison("protection", "quarantine", "list", "--state-dir", str(state), "--json").stdout) == []

    bad = garrison("protection", "quarantine", "restore", "../../etc/passwd", "--state-dir", str(state), check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    clean = garrison("protection", "scan", str(drop / "plague"), "--state-dir", str(state), "--json", check=False)
    assert clean.returncode == 3  # restored, so found again
    relative = garrison("protection", "scan", "--type", "Quick", "/etc", "--state-dir", str(state), check=False)
    assert relative.returncode == 2 and "Custom" in relative.stderr
