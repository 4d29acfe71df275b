"""Autogenerate an Alembic revision from the models: python scripts/make_migration.py "message"."""

import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from garrison.store import migrate

msg = sys.argv[1] if len(sys.argv) > 1 else "schema change"
rev_id = sys.argv[2] if len(sys.argv) > 2 else None
with tempfile.TemporaryDirectory() as tmp:
    url = f"sqlite:///{Path(tmp) / 'm.db'}"
    engine = create_engine(url)
    cfg = migrate.alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        command.revision(cfg, message=msg, autogenerate=True, rev_id=rev_id)
