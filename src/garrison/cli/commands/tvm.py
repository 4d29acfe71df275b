"""``garrison inventory import`` (agentless devices) and ``garrison feeds import|sync|status``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from garrison.cli.common import open_store, service_errors, settings_from, store_options
from garrison.cli.output import UserError, console, emit, err_console, json_option, table
from garrison.core import access
from garrison.inventory import FORMATS
from garrison.inventory.common import MAX_INPUT_BYTES
from garrison.tvm import inventory as tvm_inventory
from garrison.tvm import service


def _read_bounded(path: Path, what: str, limit: int, as_json: bool) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror}", as_json=as_json) from None
    if len(data) > limit:
        raise UserError(f"{what} {path} is larger than {limit} bytes", as_json=as_json)
    return data


@click.group("inventory")
def inventory_group() -> None:
    """Software inventory of devices (agentless import)."""


@inventory_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tenant", "tenant_name", required=True, help="Tenant the device belongs to.")
@click.option("--device", "device_name", required=True, help="Device name (created as an agentless device).")
@click.option("--os-release", "os_release", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The device's /etc/os-release: decides which distro release's advisories apply.")
@click.option("--os", "os_arg", default=None, help="Instead of --os-release: ID:VERSION, e.g. ubuntu:20.04.")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default=None,
              help="Inventory format (detected from the content by default).")
@store_options
@json_option
def inventory_import(file: Path, tenant_name: str, device_name: str, os_release: Path | None, os_arg: str | None,
                     fmt: str | None, data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Import FILE (dpkg status, apk installed db, rpm -qa, CycloneDX or SPDX SBOM; gzip allowed) as the
    software inventory of an agentless device. A malformed file stores nothing."""
    if os_release and os_arg:
        raise UserError("give --os-release or --os, not both", as_json=as_json)
    data = _read_bounded(file, "inventory", MAX_INPUT_BYTES, as_json)
    with service_errors(as_json):
        os_ident = None
        if os_release:
            os_ident = tvm_inventory.read_os_release(_read_bounded(os_release, "os-release", 64 * 1024, as_json))
        elif os_arg:
            os_ident = tvm_inventory.parse_os_arg(os_arg)
        store = open_store(settings_from(data_dir, database_url))
        with store.system() as s:
            tenant_id = access.tenant_by_name(s, tenant_name).id
        out = tvm_inventory.import_agentless(store, tenant_id, device_name, data, os_ident=os_ident, fmt=fmt,
                                             path=str(file), actor="cli", actor_type="cli")

    def human() -> None:
        verb = "created" if out["created"] else "updated"
        console.print(f"device {out['computerDnsName']} ({out['machineId']}) {verb}: {out['packages']} packages "
                      f"({out['added']} added, {out['removed']} removed), ecosystem {out['ecosystem'] or '-'}, "
                      f"{out['findingsMatched']} findings from new package versions", highlight=False)
        for w in out["warnings"]:
            err_console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)

    emit(out, as_json, human=human)


# --- feeds ------------------------------------------------------------------------------------

@contextlib.contextmanager
def _progress(as_json: bool, what: str, per_feed: bool = False) -> Iterator[Any]:
    """A rich progress display on stderr (none with --json); yields the callback for the kb:
    ``(origin, records so far)`` for imports, ``(feed, status)`` after each feed of a sync."""
    if as_json:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.fields[records]} records"), TextColumn("{task.fields[origin]}"),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(what, total=None, records=0, origin="")
        done = 0

        def update(origin: str, records: int) -> None:
            shown = origin if len(origin) <= 60 else "…" + origin[-59:]
            bar.update(task, records=records, origin=shown)

        def feed_done(feed: str, status: str) -> None:
            nonlocal done
            done += 1
            bar.update(task, records=f"{done} feeds,", origin=f"{feed}: {status}")

        yield feed_done if per_feed else update


def _print_import(out: dict[str, Any]) -> None:
    console.print(f"{out['records']} records in {out['files']} files ({out['unchanged']} unchanged), "
                  f"{out['vulnerabilities']} vulnerabilities, {out['changedPackages']} packages changed, "
                  f"{out['errors']} errors", highlight=False)
    for e in out["firstErrors"][:10]:
        err_console.print(f"[yellow]error:[/yellow] {e}", highlight=False)
    if out["skipped"]:
        err_console.print(f"skipped {len(out['skipped'])} files in no known format, e.g. {out['skipped'][0]}",
                          highlight=False)


def _print_rematch(stats: dict[str, Any]) -> None:
    console.print(f"re-matched {stats['packageVersions']} package versions: {stats['added']} new findings, "
                  f"{stats['removed']} gone ({stats['resolved']} device findings resolved), "
                  f"{stats['changed']} changed", highlight=False)


@click.group("feeds")
def feeds_group() -> None:
    """The vulnerability knowledge base: import feed files, sync online, show feed status."""


@feeds_group.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@store_options
@json_option
def feeds_import(paths: tuple[Path, ...], data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Import feed files, directories or archives (OSV, KEV, EPSS, …; detected from the content),
    then re-match the package versions whose advisories changed."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"no such file or directory: {', '.join(missing)}", as_json=as_json)
    store = open_store(settings_from(data_dir, database_url))
    with service_errors(as_json), _progress(as_json, "importing") as cb:
        out = service.import_feeds(store, [str(p) for p in paths], cb)

    def human() -> None:
        _print_import(out)
        _print_rematch(out["rematch"])

    emit(out, as_json, human=human)
    if out["errors"] or (out["skipped"] and out["records"] == 0):
        _failed("nothing could be imported" if out["records"] == 0 else
                f"{out['errors']} errors (the rest was imported)", as_json)


def _failed(message: str, as_json: bool) -> NoReturn:
    """Exit 1 after the report was printed: with --json the report is the one document (its errors say
    what failed), otherwise one line on stderr."""
    if not as_json:
        err_console.print(f"[red]error:[/red] {message}", highlight=False)
    sys.exit(1)


def _mirrors(values: tuple[str, ...], as_json: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        name, sep, url = v.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://", "file://")):
            raise UserError(f"--mirror takes NAME=URL (http, https or file), got {v!r}", as_json=as_json)
        out[name] = url
    return out


@feeds_group.command("sync")
@click.option("--source", "sources", multiple=True, help="Feed to sync (repeatable; default: all).")
@click.option("--mirror", "mirrors", multiple=True, help="NAME=URL: fetch feed NAME from a mirror (repeatable).")
@store_options
@json_option
def feeds_sync(sources: tuple[str, ...], mirrors: tuple[str, ...], data_dir: Path, database_url: str | None,
               as_json: bool) -> None:
    """Download the feeds (conditional requests: unchanged feeds cost one request), import, re-match."""
    mirror_map = _mirrors(mirrors, as_json)
    store = open_store(settings_from(data_dir, database_url))
    with service_errors(as_json), _progress(as_json, "syncing", per_feed=True) as cb:
        out = service.sync_feeds(store, list(sources) or None, mirror_map, cb)

    def human() -> None:
        table("Feed sync", ["feed", "status", "records", "error"],
              [(f["feed"], f["status"], f["records"], (f["error"] or "")[:80]) for f in out["feeds"]])
        _print_import(out["total"])
        _print_rematch(out["rematch"])

    emit(out, as_json, human=human)
    if out["feeds"] and all(f["status"] == "failed" for f in out["feeds"]):
        _failed("every feed failed; see the errors above", as_json)


@feeds_group.command("status")
@store_options
@json_option
def feeds_status(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Show each feed's last sync, last success, record count and last error."""
    store = open_store(settings_from(data_dir, database_url))
    rows = service.feeds_status(store)
    emit({"value": rows}, as_json, human=lambda: table(
        "Feeds", ["feed", "last sync", "last success", "records", "error"],
        [(r.get("name"), r.get("lastSync"), r.get("lastSuccess"), r.get("recordCount"),
          (r.get("error") or "")[:80]) for r in rows]))


COMMANDS = [inventory_group, feeds_group]
