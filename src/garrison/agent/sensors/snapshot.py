"""DeviceInfo and DeviceNetworkInfo: periodic snapshots (at start, then every ``snapshot_interval`` s).

Defender reports DeviceInfo hourly and on change; so does this sensor (a changed snapshot is
sent at the next 60-second look, an unchanged one once an hour). The facts come from the device
collector's readers; the adapters from ``ip -j addr``/``ip -j route`` and /etc/resolv.conf.
No root needed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from garrison import __version__
from garrison.agent.collectors.base import AgentContext
from garrison.agent.collectors.device import device_report
from garrison.agent.sensors.base import Row, SensorContext, register_sensor
from garrison.agent.sensors.loop import LoopSensor
from garrison.agent.sensors.procinfo import iso

CHECK_EVERY = 60.0
FULL_EVERY = 3600.0


def _ip_json(*args: str) -> list[dict[str, Any]]:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    try:
        out = subprocess.run([ip, "-j", *args], capture_output=True, text=True, timeout=10, check=True).stdout
        data = json.loads(out or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    return data if isinstance(data, list) else []


def dns_servers(path: str = "/etc/resolv.conf") -> list[str]:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [p[1] for p in (line.split() for line in lines) if len(p) >= 2 and p[0] == "nameserver"][:16]


def network_rows(now: float) -> list[Row]:
    gateways: dict[str, list[str]] = {}
    for route in _ip_json("route"):
        if route.get("dst") == "default" and route.get("gateway"):
            gateways.setdefault(str(route.get("dev")), []).append(str(route["gateway"]))
    dns = dns_servers()
    rows = []
    for link in _ip_json("addr")[:256]:
        name = str(link.get("ifname", ""))[:256]
        addrs = [{"IPAddress": a.get("local"), "SubnetPrefix": a.get("prefixlen"),
                  "AddressType": "Static" if not a.get("dynamic") else "Dhcp"}
                 for a in link.get("addr_info", []) if a.get("local")]
        status = {"UP": "Up", "DOWN": "Down"}.get(str(link.get("operstate")), "Up" if "UP" in link.get(
            "flags", []) else "Down")
        rows.append({"Timestamp": iso(now), "NetworkAdapterName": name, "MacAddress": str(link.get("address", "")),
                     "NetworkAdapterType": {"loopback": "SoftwareLoopback", "ether": "Ethernet"}.get(
                         str(link.get("link_type")), str(link.get("link_type", ""))),
                     "NetworkAdapterStatus": status, "IPAddresses": json.dumps(addrs),
                     "DefaultGateways": json.dumps(gateways.get(name, [])),
                     "DnsAddresses": json.dumps(dns) if link.get("link_type") != "loopback" else "[]",
                     "IPv4Dhcp": "", "IPv6Dhcp": ""})
    return rows


def device_row(ctx: SensorContext, now: float) -> Row:
    report = device_report(AgentContext(state_dir=Path(ctx.state_dir or "/nonexistent"), agent_version=__version__))
    users = [{"UserName": u.user, "Terminal": u.terminal} for u in report.logged_on_users][:256]
    return {"Timestamp": iso(now), "ClientVersion": __version__, "OSPlatform": "Linux",
            "OSArchitecture": report.architecture, "OSVersion": report.os_version,
            "OSDistribution": report.os_id, "OSVersionInfo": report.os_build, "LoggedOnUsers": json.dumps(users),
            "OnboardingStatus": "Onboarded", "DeviceCategory": "Endpoint",
            "AdditionalFields": {"Kernel": report.kernel, "Hostname": report.fqdn or report.hostname,
                                 "BootTime": report.boot_time.isoformat() if report.boot_time else None}}


@register_sensor
class SnapshotSensor(LoopSensor):
    name = "snapshot"
    needs_root = False
    tables = ("DeviceInfo", "DeviceNetworkInfo")

    join_timeout = 15.0

    def __init__(self) -> None:
        super().__init__()
        self._last: str = ""
        self._last_full = 0.0

    def run(self) -> None:
        every = float(self.ctx.settings.get("snapshot_check", CHECK_EVERY)) if self.ctx else CHECK_EVERY
        while True:
            try:
                self.snapshot()
            except Exception as exc:  # noqa: BLE001 - reported in health; retried next time
                self.error = f"snapshot failed: {type(exc).__name__}: {exc}"
            if self.wait(every):
                return

    def snapshot(self, force: bool = False) -> bool:
        """Emit the rows when they changed, or in full once an hour; True when emitted."""
        ctx = self.ctx
        assert ctx is not None
        now = time.time()
        info, nets = device_row(ctx, now), network_rows(now)
        digest = json.dumps([{k: v for k, v in r.items() if k != "Timestamp"} for r in [info, *nets]],
                            sort_keys=True, default=str)
        if not force and digest == self._last and now - self._last_full < FULL_EVERY:
            return False
        self._last, self._last_full = digest, now
        ctx.sink.emit("DeviceInfo", info)
        for row in nets:
            ctx.sink.emit("DeviceNetworkInfo", row)
        self.error = None
        return True
