"""os-release parsing and the OSV ecosystem of a distro release.

The ecosystem decides which distro advisories apply to a package, so the names are the
exact OSV ecosystem names: ``Debian:12``, ``Ubuntu:20.04:LTS``, ``Ubuntu:21.04``,
``Alpine:v3.14``, ``Red Hat:9``, ``Rocky Linux:9``, ``AlmaLinux:9``.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from garrison.inventory.errors import InventoryParseError
from garrison.protocol import OsIdentity

FMT = "os-release"
MAX_OS_RELEASE_BYTES = 64 * 1024

_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")

# Debian release numbers by codename, for testing/sid images that carry no VERSION_ID.
DEBIAN_CODENAMES = {
    "buzz": "1.1", "rex": "1.2", "bo": "1.3", "hamm": "2.0", "slink": "2.1", "potato": "2.2",
    "woody": "3.0", "sarge": "3.1", "etch": "4", "lenny": "5", "squeeze": "6", "wheezy": "7",
    "jessie": "8", "stretch": "9", "buster": "10", "bullseye": "11", "bookworm": "12",
    "trixie": "13", "forky": "14", "duke": "15",
}


def _unquote(raw: str, lineno: int) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        body = raw[1:-1]
        if raw[0] == '"':
            # Shell double-quote escapes, as os-release(5) allows.
            body = re.sub(r"\\([\\$\"`])", r"\1", body)
        return body
    if raw[:1] in "\"'":
        raise InventoryParseError("unterminated quoted value", fmt=FMT, line=lineno)
    return raw


def parse_os_release(text: str | bytes) -> OsIdentity:
    """Parse an os-release(5) file into :class:`OsIdentity`.

    Debian testing/sid has no VERSION_ID and no VERSION_CODENAME; its PRETTY_NAME reads
    ``Debian GNU/Linux bookworm/sid`` and the codename is taken from there.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_OS_RELEASE_BYTES:
            raise InventoryParseError(f"larger than {MAX_OS_RELEASE_BYTES} bytes", fmt=FMT)
        text = text.decode("utf-8", errors="replace")
    elif len(text) > MAX_OS_RELEASE_BYTES:
        raise InventoryParseError(f"larger than {MAX_OS_RELEASE_BYTES} characters", fmt=FMT)
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = _LINE.match(s)
        if not m:
            raise InventoryParseError(f"expected KEY=value, got {s[:60]!r}", fmt=FMT, line=lineno)
        values[m.group(1)] = _unquote(m.group(2), lineno)
    if "ID" not in values and "NAME" not in values:
        raise InventoryParseError("neither ID nor NAME is set", fmt=FMT, field="ID")
    os_id = values.get("ID", "").lower()
    codename = values.get("VERSION_CODENAME") or values.get("UBUNTU_CODENAME") or ""
    pretty = values.get("PRETTY_NAME", "")
    if not codename and os_id == "debian":
        m = re.search(r"\b([a-z]+)/sid\b", pretty)
        if m:
            codename = m.group(1)
        elif "sid" in pretty.split():
            codename = "sid"
    try:
        return OsIdentity(
            id=os_id,
            version_id=values.get("VERSION_ID", ""),
            codename=codename.lower(),
            name=values.get("NAME", ""),
            pretty_name=pretty,
            id_like=values.get("ID_LIKE", ""),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InventoryParseError(err["msg"], fmt=FMT, field=str(err["loc"][0]).upper()) from None


def _major(version_id: str) -> str:
    return version_id.split(".")[0] if version_id else ""


def _major_minor(version_id: str) -> str:
    parts = re.split(r"[._-]", version_id)
    return ".".join(parts[:2]) if len(parts) >= 2 else version_id


def _ubuntu_is_lts(os: OsIdentity, release: str) -> bool:
    if "LTS" in os.pretty_name or "LTS" in os.name:
        return True
    # LTS releases are the April releases of even years (20.04, 22.04, …).
    m = re.fullmatch(r"(\d+)\.04", release)
    return bool(m and int(m.group(1)) % 2 == 0)


def ecosystem_for(os: OsIdentity) -> str:
    """The OSV ecosystem of this distro release; ``""`` when no distro advisories apply."""
    os_id = os.id.lower()
    vid = os.version_id
    if os_id == "debian":
        if vid[:1].isdigit():
            return f"Debian:{_major(vid)}"
        # testing and unstable carry no VERSION_ID (PRETTY_NAME "Debian GNU/Linux bookworm/sid"). Their
        # packages run ahead of the stable release the codename names, so they are matched against the
        # tracker's sid data: testing only holds versions that were in sid first, so sid's fix is testing's.
        name = (vid or os.codename).lower()  # `--os debian:sid` / `debian:bookworm` give it as the version
        if name in ("sid", "unstable", "testing") or "/sid" in os.pretty_name:
            return "Debian:unstable"
        major = DEBIAN_CODENAMES.get(name, "")  # a release named by codename only (SBOM, by hand)
        return f"Debian:{major}" if major else "Debian"
    if os_id == "ubuntu":
        if not vid:
            return "Ubuntu"
        release = _major_minor(vid)
        return f"Ubuntu:{release}:LTS" if _ubuntu_is_lts(os, release) else f"Ubuntu:{release}"
    if os_id == "alpine":
        if "_alpha" in vid or "edge" in os.pretty_name.lower():
            return "Alpine:edge"  # edge's VERSION_ID names the next release (3.21.0_alpha20240807)
        return f"Alpine:v{_major_minor(vid)}" if vid else "Alpine"
    majors = {
        "rhel": "Red Hat",
        "redhat": "Red Hat",  # Trivy's name for RHEL (SBOM OS components, purl distro qualifiers)
        # CentOS Linux rebuilds RHEL sources with the same package versions; there is no
        # OSV CentOS ecosystem, so its packages are matched against Red Hat's advisories.
        "centos": "Red Hat",
        "rocky": "Rocky Linux",
        "almalinux": "AlmaLinux",
        "alma": "AlmaLinux",  # Trivy's name
        "mageia": "Mageia",
    }
    if os_id in majors:
        return f"{majors[os_id]}:{_major(vid)}" if vid else majors[os_id]
    if os_id == "photon":
        return f"Photon OS:{vid}" if vid else "Photon OS"
    if os_id == "opensuse-leap":
        return f"openSUSE:Leap {vid}" if vid else "openSUSE"
    if os_id in ("sles", "sled"):
        kind = "Server" if os_id == "sles" else "Desktop"
        parts = vid.split(".")
        sp = f" SP{parts[1]}" if len(parts) > 1 and parts[1] != "0" else ""
        return f"SUSE:Linux Enterprise {kind} {parts[0]}{sp}" if vid else "SUSE"
    if os_id == "wolfi":
        return "Wolfi"
    if os_id == "chainguard":
        return "Chainguard"
    return ""


def os_from_distro_qualifier(distro: str) -> OsIdentity | None:
    """``debian-9`` / ``centos-7.6.1810`` (purl ``distro`` qualifier, as Syft and Trivy write it)."""
    m = re.fullmatch(r"([a-z][a-z0-9_.]*?)-(\d[\w.]*)", distro.strip().lower())
    if not m:
        return None
    return OsIdentity(id=m.group(1), version_id=m.group(2))
