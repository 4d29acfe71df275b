"""The ``RunAntiVirusScan`` machine action on the agent, and what it reports.

The agent's protection data lives under ``<state_dir>/protection/`` (0700):

* ``rules/<pack>/`` — YARA rule packs (sources + optional ``pack.json``; a later step delivers them from
  the server as data); ``rules/`` itself may hold the sources of one pack;
* ``hashes/*.txt`` — hash lists (``HASH;COMMENT``); ``cache/`` — compiled rules; ``quarantine/``.

The engine is built for each scan and dropped after it (a compiled pack loads from the cache in a
quarter of a second, and the agent does not carry the rules' memory between scans). The protection
state directory is never scanned (the rule sources match their own rules). Each detection becomes a
``DeviceEvents`` row with ActionType ``AntivirusDetection`` and the scan's end one
``AntivirusScanCompleted``/``Cancelled``/``Failed``, spooled as telemetry (kind ``events``) so they
reach the event store through the normal upload, not through the sensors' rate cap.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from garrison.agent.actions import ActionHost, Outcome
from garrison.agent.protection.background import start_scan
from garrison.agent.protection.clamd import Clamd
from garrison.agent.protection.engine import Engine
from garrison.agent.protection.hashes import HashReputation
from garrison.agent.protection.quarantine import Quarantine
from garrison.agent.protection.rulepack import SUFFIXES, RulePack, load_pack
from garrison.agent.protection.scan import Scan, ScanRecord
from garrison.agent.protection.status import write_status
from garrison.protocol import ActionOut
from garrison.protocol.protection import ANTIVIRUS_DETECTION, SCAN_ENDED, ScanParams

log = logging.getLogger("garrison.agent.protection")

MAX_EVENTS = 1000  # detection rows per scan (the record counts them all)


def protection_dir(state_dir: Path) -> Path:
    d = state_dir / "protection"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def load_packs(rules_dir: Path, cache_dir: Path) -> tuple[list[RulePack], dict[str, str]]:
    """Every pack under ``rules_dir``; a pack that cannot load is reported, the others still run."""
    packs: list[RulePack] = []
    errors: dict[str, str] = {}
    if not rules_dir.is_dir():
        return packs, errors
    candidates = [rules_dir] if any(p.suffix in SUFFIXES for p in rules_dir.iterdir()) else []
    candidates += sorted(p for p in rules_dir.iterdir() if p.is_dir())
    for pack_dir in candidates:
        try:
            packs.append(load_pack(pack_dir, cache_dir))
        except (OSError, ValueError) as exc:
            errors[pack_dir.name] = str(exc)[:500]
        except Exception as exc:  # noqa: BLE001 - libyara's errors: one bad pack must not stop the scan
            errors[pack_dir.name] = f"{type(exc).__name__}: {exc}"[:500]
    return packs, errors


def build_engine(state_dir: Path) -> tuple[Engine, dict[str, str]]:
    base = protection_dir(state_dir)
    packs, errors = load_packs(base / "rules", base / "cache")
    hashes = HashReputation()
    hashes_dir = base / "hashes"
    if hashes_dir.is_dir():
        for path in sorted(hashes_dir.glob("*.txt")):
            try:
                hashes.load(path)
            except (OSError, ValueError) as exc:
                errors[path.name] = str(exc)[:500]
    write_status(base, [p.version for p in packs], errors, len(hashes))
    return Engine(packs, hashes, clamd=Clamd.detect()), errors


def detection_events(record: ScanRecord, remediated: set[str]) -> list[tuple[str, dict[str, Any]]]:
    now = dt.datetime.now(dt.UTC).isoformat()
    rows: list[tuple[str, dict[str, Any]]] = []
    for d in record.detections[:MAX_EVENTS]:
        path, _, member = d["path"].partition("!")
        folder, _, name = path.rpartition("/")
        rows.append(("DeviceEvents", {
            "Timestamp": now, "ActionType": ANTIVIRUS_DETECTION, "FileName": name, "FolderPath": folder or "/",
            "SHA1": d["sha1"] if not member else "", "SHA256": d["sha256"] if not member else "",
            "MD5": d["md5"] if not member else "", "FileSize": d["size"] if not member else None,
            "AdditionalFields": {
                "ThreatName": d["threat_name"], "WasRemediated": path in remediated,
                "WasExecutingWhileDetected": False, "Engine": d["engine"], "Rule": d["rule"],
                "ArchiveMember": member or None, "MemberSHA256": d["sha256"] if member else None,
                "ScanId": record.scan_id, "ScanType": record.scan_type, "ReportSource": "Garrison scan"},
        }))
    rows.append(("DeviceEvents", {
        "Timestamp": now, "ActionType": SCAN_ENDED.get(record.state, "AntivirusScanFailed"),
        "AdditionalFields": {"ScanId": record.scan_id, "ScanType": record.scan_type,
                             "FilesScanned": record.files_scanned, "Detections": record.detections_count,
                             "DurationSeconds": record.duration_s, "RulePacks": record.engine.get("rulePacks", [])},
    }))
    return rows


def quarantine_detections(record: ScanRecord, quarantine: Quarantine) -> tuple[set[str], list[str]]:
    """Move each detected file (not archive members: their archive) into the quarantine."""
    done: set[str] = set()
    failed: list[str] = []
    for d in record.detections:
        path = d["path"].partition("!")[0]
        if path in done:
            continue
        try:
            quarantine.add(path, d["threat_name"], d)
            done.add(path)
        except (OSError, ValueError) as exc:
            failed.append(f"{path}: {exc}"[:500])
    return done, failed


def scan(state_dir: Path, params: ScanParams) -> dict[str, Any]:
    """Run one scan here (in the scan process): the record, its events rows and what was quarantined."""
    engine, load_errors = build_engine(state_dir)
    # The agent's own state (rule sources match their own rules; spooled telemetry quotes command lines).
    job = Scan(engine, params.ScanType, params.Paths, exclude=[str(state_dir.resolve())])
    record = job.run()
    remediated: set[str] = set()
    failures: list[str] = []
    if params.Quarantine and record.detections:
        remediated, failures = quarantine_detections(record, Quarantine(protection_dir(state_dir) / "quarantine"))
    result = record.to_dict()
    result.update(loadErrors=load_errors, quarantined=sorted(remediated), quarantineFailures=failures)
    return {"result": result, "events": detection_events(record, remediated)}


def run_antivirus_scan(action: ActionOut, host: ActionHost) -> Outcome:
    """Start the scan in a process of its own (:mod:`.background`) and answer ``InProgress``: the rules'
    memory (~30 MB for signature-base) is not the agent's, a crash of libyara on a hostile file is not the
    agent's, the scan's CPU and I/O priority are its own, and a Full scan does not hold the check-ins.
    The final result is posted when the scan ends (``background.collect_finished``)."""
    try:
        params = ScanParams.model_validate(action.params)
    except ValueError as exc:
        return Outcome("Failed", {"error": f"invalid RunAntiVirusScan parameters: {exc}"[:4000]})
    pid = start_scan(host.ctx.state_dir, action.id, params.model_dump_json())
    log.info("%s scan for action %s started (pid %d)", params.ScanType, action.id, pid)
    return Outcome("InProgress", {"scanType": params.ScanType, "pid": pid})
