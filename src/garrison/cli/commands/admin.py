"""Admin commands acting on a data directory or database URL:
``tenant``, ``user``, ``apikey``, ``enrollment``, ``db``."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click

from garrison.cli.common import open_store, service_errors, settings_from, store_options
from garrison.cli.output import UserError, emit, json_option, table
from garrison.core import access
from garrison.server.tls import ensure_certificate, fingerprint
from garrison.store import migrate
from garrison.store.models.core import Tenant


@click.group()
def tenant() -> None:
    """Tenants: isolated organisations on one server."""


@tenant.command("create")
@click.argument("name")
@store_options
@json_option
def tenant_create(name: str, data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Create a tenant (with its 'Ungrouped devices' group)."""
    store = open_store(settings_from(data_dir, database_url))
    with service_errors(as_json), store.system() as s:
        t = access.create_tenant(s, name)
        out = {"id": t.id, "name": t.name}
    emit(out, as_json, human=lambda: click.echo(f"tenant {out['name']} created (id {out['id']})"))


@tenant.command("list")
@store_options
@json_option
def tenant_list(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """List tenants."""
    store = open_store(settings_from(data_dir, database_url))
    with store.system() as s:
        rows = [{"id": t.id, "name": t.name, "createdAt": t.created_at.isoformat()}
                for t in s.query(Tenant).order_by(Tenant.id)]
    emit({"value": rows}, as_json,
         human=lambda: table("Tenants", ["id", "name", "created"], [(r["id"], r["name"], r["createdAt"]) for r in rows]))


def _tenant_id(s: object, name: str) -> int:
    return access.tenant_by_name(s, name).id  # type: ignore[arg-type]


@click.group()
def user() -> None:
    """Console and API users."""


@user.command("create")
@click.argument("username")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--role", type=click.Choice(["admin", "security_operator", "analyst"]), required=True)
@click.option("--email", default=None)
@click.option("--password", default=None, envvar="GARRISON_PASSWORD",
              help="Password (else asked for, or read from GARRISON_PASSWORD).")
@click.option("--group", "groups", type=int, multiple=True, help="Restrict to device group id (repeatable).")
@store_options
@json_option
def user_create(username: str, tenant_name: str, role: str, email: str | None, password: str | None,
                groups: tuple[int, ...], data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Create a user; the password is hashed with Argon2id."""
    if password is None:
        if not os.isatty(0):
            raise UserError("no password: give --password, GARRISON_PASSWORD, or run in a terminal", as_json=as_json)
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UserError("passwords differ", as_json=as_json)
    store = open_store(settings_from(data_dir, database_url))
    with service_errors(as_json), store.system() as s:
        tid = _tenant_id(s, tenant_name)
        u = access.create_user(s, tid, username, password, role, email, list(groups) or None)
        out = {"id": u.id, "username": u.username, "role": u.role, "tenant": tenant_name}
    emit(out, as_json, human=lambda: click.echo(f"user {username} ({role}) created in {tenant_name}"))


@click.group()
def apikey() -> None:
    """API keys (shown once; stored hashed)."""


@apikey.command("create")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--role", type=click.Choice(["admin", "security_operator", "analyst"]), required=True)
@click.option("--name", default="", help="What the key is for.")
@click.option("--group", "groups", type=int, multiple=True, help="Restrict to device group id (repeatable).")
@store_options
@json_option
def apikey_create(tenant_name: str, role: str, name: str, groups: tuple[int, ...], data_dir: Path,
                  database_url: str | None, as_json: bool) -> None:
    """Create an API key for scripts: `Authorization: Bearer <key>`."""
    store = open_store(settings_from(data_dir, database_url))
    with service_errors(as_json), store.system() as s:
        tid = _tenant_id(s, tenant_name)
        key, secret = access.create_api_key(s, tid, role, name, "cli", list(groups) or None)
        out = {"id": key.id, "key": secret, "role": role, "tenant": tenant_name, "name": name}
    emit(out, as_json, human=lambda: click.echo(f"API key ({role}, shown once):\n{secret}"))


@click.group()
def enrollment() -> None:
    """Enrollment secrets that agents trade for a device identity."""


@enrollment.command("create")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--expires", default=None, help="Lifetime, e.g. 24h or 7d (default: never).")
@click.option("--uses", type=int, default=None, help="How many devices may enroll with it (default: unlimited).")
@click.option("--server", "server_url", default=None, help="Server URL to put in the install command.")
@store_options
@json_option
def enrollment_create(tenant_name: str, expires: str | None, uses: int | None, server_url: str | None,
                      data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Create an enrollment secret and print the agent's install command."""
    settings = settings_from(data_dir, database_url)
    store = open_store(settings)
    with service_errors(as_json), store.system() as s:
        tid = _tenant_id(s, tenant_name)
        duration = access.parse_duration(expires) if expires else None
        row, secret = access.create_enrollment_secret(s, tid, duration, uses)
        out = {"id": row.id, "secret": secret, "tenant": tenant_name,
               "expiresAt": row.expires_at.isoformat() if row.expires_at else None, "maxUses": uses}
    cert, _key = ensure_certificate(settings.data_dir)
    out["serverFingerprint"] = fingerprint(cert)
    url = server_url or settings.base_url
    out["installCommand"] = f"garrison agent run --server {url} --enroll {secret} --fingerprint {out['serverFingerprint']}"
    emit(out, as_json, human=lambda: click.echo(f"enrollment secret (shown once):\n{secret}\n\n"
                                                 f"install: {out['installCommand']}"))


@click.group()
def db() -> None:
    """State store maintenance."""


@db.command("upgrade")
@store_options
@json_option
def db_upgrade(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Apply pending schema migrations."""
    store = open_store(settings_from(data_dir, database_url), upgrade=False)
    before = migrate.current_revision(store.engine)
    migrate.upgrade(store.engine)
    after = migrate.current_revision(store.engine)
    out = {"from": before, "to": after, "head": migrate.head_revision()}
    emit(out, as_json, human=lambda: click.echo(f"schema at {after} (was {before})"))


COMMANDS = [tenant, user, apikey, enrollment, db]
