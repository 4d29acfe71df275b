"""What protection runs on this device, for device health: written when rule packs load (a scan, the
``garrison protection rules`` command), read at every check-in — a small file, so a check-in never
compiles or hashes rules."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from garrison.protocol import CollectorHealth

STATUS_FILE = "status.json"
HEALTH_NAME = "protection"


def write_status(protection_dir: Path, versions: list[str], errors: dict[str, str], hashes: int) -> None:
    doc = {"rulePacks": versions, "errors": errors, "hashes": hashes,
           "loadedAt": dt.datetime.now(dt.UTC).isoformat()}
    tmp = protection_dir / (STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, protection_dir / STATUS_FILE)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((state_dir / "protection" / STATUS_FILE).read_text(encoding="utf-8")[:65536])
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def protection_health(state_dir: Path) -> dict[str, CollectorHealth]:
    """``{"protection": …}`` once rule packs were loaded on this device (nothing before): ok unless a pack
    or hash list could not load; the message names the rule pack versions."""
    doc = read_status(state_dir)
    if doc is None:
        return {}
    packs = [str(v) for v in doc.get("rulePacks", [])][:20]
    errors = doc.get("errors") or {}
    message = f"rule packs: {', '.join(packs) or 'none'}; hashes: {int(doc.get('hashes', 0))}"
    last = None
    try:
        last = dt.datetime.fromisoformat(str(doc.get("loadedAt")))
    except ValueError:
        pass
    error = "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:5]) if errors else None
    return {HEALTH_NAME: CollectorHealth(ok=not errors, error=error[:4096] if error else None, last_run=last,
                                         message=message[:4096])}
