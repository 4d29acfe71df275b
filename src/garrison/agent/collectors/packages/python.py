"""Python distributions of every interpreter found: ``*.dist-info`` and ``*.egg-info`` metadata."""

from __future__ import annotations

import glob
import hashlib
import os
import site
import sys
from pathlib import Path

from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.packages.base import (
    PackageSource,
    device_path,
    register_package_source,
    root_is_host,
)
from garrison.inventory.common import make_package
from garrison.inventory.errors import InventoryParseError
from garrison.inventory.purl import build_purl
from garrison.inventory.pypi import normalize_pypi_name, parse_core_metadata
from garrison.protocol import OsIdentity, SoftwarePackage

# Interpreter library directories under the root (Debian's shared /usr/lib/python3 included).
PATTERNS = [
    f"{prefix}/python3*/{kind}"
    for prefix in ("usr/lib", "usr/lib64", "usr/local/lib", "usr/local/lib64")
    for kind in ("site-packages", "dist-packages")
]
MAX_METADATA_BYTES = 256 * 1024
MAX_NOTES = 20


def _host_dirs() -> list[str]:
    """Library directories of the interpreter running the agent (a venv or pyenv one is not under /usr)."""
    dirs = list(sys.path)
    try:
        dirs += site.getsitepackages()
        dirs.append(site.getusersitepackages())
    except AttributeError:  # site may be stripped in frozen agents
        pass
    return [d for d in dirs if os.path.basename(d.rstrip("/")) in ("site-packages", "dist-packages")]


def library_dirs(ctx: AgentContext) -> list[Path]:
    found: dict[str, Path] = {}
    candidates = [Path(p) for pat in PATTERNS for p in sorted(glob.glob(str(ctx.root / pat)))]
    if root_is_host(ctx):
        candidates += [Path(d) for d in _host_dirs()]
    for path in candidates:
        if os.path.isdir(path):  # Path.is_dir raises on EACCES in 3.11
            found.setdefault(os.path.realpath(path), path)
    return sorted(found.values())


def _metadata_entries(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n for n in names if n.endswith((".dist-info", ".egg-info")))


def _read_head(path: Path) -> str:
    with path.open("rb") as f:
        return f.read(MAX_METADATA_BYTES).decode("utf-8", errors="replace")


@register_package_source
class PythonSource(PackageSource):
    name = "python"

    def fingerprint(self, ctx: AgentContext) -> str | None:
        # Installing, removing or upgrading a distribution adds or renames its *-info entry.
        dirs = library_dirs(ctx)
        if not dirs:
            return None
        h = hashlib.blake2b(digest_size=16)
        for d in dirs:
            h.update(f"{d}\0".encode())
            h.update("\0".join(_metadata_entries(d)).encode())
        return h.hexdigest()

    def collect(self, ctx: AgentContext, os_identity: OsIdentity | None) -> list[SoftwarePackage]:
        out: list[SoftwarePackage] = []
        skipped: list[str] = []
        for d in library_dirs(ctx):
            for entry in _metadata_entries(d):
                info = d / entry
                meta = info / ("METADATA" if entry.endswith(".dist-info") else "PKG-INFO")
                if entry.endswith(".egg-info") and os.path.isfile(info):
                    meta = info  # an egg-info file is itself the PKG-INFO
                evidence = device_path(ctx, info)
                try:
                    name, version = parse_core_metadata(_read_head(meta), fmt=str(evidence))
                    norm = normalize_pypi_name(name)
                    out.append(
                        make_package(
                            "python-metadata",
                            None,
                            evidence,
                            manager="python",
                            name=norm,
                            version=version,
                            ecosystem="PyPI",
                            purl=build_purl("pypi", norm, version),
                            path=evidence,
                        )
                    )
                except (OSError, InventoryParseError) as exc:
                    skipped.append(f"{evidence}: {exc}")
        if skipped:
            self.notes.append(f"python: skipped {len(skipped)} unreadable distribution(s): " + "; ".join(skipped[:3]))
        return out
