from __future__ import annotations

from pathlib import Path

import pytest

from garrison.inventory import (
    InventoryParseError,
    build_purl,
    detect_format,
    normalize_pypi_name,
    parse_inventory,
    parse_os_release,
    parse_purl,
)


@pytest.mark.parametrize(
    ("name", "fmt", "count"),
    [
        ("ubuntu-20.04-ga.dpkg-status", "dpkg-status", 221),
        ("ubuntu-18.04.dpkg-status", "dpkg-status", 90),
        ("debian-sid-riscv64.dpkg-status", "dpkg-status", 116),
        ("alpine-3.14.0.apk-installed", "apk-installed", 26),
        ("centos-7.trivy.cdx.json", "cyclonedx-json", 2),
        ("centos-7.trivy.spdx.json", "spdx-json", 2),
        ("postgres-stretch.cdx.xml", "cyclonedx-xml", 136),
        ("ubuntu-20.04-ga.os-release", "os-release", 0),
        ("alpine-3.14.0.os-release", "os-release", 0),
    ],
)
def test_every_real_file_is_recognised_and_parsed(data: Path, name: str, fmt: str, count: int) -> None:
    raw = (data / name).read_bytes()
    assert detect_format(raw) == fmt
    pkgs, _os = parse_inventory(raw)
    assert len(pkgs) == count


def test_rpm_qa_is_recognised() -> None:
    assert detect_format(b"bash-4.2.46-31.el7.x86_64\nopenssl-libs-1.0.2k-19.el7.x86_64\n") == "rpm-qa"
    assert detect_format(b"bash\t(none)\t4.2.46-31.el7\tx86_64\tbash-4.2.46-31.el7.src.rpm\n") == "rpm-qa"


def test_the_os_given_decides_the_ecosystem(data: Path) -> None:
    os = parse_os_release((data / "ubuntu-20.04-ga.os-release").read_bytes())
    pkgs, got = parse_inventory((data / "ubuntu-20.04-ga.dpkg-status").read_bytes(), os=os)
    assert got == os
    assert {p.ecosystem for p in pkgs} == {"Ubuntu:20.04:LTS"}


def test_os_release_alone_gives_the_identity(data: Path) -> None:
    pkgs, os = parse_inventory((data / "alpine-3.14.0.os-release").read_bytes())
    assert pkgs == [] and os is not None and os.id == "alpine"


@pytest.mark.parametrize("raw", [b"", b"hello world\n", b'{"some": "json"}', b"<html/>"])
def test_unknown_content_is_refused(raw: bytes) -> None:
    with pytest.raises(InventoryParseError):
        detect_format(raw)


def test_pep503_names() -> None:
    assert normalize_pypi_name("PyYAML") == "pyyaml"
    assert normalize_pypi_name("zope.interface") == "zope-interface"
    assert normalize_pypi_name("Foo__Bar-._baz") == "foo-bar-baz"


def test_purl_round_trip_and_canonical_form() -> None:
    purl = build_purl("npm", "core", "7.1.0", namespace="@angular")
    assert purl == "pkg:npm/%40angular/core@7.1.0"
    p = parse_purl(purl)
    assert (p.type, p.namespace, p.name, p.version) == ("npm", "@angular", "core", "7.1.0")
    # Qualifiers sorted, empty dropped, '+' encoded, ':' kept.
    assert build_purl("deb", "bsdutils", "1:2.29.2-1+deb9u1", namespace="debian",
                      qualifiers={"distro": "debian-9", "arch": "amd64", "x": ""}) == \
        "pkg:deb/debian/bsdutils@1:2.29.2-1%2Bdeb9u1?arch=amd64&distro=debian-9"
    q = parse_purl("pkg:deb/debian/bsdutils@1:2.29.2-1+deb9u1?arch=amd64&upstream=util-linux%402.29.2-1")
    assert q.version == "1:2.29.2-1+deb9u1"
    assert q.qualifiers["upstream"] == "util-linux@2.29.2-1"
    # Unencoded npm scope as some generators write it.
    assert parse_purl("pkg:npm/@scope/pkg@1.0.0").namespace == "@scope"
