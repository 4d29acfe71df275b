"""Scans in the background: the ``RunAntiVirusScan`` handler starts the scan process and returns
``InProgress`` at once, so a Full scan never holds the agent's check-ins; the agent collects finished
scans before each upload (``collect_finished``) and posts their final result.

Everything a running scan needs to be found again lives in ``<state>/protection/scans/`` (0700):
``<action>.params`` (the parameters), ``<action>.pid``, ``<action>.err`` (the scan's stderr) and, when it
ends, ``<action>.json`` (written whole by the scan process: record and event rows). The scan process is
in a session of its own: it outlives an agent restart or ``agent run --once``, and whichever agent
process runs next posts its result. A scan process that is gone without a result fails its action with
the reason. This module stays light (no libyara): the agent imports it at start.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

from garrison.agent.sensors.base import to_payload
from garrison.agent.spool import EVENTS_KIND
from garrison.protocol import ActionResult, ActionStatus

log = logging.getLogger("garrison.agent.protection")
WORKER_MODULE = "garrison.agent.protection.worker"


class ResultSpool(Protocol):
    def put(self, kind: str, payload: dict[str, Any]) -> int | None: ...

    def replace_result(self, action_id: str, body: dict[str, Any]) -> None: ...


def scans_dir(state_dir: Path) -> Path:
    d = state_dir / "protection" / "scans"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir / "protection", 0o700)
    return d


def start_scan(state_dir: Path, action_id: str, params_json: str) -> int:
    """Start the scan process for ``action_id``; returns its pid."""
    d = scans_dir(state_dir)
    (d / f"{action_id}.params").write_text(params_json, encoding="utf-8")
    with open(d / f"{action_id}.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, "--state-dir", str(state_dir),
             "--params", str(d / f"{action_id}.params"), "--out", str(d / f"{action_id}.json")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    (d / f"{action_id}.pid").write_text(str(proc.pid), encoding="utf-8")
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[-1].split()[0]
    except OSError:
        return False
    return WORKER_MODULE.encode() in cmdline and state != b"Z"


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # our own child: no zombie left behind
    except ChildProcessError:
        pass


def collect_finished(state_dir: Path, spool: ResultSpool) -> list[str]:
    """Post the results of scans that ended (and fail those whose process is gone without one)."""
    d = state_dir / "protection" / "scans"
    if not d.is_dir():
        return []
    done: list[str] = []
    for pid_file in sorted(d.glob("*.pid")):
        action_id = pid_file.stem
        status: ActionStatus
        out = d / f"{action_id}.json"
        try:
            pid = int(pid_file.read_text(encoding="utf-8").strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid:
            _reap(pid)
        if out.is_file():
            try:
                doc = json.loads(out.read_text(encoding="utf-8"))
                spool.put(EVENTS_KIND, to_payload([(table, row) for table, row in doc["events"]]))
                result = doc["result"]
                status = "Succeeded" if result.get("state") == "Completed" else "Failed"
            except (OSError, ValueError, KeyError, TypeError) as exc:
                status, result = "Failed", {"error": f"unreadable scan result: {exc}"[:4000]}
        elif pid and _alive(pid):
            continue
        else:
            try:
                err = (d / f"{action_id}.err").read_text(encoding="utf-8", errors="replace")[-2000:]
            except OSError:
                err = ""
            status, result = "Failed", {"error": f"the scan process ended without a result: {err}".strip()}
        spool.replace_result(action_id, ActionResult(id=action_id, status=status, result=result)
                             .model_dump(mode="json"))
        for suffix in (".json", ".params", ".err", ".pid"):
            (d / f"{action_id}{suffix}").unlink(missing_ok=True)
        log.info("scan of action %s: %s", action_id, status)
        done.append(action_id)
    return done
