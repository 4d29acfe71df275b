"""``garrison inventory import`` and ``garrison feeds import|sync|status``, run as a user runs them."""

from __future__ import annotations

import functools
import http.server
import io
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select

from garrison.store import migrate
from garrison.store.db import Store
from garrison.store.models import metadata
from garrison.store.models.core import Device
from garrison.tvm.findings import open_findings
from tests.tvm.api.conftest import FOCAL, GA_OS, GA_STATUS


def garrison(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "garrison.cli.main", *args], check=False, capture_output=True,
                       text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    if ok:
        assert r.returncode == 0, r.stderr + r.stdout
    return r


def as_json(r: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(r.stdout)


@pytest.fixture
def where(db_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """A state store with the current models' schema, stamped at the migration head so that the
    command's own upgrade has nothing to do."""
    data = tmp_path / "data"
    data.mkdir()
    url = db_url if db_url.startswith("postgresql") else f"sqlite:///{data / 'garrison.db'}"
    store = Store(url)
    metadata.create_all(store.engine)
    cfg = migrate.alembic_config(url)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.stamp(cfg, "head")
    store.dispose()
    args = ["--data-dir", str(data)] + (["--database-url", db_url] if db_url.startswith("postgresql") else [])
    garrison("tenant", "create", "acme", *args)
    yield args


def _url(where: list[str], db_url: str) -> str:
    return db_url if db_url.startswith("postgresql") else f"sqlite:///{Path(where[1]) / 'garrison.db'}"


def _findings(where: list[str], db_url: str, tmp: Path) -> list[Any]:
    store = Store(_url(where, db_url))
    try:
        with store.system() as s:
            return open_findings(s)
    finally:
        store.dispose()


def test_feeds_then_inventory(where: list[str], db_url: str, tmp_path: Path) -> None:
    fed = as_json(garrison("feeds", "import", str(FOCAL), *where, "--json"))
    assert fed["records"] == 28 and fed["errors"] == 0 and fed["skipped"][0].endswith("SOURCES.csv")
    out = as_json(garrison("inventory", "import", "--tenant", "acme", "--device", "web-1", "--os-release", str(GA_OS),
                           str(GA_STATUS), *where, "--json"))
    assert out["created"] is True and out["packages"] == 221 and out["ecosystem"] == "Ubuntu:20.04:LTS"
    assert out["findingsMatched"] == 140
    found = _findings(where, db_url, tmp_path)
    assert ("sudo", "CVE-2021-3156", "1.8.31-1ubuntu1.2") in {(f.package, f.vulnerability_id, f.fixed_version)
                                                            for f in found}
    status = as_json(garrison("feeds", "status", *where, "--json"))["value"]
    assert any(f["name"] == "osv" and f["recordCount"] == 28 for f in status)
    human = garrison("inventory", "import", "--tenant", "acme", "--device", "web-1", "--os", "ubuntu:20.04",
                     str(GA_STATUS), *where)
    assert "updated: 221 packages" in human.stdout


def test_inventory_then_feeds_rematches(where: list[str], db_url: str, tmp_path: Path) -> None:
    out = as_json(garrison("inventory", "import", "--tenant", "acme", "--device", "web-1", "--os", "ubuntu:20.04",
                           str(GA_STATUS), *where, "--json"))
    assert out["findingsMatched"] == 0
    fed = as_json(garrison("feeds", "import", str(FOCAL), *where, "--json"))
    assert fed["rematch"]["added"] == 140 and fed["rematch"]["packageVersions"] < 221
    assert len(_findings(where, db_url, tmp_path)) == 140


@pytest.mark.parametrize("extra,needle", [
    (["--os", "ubuntu"], "invalid OS 'ubuntu'"),
    (["--os", "ubuntu:20.04", "--os-release", str(GA_OS)], "not both"),
    (["--os-release", str(GA_STATUS)], "os-release"),
])
def test_inventory_import_option_errors(where: list[str], extra: list[str], needle: str) -> None:
    r = garrison("inventory", "import", "--tenant", "acme", "--device", "web-1", *extra, str(GA_STATUS), *where,
                 ok=False)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


def test_malformed_inventory_stores_nothing(where: list[str], db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "status"
    bad.write_bytes(GA_STATUS.read_bytes().replace(b"Version: 1.8.31-1ubuntu1", b"Version: !!", 1))
    r = garrison("inventory", "import", "--tenant", "acme", "--device", "web-1", "--os", "ubuntu:20.04", str(bad),
                 *where, "--json", ok=False)
    assert r.returncode == 2
    err = json.loads(r.stdout)["error"]
    assert "line" in err and "'Version'" in err and "'!!'" in err
    store = Store(_url(where, db_url))
    try:
        with store.system() as s:
            assert s.scalars(select(Device)).all() == []
    finally:
        store.dispose()
    nope = garrison("inventory", "import", "--tenant", "nope", "--device", "x", "--os", "ubuntu:20.04",
                    str(GA_STATUS), *where, ok=False)
    assert "no tenant named 'nope'" in nope.stderr


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[str]:
    """A local HTTP mirror holding OSV's Ubuntu/all.zip made of the real focal USNs."""
    root = tmp_path / "mirror"
    (root / "Ubuntu").mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(FOCAL.glob("USN-*.json")):
            zf.write(f, f.name)
    (root / "Ubuntu" / "all.zip").write_bytes(buf.getvalue())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_feeds_sync_from_a_mirror_rematches(where: list[str], mirror: str, db_url: str, tmp_path: Path) -> None:
    garrison("inventory", "import", "--tenant", "acme", "--device", "web-1", "--os", "ubuntu:20.04", str(GA_STATUS),
             *where)
    out = as_json(garrison("feeds", "sync", "--source", "osv:Ubuntu/all.zip", "--mirror", f"osv={mirror}", *where,
                           "--json"))
    assert [(f["feed"], f["status"]) for f in out["feeds"]] == [("osv:Ubuntu/all.zip", "imported")]
    assert out["total"]["records"] == 28 and out["rematch"]["added"] == 140
    assert len(_findings(where, db_url, tmp_path)) == 140
    bad = garrison("feeds", "sync", "--mirror", "osv", *where, ok=False)
    assert bad.returncode == 2 and "NAME=URL" in bad.stderr


def test_feeds_import_with_a_corrupt_file_reports_it_and_fails(where: list[str], db_url: str, tmp_path: Path) -> None:
    """Issue 11 item 17: one JSON document, and a non-zero exit when anything failed — the rest imported."""
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    for src in sorted(FOCAL.glob("USN-*.json"))[:3]:
        (feeds / src.name).write_bytes(src.read_bytes())
    good = json.loads((feeds / min(p.name for p in feeds.iterdir())).read_text())
    (feeds / "USN-9999-1.json").write_text(json.dumps(good)[:-40])  # a real advisory, cut short
    r = garrison("feeds", "import", str(feeds), *where, "--json", ok=False)
    assert r.returncode == 1, r.stderr + r.stdout
    out = json.loads(r.stdout)  # exactly one document: json.loads refuses trailing data
    assert out["errors"] >= 1 and any("USN-9999-1" in e for e in out["firstErrors"]), out
    assert out["records"] >= 3 and out["vulnerabilities"] > 0  # the good files were imported
    human = garrison("feeds", "import", str(feeds), *where, ok=False)
    assert human.returncode == 1 and "error" in human.stderr
    # nothing but a corrupt file
    bad = tmp_path / "USN-9998-1.json"
    bad.write_text('{"id": "USN-9998-1", "modified": "2020-05-14T00:00:00Z", "affected": [{"package": ')
    r = garrison("feeds", "import", str(bad), *where, "--json", ok=False)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["records"] == 0 and out["errors"] == 1
    unknown = tmp_path / "notes.txt"  # in no feed format: skipped, and nothing imported is a failure
    unknown.write_text("hello")
    r = garrison("feeds", "import", str(unknown), *where, "--json", ok=False)
    assert r.returncode == 1 and json.loads(r.stdout)["skipped"] == [str(unknown)]
