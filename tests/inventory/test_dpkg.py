from __future__ import annotations

import time
from pathlib import Path

import pytest

from garrison.inventory import InventoryParseError, parse_dpkg_status, parse_os_release


def test_ubuntu_focal_gives_221_installed_packages_with_sources(data: Path) -> None:
    os = parse_os_release((data / "ubuntu-20.04-ga.os-release").read_bytes())
    pkgs = parse_dpkg_status((data / "ubuntu-20.04-ga.dpkg-status").read_bytes(), os, path="/var/lib/dpkg/status")
    assert len(pkgs) == 221
    assert {p.arch for p in pkgs} == {"armhf", "all"}
    assert len({p.source_name for p in pkgs}) == 150
    sudo = next(p for p in pkgs if p.name == "sudo")
    assert sudo.manager == "dpkg"
    assert sudo.version == "1.8.31-1ubuntu1"
    assert (sudo.source_name, sudo.source_version) == ("sudo", "1.8.31-1ubuntu1")
    assert sudo.ecosystem == "Ubuntu:20.04:LTS"
    assert sudo.arch == "armhf"
    assert sudo.path == "/var/lib/dpkg/status"
    assert sudo.purl == "pkg:deb/ubuntu/sudo@1.8.31-1ubuntu1?arch=armhf&distro=ubuntu-20.04"


def test_source_field_with_version_and_epoch(data: Path) -> None:
    pkgs = {p.name: p for p in parse_dpkg_status((data / "ubuntu-20.04-ga.dpkg-status").read_bytes())}
    # "Source: util-linux" style stanzas name a source without version: same version as the binary.
    fdisk = pkgs["fdisk"]
    assert fdisk.source_name == "util-linux"
    assert fdisk.source_version == fdisk.version
    # A binary built from a differently versioned source: "Source: <src> (<ver>)".
    with_ver = [p for p in pkgs.values() if p.source_version != p.version]
    assert with_ver, "the focal image has binaries whose source version differs"
    libgcc = pkgs["libgcc-s1"]
    assert libgcc.source_name == "gcc-10"
    assert libgcc.source_version == "10-20200411-0ubuntu1"
    assert libgcc.version == "10-20200411-0ubuntu1"
    # Epoch kept in the version (dpkg writes it so) and broken out.
    bsdutils = pkgs["bsdutils"]
    assert bsdutils.version.startswith("1:")
    assert bsdutils.epoch == "1"
    assert bsdutils.purl.startswith("pkg:deb/debian/bsdutils@1:")  # no os given: purl-spec default namespace


def test_ubuntu_bionic_excludes_deinstalled_git(data: Path) -> None:
    pkgs = parse_dpkg_status((data / "ubuntu-18.04.dpkg-status").read_bytes())
    assert len(pkgs) == 90
    assert "git" not in {p.name for p in pkgs}
    assert all(p.ecosystem == "" for p in pkgs)  # no os-release given: ecosystem unknown, not guessed


def test_debian_sid_riscv64(data: Path) -> None:
    os = parse_os_release((data / "debian-sid-riscv64.os-release").read_bytes())
    pkgs = parse_dpkg_status((data / "debian-sid-riscv64.dpkg-status").read_bytes(), os)
    assert len(pkgs) == 116
    assert sum(p.arch == "riscv64" for p in pkgs) == 102
    assert sum(p.arch == "all" for p in pkgs) == 14
    assert {p.ecosystem for p in pkgs} == {"Debian:unstable"}
    apt = next(p for p in pkgs if p.name == "apt")
    assert apt.purl == "pkg:deb/debian/apt@2.3.11?arch=riscv64&distro=bookworm"


def test_held_packages_count_as_installed() -> None:
    text = "Package: a\nStatus: hold ok installed\nVersion: 1.0-1\nArchitecture: amd64\n\n" \
           "Package: b\nStatus: purge ok not-installed\nArchitecture: amd64\n"
    assert [p.name for p in parse_dpkg_status(text)] == ["a"]


def test_truncated_stanza_names_line_and_field(data: Path) -> None:
    text = (data / "ubuntu-20.04-ga.dpkg-status").read_text()
    cut = text[: text.index("Package: sudo\n") + len("Package: sudo\nStatus: install ok installed\nPriority: opt")]
    start = cut.count("\n", 0, cut.index("Package: sudo\n")) + 1
    with pytest.raises(InventoryParseError) as err:
        parse_dpkg_status(cut)
    assert err.value.field == "Version"
    assert err.value.line == start
    assert "dpkg-status: line" in str(err.value) and "'sudo'" in str(err.value)


def test_cut_in_the_middle_of_a_line_names_the_line(data: Path) -> None:
    text = (data / "ubuntu-18.04.dpkg-status").read_text()
    cut = text[: text.index("\nVersion:", 5000) + 5]  # ends with "\nVers"
    with pytest.raises(InventoryParseError, match=r"line \d+: expected 'Field: value', got 'Vers'") as err:
        parse_dpkg_status(cut)
    assert err.value.line == cut.count("\n") + 1


def test_missing_version_names_the_stanza(data: Path) -> None:
    text = (data / "ubuntu-20.04-ga.dpkg-status").read_text()
    broken = text.replace("Version: 1.8.31-1ubuntu1\n", "", 1)
    with pytest.raises(InventoryParseError, match="field 'Version': missing for installed package 'sudo'"):
        parse_dpkg_status(broken)


def test_missing_status_and_package() -> None:
    with pytest.raises(InventoryParseError, match="line 1: field 'Status'"):
        parse_dpkg_status("Package: a\nVersion: 1\n")
    with pytest.raises(InventoryParseError, match="line 5: field 'Package': missing"):
        parse_dpkg_status("Package: a\nStatus: install ok installed\nVersion: 1\n\nVersion: 2\n")


def test_bad_values_name_their_field() -> None:
    with pytest.raises(InventoryParseError, match="line 3: field 'Version': invalid version"):
        parse_dpkg_status("Package: a\nStatus: install ok installed\nVersion: 1 2\n")
    with pytest.raises(InventoryParseError, match="line 2: field 'Status'"):
        parse_dpkg_status("Package: a\nStatus: installed\nVersion: 1\n")
    with pytest.raises(InventoryParseError, match="line 4: field 'Source'"):
        parse_dpkg_status("Package: a\nStatus: install ok installed\nVersion: 1\nSource: x (1) y\n")
    with pytest.raises(InventoryParseError, match="line 1: continuation line"):
        parse_dpkg_status(" orphan continuation\nPackage: a\n")


def test_overlong_name_is_refused() -> None:
    with pytest.raises(InventoryParseError, match="field 'name'"):
        parse_dpkg_status("Package: " + "a" * 300 + "\nStatus: install ok installed\nVersion: 1\n")


def test_crlf_and_latin1_descriptions_are_tolerated(data: Path) -> None:
    raw = (data / "ubuntu-18.04.dpkg-status").read_bytes().replace(b"\n", b"\r\n") + b"Package: z\r\n" \
        b"Status: install ok installed\r\nVersion: 1\r\nDescription: caf\xe9\r\n"
    assert len(parse_dpkg_status(raw)) == 91


def _six_hundred(data: Path) -> str:
    parts = [(data / f).read_text() for f in
             ("ubuntu-20.04-ga.dpkg-status", "debian-sid-riscv64.dpkg-status", "ubuntu-18.04.dpkg-status")]
    again = parts[0].replace("Package: ", "Package: copy-")
    return "\n".join(p.rstrip("\n") + "\n" for p in [*parts, again])


def test_600_packages_parse_well_under_50ms(data: Path) -> None:
    text = _six_hundred(data).encode()
    assert len(parse_dpkg_status(text)) == 221 + 116 + 90 + 221
    best = min(_timed(text) for _ in range(5))
    assert best < 0.050, f"{best * 1000:.1f} ms"


def _timed(text: bytes) -> float:
    t = time.perf_counter()
    parse_dpkg_status(text)
    return time.perf_counter() - t
