"""Fixtures shared by the whole suite: a state store on SQLite *and* on PostgreSQL.

On PostgreSQL each test gets its own database, copied from a template migrated once per session
(``CREATE DATABASE … TEMPLATE``), and dropped after the test. ``empty_db_url`` is a database with no
tables at all, for the tests of the migrations themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from garrison.store.db import Store
from garrison.store.models import metadata
from tests.browser import browser  # noqa: F401  (one Chromium per process, for every directory)
from tests.pg import TempPostgres, create_database, drop_database, schema_template


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


@pytest.fixture(scope="session")
def pg_template(pg_base_url: str) -> Iterator[str]:
    """Name of the database at the migration head that every PostgreSQL test database copies."""
    name = schema_template(pg_base_url)
    yield name
    drop_database(f"{pg_base_url}/{name}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A state store URL whose schema is at the migration head on PostgreSQL (empty file on SQLite)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    url = create_database(request.getfixturevalue("pg_base_url"), template=request.getfixturevalue("pg_template"))
    yield url
    drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A database without any table, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    url = create_database(request.getfixturevalue("pg_base_url"))
    yield url
    drop_database(url)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A state store with every table, on each backend in turn."""
    st = Store(db_url)
    metadata.create_all(st.engine)  # SQLite; on PostgreSQL the copied template has them already
    yield st
    st.dispose()
