"""The running kernel, reported as the distro package it came from (manager ``kernel``).

The running kernel may differ from the newest installed one until a reboot; this entry
is what actually runs. Only the live root has a running kernel to report.
"""

from __future__ import annotations

import hashlib
import os
import re

from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.packages.base import (
    PackageSource,
    files_fingerprint,
    register_package_source,
    root_is_host,
)
from garrison.inventory.common import make_package, split_epoch
from garrison.inventory.formats.dpkg import DebianTarget, parse_dpkg_status
from garrison.inventory.formats.rpm import ARCHES, RpmTarget
from garrison.inventory.osrelease import ecosystem_for
from garrison.inventory.purl import build_purl
from garrison.protocol import OsIdentity, SoftwarePackage

DPKG_STATUS = "/var/lib/dpkg/status"
VERSION_SIGNATURE = "/proc/version_signature"  # Ubuntu: "Ubuntu 5.15.0-101.111-generic 5.15.143"
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386", "ppc64le": "ppc64el",
            "s390x": "s390x", "riscv64": "riscv64"}
FMT = "kernel"


def _family(os_identity: OsIdentity | None) -> str:
    if os_identity is None:
        return ""
    ids = {os_identity.id.lower(), *os_identity.id_like.lower().split()}
    if ids & {"debian", "ubuntu"}:
        return "deb"
    if ids & {"rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn", "suse", "opensuse", "sles"}:
        return "rpm"
    if "alpine" in ids:
        return "apk"
    return ""


def _dpkg_entry(ctx: AgentContext, name: str, os_identity: OsIdentity | None) -> SoftwarePackage | None:
    """The installed dpkg package ``name``, parsing only its stanza."""
    try:
        text = ctx.path(DPKG_STATUS).read_text(errors="replace")
    except OSError:
        return None
    m = re.search(rf"(?m)^Package: {re.escape(name)}\n", text)
    if not m:
        return None
    end = text.find("\n\n", m.start())
    stanza = text[m.start() : end if end >= 0 else len(text)]
    pkgs = parse_dpkg_status(stanza, os_identity, path=DPKG_STATUS)
    return pkgs[0] if pkgs else None


def _read(ctx: AgentContext, path: str) -> str:
    try:
        return ctx.path(path).read_text(errors="replace")[:4096]
    except OSError:
        return ""


def _upstream(release: str) -> str:
    m = re.match(r"\d+\.\d+(?:\.\d+)?", release)
    return m.group(0) if m else release


@register_package_source
class KernelSource(PackageSource):
    name = "kernel"

    def fingerprint(self, ctx: AgentContext) -> str | None:
        if not root_is_host(ctx):
            return None
        u = os.uname()
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{u.release}\0{u.version}\0{u.machine}\0{_read(ctx, VERSION_SIGNATURE)}\0".encode())
        h.update((files_fingerprint([ctx.path(DPKG_STATUS)]) or "").encode())
        return h.hexdigest()

    def collect(self, ctx: AgentContext, os_identity: OsIdentity | None) -> list[SoftwarePackage]:
        u = os.uname()
        family = _family(os_identity)
        pkg: SoftwarePackage | None = None
        if family == "deb":
            pkg = debian_kernel(ctx, u.release, u.version, u.machine, os_identity)
        elif family == "rpm":
            pkg = rpm_kernel(u.release, os_identity)
        elif family == "apk":
            pkg = alpine_kernel(u.release, u.machine, os_identity)
        return [pkg or upstream_kernel(u.release, u.machine)]


def upstream_kernel(release: str, machine: str) -> SoftwarePackage:
    """Not a distro kernel (custom or cloud-vendor build): the upstream kernel, OSV ecosystem "Linux"."""
    version = _upstream(release)
    return make_package(
        FMT, manager="kernel", name="linux", version=version, ecosystem="Linux", arch=machine,
        source_name="linux", source_version=version, purl=build_purl("generic", "linux", version),
        path=f"uname -r: {release}",
    )


def debian_kernel(
    ctx: AgentContext, release: str, uversion: str, machine: str, os_identity: OsIdentity | None
) -> SoftwarePackage | None:
    """``linux-image-<release>`` at the version dpkg has for it, else the one uname/version_signature name."""
    name = f"linux-image-{release}"
    version = arch = ""
    installed = _dpkg_entry(ctx, name, os_identity)
    if installed is not None:
        version, arch = installed.version, installed.arch
    else:
        m = re.search(r"\bDebian (\S+)", uversion)  # "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"
        sig = re.match(r"Ubuntu (\S+?)-[a-z]", _read(ctx, VERSION_SIGNATURE))
        if m:
            version = m.group(1)
        elif sig:
            version = sig.group(1)
    if not version:
        return None
    target = DebianTarget(os_identity)
    arch = arch or DEB_ARCH.get(machine, machine)
    return make_package(
        FMT, manager="kernel", name=name, version=version, ecosystem=target.ecosystem, arch=arch,
        # The distros track kernel advisories under the source "linux", whatever signed wrapper built it.
        source_name="linux", source_version=version, epoch=split_epoch(version)[0],
        purl=build_purl("deb", name, version, namespace=target.namespace,
                        qualifiers={"arch": arch, "distro": target.distro}),
        path=f"uname -r: {release}",
    )


def rpm_kernel(release: str, os_identity: OsIdentity | None) -> SoftwarePackage | None:
    """``5.14.0-362.8.1.el9_3.x86_64`` is the ``kernel`` package's version-release.arch."""
    base, _, arch = release.rpartition(".")
    if arch not in ARCHES or "-" not in base:
        return None
    target = RpmTarget(os_identity)
    return make_package(
        FMT, manager="kernel", name="kernel", version=base, ecosystem=target.ecosystem, arch=arch,
        source_name="kernel", source_version=base,
        purl=build_purl("rpm", "kernel", base, namespace=target.namespace,
                        qualifiers={"arch": arch, "distro": target.distro}),
        path=f"uname -r: {release}",
    )


def alpine_kernel(release: str, machine: str, os_identity: OsIdentity | None) -> SoftwarePackage | None:
    """``5.15.41-0-lts`` is package ``linux-lts`` at ``5.15.41-r0``."""
    m = re.fullmatch(r"(\d+\.\d+\.\d+)-(\d+)-(\w+)", release)
    if not m or os_identity is None:
        return None
    name, version = f"linux-{m.group(3)}", f"{m.group(1)}-r{m.group(2)}"
    return make_package(
        FMT, manager="kernel", name=name, version=version, ecosystem=ecosystem_for(os_identity), arch=machine,
        source_name=name, source_version=version,
        purl=build_purl("apk", name, version, namespace="alpine", qualifiers={"arch": machine}),
        path=f"uname -r: {release}",
    )
