"""Demo content: the starter knowledge base and a fleet of agentless devices made from real inventories.

``garrison demo`` calls :func:`load`; it works offline and is idempotent: a second run finds the
knowledge base already loaded (the kb module skips an unchanged starter set) and the demo devices
already there, and changes nothing. A fresh demo replays a history from the bundled data's own dates
(:func:`build_history`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import distinct, func, select, true

from garrison.core import access
from garrison.protocol import OsIdentity
from garrison.store.base import utcnow
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


def load_knowledge_base(store: Store, *, after: dt.date | None = None, until: dt.date | None = None,
                        now: dt.datetime | None = None) -> dict[str, Any]:
    """The kb module's starter set (when this build has it; ``after``/``until``/``now``: one dated step of
    its history, see :func:`build_history`), then matching for what it changed."""
    from garrison.tvm.kb import load_starter

    result = load_starter(store, after=after, until=until, now=now)
    stats = matching.rematch_changed(store, result.changed_packages)
    return {"records": result.records, "unchanged": result.unchanged, "vulnerabilities": result.vulnerabilities,
            "errors": result.error_count, "rematched": stats.package_versions}


def _import(store: Store, tenant_id: int, d: DemoDevice, data: bytes | None = None,
            now: dt.datetime | None = None) -> dict[str, Any]:
    """Import ``d``'s inventory (or ``data``, a newer one of the same host) as taken at ``now``."""
    base = data_dir()
    os_ident = inventory.read_os_release((base / d.os_release).read_bytes()) if d.os_release else d.os
    return inventory.import_agentless(store, tenant_id, d.name, data or (base / d.inventory).read_bytes(),
                                      os_ident=os_ident, path=d.inventory, actor="demo", actor_type="cli", now=now)


def load_fleet(store: Store, tenant_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
    with store.tenant(tenant_id) as s:
        existing = set(s.scalars(select(Device.computer_dns_name).where(Device.agentless == true())))
    created, kept, packages = [], [], 0
    for d in FLEET:
        if d.name in existing:
            kept.append(d.name)
            continue
        out = _import(store, tenant_id, d, now=now)
        created.append(d.name)
        packages += out["packages"]
    return {"created": created, "existing": kept, "packages": packages}


def load(store: Store, tenant_name: str, quiet: bool = False) -> dict[str, Any]:
    """Load the starter knowledge base and the demo fleet into ``tenant_name``; returns counts."""
    say = (lambda _msg: None) if quiet else Console(stderr=True).print
    with store.system() as s:
        tenant_id = access.tenant_by_name(s, tenant_name).id
    days = history_days(store, tenant_id)
    history: dict[str, Any] = {}
    if days:
        say(f"replaying the demo's history from {days[0].date()} (the bundled feeds' own dates)…")
        kb, fleet, history = build_history(store, tenant_id, days)
        say(f"demo history: {len(history['trend'])} exposure-score points, {history['events']} timeline events")
    else:
        say("loading the starter knowledge base…")
        kb = load_knowledge_base(store)
        say("importing the demo fleet…")
        fleet = load_fleet(store, tenant_id)
    # Package versions created before the knowledge base (an earlier run) are matched here too.
    with store.system() as s:
        matching.match_pending(s)
    findings = _count_findings(store, tenant_id)
    say(f"demo fleet: {len(FLEET)} devices, {findings['findings']} findings on {findings['vulnerabilities']} "
        f"vulnerabilities")
    errors = feed_errors(store)
    for line in errors:  # at start, not only on the settings page
        say(f"[bold red]feed error[/bold red] {line}")
    return {"knowledgeBase": kb, "demoDevices": len(fleet["created"]) + len(fleet["existing"]),
            "demoDevicesCreated": len(fleet["created"]), "demoPackages": fleet["packages"], **findings,
            "feedErrors": errors, "history": history}


# The demo's history is replayed from the dates the bundled data carries, never invented. The starter
# knowledge base holds each record in its last revision, so a record counts as known from the day it was
# last changed (kb.starter.dated). The steps are the days on which the bundled Ubuntu 20.04 notices (the
# demo's main feed) were last modified — two real snapshots of Canonical's USN repository — then today:
#   1. first day: the records known then are loaded, the fleet reports its (real) inventories, is scored
#      (a baseline: nothing the feeds say that day is news);
#   2. each later day: the records changed since arrive as a feed update (NewVulnerability,
#      ExploitVerified… events on the Event timeline), the fleet reports again, is scored;
#   3. today: the remaining records, the Ubuntu host's real gzip security update (USN-5378-1: the fixed
#      version read from the knowledge base), scored again (a SoftwareUpdated event).
# One exposure-score point per day: three points a user can follow.
HISTORY_FEED = "osv-ubuntu-focal.json.gz"
HISTORY_HOST = "demo-ubuntu-focal"
HISTORY_PACKAGE, HISTORY_CVE = "gzip", "CVE-2022-1271"


def history_days(store: Store, tenant_id: int) -> list[dt.datetime]:
    """The days of the history replay (the latest modification time of the bundled Ubuntu notices per day,
    oldest first), or none when it cannot be replayed: a knowledge base already loaded, or a demo fleet
    already there."""
    from garrison.store.models.kb import FeedSource
    from garrison.tvm.kb.starter import FEED, starter_dir

    with store.system() as s:
        if s.get(FeedSource, FEED) is not None or s.scalar(select(func.count()).select_from(FeedSource)):
            return []
    with store.tenant(tenant_id) as s:
        if s.scalar(select(Device.id).where(Device.agentless == true(),
                                            Device.computer_dns_name.in_([d.name for d in FLEET])).limit(1)):
            return []
    notices = json.loads(gzip.decompress((starter_dir() / HISTORY_FEED).read_bytes()))
    latest: dict[dt.date, dt.datetime] = {}
    for n in notices:
        at = dt.datetime.fromisoformat(str(n["modified"]))
        latest[at.date()] = max(latest.get(at.date(), at), at)
    today = utcnow()
    return [at for _day, at in sorted(latest.items()) if at < today - dt.timedelta(days=1)]


def build_history(store: Store, tenant_id: int, days: list[dt.datetime]) -> tuple[dict[str, Any], dict[str, Any],
                                                                                    dict[str, Any]]:
    """Replay the demo's history (see above); returns the knowledge-base counts, the fleet, the history."""
    from garrison.tvm import prioritisation
    from garrison.tvm.prioritisation import timeline

    events, trend, updates = 0, [], []
    fleet: dict[str, Any] = {}
    after: dt.date | None = None
    for i, at in enumerate(days):
        step = load_knowledge_base(store, after=after, until=at.date(), now=at)
        if i == 0:
            fleet = load_fleet(store, tenant_id, now=at)
            with store.tenant(tenant_id) as s:  # the first day is the baseline: its feeds are no news
                timeline.start_baseline(s, tenant_id, at)
        else:
            updates.append({"at": at.isoformat(), "records": step["records"]})
            for d in FLEET:  # the fleet reports again (the same inventories)
                _import(store, tenant_id, d, now=at)
        events += prioritisation.derive_events(store, tenant_id, at)["events"]
        trend.append(at.date().isoformat())
        after = at.date()
    now = utcnow()
    kb = load_knowledge_base(store, now=now)  # the whole set, as a sync today: the rest is new
    updates.append({"at": now.isoformat(), "records": kb["records"] - kb["unchanged"]})
    host = next(d for d in FLEET if d.name == HISTORY_HOST)
    fixed = _fixed_version(store, tenant_id)
    for d in FLEET:
        newer = None
        if d is host and fixed is not None:
            newer = _with_version((data_dir() / d.inventory).read_bytes(), HISTORY_PACKAGE, fixed)
        _import(store, tenant_id, d, newer, now=now)
    events += prioritisation.derive_events(store, tenant_id, now)["events"]
    trend.append(now.date().isoformat())
    history = {"events": events, "trend": trend, "feedUpdates": updates,
               "update": f"{HISTORY_PACKAGE} {fixed}" if fixed else None}
    return kb, fleet, history


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
