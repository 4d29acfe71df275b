"""``garrison server`` and ``garrison demo``."""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import click

from garrison.cli.common import open_events, open_store, settings_from, store_options
from garrison.cli.output import UserError, console, json_option
from garrison.core import access
from garrison.core.errors import NotFound
from garrison.server.runner import GarrisonServer
from garrison.store.db import Store, private_dir

# Everything the server, its worker and the demo create (state store, event store, blobs, keys) is
# readable by the server's user only, whichever component creates it.
PRIVATE_UMASK = 0o077


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="GARRISON_HOST")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(1, 65535), envvar="GARRISON_PORT")
@click.option("--insecure-http", is_flag=True, envvar="GARRISON_INSECURE_HTTP", help="Serve plain HTTP instead of HTTPS (tests, behind a TLS proxy).")
@click.option("--tls-cert", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--tls-key", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, help="CIDR of a reverse proxy whose "
              "X-Forwarded-For is believed (repeatable).")
@click.option("--no-jobs", is_flag=True, help="Do not run background jobs in this process.")
@click.option("--events-url", envvar="GARRISON_EVENTS_URL", default=None,
              help="Event store: duckdb:///path (default: events.duckdb in the data directory) or "
              "clickhouse://user:password@host:8123/database.")
@click.option("--events-retention-days", type=click.IntRange(1, 3650), default=180, show_default=True,
              help="How long telemetry is kept (the timeline's reach).")
@store_options
@json_option
def server(host: str, port: int, insecure_http: bool, tls_cert: Path | None, tls_key: Path | None,
           trusted_proxies: tuple[str, ...], no_jobs: bool, events_url: str | None, events_retention_days: int,
           data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Run the Garrison server: API, agent endpoints, console and jobs."""
    os.umask(PRIVATE_UMASK)
    if bool(tls_cert) != bool(tls_key):
        raise UserError("give both --tls-cert and --tls-key", as_json=as_json)
    if not _port_free(host, port):
        raise UserError(f"port {port} on {host} is in use", as_json=as_json)
    settings = settings_from(data_dir, database_url, host=host, port=port, insecure_http=insecure_http,
                             tls_cert=tls_cert, tls_key=tls_key, run_jobs=False if no_jobs else None,
                             trusted_proxies=list(trusted_proxies) or None, events_url=events_url,
                             events_retention_days=events_retention_days)
    store = open_store(settings)
    srv = GarrisonServer(settings, store)
    open_events(srv.app.state.events, as_json)

    def ready() -> None:
        info = {"url": settings.base_url, "console": settings.base_url + "/", "api": settings.base_url + "/api",
                "fingerprint": srv.app.state.fingerprint, "dataDir": str(settings.data_dir)}
        if as_json:
            print(json.dumps(info), flush=True)
        else:
            console.print(f"Garrison server listening on [bold]{settings.base_url}[/bold]"
                          + (f"\nTLS fingerprint (SHA-256): {info['fingerprint']}" if info["fingerprint"] else ""))

    srv.run(on_ready=ready)


@click.command()
@store_options
@json_option
def worker(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Run the background jobs (matching, scores, history) without serving; for scaling out
    next to `garrison server --no-jobs`."""
    os.umask(PRIVATE_UMASK)
    from garrison.server.runner import run_worker

    settings = settings_from(data_dir, database_url)
    open_store(settings).dispose()  # upgrade the schema and fail early with a clear message
    if as_json:
        print(json.dumps({"worker": "running", "database": settings.db_url.split("@")[-1]}), flush=True)
    run_worker(settings.db_url, integrations=settings.integrations())


# --- demo -------------------------------------------------------------------------------

def _demo_identity(store: Store, data_dir: Path) -> dict[str, Any]:
    """Default tenant, admin user, admin API key and an enrollment secret — made once, kept in
    data_dir/demo-credentials.json (mode 0600) so that a second run prints the same ones."""
    path = data_dir / "demo-credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    with store.system() as s:
        try:
            tenant = access.tenant_by_name(s, "default")
        except NotFound:
            tenant = access.create_tenant(s, "default")
        password = secrets.token_urlsafe(12)
        access.create_user(s, tenant.id, "admin", password, "admin")
        _key, api_key = access.create_api_key(s, tenant.id, "admin", "demo", "demo")
        _row, secret = access.create_enrollment_secret(s, tenant.id)
        creds = {"tenant": "default", "username": "admin", "password": password, "apiKey": api_key,
                 "enrollmentSecret": secret}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh)
    return creds


def _demo_content(store: Store, tenant: str, as_json: bool) -> dict[str, Any]:
    """The bundled knowledge base and the demo fleet."""
    from garrison.tvm import demo as tvm_demo

    return dict(tvm_demo.load(store, tenant, quiet=as_json))


def _demo_telemetry(store: Store, events: Any, tenant: str) -> dict[str, Any]:
    """The imported Windows sample device (its events on the device timeline)."""
    from garrison.edr.events.demo import load_windows_sample

    return load_windows_sample(store, events, tenant)


@click.command()
@click.option("--port", default=8443, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-agent", is_flag=True, help="Do not enroll and run the local agent.")
@store_options
@json_option
def demo(port: int, no_agent: bool, data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Run a server on 127.0.0.1 with a default tenant, an admin, the bundled knowledge base,
    a demo fleet and the local agent enrolled. Ctrl-C stops everything."""
    os.umask(PRIVATE_UMASK)
    host = "127.0.0.1"
    if not _port_free(host, port):
        raise UserError(f"port {port} on {host} is in use; pick another with --port", as_json=as_json)
    settings = settings_from(data_dir, database_url, host=host, port=port, checkin_interval=30)
    private_dir(settings.data_dir)
    store = open_store(settings)
    creds = _demo_identity(store, settings.data_dir)
    content = _demo_content(store, creds["tenant"], as_json)
    srv = GarrisonServer(settings, store)
    open_events(srv.app.state.events, as_json)
    content.update(_demo_telemetry(store, srv.app.state.events.store, creds["tenant"]))
    agent_stop = threading.Event()
    agent_thread: threading.Thread | None = None
    srv.server.before_shutdown.append(agent_stop.set)

    def ready() -> None:
        nonlocal agent_thread
        info = {"url": settings.base_url, "console": settings.base_url + "/", "api": settings.base_url + "/api",
                "openapi": settings.base_url + "/api/openapi.json", "fingerprint": srv.app.state.fingerprint,
                "username": creds["username"], "password": creds["password"], "apiKey": creds["apiKey"],
                "dataDir": str(settings.data_dir), **content}
        if not no_agent:
            agent_thread = threading.Thread(target=_run_local_agent, name="garrison-agent", daemon=True,
                                            args=(settings, creds["enrollmentSecret"], srv.app.state.fingerprint,
                                                  agent_stop))
            agent_thread.start()
            info["agent"] = "enrolling the local agent (state in " + str(settings.data_dir / "agent") + ")"
        if as_json:
            print(json.dumps(info), flush=True)
        else:
            print(f"\nGarrison demo is running — Ctrl-C stops it\n"
                          f"  console   {info['console']}\n  API       {info['api']}  (OpenAPI: {info['openapi']})\n"
                          f"  login     {info['username']} / {info['password']}\n"
                          f"  API key   {info['apiKey']}\n  TLS SHA-256 {info['fingerprint']}\n"
                          f"  data      {info['dataDir']}\n"
                          f"  try:      curl -sk -H 'Authorization: Bearer {info['apiKey']}' "
                  f"{info['api']}/machines\n", flush=True)

    try:
        srv.run(on_ready=ready)
    finally:
        agent_stop.set()
        if agent_thread:
            agent_thread.join(timeout=10)


def _run_local_agent(settings: Any, secret: str, fingerprint: str | None, stop: threading.Event) -> None:
    from garrison.agent.runner import run_in_thread

    run_in_thread(server=settings.base_url, enroll_secret=secret, state_dir=settings.data_dir / "agent",
                  fingerprint=fingerprint, stop=stop, checkin_interval=settings.checkin_interval)


COMMANDS = [server, worker, demo]
