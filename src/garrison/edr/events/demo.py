"""``garrison demo``'s Windows sample device: a real recorded attack (OTRF Security-Datasets, SharpView
LDAP reconnaissance: Sysmon and Security logs) imported as an agentless device's telemetry, its times
moved to end now so that the timeline's default range shows it (the original times stay in
AdditionalFields)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from garrison.core import access
from garrison.edr.events.imports import import_windows, parse_files, resolve_device
from garrison.edr.events.store import EventStore
from garrison.store.db import Store

SAMPLE = Path(__file__).resolve().parent / "data" / "otrf-cmd_sharpview_pcre_net.zip"
DEVICE = "win-demo-01"


def load_windows_sample(store: Store, events: EventStore, tenant: str) -> dict[str, Any]:
    with store.system() as s:
        tenant_id = access.tenant_by_name(s, tenant).id
    device_id, name, created = resolve_device(store, tenant_id, device_name=DEVICE)
    if not created:
        return {"windowsSample": name, "windowsSampleEvents": "already imported"}
    parsed = parse_files([(SAMPLE.name, SAMPLE.read_bytes())])
    latest = max(r["Timestamp"] for p in parsed for r in p.rows)
    shift = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5) - latest
    for p in parsed:
        for row in p.rows:
            for k, v in row.items():
                if isinstance(v, dt.datetime):
                    row[k] = v + shift
    out = import_windows(events.write, tenant_id, device_id, name, parsed)
    return {"windowsSample": name, "windowsSampleEvents": out["stored"]}
