"""``garrison events import``: Windows event logs (EVTX, JSON lines, zips of them) as a device's telemetry."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from garrison.cli.common import open_store, service_errors, settings_from, store_options
from garrison.cli.output import UserError, console, emit, err_console, json_option
from garrison.core import access
from garrison.edr.detection import rules as detection_rules
from garrison.edr.detection.alerts import AlertSink
from garrison.edr.detection.stream import DetectionService
from garrison.edr.events import EventStoreError, open_event_store
from garrison.edr.events.imports import import_windows, parse_files, resolve_device
from garrison.edr.events.windows import MAX_FILE_BYTES

LOG_SUFFIXES = (".evtx", ".json", ".jsonl", ".ndjson", ".zip")


@click.group("events")
def events_group() -> None:
    """Behaviour telemetry: import Windows event logs."""


def _files(paths: tuple[Path, ...], as_json: bool) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in LOG_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"no such file or directory: {p}", as_json=as_json)
    if not out:
        raise UserError("no event log files found (.evtx, .json, .jsonl, .ndjson, .zip)", as_json=as_json)
    return out


def _read(path: Path, as_json: bool) -> bytes:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserError(f"{path} is larger than {MAX_FILE_BYTES} bytes", as_json=as_json)
    return path.read_bytes()


@contextlib.contextmanager
def _progress(as_json: bool) -> Iterator[Any]:
    if as_json:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("[bold]reading"), TextColumn("{task.fields[records]} records"),
                  TextColumn("{task.fields[origin]}"), TimeElapsedColumn(), console=err_console,
                  transient=True) as bar:
        task = bar.add_task("reading", total=None, records=0, origin="")

        def update(origin: str, records: int) -> None:
            bar.update(task, records=records, origin=origin if len(origin) <= 60 else "…" + origin[-59:])

        yield update


@events_group.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--tenant", "tenant_name", required=True, help="Tenant the device belongs to.")
@click.option("--device", "device_name", required=True,
              help="Device name (an agentless Windows device is created if none has this name).")
@click.option("--events-url", envvar="GARRISON_EVENTS_URL", default=None,
              help="Event store (default: events.duckdb in the data directory).")
@store_options
@json_option
def events_import(paths: tuple[Path, ...], tenant_name: str, device_name: str, events_url: str | None,
                  data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Import Windows event logs (EVTX; JSON lines from WEF/NXLog/Winlogbeat; zips of them; directories are
    searched) as DEVICE's telemetry: Sysmon and Security events become DeviceProcessEvents,
    DeviceNetworkEvents, DeviceFileEvents, DeviceRegistryEvents, DeviceImageLoadEvents, DeviceLogonEvents and
    DeviceEvents rows. All files are read first: a malformed one stores nothing. While a server runs, it owns
    the event store: use POST /api/machines/{id}/events/import instead."""
    files = _files(paths, as_json)
    settings = settings_from(data_dir, database_url, events_url=events_url)
    with service_errors(as_json):
        with _progress(as_json) as cb:
            parsed = parse_files([(str(f), _read(f, as_json)) for f in files], cb)
        store = open_store(settings)
        with store.system() as s:
            tenant_id = access.tenant_by_name(s, tenant_name).id
        try:
            events = open_event_store(settings.events_db_url, settings.events_retention_days, settings.hunting_days)
        except EventStoreError as exc:
            raise UserError(str(exc), as_json=as_json) from None
        sink = AlertSink(store)  # the rules run on the imported events as they do at the server's ingest
        detection = DetectionService(lambda: detection_rules.configured(settings.detection_rules), sink)
        events.listeners.append(detection.on_write)
        try:
            device_id, name, created = resolve_device(store, tenant_id, device_name=device_name)
            out = import_windows(events.write, tenant_id, device_id, name, parsed)
        finally:
            events.close()
        out["created"] = created
        out["alerts"] = {"matches": detection.matches, "created": sink.created, "updated": sink.updated}

    def human() -> None:
        console.print(f"device {out['computerDnsName']} ({out['machineId']}){' created' if created else ''}: "
                      f"{out['stored']} events stored from {out['records']} records in {out['files']} files",
                      highlight=False)
        for table, n in out["tables"].items():
            console.print(f"  {table}: {n}", highlight=False)
        alerts = out["alerts"]
        console.print(f"alerts: {alerts['created']} new, {alerts['updated']} updated "
                      f"({alerts['matches']} rule matches)", highlight=False)
        if out["skipped"]:
            kinds = ", ".join(f"{k} ×{n}" for k, n in list(out["skipped"].items())[:8])
            err_console.print(f"[yellow]skipped[/yellow] (not mapped): {kinds}", highlight=False)

    emit(out, as_json, human=human)


COMMANDS = [events_group]
