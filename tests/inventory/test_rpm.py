from __future__ import annotations

import pytest

from garrison.inventory import RPM_QUERYFORMAT, InventoryParseError, OsIdentity, parse_rpm_qa

CENTOS7 = OsIdentity(id="centos", version_id="7")
RHEL9 = OsIdentity(id="rhel", version_id="9.2")

# Real NEVRAs: the package ids of the centos-7 SBOMs, the brief's example and the CentOS 7 gpg key.
PLAIN = """\
bash-4.2.46-31.el7.x86_64
openssl-libs-1.0.2k-19.el7.x86_64
gpg-pubkey-f4a80eb5-53a7ff4b
tzdata-2018e-3.el7.noarch
"""


def test_plain_nevra_lines() -> None:
    pkgs = parse_rpm_qa(PLAIN, CENTOS7)
    assert [(p.name, p.version, p.arch) for p in pkgs] == [
        ("bash", "4.2.46-31.el7", "x86_64"),
        ("openssl-libs", "1.0.2k-19.el7", "x86_64"),
        ("gpg-pubkey", "f4a80eb5-53a7ff4b", ""),
        ("tzdata", "2018e-3.el7", "noarch"),
    ]
    assert all(p.manager == "rpm" and p.ecosystem == "Red Hat:7" for p in pkgs)
    # Plain rpm -qa has no source rpm: the source is the package itself.
    assert pkgs[1].source_name == "openssl-libs"
    assert pkgs[1].purl == "pkg:rpm/centos/openssl-libs@1.0.2k-19.el7?arch=x86_64&distro=centos-7"


def test_query_format_carries_epoch_and_source() -> None:
    assert RPM_QUERYFORMAT.count(r"\t") == 4
    text = (
        "openssl-libs\t1\t1.0.2k-19.el7\tx86_64\topenssl-1.0.2k-19.el7.src.rpm\n"
        "bash\t(none)\t4.2.46-31.el7\tx86_64\tbash-4.2.46-31.el7.src.rpm\n"
        "gpg-pubkey\t(none)\tf4a80eb5-53a7ff4b\t(none)\t(none)\n"
    )
    ssl, bash, key = parse_rpm_qa(text, RHEL9)
    assert (ssl.version, ssl.epoch, ssl.source_name, ssl.source_version) == (
        "1:1.0.2k-19.el7", "1", "openssl", "1:1.0.2k-19.el7")
    assert ssl.purl == "pkg:rpm/redhat/openssl-libs@1.0.2k-19.el7?arch=x86_64&distro=rhel-9.2&epoch=1"
    assert ssl.ecosystem == "Red Hat:9"
    assert (bash.version, bash.epoch, bash.source_name) == ("4.2.46-31.el7", "", "bash")
    assert (key.name, key.arch, key.source_name) == ("gpg-pubkey", "", "gpg-pubkey")


def test_epoch_zero_is_not_written_into_the_version() -> None:
    (p,) = parse_rpm_qa("zlib\t0\t1.2.11-40.el9\tx86_64\tzlib-1.2.11-40.el9.src.rpm\n")
    assert (p.version, p.epoch) == ("1.2.11-40.el9", "0")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("bash-4.2.46-31.el7.x86_64\nnot a package line\n", r"rpm-qa: line 2: expected name-version-release"),
        ("bash\t1\t4.2.46-31.el7\tx86_64\n", r"line 1: expected 5 tab-separated fields"),
        ("bash\tone\t4.2.46-31.el7\tx86_64\tbash-4.2.46-31.el7.src.rpm\n", r"line 1: field 'EPOCH'"),
        ("bash\t(none)\t4.2.46\tx86_64\tbash-4.2.46-31.el7.src.rpm\n", r"line 1: field 'VERSION-RELEASE'"),
        ("bash\t(none)\t4.2.46-31.el7\tx86_64\tbash.tar.gz\n", r"line 1: field 'SOURCERPM'"),
    ],
)
def test_malformed_lines_name_line_and_field(text: str, pattern: str) -> None:
    with pytest.raises(InventoryParseError, match=pattern):
        parse_rpm_qa(text)
