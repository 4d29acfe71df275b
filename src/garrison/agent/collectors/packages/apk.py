"""Alpine packages from the apk installed database."""

from __future__ import annotations

from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.packages.base import PackageSource, files_fingerprint, register_package_source
from garrison.inventory.formats.apk import parse_apk_installed
from garrison.protocol import OsIdentity, SoftwarePackage

INSTALLED = "/lib/apk/db/installed"


@register_package_source
class ApkSource(PackageSource):
    name = "apk"

    def fingerprint(self, ctx: AgentContext) -> str | None:
        return files_fingerprint([ctx.path(INSTALLED)])

    def collect(self, ctx: AgentContext, os_identity: OsIdentity | None) -> list[SoftwarePackage]:
        return parse_apk_installed(ctx.path(INSTALLED).read_bytes(), os_identity, path=INSTALLED)
