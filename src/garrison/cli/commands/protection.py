"""``garrison protection scan|quarantine|rules``: the device's scanner and quarantine, run locally by an
administrator (Defender's ``mdatp scan`` / ``mdatp threat quarantine`` on Linux). Same engine, rule packs
(``<state_dir>/protection/rules``) and quarantine as the ``RunAntiVirusScan`` machine action."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from garrison.cli.output import UserError, emit, json_option, table
from garrison.config import default_state_dir

STATE_DIR = click.option("--state-dir", type=click.Path(path_type=Path), help="The agent's state directory.")


@click.group("protection")
def protection_group() -> None:
    """Antivirus scans, rule packs and the quarantine of this device."""


@protection_group.command("scan")
@click.argument("paths", nargs=-1)
@click.option("--type", "scan_type", type=click.Choice(["Quick", "Full", "Custom"]), default=None,
              help="Quick (default), Full, or Custom (the default when paths are given).")
@click.option("--quarantine", is_flag=True, help="Move what is detected into the quarantine.")
@STATE_DIR
@json_option
def scan_command(paths: tuple[str, ...], scan_type: str | None, quarantine: bool, state_dir: Path | None,
                 as_json: bool) -> None:
    """Scan now and print the scan record (exit status 3 when something was detected)."""
    from pydantic import ValidationError

    from garrison.agent.protection.action import scan
    from garrison.protocol.protection import ScanParams

    absolute = [str(Path(p).absolute()) for p in paths]
    try:
        params = ScanParams(ScanType=scan_type or ("Custom" if paths else "Quick"),  # type: ignore[arg-type]
                            Paths=absolute, Quarantine=quarantine)
    except ValidationError as exc:
        raise UserError(str(exc.errors()[0]["msg"]), as_json=as_json) from None
    out = scan(state_dir or default_state_dir(), params)["result"]

    def human() -> None:
        table(f"{out['scan_type']} scan: {out['state']}", ["", ""], [
            ("files", out["files_scanned"]), ("bytes", out["bytes_scanned"]), ("errors", out["errors"]),
            ("duration", f"{out['duration_s']} s"), ("rule packs", ", ".join(out["engine"]["rulePacks"]) or "none"),
            ("detections", out["detections_count"])])
        if out["detections"]:
            table("Detections", ["threat", "engine", "path"],
                  [(d["threat_name"], d["engine"], d["path"]) for d in out["detections"]])

    emit(out, as_json, human=human)
    if out["detections_count"]:
        raise SystemExit(3)


@protection_group.group("quarantine")
def quarantine_group() -> None:
    """List, restore or delete quarantined files."""


def _quarantine(state_dir: Path | None) -> Any:
    from garrison.agent.protection.action import protection_dir
    from garrison.agent.protection.quarantine import Quarantine

    return Quarantine(protection_dir(state_dir or default_state_dir()) / "quarantine")


@quarantine_group.command("list")
@STATE_DIR
@json_option
def quarantine_list(state_dir: Path | None, as_json: bool) -> None:
    entries = [e.to_dict() for e in _quarantine(state_dir).entries()]
    emit(entries, as_json, human=lambda: table("Quarantine", ["id", "threat", "original path", "when"], [
        (e["id"], e["threat_name"], e["original_path"], e["quarantined_at"]) for e in entries]))


@quarantine_group.command("restore")
@click.argument("entry_id")
@click.option("--to", "target", help="Restore here instead of the original path.")
@STATE_DIR
@json_option
def quarantine_restore(entry_id: str, target: str | None, state_dir: Path | None, as_json: bool) -> None:
    try:
        restored = _quarantine(state_dir).restore(entry_id, target)
    except (KeyError, ValueError, OSError) as exc:
        raise UserError(str(exc).strip("'\""), as_json=as_json) from None
    emit({"id": entry_id, "restored": restored}, as_json, human=lambda: print(f"restored to {restored}"))


@quarantine_group.command("delete")
@click.argument("entry_id")
@STATE_DIR
@json_option
def quarantine_delete(entry_id: str, state_dir: Path | None, as_json: bool) -> None:
    try:
        _quarantine(state_dir).delete(entry_id)
    except (KeyError, OSError) as exc:
        raise UserError(str(exc).strip("'\""), as_json=as_json) from None
    emit({"id": entry_id, "deleted": True}, as_json, human=lambda: print(f"deleted {entry_id}"))


@protection_group.command("rules")
@STATE_DIR
@json_option
def rules_command(state_dir: Path | None, as_json: bool) -> None:
    """Compile (or load from the cache) the rule packs and hash lists, print their versions (and record
    them for device health)."""
    from garrison.agent.protection.action import build_engine

    engine, errors = build_engine(state_dir or default_state_dir())
    rows: list[dict[str, Any]] = [{"version": p.version, "files": p.files, "rules": p.rule_count,
                                   "errors": p.errors} for p in engine.packs]
    emit({"packs": rows, "hashes": len(engine.hashes), "clamd": bool(engine.clamd), "errors": errors}, as_json,
         human=lambda: table("Rule packs", ["version", "files", "rules", "left out"],
                             [(r["version"], r["files"], r["rules"], len(r["errors"])) for r in rows]))


COMMANDS = [protection_group]
