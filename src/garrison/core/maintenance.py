"""State-store upkeep jobs.

SQLite plans joins well only with statistics (without them, a look-up by package reads a whole
tenant's inventory through the tenant index: seconds instead of milliseconds at 1,000 devices).
PostgreSQL's autovacuum keeps its own statistics; SQLite needs ANALYZE now and then.
"""

from __future__ import annotations

from sqlalchemy import text

from garrison.store.db import Store


def analyze(store: Store) -> None:
    if store.dialect != "sqlite":
        return
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
