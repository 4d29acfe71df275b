"""The running kernel as a distro package; uname strings are real ones of each distro."""

from __future__ import annotations

import os
from pathlib import Path

from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.packages.base import root_is_host
from garrison.agent.collectors.packages.kernel import (
    KernelSource,
    alpine_kernel,
    debian_kernel,
    rpm_kernel,
    upstream_kernel,
)
from garrison.protocol import OsIdentity

BOOKWORM = OsIdentity(id="debian", version_id="12", codename="bookworm")
JAMMY = OsIdentity(id="ubuntu", version_id="22.04", codename="jammy", pretty_name="Ubuntu 22.04.4 LTS")

STANZA = """\
Package: linux-image-6.1.0-18-amd64
Status: install ok installed
Architecture: amd64
Source: linux-signed-amd64 (6.1.76+1)
Version: 6.1.76-1

"""


def _ctx(tmp_path: Path) -> AgentContext:
    return AgentContext(state_dir=tmp_path / "state", agent_version="t", root=tmp_path / "root")


def test_debian_kernel_takes_the_installed_package_version(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    (ctx.root / "var/lib/dpkg").mkdir(parents=True)
    (ctx.root / "var/lib/dpkg/status").write_text(STANZA)
    pkg = debian_kernel(ctx, "6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
                        "x86_64", BOOKWORM)
    assert pkg is not None
    assert (pkg.manager, pkg.name, pkg.version, pkg.arch) == ("kernel", "linux-image-6.1.0-18-amd64", "6.1.76-1",
                                                              "amd64")
    # Advisories are tracked under the source "linux", not the signed wrapper.
    assert (pkg.source_name, pkg.source_version, pkg.ecosystem) == ("linux", "6.1.76-1", "Debian:12")


def test_debian_kernel_without_dpkg_entry_reads_uname_version(tmp_path: Path) -> None:
    pkg = debian_kernel(_ctx(tmp_path), "6.1.0-18-amd64",
                        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)", "x86_64", BOOKWORM)
    assert pkg is not None and (pkg.version, pkg.arch) == ("6.1.76-1", "amd64")


def test_ubuntu_kernel_from_version_signature(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    (ctx.root / "proc").mkdir(parents=True)
    (ctx.root / "proc/version_signature").write_text("Ubuntu 5.15.0-101.111-generic 5.15.143\n")
    pkg = debian_kernel(ctx, "5.15.0-101-generic", "#111-Ubuntu SMP Tue Mar 5 20:16:58 UTC 2024", "x86_64", JAMMY)
    assert pkg is not None
    assert (pkg.name, pkg.version, pkg.source_name, pkg.ecosystem) == (
        "linux-image-5.15.0-101-generic", "5.15.0-101.111", "linux", "Ubuntu:22.04:LTS")


def test_custom_kernel_on_debian_is_not_claimed_as_debian(tmp_path: Path) -> None:
    assert debian_kernel(_ctx(tmp_path), "6.18.44-fc-v669", "#1 SMP PREEMPT_DYNAMIC @0", "x86_64", BOOKWORM) is None
    pkg = upstream_kernel("6.18.44-fc-v669", "x86_64")
    assert (pkg.name, pkg.version, pkg.ecosystem) == ("linux", "6.18.44", "Linux")


def test_rhel_and_alpine_kernels() -> None:
    pkg = rpm_kernel("5.14.0-362.8.1.el9_3.x86_64", OsIdentity(id="rhel", version_id="9.3"))
    assert pkg is not None
    assert (pkg.name, pkg.version, pkg.arch, pkg.ecosystem) == ("kernel", "5.14.0-362.8.1.el9_3", "x86_64",
                                                                "Red Hat:9")
    apk = alpine_kernel("5.15.41-0-lts", "x86_64", OsIdentity(id="alpine", version_id="3.16.0"))
    assert apk is not None
    assert (apk.name, apk.version, apk.ecosystem) == ("linux-lts", "5.15.41-r0", "Alpine:v3.16")


def test_only_the_live_root_has_a_running_kernel(tmp_path: Path) -> None:
    assert KernelSource().fingerprint(_ctx(tmp_path)) is None
    live = AgentContext(state_dir=tmp_path / "state", agent_version="t")
    assert root_is_host(live)
    assert KernelSource().fingerprint(live) is not None
    (pkg,) = KernelSource().collect(live, None)
    assert pkg.manager == "kernel"
    assert pkg.path == f"uname -r: {os.uname().release}"
