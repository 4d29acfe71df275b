"""RPM packages, asked of ``rpm -qa`` with a query format that carries epoch and source rpm.

The rpm database is a Berkeley DB, NDB or SQLite file of binary headers; reading it
without rpm is out of scope, so this source needs the rpm binary and the live root.
"""

from __future__ import annotations

import shutil
import subprocess

from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.packages.base import (
    PackageSource,
    SourceSkipped,
    files_fingerprint,
    register_package_source,
    root_is_host,
)
from garrison.inventory.formats.rpm import RPM_QUERYFORMAT, parse_rpm_qa
from garrison.protocol import OsIdentity, SoftwarePackage

# Where the rpm database lives across rpm versions (bdb, sqlite, ndb; /usr/lib/sysimage on newer distros).
DB_FILES = [
    f"{d}/{f}"
    for d in ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
    for f in ("rpmdb.sqlite", "Packages", "Packages.db")
]
TIMEOUT = 300
MAX_OUTPUT = 64 * 1024 * 1024


@register_package_source
class RpmSource(PackageSource):
    name = "rpm"

    def fingerprint(self, ctx: AgentContext) -> str | None:
        # Only stat: an rpm database can be hundreds of MB, and it is rewritten on every change.
        fp = files_fingerprint([ctx.path(p) for p in DB_FILES], content=False)
        if fp is None:
            return None
        if not root_is_host(ctx):
            raise SourceSkipped(f"rpm database found under {ctx.root}, but rpm can only be queried on the live root /")
        if shutil.which("rpm") is None:
            raise SourceSkipped("rpm database found but no rpm binary on PATH")
        return fp

    def collect(self, ctx: AgentContext, os_identity: OsIdentity | None) -> list[SoftwarePackage]:
        rpm = shutil.which("rpm")
        if rpm is None:
            raise SourceSkipped("no rpm binary on PATH")
        proc = subprocess.run(
            [rpm, "-qa", "--queryformat", RPM_QUERYFORMAT],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"rpm -qa exited {proc.returncode}: {proc.stderr[:300].decode(errors='replace')}")
        if len(proc.stdout) > MAX_OUTPUT:
            raise RuntimeError(f"rpm -qa printed more than {MAX_OUTPUT} bytes")
        return parse_rpm_qa(proc.stdout, os_identity, path="rpm -qa")
