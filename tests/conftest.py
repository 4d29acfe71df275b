"""Fixtures shared by the whole suite: a state store on SQLite *and* on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from garrison.store.db import Store
from garrison.store.models import metadata
from tests.pg import TempPostgres, create_database


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    """PostgreSQL server for the session (GARRISON_TEST_PG_URL, or a temporary cluster)."""
    given = os.environ.get("GARRISON_TEST_PG_URL")
    if given:
        yield given.rstrip("/")
        return
    pg = TempPostgres()
    try:
        yield pg.start()
    finally:
        pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return create_database(request.getfixturevalue("pg_base_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """An empty state store with every table, on each backend in turn."""
    st = Store(db_url)
    metadata.create_all(st.engine)
    yield st
    st.dispose()
