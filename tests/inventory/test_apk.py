from __future__ import annotations

from pathlib import Path

import pytest

from garrison.inventory import InventoryParseError, iter_apk_files, parse_apk_installed, parse_os_release


def test_alpine_3_14_gives_26_packages_with_origins(data: Path) -> None:
    os = parse_os_release((data / "alpine-3.14.0.os-release").read_bytes())
    pkgs = parse_apk_installed((data / "alpine-3.14.0.apk-installed").read_bytes(), os)
    assert len(pkgs) == 26
    assert {p.ecosystem for p in pkgs} == {"Alpine:v3.14"}
    assert {p.arch for p in pkgs} == {"armv7"}
    by_name = {p.name: p for p in pkgs}
    libcrypto = by_name["libcrypto1.1"]
    assert (libcrypto.version, libcrypto.source_name, libcrypto.source_version) == (
        "1.1.1k-r0", "openssl", "1.1.1k-r0")
    assert libcrypto.purl == "pkg:apk/alpine/libcrypto1.1@1.1.1k-r0?arch=armv7&distro=3.14.0"
    assert by_name["zlib"].version == "1.2.11-r3"
    assert by_name["musl"].source_name == "musl"
    # Subpackages name their origin: boost1.75-* come from boost1.75.
    boost = [p for p in pkgs if p.name.startswith("boost1.75-")]
    assert boost and {p.source_name for p in boost} == {"boost1.75"}


def test_file_list_maps_paths_to_packages(data: Path) -> None:
    owners = dict(iter_apk_files((data / "alpine-3.14.0.apk-installed").read_bytes()))
    assert owners["/lib/libc.musl-armv7.so.1"] == "musl"
    assert owners["/bin/busybox"] == "busybox"


def test_missing_version_names_the_package_line(data: Path) -> None:
    text = (data / "alpine-3.14.0.apk-installed").read_text()
    broken = text.replace("V:1.1.1k-r0\n", "", 1)
    start = broken[: broken.index("P:libcrypto1.1\n")].rfind("\n\n")
    line = broken.count("\n", 0, start + 2) + 1
    with pytest.raises(InventoryParseError) as err:
        parse_apk_installed(broken)
    assert err.value.field == "V (version)"
    assert err.value.line == line


def test_line_that_is_not_a_field_is_refused(data: Path) -> None:
    text = (data / "alpine-3.14.0.apk-installed").read_text()
    with pytest.raises(InventoryParseError, match=r"apk-installed: line 3: expected 'X:value'"):
        parse_apk_installed(text.replace("V:1.2.2-r3", "garbage", 1))


def test_bad_version_is_refused() -> None:
    with pytest.raises(InventoryParseError, match=r"line 2: field 'V \(version\)'"):
        parse_apk_installed("P:musl\nV:1 2\n")
