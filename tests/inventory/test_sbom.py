from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from garrison.inventory import (
    InventoryParseError,
    OsIdentity,
    parse_cyclonedx_json,
    parse_cyclonedx_xml,
    parse_spdx_json,
)


def test_centos7_cyclonedx_json(data: Path) -> None:
    pkgs, os = parse_cyclonedx_json((data / "centos-7.trivy.cdx.json").read_bytes())
    assert os is not None and (os.id, os.version_id) == ("centos", "7.6.1810")
    assert [p.name for p in pkgs] == ["bash", "openssl-libs"]
    bash, ssl = pkgs
    assert (bash.manager, bash.version, bash.epoch, bash.arch) == ("rpm", "4.2.46-31.el7", "", "x86_64")
    assert (ssl.version, ssl.epoch) == ("1:1.0.2k-16.el7", "1")
    # Trivy's SrcName/SrcVersion/SrcRelease/SrcEpoch properties give the source rpm.
    assert (ssl.source_name, ssl.source_version) == ("openssl", "1:1.0.2k-16.el7")
    assert {p.ecosystem for p in pkgs} == {"Red Hat:7"}
    assert ssl.purl == "pkg:rpm/centos/openssl-libs@1.0.2k-16.el7?arch=x86_64&epoch=1&distro=centos-7.6.1810"


def test_centos7_spdx_json(data: Path) -> None:
    pkgs, os = parse_spdx_json((data / "centos-7.trivy.spdx.json").read_bytes())
    assert os is not None and (os.id, os.version_id) == ("centos", "7.6.1810")
    assert [p.name for p in pkgs] == ["bash", "openssl-libs"]  # the container image package is not software
    bash, ssl = pkgs
    # The purl wins over versionInfo (Trivy wrote only "4.2.46" there for bash).
    assert bash.version == "4.2.46-31.el7"
    assert (ssl.version, ssl.epoch) == ("1:1.0.2k-16.el7", "1")
    # sourceInfo "built package from: openssl-libs 1:1.0.2k-16.el7", as the document states it.
    assert (ssl.source_name, ssl.source_version) == ("openssl-libs", "1:1.0.2k-16.el7")


def test_given_os_overrides_the_documents(data: Path) -> None:
    pkgs, os = parse_cyclonedx_json((data / "centos-7.trivy.cdx.json").read_bytes(),
                                    OsIdentity(id="rocky", version_id="9.3"))
    assert os is not None and os.id == "rocky"
    assert {p.ecosystem for p in pkgs} == {"Rocky Linux:9"}


def test_postgres_stretch_cyclonedx_xml(data: Path) -> None:
    pkgs, os = parse_cyclonedx_xml((data / "postgres-stretch.cdx.xml").read_bytes())
    assert os is not None and (os.id, os.version_id, os.codename) == ("debian", "9", "stretch")
    assert Counter(p.manager for p in pkgs) == {"dpkg": 132, "go": 3, "generic": 1}
    by_name = {p.name: p for p in pkgs}
    assert {p.ecosystem for p in pkgs if p.manager == "dpkg"} == {"Debian:9"}
    bsdutils = by_name["bsdutils"]
    assert (bsdutils.version, bsdutils.epoch) == ("1:2.29.2-1+deb9u1", "1")
    assert (bsdutils.source_name, bsdutils.source_version) == ("util-linux", "2.29.2-1+deb9u1")
    libpq = by_name["libpq5"]
    assert (libpq.source_name, libpq.source_version) == ("postgresql-14", "14.2-1.pgdg90+1")
    adduser = by_name["adduser"]
    assert (adduser.source_name, adduser.source_version, adduser.arch) == ("adduser", "3.115", "all")
    runc = by_name["github.com/opencontainers/runc"]
    assert (runc.version, runc.ecosystem) == ("v1.0.1", "Go")
    assert by_name["postgresql"].purl == "pkg:generic/postgresql@11.15"


def test_truncated_json_names_the_line(data: Path) -> None:
    raw = (data / "centos-7.trivy.cdx.json").read_bytes()
    cut = raw[: raw.index(b'"openssl-libs"')]
    with pytest.raises(InventoryParseError, match=r"cyclonedx-json: line \d+: invalid JSON") as err:
        parse_cyclonedx_json(cut)
    assert err.value.line == cut.count(b"\n") + 1


def test_wrong_shape_names_the_field(data: Path) -> None:
    doc = json.loads((data / "centos-7.trivy.cdx.json").read_bytes())
    doc["components"] = {"bash": "4.2"}
    with pytest.raises(InventoryParseError, match="field 'components': expected a list, got dict"):
        parse_cyclonedx_json(json.dumps(doc).encode())
    doc = json.loads((data / "centos-7.trivy.cdx.json").read_bytes())
    doc["components"][1]["purl"] = 42
    with pytest.raises(InventoryParseError, match=r"field 'components\[1\].purl': expected a string"):
        parse_cyclonedx_json(json.dumps(doc).encode())
    doc["components"][1]["purl"] = "not-a-purl"
    with pytest.raises(InventoryParseError, match=r"field 'components\[1\].purl': not a package URL"):
        parse_cyclonedx_json(json.dumps(doc).encode())
    spdx = json.loads((data / "centos-7.trivy.spdx.json").read_bytes())
    spdx["packages"][2] = ["bash"]
    with pytest.raises(InventoryParseError, match=r"spdx-json: field 'packages\[2\]': expected an object"):
        parse_spdx_json(json.dumps(spdx).encode())
    spdx = json.loads((data / "centos-7.trivy.spdx.json").read_bytes())
    del spdx["spdxVersion"]
    with pytest.raises(InventoryParseError, match="field 'spdxVersion'"):
        parse_spdx_json(json.dumps(spdx).encode())


def test_xml_with_doctype_is_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE bom [<!ENTITY a "aaaa">]>' \
           b'<bom xmlns="http://cyclonedx.org/schema/bom/1.4"><components/></bom>'
    with pytest.raises(InventoryParseError, match="DOCTYPE or ENTITY"):
        parse_cyclonedx_xml(bomb)


def test_truncated_xml_names_the_line(data: Path) -> None:
    raw = (data / "postgres-stretch.cdx.xml").read_bytes()
    cut = raw[:200_000]
    with pytest.raises(InventoryParseError, match=r"cyclonedx-xml: line \d+: invalid XML"):
        parse_cyclonedx_xml(cut)


def test_xml_that_is_not_cyclonedx() -> None:
    with pytest.raises(InventoryParseError, match="not a CycloneDX <bom>"):
        parse_cyclonedx_xml(b"<html><body/></html>")


def entity_bomb_behind_a_comment(comment_bytes: int = 3 * 1024 * 1024) -> bytes:
    """The attack of issue 11 item 8: megabytes of comment (past any scan of the document's head, and
    raising expat's amplification allowance), then a DOCTYPE whose entities expand to ~100 MB."""
    entities = '<!ENTITY e0 "' + "x" * 1000 + '">' + "".join(
        f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 6))
    return (b'<?xml version="1.0"?><!--' + b" " * comment_bytes + b"-->"
            + f"<!DOCTYPE bom [{entities}]>".encode()
            + b'<bom xmlns="http://cyclonedx.org/schema/bom/1.4"><components><component type="library">'
              b"<name>&e5;</name><version>1</version></component></components></bom>")


def test_a_doctype_anywhere_is_refused_before_any_expansion() -> None:
    import time
    import tracemalloc

    bomb = entity_bomb_behind_a_comment()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InventoryParseError, match="DOCTYPE or ENTITY"):
            parse_cyclonedx_xml(bomb)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 20 * 1024 * 1024, f"{peak} bytes allocated: the entities were expanded"
