"""Demo content: the starter knowledge base and a fleet of agentless devices made from real inventories.

``garrison demo`` calls :func:`load`; it works offline and is idempotent: a second run finds the
knowledge base already loaded (the kb module skips an unchanged starter set) and the demo devices
already there, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import distinct, func, select, true

from garrison.core import access
from garrison.protocol import OsIdentity
from garrison.store.db import Store
from garrison.store.models.core import Device
from garrison.store.models.tvm import DevicePackage, PackageVersionVuln
from garrison.tvm import inventory, matching
from garrison.tvm.findings import findings_select


@dataclass(frozen=True)
class DemoDevice:
    name: str
    inventory: str
    os_release: str | None = None
    os: OsIdentity | None = None  # when the source image came without an os-release


FLEET = (
    DemoDevice("demo-ubuntu-focal", "ubuntu-20.04-ga.dpkg-status", "ubuntu-20.04-ga.os-release"),
    DemoDevice("demo-ubuntu-bionic", "ubuntu-18.04.dpkg-status",
               os=OsIdentity(id="ubuntu", version_id="18.04", codename="bionic", name="Ubuntu",
                             pretty_name="Ubuntu 18.04 LTS")),
    DemoDevice("demo-debian-riscv64", "debian-sid-riscv64.dpkg-status", "debian-sid-riscv64.os-release"),
    DemoDevice("demo-alpine", "alpine-3.14.0.apk-installed", "alpine-3.14.0.os-release"),
    # SBOMs name their operating system themselves.
    DemoDevice("demo-centos7", "centos-7.trivy.cdx.json"),
    DemoDevice("demo-postgres-container", "postgres-stretch.cdx.xml"),
)


def data_dir() -> Path:
    return Path(str(resources.files("garrison.tvm.demo_data").joinpath("data")))


def load_knowledge_base(store: Store) -> dict[str, Any]:
    """The kb module's starter set (when this build has it), then matching for what it changed."""
    from garrison.tvm.kb import load_starter

    result = load_starter(store)
    stats = matching.rematch_changed(store, result.changed_packages)
    return {"records": result.records, "unchanged": result.unchanged, "vulnerabilities": result.vulnerabilities,
            "errors": result.error_count, "rematched": stats.package_versions}


def load_fleet(store: Store, tenant_id: int) -> dict[str, Any]:
    base = data_dir()
    with store.tenant(tenant_id) as s:
        existing = set(s.scalars(select(Device.computer_dns_name).where(Device.agentless == true())))
    created, kept, packages = [], [], 0
    for d in FLEET:
        if d.name in existing:
            kept.append(d.name)
            continue
        os_ident = inventory.read_os_release((base / d.os_release).read_bytes()) if d.os_release else d.os
        out = inventory.import_agentless(store, tenant_id, d.name, (base / d.inventory).read_bytes(),
                                         os_ident=os_ident, path=d.inventory, actor="demo", actor_type="cli")
        created.append(d.name)
        packages += out["packages"]
    return {"created": created, "existing": kept, "packages": packages}


def load(store: Store, tenant_name: str, quiet: bool = False) -> dict[str, Any]:
    """Load the starter knowledge base and the demo fleet into ``tenant_name``; returns counts."""
    say = (lambda _msg: None) if quiet else Console(stderr=True).print
    say("loading the starter knowledge base…")
    kb = load_knowledge_base(store)
    with store.system() as s:
        tenant_id = access.tenant_by_name(s, tenant_name).id
    say("importing the demo fleet…")
    fleet = load_fleet(store, tenant_id)
    # Package versions created before the knowledge base (an earlier run) are matched here too.
    with store.system() as s:
        matching.match_pending(s)
    history = build_history(store, tenant_id) if HISTORY_HOST in fleet["created"] else {}
    if history:
        say(f"demo history: {history['events']} timeline events")
    findings = _count_findings(store, tenant_id)
    say(f"demo fleet: {len(FLEET)} devices, {findings['findings']} findings on {findings['vulnerabilities']} "
        f"vulnerabilities")
    errors = feed_errors(store)
    for line in errors:  # at start, not only on the settings page
        say(f"[bold red]feed error[/bold red] {line}")
    return {"knowledgeBase": kb, "demoDevices": len(fleet["created"]) + len(fleet["existing"]),
            "demoDevicesCreated": len(fleet["created"]), "demoPackages": fleet["packages"], **findings,
            "feedErrors": errors, "history": history}


# The demo's history: the Ubuntu 20.04 host is scored as imported (its GA package database), then it
# takes the real security update of USN-5378-1 (gzip to the version the advisory names as fixed, read
# from the knowledge base) and is scored again - the update an administrator would have applied.
HISTORY_HOST = "demo-ubuntu-focal"
HISTORY_PACKAGE, HISTORY_CVE = "gzip", "CVE-2022-1271"


def build_history(store: Store, tenant_id: int) -> dict[str, Any]:
    """Score the fleet, apply the real gzip security update to the Ubuntu host, score again: the timeline
    gets the update's events (software updated, its exposure change). Empty when the knowledge base
    names no fix."""
    from garrison.tvm import prioritisation

    fixed = _fixed_version(store, tenant_id)
    if fixed is None:
        return {}
    first = prioritisation.derive_events(store, tenant_id)  # scores the fleet first
    base = data_dir()
    host = next(d for d in FLEET if d.name == HISTORY_HOST)
    old = (base / host.inventory).read_bytes()
    newer = _with_version(old, HISTORY_PACKAGE, fixed)
    inventory.import_agentless(store, tenant_id, HISTORY_HOST, newer, path=host.inventory, actor="demo",
                               actor_type="cli", os_ident=inventory.read_os_release(
                                   (base / str(host.os_release)).read_bytes()))
    second = prioritisation.derive_events(store, tenant_id)  # scores it again, then the events
    return {"events": first["events"] + second["events"], "update": f"{HISTORY_PACKAGE} {fixed}"}


def _fixed_version(store: Store, tenant_id: int) -> str | None:
    """The version that fixes HISTORY_CVE in HISTORY_PACKAGE on the history host (from the advisories)."""
    from garrison.store.models.tvm import PackageVersion

    with store.tenant(tenant_id) as s:
        return s.scalar(findings_select(PackageVersionVuln.fixed_version)
                        .join(Device, Device.id == DevicePackage.device_id)
                        .where(Device.computer_dns_name == HISTORY_HOST, PackageVersion.name == HISTORY_PACKAGE,
                               PackageVersionVuln.vulnerability_id == HISTORY_CVE,
                               PackageVersionVuln.fixed_version.is_not(None)).limit(1))


def _with_version(status: bytes, package: str, version: str) -> bytes:
    """A dpkg status database with ``package`` at ``version`` (what the package update writes)."""
    stanzas = status.decode().split("\n\n")
    for i, stanza in enumerate(stanzas):
        lines = stanza.split("\n")
        if f"Package: {package}" in lines:
            stanzas[i] = "\n".join(f"Version: {version}" if ln.startswith("Version: ") else ln for ln in lines)
    return "\n\n".join(stanzas).encode()


def feed_errors(store: Store) -> list[str]:
    """One line per feed whose last import failed: "name: first line of the error"."""
    from garrison.tvm.kb import feeds_status

    return [f"{f['name']}: {str(f['error']).splitlines()[0][:300]}" for f in feeds_status(store) if f.get("error")]


def _count_findings(store: Store, tenant_id: int) -> dict[str, int]:
    with store.tenant(tenant_id) as s:
        n, v = s.execute(findings_select(func.count(), func.count(distinct(PackageVersionVuln.vulnerability_id)))
                         .where(DevicePackage.tenant_id == tenant_id)).one()
    return {"findings": int(n), "vulnerabilities": int(v)}
