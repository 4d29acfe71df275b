import gzip
import io
import os
import stat
import tarfile
import zipfile

import pytest

from garrison.tvm.kb import import_paths
from garrison.tvm.kb.archive import iter_inputs
from tests.tvm.kb.kbutil import advisory, counts


def _zip(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.fixture
def records(data) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((data / "osv" / "ubuntu-focal").glob("*.json"))}


def test_osv_all_zip_is_imported_member_by_member(store, records, tmp_path) -> None:
    _zip(tmp_path / "all.zip", records)
    result = import_paths(store, tmp_path / "all.zip")
    assert result.errors == [] and result.records == len(records) == result.files
    assert advisory(store, "USN-4705-1") is not None


def test_zip_with_parent_directory_member_is_refused_whole(store, records, tmp_path) -> None:
    members = dict(records)
    members["../../etc/evil.json"] = records["USN-4705-1.json"]
    _zip(tmp_path / "all.zip", members)
    result = import_paths(store, tmp_path / "all.zip")
    assert result.records == 0
    assert counts(store)["advisories"] == 0
    assert len(result.errors) == 1
    assert "all.zip" in result.errors[0] and "../../etc/evil.json" in result.errors[0]
    assert "escapes the archive" in result.errors[0]


@pytest.mark.parametrize("name", ["/etc/passwd", "C:/windows/evil.json", "a/../../b.json", "..\\b.json"])
def test_zip_member_names_that_escape_are_refused(store, tmp_path, name) -> None:
    _zip(tmp_path / "x.zip", {name: b"{}"})
    result = import_paths(store, tmp_path / "x.zip")
    assert "escapes the archive" in result.errors[0]


def test_zip_bomb_is_refused(store, tmp_path) -> None:
    _zip(tmp_path / "bomb.zip", {"a.json": b"\0" * (50 * 1024 * 1024)})
    assert os.path.getsize(tmp_path / "bomb.zip") < 200 * 1024
    result = import_paths(store, tmp_path / "bomb.zip")
    assert result.records == 0 and "compression ratio" in result.errors[0]


def test_zip_symlink_member_is_refused(store, tmp_path) -> None:
    info = zipfile.ZipInfo("link.json")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "l.zip", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    result = import_paths(store, tmp_path / "l.zip")
    assert "symbolic link" in result.errors[0]


def test_tar_gz_of_records_is_imported_and_traversal_refused(store, records, tmp_path) -> None:
    def make(path, names):
        with tarfile.open(path, "w:gz") as tf:
            for name in names:
                data = records["USN-4705-1.json"]
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))

    make(tmp_path / "ok.tar.gz", ["usn/USN-4705-1.json"])
    result = import_paths(store, tmp_path / "ok.tar.gz")
    assert result.errors == [] and result.records == 1
    make(tmp_path / "bad.tar.gz", ["usn/ok.json", "../escape.json"])
    result = import_paths(store, tmp_path / "bad.tar.gz")
    assert result.records == 0 and "escapes the archive" in result.errors[0]


def test_gzip_of_one_file_is_read_as_that_file(store, records, tmp_path) -> None:
    (tmp_path / "usn.dat").write_bytes(gzip.compress(records["USN-4705-1.json"]))
    result = import_paths(store, tmp_path / "usn.dat")  # no telling extension: magic bytes decide
    assert result.records == 1 and advisory(store, "USN-4705-1") is not None


def test_truncated_gzip_is_an_error_not_a_partial_import(store, records, tmp_path) -> None:
    data = gzip.compress(records["USN-4705-1.json"])
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    result = import_paths(store, tmp_path / "cut.gz")
    assert result.records == 0 and "cut.gz" in result.errors[0]


def test_archives_nested_too_deep_are_refused(tmp_path) -> None:
    inner = io.BytesIO()
    _zip(inner, {"a.json": b"{}"})
    middle = io.BytesIO()
    _zip(middle, {"inner.zip": inner.getvalue()})
    _zip(tmp_path / "outer.zip", {"middle.zip": middle.getvalue()})
    items = list(iter_inputs(tmp_path / "outer.zip"))
    assert [i.error for i in items if i.error] and "nested deeper" in items[0].error


def test_missing_path_is_an_error(store, tmp_path) -> None:
    result = import_paths(store, tmp_path / "nope")
    assert result.errors and "no such file" in result.errors[0]
