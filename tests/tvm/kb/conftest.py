from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.store.db import Store
from garrison.store.models import Base

DATA = Path(__file__).resolve().parents[2] / "data" / "kb"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """An empty knowledge base on each backend in turn (``db_url`` from tests/conftest.py: SQLite and
    PostgreSQL), as ``Store(url)`` + ``Base.metadata.create_all``."""
    st = Store(db_url)
    Base.metadata.create_all(st.engine)
    yield st
    st.dispose()


@pytest.fixture
def data() -> Path:
    return DATA
