"""`garrison events import` runs the rules on what it imports (as the server's ingest does): OTRF's SharpView
recording raises its alerts in the state store, each with the rule's author."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from garrison.store.db import Store
from garrison.store.models.detection import Alert

OTRF = Path(__file__).resolve().parents[2] / "data" / "edr" / "windows" / "otrf"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "garrison.cli.main", *args], capture_output=True, text=True,
                          timeout=300, check=False, stdin=subprocess.DEVNULL)


def test_events_import_raises_alerts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _cli("tenant", "create", "acme", "--data-dir", str(data), "--json").returncode == 0
    r = _cli("events", "import", "--tenant", "acme", "--device", "win-1", str(OTRF / "cmd_sharpview_pcre_net.zip"),
             "--data-dir", str(data), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["alerts"]["created"] >= 3 and out["alerts"]["matches"] >= out["alerts"]["created"]
    store = Store(f"sqlite:///{data / 'garrison.db'}")
    try:
        with store.system() as s:
            found = list(s.scalars(select(Alert)))
    finally:
        store.dispose()
    assert len(found) == out["alerts"]["created"]
    sharpview = next(a for a in found if a.title == "HackTool - SharpView Execution")
    assert sharpview.severity == "High" and sharpview.rule["author"] and sharpview.device_id == out["machineId"]
    assert any(e["entityType"] == "Process" and "SharpView" in e.get("filePath", "") for e in sharpview.evidence)
