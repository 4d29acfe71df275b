from __future__ import annotations

from pathlib import Path

import pytest

from garrison.inventory import InventoryParseError, OsIdentity, ecosystem_for, parse_os_release


def test_ubuntu_focal_is_lts(data: Path) -> None:
    os = parse_os_release((data / "ubuntu-20.04-ga.os-release").read_bytes())
    assert (os.id, os.version_id, os.codename, os.id_like) == ("ubuntu", "20.04", "focal", "debian")
    assert os.pretty_name == "Ubuntu 20.04 LTS"
    assert ecosystem_for(os) == "Ubuntu:20.04:LTS"


def test_alpine_ecosystem_uses_major_minor_with_v(data: Path) -> None:
    os = parse_os_release((data / "alpine-3.14.0.os-release").read_text())
    assert os.version_id == "3.14.0"
    assert ecosystem_for(os) == "Alpine:v3.14"


def test_debian_sid_without_version_id_takes_codename_from_pretty_name(data: Path) -> None:
    os = parse_os_release((data / "debian-sid-riscv64.os-release").read_text())
    assert os.version_id == ""
    assert os.codename == "bookworm"
    assert ecosystem_for(os) == "Debian:unstable"  # testing/sid, not the bookworm stable release


def test_plain_sid_is_debian_unstable() -> None:
    os = parse_os_release('PRETTY_NAME="Debian GNU/Linux sid"\nNAME="Debian GNU/Linux"\nID=debian\n')
    assert os.codename == "sid"
    assert ecosystem_for(os) == "Debian:unstable"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n', "Debian:12"),
        ('ID=ubuntu\nVERSION_ID="21.04"\nPRETTY_NAME="Ubuntu 21.04"\n', "Ubuntu:21.04"),
        ('ID=alpine\nVERSION_ID=3.21.0_alpha20240807\nPRETTY_NAME="Alpine Linux edge"\n', "Alpine:edge"),
        ('ID=redhat\nVERSION_ID="8.9"\n', "Red Hat:8"),  # Trivy's OS family names
        ('ID=debian\nVERSION_ID=sid\n', "Debian:unstable"),  # as `--os debian:sid` gives it
        ('ID=debian\nVERSION_ID=bookworm\n', "Debian:12"),
        ('ID=alma\nVERSION_ID="9.3"\n', "AlmaLinux:9"),
        # 22.04 is LTS even where the pretty name does not say so (even year, April release).
        ('ID=ubuntu\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.3"\n', "Ubuntu:22.04:LTS"),
        ('ID=ubuntu\nVERSION_ID="23.10"\n', "Ubuntu:23.10"),
        ('ID="rhel"\nVERSION_ID="9.2"\n', "Red Hat:9"),
        ('ID="rocky"\nVERSION_ID="9.3"\nID_LIKE="rhel centos fedora"\n', "Rocky Linux:9"),
        ('ID="almalinux"\nVERSION_ID="8.9"\n', "AlmaLinux:8"),
        ('ID="centos"\nVERSION_ID="7"\n', "Red Hat:7"),
        ("ID=alpine\nVERSION_ID=3.19.1\n", "Alpine:v3.19"),
        ('ID="opensuse-leap"\nVERSION_ID="15.5"\n', "openSUSE:Leap 15.5"),
        ('ID="sles"\nVERSION_ID="15.5"\n', "SUSE:Linux Enterprise Server 15 SP5"),
        ("ID=wolfi\n", "Wolfi"),
        ('ID=arch\nNAME="Arch Linux"\n', ""),
    ],
)
def test_ecosystem_names_are_osv_names(text: str, expected: str) -> None:
    assert ecosystem_for(parse_os_release(text)) == expected


def test_quotes_escapes_and_comments() -> None:
    os = parse_os_release('# comment\n\nID=\'debian\'\nPRETTY_NAME="A \\"quoted\\" name"\n')
    assert os.id == "debian"
    assert os.pretty_name == 'A "quoted" name'


def test_malformed_line_names_the_line() -> None:
    with pytest.raises(InventoryParseError, match=r"os-release: line 2: expected KEY=value"):
        parse_os_release("ID=debian\nthis is not os-release\n")


def test_unterminated_quote_names_the_line() -> None:
    with pytest.raises(InventoryParseError, match=r"line 1: unterminated"):
        parse_os_release('ID="debian\n')


def test_needs_id_or_name() -> None:
    with pytest.raises(InventoryParseError, match="field 'ID'"):
        parse_os_release("VERSION_ID=12\n")


def test_overlong_value_is_refused_naming_the_field() -> None:
    with pytest.raises(InventoryParseError, match="field 'VERSION_ID'"):
        parse_os_release("ID=debian\nVERSION_ID=" + "9" * 500 + "\n")


def test_ecosystem_for_identity_built_by_hand() -> None:
    assert ecosystem_for(OsIdentity(id="debian", codename="trixie")) == "Debian:13"
