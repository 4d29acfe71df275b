"""Real-time protection on this machine's kernel: fanotify permission events on a tmp directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from garrison.agent.protection.engine import EICAR_THREAT, Detection, Engine
from garrison.agent.protection.hashes import FileHashes, HashReputation
from garrison.agent.protection.realtime import RealTimeProtection
from tests.agent.protection.samples import EICAR

CLEAN = b"#!/bin/sh\necho clean\n"
DROPPER = b"#!/bin/sh\necho dropper-ran\n"


def write_exec(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    path.chmod(0o755)
    return path


def run(path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(path)], capture_output=True, timeout=60, check=False)


@pytest.fixture
def engine() -> Engine:
    hashes = HashReputation()
    hashes.add(FileHashes.of(DROPPER).sha256, "Garrison test dropper (Block)")
    return Engine(hashes=hashes)


def test_block_mode_denies_malicious_executions_and_caches_clean_ones(engine: Engine, tmp_path: Path) -> None:
    seen: list[tuple[str, str, int]] = []

    def report(d: Detection, action: str, pid: int) -> None:
        seen.append((d.threat_name, action, pid))

    with RealTimeProtection(engine, [str(tmp_path)], on_detection=report) as rtp:
        clean = write_exec(tmp_path / "clean.sh", CLEAN)
        assert run(clean).stdout == b"clean\n"
        assert run(clean).stdout == b"clean\n"
        dropper = write_exec(tmp_path / "dropper.sh", DROPPER)
        with pytest.raises(PermissionError):
            run(dropper)
        eicar = write_exec(tmp_path / "eicar", EICAR)
        with pytest.raises(PermissionError):
            run(eicar)
        # The clean script turned malicious: its cached verdict does not survive the write.
        clean.write_bytes(DROPPER)
        with pytest.raises(PermissionError):
            run(clean)
        stats = rtp.stats
    assert stats.blocked == 3 and stats.failures == 0
    assert stats.cache_hits >= 1  # the second run of the clean script was not scanned again
    assert {(t, a) for t, a, _ in seen} >= {("Garrison test dropper (Block)", "Blocked"), (EICAR_THREAT, "Blocked")}
    # Protection stopped: the same file runs again (nothing is left blocked behind).
    assert run(tmp_path / "dropper.sh").stdout == b"dropper-ran\n"


def test_audit_mode_reports_but_allows(engine: Engine, tmp_path: Path) -> None:
    with RealTimeProtection(engine, [str(tmp_path)], mode="audit") as rtp:
        dropper = write_exec(tmp_path / "dropper.sh", DROPPER)
        assert run(dropper).stdout == b"dropper-ran\n"
    assert rtp.stats.audited == 1 and rtp.stats.blocked == 0
    assert [d.threat_name for d in rtp.stats.detections][:1] == ["Garrison test dropper (Block)"]


def test_a_failing_scanner_fails_open(tmp_path: Path) -> None:
    class Broken(Engine):
        def scan_fd(self, fd: int, path: str) -> object:  # type: ignore[override]
            raise RuntimeError("scanner bug")

    with RealTimeProtection(Broken(), [str(tmp_path)]) as rtp:
        clean = write_exec(tmp_path / "clean.sh", CLEAN)
        assert run(clean).stdout == b"clean\n"
    assert rtp.stats.failures >= 1 and rtp.stats.blocked == 0


def test_files_outside_the_marked_directory_are_not_seen(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "watched").mkdir()
    (tmp_path / "elsewhere").mkdir()
    with RealTimeProtection(engine, [str(tmp_path / "watched")]) as rtp:
        assert run(write_exec(tmp_path / "elsewhere/dropper.sh", DROPPER)).stdout == b"dropper-ran\n"
    assert rtp.stats.exec_events == 0
    assert os.geteuid() == 0  # fanotify permission events need root: these tests run as root
