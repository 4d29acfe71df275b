"""A throw-away PostgreSQL server for the tests, from the machine's PostgreSQL binaries.

CI installs Debian's ``postgresql`` package; the tests start their own cluster in a temporary
directory (as the ``postgres`` user when running as root, since initdb refuses root).
GARRISON_TEST_PG_URL points the tests at an existing server instead. No PostgreSQL at all is
a failure, never a skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg


class PostgresUnavailable(RuntimeError):
    pass


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(which).parent
    raise PostgresUnavailable("PostgreSQL server binaries not found: apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempPostgres:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="garrison-pg-"))
        self.datadir = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self.proc: subprocess.Popen[bytes] | None = None

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", "postgres", "--"] if self.as_root else []) + list(args)

    def start(self) -> str:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(self._cmd(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "garrison",
                                 "--auth=trust", "-E", "UTF8", "--no-sync"),
                       check=True, capture_output=True)
        self.proc = subprocess.Popen(
            self._cmd(str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                      "-k", str(self.root), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                      "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"postgresql://garrison@127.0.0.1:{self.port}/postgres"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                psycopg.connect(url, connect_timeout=1).close()
                return f"postgresql+psycopg://garrison@127.0.0.1:{self.port}"
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise PostgresUnavailable("temporary PostgreSQL did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _admin(base_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(base_url.replace("postgresql+psycopg://", "postgresql://") + "/postgres", autocommit=True)


def create_database(base_url: str, template: str | None = None) -> str:
    """A fresh database on the server (a copy of ``template`` when given); returns its SQLAlchemy URL."""
    name = "t_" + uuid.uuid4().hex[:12]
    with _admin(base_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return f"{base_url}/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by :func:`create_database` (its connections are ended first)."""
    base, name = url.rsplit("/", 1)
    with _admin(base) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def schema_template(base_url: str) -> str:
    """A database migrated to the head revision, to copy per test (CREATE DATABASE … TEMPLATE):
    copying files is much cheaper than running the migrations or CREATE TABLE for every test."""
    from garrison.store import migrate
    from garrison.store.db import Store

    url = create_database(base_url)
    store = Store(url)
    try:
        migrate.upgrade(store.engine)
    finally:
        store.dispose()  # a template must have no open connection when it is copied
    return url.rsplit("/", 1)[1]
