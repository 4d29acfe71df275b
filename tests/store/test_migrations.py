"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from garrison.store import migrate
from garrison.store.db import Store
from garrison.store.models import metadata


def test_upgrade_matches_models(empty_db_url: str) -> None:
    store = Store(empty_db_url)
    try:
        migrate.upgrade(store.engine)
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
        assert diff == [], f"models and migrations differ: {diff[:5]}"
        assert set(metadata.tables) <= set(inspect(store.engine).get_table_names()) | set(
            inspect(store.engine).get_view_names())
        migrate.upgrade(store.engine)  # running again is a no-op
    finally:
        store.dispose()
