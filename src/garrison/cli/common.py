"""Options and helpers shared by the admin commands: which state store to act on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from garrison.cli.output import UserError
from garrison.core.errors import GarrisonError
from garrison.server.settings import DEFAULT_DATA_DIR, ServerSettings
from garrison.store import migrate
from garrison.store.db import Store


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--database-url", envvar="GARRISON_DATABASE_URL", default=None,
                     help="SQLAlchemy URL (postgresql://…); overrides --data-dir.")(f)
    f = click.option("--data-dir", type=click.Path(path_type=Path), envvar="GARRISON_DATA_DIR",
                     default=DEFAULT_DATA_DIR, show_default=True, help="Data directory (SQLite, TLS, blobs).")(f)
    return f


def settings_from(data_dir: Path, database_url: str | None, **extra: Any) -> ServerSettings:
    try:
        return ServerSettings.from_env(data_dir=data_dir, database_url=database_url, **extra)
    except ValueError as exc:  # a GARRISON_* variable of the wrong type: one line, not a traceback
        raise UserError(str(exc)) from None


def open_store(settings: ServerSettings, upgrade: bool = True) -> Store:
    try:
        store = Store(settings.db_url)
        if upgrade:
            migrate.upgrade(store.engine)
        return store
    except Exception as exc:
        if isinstance(exc, GarrisonError):
            raise
        raise UserError(f"cannot open the state store {safe_url(settings.db_url)}: {first_line(exc)}") from None


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "(invalid URL)"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextmanager
def service_errors(as_json: bool) -> Iterator[None]:
    """Service-layer errors (not found, conflict, invalid) are the user's: one line, exit 2."""
    try:
        yield
    except GarrisonError as exc:
        raise UserError(str(exc), as_json=as_json) from None


def open_events(service: Any, as_json: bool = False) -> None:
    """Open the server's event store now (this process owns the DuckDB file): a clear error if it cannot."""
    from garrison.edr.events import EventStoreError

    try:
        service.store  # noqa: B018 (opens it)
    except EventStoreError as exc:
        raise UserError(str(exc), as_json=as_json) from None
