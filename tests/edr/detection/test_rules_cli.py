"""`garrison rules status`: counts compiled / not runnable, each unrunnable rule with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GOOD = """title: Whoami
id: 5f0b8c63-3c0e-4d4e-9d0b-000000000010
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\\\\whoami.exe'
    condition: selection
"""
CLOUD = """title: Cloud
id: 5f0b8c63-3c0e-4d4e-9d0b-000000000011
logsource: {product: aws, service: cloudtrail}
detection:
    selection:
        eventName: DeleteTrail
    condition: selection
"""


def test_rules_status_json_lists_every_unrunnable_rule_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD)
    (tmp_path / "cloud.yml").write_text(CLOUD)
    (tmp_path / "broken.yml").write_text("title: x\ndetection: [1, 2\n")
    r = subprocess.run([sys.executable, "-m", "garrison.cli.main", "rules", "status", "--rules", str(tmp_path),
                        "--json"], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["total"], out["compiled"], out["notRunnable"]) == (3, 1, 2)
    assert out["byTable"] == {"DeviceProcessEvents": 1}
    reasons = {u["path"].rsplit("/", 1)[-1]: u["reason"] for u in out["notRunnableRules"]}
    assert reasons["cloud.yml"] == "no Garrison telemetry for logsource aws/*/cloudtrail"
    assert reasons["broken.yml"].startswith("not a Sigma rule")
