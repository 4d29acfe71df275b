"""The quarantine for real: files moved, locked down, listed, restored exactly, deleted."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from garrison.agent.protection.quarantine import Quarantine
from tests.agent.protection.samples import EICAR

NOBODY = 65534


def make_file(path: Path, content: bytes, mode: int, uid: int = NOBODY, gid: int = NOBODY) -> os.stat_result:
    path.write_bytes(content)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    os.utime(path, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return os.stat(path)


def test_quarantine_moves_locks_down_and_restores_exactly(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "quarantine")
    victim = tmp_path / "home/alice/bin/tool"
    victim.parent.mkdir(parents=True)
    before = make_file(victim, b"#!/bin/sh\necho pwned\n", 0o4755)
    entry = q.add(str(victim), "Virus:DOS/EICAR_Test_File", {"engine": "eicar"})
    assert not victim.exists()
    blob = tmp_path / "quarantine" / f"{entry.id}.bin"
    assert stat.S_IMODE(os.stat(tmp_path / "quarantine").st_mode) == 0o700
    assert stat.S_IMODE(blob.stat().st_mode) == 0o400 and blob.stat().st_uid == 0  # no one may run it
    assert stat.S_IMODE((tmp_path / "quarantine" / f"{entry.id}.json").stat().st_mode) == 0o600
    assert (entry.original_path, entry.mode, entry.uid, entry.gid, entry.size) == (
        str(victim), 0o4755, NOBODY, NOBODY, before.st_size)
    assert entry.sha256 == hashlib.sha256(b"#!/bin/sh\necho pwned\n").hexdigest()
    # Executing the quarantined copy is refused even to a normal user; the original path is empty.
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(blob)],
                       capture_output=True, check=False)
    assert r.returncode != 0
    assert [e.id for e in q.entries()] == [entry.id] and q.get(entry.id).threat_name == "Virus:DOS/EICAR_Test_File"
    restored = q.restore(entry.id)
    after = os.stat(restored)
    assert restored == str(victim) and victim.read_bytes() == b"#!/bin/sh\necho pwned\n"
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid, after.st_mtime_ns) == (
        0o4755, NOBODY, NOBODY, before.st_mtime_ns)
    assert q.entries() == [] and list((tmp_path / "quarantine").iterdir()) == []


def test_restore_never_overwrites_and_checks_the_content(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "q")
    path = tmp_path / "eicar.com"
    make_file(path, EICAR, 0o644, 0, 0)
    entry = q.add(str(path))
    path.write_text("a new file at the same place")
    with pytest.raises(FileExistsError):
        q.restore(entry.id)
    assert path.read_text() == "a new file at the same place"
    other = q.restore(entry.id, to=str(tmp_path / "restored/eicar.com"))
    assert Path(other).read_bytes() == EICAR
    tampered = q.add(other)
    blob = tmp_path / "q" / f"{tampered.id}.bin"
    os.chmod(blob, 0o600)
    blob.write_bytes(b"changed")
    with pytest.raises(ValueError, match="does not match"):
        q.restore(tampered.id)
    q.delete(tampered.id)
    assert q.entries() == []
    for bad in ("../../etc/passwd", "0" * 31, tampered.id):
        with pytest.raises(KeyError):
            q.get(bad)


def test_quarantine_across_file_systems(tmp_path: Path) -> None:
    """/dev/shm is a tmpfs, the quarantine is not: the file is copied, synced and unlinked."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        assert os.stat(shm).st_dev != os.stat(tmp_path).st_dev
        path = Path(shm) / ".x"
        before = make_file(path, EICAR, 0o755)
        q = Quarantine(tmp_path / "q")
        entry = q.add(str(path))
        assert not path.exists() and (tmp_path / "q" / f"{entry.id}.bin").read_bytes() == EICAR
        q.restore(entry.id)
        after = os.stat(path)
        assert (path.read_bytes(), after.st_mode, after.st_uid, after.st_mtime_ns) == (
            EICAR, before.st_mode, NOBODY, before.st_mtime_ns)


def test_only_regular_files_are_quarantined(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "q")
    (tmp_path / "link").symlink_to("/etc/passwd")
    with pytest.raises(ValueError):
        q.add(str(tmp_path / "link"))
    assert Path("/etc/passwd").exists() and q.entries() == []
