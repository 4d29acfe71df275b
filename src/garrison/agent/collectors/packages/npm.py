"""Globally installed npm packages (``node_modules/<name>/package.json``, scoped ``@scope/<name>`` too)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.packages.base import (
    PackageSource,
    device_path,
    files_fingerprint,
    register_package_source,
)
from garrison.inventory.common import make_package
from garrison.inventory.errors import InventoryParseError
from garrison.inventory.purl import build_purl
from garrison.protocol import OsIdentity, SoftwarePackage

GLOBAL_DIRS = ["/usr/lib/node_modules", "/usr/local/lib/node_modules"]
MAX_PACKAGE_JSON = 1024 * 1024


def manifests(ctx: AgentContext) -> list[Path]:
    out: list[Path] = []
    for d in GLOBAL_DIRS:
        root = ctx.path(d)
        try:
            names = sorted(os.listdir(root))
        except OSError:
            continue
        for name in names:
            if name.startswith("."):
                continue
            if name.startswith("@"):
                try:
                    scoped = sorted(os.listdir(root / name))
                except OSError:
                    continue
                out += [root / name / s / "package.json" for s in scoped if not s.startswith(".")]
            else:
                out.append(root / name / "package.json")
    return [p for p in out if os.path.isfile(p)]  # os.path: False on EACCES, never raises


def parse_package_json(data: bytes, where: str) -> tuple[str, str]:
    if len(data) > MAX_PACKAGE_JSON:
        raise InventoryParseError(f"larger than {MAX_PACKAGE_JSON} bytes", fmt=where)
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InventoryParseError(f"invalid JSON: {exc}", fmt=where) from None
    if not isinstance(doc, dict):
        raise InventoryParseError("expected a JSON object", fmt=where)
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not name:
        raise InventoryParseError("missing or not a string", fmt=where, field="name")
    if not isinstance(version, str) or not version:
        raise InventoryParseError("missing or not a string", fmt=where, field="version")
    return name, version


@register_package_source
class NpmSource(PackageSource):
    name = "npm"

    def fingerprint(self, ctx: AgentContext) -> str | None:
        return files_fingerprint(manifests(ctx), content=False)

    def collect(self, ctx: AgentContext, os_identity: OsIdentity | None) -> list[SoftwarePackage]:
        out: list[SoftwarePackage] = []
        skipped: list[str] = []
        for manifest in manifests(ctx):
            evidence = device_path(ctx, manifest.parent)
            try:
                name, version = parse_package_json(manifest.read_bytes(), device_path(ctx, manifest))
                scope, _, bare = name.rpartition("/")
                out.append(
                    make_package(
                        "npm-package-json", None, evidence,
                        manager="npm", name=name, version=version, ecosystem="npm",
                        purl=build_purl("npm", bare, version, namespace=scope), path=evidence,
                    )
                )
            except (OSError, InventoryParseError) as exc:
                skipped.append(str(exc))
        if skipped:
            self.notes.append(f"npm: skipped {len(skipped)} unreadable package(s): " + "; ".join(skipped[:3]))
        return out
