"""Listening sockets from /proc/net/{tcp,tcp6,udp,udp6} of the agent's network namespace."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from garrison.agent.assessment.env import Env, Outcome, ProbeError
from garrison.agent.assessment.probes.base import Probe, ProbeParams, register_probe

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


class ListeningParams(ProbeParams):
    ports: list[int] = Field(min_length=1, max_length=64)
    protocols: list[Literal["tcp", "udp"]] = Field(default=["tcp"], min_length=1)
    expect: Literal["closed", "local_only"] = "closed"


@dataclass(frozen=True)
class Socket:
    proto: str
    address: str
    port: int
    file: str
    line: int

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return ip.is_loopback


def _addr(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    # The kernel prints each 32-bit word in host (little-endian) order.
    fixed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(fixed))


def sockets(env: Env, proto: str) -> list[Socket]:
    def load() -> list[Socket]:
        out: list[Socket] = []
        seen_any = False
        for suffix in ("", "6"):
            path = f"/proc/net/{proto}{suffix}"
            text = env.read_text(path)
            if text is None:
                continue
            seen_any = True
            for n, line in enumerate(text.splitlines()[1:], 2):
                f = line.split()
                if len(f) < 4:
                    continue
                local, remote, state = f[1], f[2], f[3]
                wanted = TCP_LISTEN if proto == "tcp" else UDP_UNCONNECTED
                if state != wanted or (proto == "udp" and not remote.endswith(":0000")):
                    continue
                host, port = local.rsplit(":", 1)
                out.append(Socket(proto, _addr(host), int(port, 16), path, n))
        if not seen_any:
            raise ProbeError(f"cannot read /proc/net/{proto}")
        return out

    return env.cached(("sockets", proto), load)


@register_probe
class Listening(Probe[ListeningParams]):
    name = "listening"
    Params = ListeningParams

    def run(self, env: Env, params: ListeningParams) -> Outcome:
        ports = set(params.ports)
        for proto in params.protocols:
            for s in sockets(env, proto):
                if s.port not in ports or (params.expect == "local_only" and s.loopback):
                    continue
                return Outcome.bad(
                    f"{proto} port {s.port} is listening on {s.address}",
                    value=f"{proto} {s.address}:{s.port}",
                    file=s.file,
                    line=s.line,
                )
        where = "on a non-loopback address" if params.expect == "local_only" else ""
        shown = ", ".join(map(str, sorted(ports)))
        return Outcome.ok(
            f"nothing listens on {'/'.join(params.protocols)} port(s) {shown} {where}".strip(), value="closed"
        )
