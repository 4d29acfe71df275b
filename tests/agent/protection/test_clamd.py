"""ClamAV through a real clamd (Debian's clamav-daemon) started by the test with its own signature
database (a hash signature made here), on a socket in tmp_path."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.agent.protection.clamd import Clamd
from garrison.agent.protection.engine import EICAR_THREAT, Engine
from tests.agent.protection.samples import EICAR

PAYLOAD = b"#!/bin/sh\n# a file only our clamd database knows\nrm -rf --no-preserve-root /\n"


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    base = tmp_path_factory.mktemp("clamd")
    (base / "db").mkdir()
    (base / "db/garrison-test.hdb").write_text(f"{hashlib.md5(PAYLOAD).hexdigest()}:{len(PAYLOAD)}:Garrison.Test.Payload\n")
    conf = base / "clamd.conf"
    conf.write_text(f"LocalSocket {base}/clamd.sock\nDatabaseDirectory {base}/db\nForeground yes\nUser root\n"
                    f"LogFile {base}/clamd.log\n")
    proc = subprocess.Popen(["clamd", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        client = None
        while client is None and time.monotonic() < deadline and proc.poll() is None:
            client = Clamd.detect((str(base / "clamd.sock"),))
            time.sleep(0.2)
        assert client is not None, (base / "clamd.log").read_text() if (base / "clamd.log").exists() else "no log"
        yield client
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_clamd_is_found_and_answers(clamd: Clamd, tmp_path: Path) -> None:
    assert clamd.ping() and clamd.version().startswith("ClamAV ")
    assert Clamd.detect((str(tmp_path / "no.sock"),)) is None
    (tmp_path / "not-a-socket").write_text("")
    assert Clamd.detect((str(tmp_path / "not-a-socket"),)) is None


def test_the_engine_reports_clamd_detections(clamd: Clamd, tmp_path: Path) -> None:
    (tmp_path / "payload.sh").write_bytes(PAYLOAD)
    (tmp_path / "clean.txt").write_text("hello\n")
    (tmp_path / "eicar.com").write_bytes(EICAR)
    engine = Engine(clamd=clamd)
    verdict = engine.scan_file(str(tmp_path / "payload.sh"))
    assert [(d.threat_name, d.engine) for d in verdict.detections] == [("Garrison.Test.Payload.UNOFFICIAL", "clamav")]  # clamd marks signatures of its own databases
    assert engine.scan_file(str(tmp_path / "clean.txt")).detections == []
    assert EICAR_THREAT in {d.threat_name for d in engine.scan_file(str(tmp_path / "eicar.com")).detections}
    assert engine.version["clamd"] is True


def test_a_clamd_that_went_away_makes_the_scan_incomplete_not_failed(tmp_path: Path) -> None:
    (tmp_path / "payload.sh").write_bytes(PAYLOAD)
    verdict = Engine(clamd=Clamd(str(tmp_path / "gone.sock"), timeout=1)).scan_file(str(tmp_path / "payload.sh"))
    assert verdict.detections == [] and verdict.error == ""
    assert verdict.incomplete and "clamd" in verdict.incomplete[0]
