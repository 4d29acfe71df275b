"""The admin commands, run as a user would run them: a real process on a real data directory
(and on PostgreSQL through --database-url)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def garrison(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "garrison.cli.main", *args], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL, check=False)
    if ok:
        assert r.returncode == 0, r.stderr + r.stdout
    return r


def as_json(r: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(r.stdout)


@pytest.fixture
def where(db_url: str, tmp_path: Path) -> list[str]:
    args = ["--data-dir", str(tmp_path / "data")]
    if db_url.startswith("postgresql"):
        args += ["--database-url", db_url]
    return args


def test_admin_flow_with_json(where: list[str]) -> None:
    up = as_json(garrison("db", "upgrade", *where, "--json"))
    assert up["to"] == up["head"]
    t = as_json(garrison("tenant", "create", "acme", *where, "--json"))
    assert t["name"] == "acme"
    u = as_json(garrison("user", "create", "alice", "--tenant", "acme", "--role", "analyst",
                         "--password", "a long enough password", *where, "--json"))
    assert u["role"] == "analyst"
    k = as_json(garrison("apikey", "create", "--tenant", "acme", "--role", "admin", *where, "--json"))
    assert k["key"].startswith("gk_")
    e = as_json(garrison("enrollment", "create", "--tenant", "acme", "--expires", "7d", "--uses", "3", *where,
                         "--json"))
    assert e["secret"].startswith("ge_") and e["maxUses"] == 3 and len(e["serverFingerprint"]) == 64
    assert e["secret"] in e["installCommand"]
    listed = as_json(garrison("tenant", "list", *where, "--json"))
    assert [x["name"] for x in listed["value"]] == ["acme"]


@pytest.mark.parametrize("args,needle", [
    (["tenant", "create", "acme"], "already exists"),
    (["apikey", "create", "--tenant", "nope", "--role", "admin"], "no tenant named 'nope'"),
    (["enrollment", "create", "--tenant", "acme", "--expires", "soon"], "invalid duration"),
    (["user", "create", "bob", "--tenant", "acme", "--role", "analyst", "--password", "short"], "too short"),
    (["apikey", "create", "--tenant", "acme", "--role", "king"], "king"),
])
def test_user_errors_are_one_clear_line(where: list[str], args: list[str], needle: str) -> None:
    garrison("tenant", "create", "acme", *where)
    r = garrison(*args, *where, ok=False)
    assert r.returncode != 0
    assert needle in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    rj = garrison(*args, *where, "--json", ok=False)
    assert rj.returncode != 0 and needle in (json.loads(rj.stdout)["error"] if rj.stdout.strip() else rj.stderr)


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    r = garrison("tenant", "list", "--database-url", "postgresql://nobody@127.0.0.1:1/x", ok=False)
    assert r.returncode != 0 and "cannot open the state store" in r.stderr and "Traceback" not in r.stderr
