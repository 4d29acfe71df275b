"""``rpm -qa`` output: plain NEVRA lines, or the tab-separated query format below.

The agent asks rpm for :data:`RPM_QUERYFORMAT`, which carries the epoch and the source
rpm; a plain ``rpm -qa`` (``openssl-libs-1.0.2k-19.el7.x86_64``) has neither.

``version`` is ``[epoch:]version-release`` with the epoch only when it is not 0, as
OSV's Red Hat-family advisories write fixed versions; ``epoch`` carries it alone too.
"""

from __future__ import annotations

import re

from garrison.inventory.common import check_count, decode, make_package
from garrison.inventory.errors import InventoryParseError
from garrison.inventory.formats import InventoryFormat, register_format
from garrison.inventory.osrelease import ecosystem_for
from garrison.inventory.purl import build_purl
from garrison.protocol import OsIdentity, SoftwarePackage

FMT = "rpm-qa"

# NAME, EPOCH ("(none)" when unset), VERSION-RELEASE, ARCH, SOURCERPM ("(none)" for gpg-pubkey).
RPM_QUERYFORMAT = r"%{NAME}\t%{EPOCH}\t%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n"

ARCHES = frozenset(
    ["noarch", "x86_64", "i386", "i486", "i586", "i686", "athlon", "amd64", "aarch64", "arm64", "armv5tel", "armv6hl", "armv6l", "armv7hl", "armv7l", "armv7hnl", "ppc", "ppc64", "ppc64le", "ppc64p7", "s390", "s390x", "riscv64", "ia64", "alpha", "sparc", "sparc64", "sparcv9", "mips", "mipsel", "mips64", "mips64el", "loongarch64", "src", "nosrc"]
)
_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+~^-]*")
_VR = re.compile(r"[A-Za-z0-9._+~^]+-[A-Za-z0-9._+~^]+")
_EPOCH = re.compile(r"\d{1,10}")

# Namespaces (vendors) of rpm purls, by os-release ID.
PURL_NAMESPACES = {"rhel": "redhat", "amzn": "amazon", "ol": "oracle", "opensuse-leap": "opensuse", "sles": "suse"}


def full_version(epoch: str, vr: str) -> str:
    return f"{epoch}:{vr}" if epoch and epoch != "0" else vr


def split_nevra(text: str) -> tuple[str, str, str, str] | None:
    """``openssl-libs-1:1.0.2k-19.el7.x86_64`` → (name, epoch, version-release, arch); None if not NEVRA."""
    arch = ""
    base, dot, tail = text.rpartition(".")
    if dot and tail in ARCHES:
        text, arch = base, tail
    parts = text.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return None
    name, version, release = parts
    epoch = ""
    head, sep, rest = version.partition(":")
    if sep:
        epoch, version = head, rest
        if not _EPOCH.fullmatch(epoch):
            return None
    vr = f"{version}-{release}"
    if not _NAME.fullmatch(name) or not _VR.fullmatch(vr):
        return None
    return name, epoch, vr, arch


def parse_source_rpm(srpm: str) -> tuple[str, str] | None:
    """``openssl-1.0.2k-19.el7.src.rpm`` → (``openssl``, ``1.0.2k-19.el7``)."""
    for suffix in (".src.rpm", ".nosrc.rpm"):
        if srpm.endswith(suffix):
            parts = split_nevra(srpm[: -len(suffix)])
            return (parts[0], parts[2]) if parts else None
    return None


class RpmTarget:
    def __init__(self, os: OsIdentity | None) -> None:
        self.ecosystem = ecosystem_for(os) if os else ""
        os_id = os.id.lower() if os else ""
        self.namespace = PURL_NAMESPACES.get(os_id, os_id)
        self.distro = f"{os_id}-{os.version_id}" if os and os_id and os.version_id else ""


def rpm_package(
    target: RpmTarget,
    name: str,
    epoch: str,
    vr: str,
    arch: str,
    source: tuple[str, str] | None,
    *,
    path: str = "",
    line: int | None = None,
    fmt: str = FMT,
) -> SoftwarePackage:
    src_name, src_vr = source or (name, vr)
    return make_package(
        fmt,
        line,
        manager="rpm",
        name=name,
        version=full_version(epoch, vr),
        ecosystem=target.ecosystem,
        arch=arch,
        source_name=src_name,
        # A source rpm and the binaries built from it share the epoch.
        source_version=full_version(epoch, src_vr),
        epoch=epoch,
        purl=build_purl(
            "rpm", name, vr, namespace=target.namespace,
            qualifiers={"arch": arch, "epoch": epoch, "distro": target.distro},
        ),
        path=path,
    )


def parse_rpm_qa(data: bytes | str, os: OsIdentity | None = None, *, path: str = "") -> list[SoftwarePackage]:
    text = decode(data, FMT)
    target = RpmTarget(os)
    out: list[SoftwarePackage] = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if "\t" in line:
            cols = raw.split("\t")
            if len(cols) != 5:
                raise InventoryParseError(
                    f"expected 5 tab-separated fields (name, epoch, version-release, arch, source rpm), got {len(cols)}",
                    fmt=FMT, line=lineno,
                )
            name, epoch, vr, arch, srpm = (c.strip() for c in cols)
            if not _NAME.fullmatch(name):
                raise InventoryParseError(f"invalid name {name[:60]!r}", fmt=FMT, line=lineno, field="NAME")
            if epoch == "(none)":
                epoch = ""
            if epoch and not _EPOCH.fullmatch(epoch):
                raise InventoryParseError(f"invalid epoch {epoch[:20]!r}", fmt=FMT, line=lineno, field="EPOCH")
            if not _VR.fullmatch(vr):
                raise InventoryParseError(
                    f"expected VERSION-RELEASE, got {vr[:60]!r}", fmt=FMT, line=lineno, field="VERSION-RELEASE"
                )
            if arch == "(none)":
                arch = ""
            if arch and not re.fullmatch(r"[a-z0-9_]+", arch):
                raise InventoryParseError(f"invalid arch {arch[:30]!r}", fmt=FMT, line=lineno, field="ARCH")
            source = None
            if srpm and srpm != "(none)":
                source = parse_source_rpm(srpm)
                if source is None:
                    raise InventoryParseError(
                        f"not a source rpm file name: {srpm[:80]!r}", fmt=FMT, line=lineno, field="SOURCERPM"
                    )
            out.append(rpm_package(target, name, epoch, vr, arch, source, path=path, line=lineno))
        else:
            parts = split_nevra(line)
            if parts is None:
                raise InventoryParseError(
                    f"expected name-version-release.arch, got {line[:80]!r}", fmt=FMT, line=lineno
                )
            name, epoch, vr, arch = parts
            out.append(rpm_package(target, name, epoch, vr, arch, None, path=path, line=lineno))
    check_count(len(out), FMT)
    return out


@register_format
class RpmQa(InventoryFormat):
    name = FMT
    priority = 90  # loose line format: after every structured one

    @classmethod
    def sniff(cls, head: str) -> bool:
        lines = [ln.strip() for ln in head.split("\n")[:20] if ln.strip()]
        if not lines or any(": " in ln or "=" in ln.split("\t")[0] for ln in lines):
            return False
        first = lines[0]
        if first.count("\t") == 4:
            return True
        parts = split_nevra(first)
        return parts is not None and (parts[3] != "" or first.startswith("gpg-pubkey-"))

    def parse(
        self, data: bytes, *, os: OsIdentity | None = None, path: str = ""
    ) -> tuple[list[SoftwarePackage], OsIdentity | None]:
        return parse_rpm_qa(data, os, path=path), os
