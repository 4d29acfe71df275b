"""Debian/Ubuntu packages from the dpkg status database."""

from __future__ import annotations

from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.packages.base import PackageSource, files_fingerprint, register_package_source
from garrison.inventory.formats.dpkg import parse_dpkg_status
from garrison.protocol import OsIdentity, SoftwarePackage

STATUS = "/var/lib/dpkg/status"


@register_package_source
class DpkgSource(PackageSource):
    name = "dpkg"

    def fingerprint(self, ctx: AgentContext) -> str | None:
        return files_fingerprint([ctx.path(STATUS)])

    def collect(self, ctx: AgentContext, os_identity: OsIdentity | None) -> list[SoftwarePackage]:
        return parse_dpkg_status(ctx.path(STATUS).read_bytes(), os_identity, path=STATUS)
