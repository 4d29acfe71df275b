"""DNS answers seen on the wire: DeviceEvents ``DnsQueryResponse``, and ``RemoteUrl`` for connections.

A packet socket (``AF_PACKET``, all interfaces of the agent's network namespace) with a classic BPF
program attached in the kernel: only UDP packets from or to port 53 ever reach the agent, and of
those only the ones arriving (not our own copies of outgoing ones). Responses are parsed (query name,
type, A/AAAA/CNAME answers); the addresses are remembered (bounded) so a connection to one of them
gets the name as ``RemoteUrl``. Which process asked is not known from a packet: the row has none.
DNS over TCP, DoT and DoH are not seen.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from garrison.agent.sensors.base import SensorContext, register_sensor
from garrison.agent.sensors.loop import LoopSensor
from garrison.agent.sensors.procinfo import iso

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
MAX_NAMES = 8192

# struct sock_filter programs: (code, jt, jf, k). The packet starts at the IP header (SOCK_DGRAM).
UDP_PORT_53 = [
    (0x30, 0, 0, 0),        # 0  ldb [0]
    (0x74, 0, 0, 4),        # 1  rsh #4               (IP version)
    (0x15, 0, 7, 4),        # 2  jeq #4 ? 3 : 10
    (0x30, 0, 0, 9),        # 3  ldb [9]              (IPv4 protocol)
    (0x15, 0, 13, 17),      # 4  jeq UDP ? 5 : reject
    (0xB1, 0, 0, 0),        # 5  ldx 4*([0]&0xf)      (IPv4 header length)
    (0x48, 0, 0, 0),        # 6  ldh [x+0]            (source port)
    (0x15, 9, 0, 53),       # 7  jeq 53 ? accept : 8
    (0x48, 0, 0, 2),        # 8  ldh [x+2]            (destination port)
    (0x15, 7, 8, 53),       # 9  jeq 53 ? accept : reject
    (0x15, 0, 7, 6),        # 10 jeq #6 ? 11 : reject
    (0x30, 0, 0, 6),        # 11 ldb [6]              (IPv6 next header)
    (0x15, 0, 5, 17),       # 12 jeq UDP ? 13 : reject
    (0x28, 0, 0, 40),       # 13 ldh [40]
    (0x15, 2, 0, 53),       # 14 jeq 53 ? accept : 15
    (0x28, 0, 0, 42),       # 15 ldh [42]
    (0x15, 0, 1, 53),       # 16 jeq 53 ? accept : reject
    (0x06, 0, 0, 0x40000),  # 17 accept
    (0x06, 0, 0, 0),        # 18 reject
]

QTYPES = {1: "A", 28: "AAAA", 5: "CNAME", 12: "PTR", 15: "MX", 16: "TXT", 33: "SRV", 65: "HTTPS", 255: "ANY"}


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    import ctypes

    raw = b"".join(struct.pack("=HBBI", *ins) for ins in program)
    buf = ctypes.create_string_buffer(raw)
    fprog = struct.pack("@HP", len(program), ctypes.addressof(buf))  # struct sock_fprog, native padding
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies the program
    # What arrived between socket() and the filter is unfiltered: drop it.
    sock.setblocking(False)
    try:
        while True:
            sock.recv(65535)
    except BlockingIOError:
        pass


def _name(msg: bytes, off: int, depth: int = 0) -> tuple[str, int]:
    """A (possibly compressed) domain name at ``off``; returns it and the offset after it."""
    labels: list[str] = []
    end = -1
    while True:
        if off >= len(msg) or depth > 16:
            raise ValueError("truncated name")
        n = msg[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg):
                raise ValueError("truncated pointer")
            if end < 0:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            depth += 1
            continue
        labels.append(msg[off + 1: off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels)[:255], (end if end >= 0 else off)


def parse_response(msg: bytes) -> dict[str, Any] | None:
    """The question and the A/AAAA/CNAME answers of a DNS response (None if not one)."""
    if len(msg) < 12:
        return None
    _id, flags, qd, an = struct.unpack_from("!HHHH", msg)
    if not flags & 0x8000 or qd != 1:
        return None
    name, off = _name(msg, 12)
    qtype = struct.unpack_from("!H", msg, off)[0]
    off += 4
    answers: list[dict[str, str]] = []
    for _ in range(min(an, 64)):
        _n, off = _name(msg, off)
        rtype, _cls, _ttl, length = struct.unpack_from("!HHIH", msg, off)
        off += 10
        data = msg[off: off + length]
        off += length
        if rtype == 1 and length == 4:
            answers.append({"Type": "A", "Value": socket.inet_ntop(socket.AF_INET, data)})
        elif rtype == 28 and length == 16:
            answers.append({"Type": "AAAA", "Value": socket.inet_ntop(socket.AF_INET6, data)})
        elif rtype == 5:
            answers.append({"Type": "CNAME", "Value": _name(msg, off - length)[0]})
    return {"name": name, "qtype": QTYPES.get(qtype, str(qtype)), "rcode": flags & 0xF, "answers": answers}


def _udp(packet: bytes) -> tuple[str, int, str, int, bytes] | None:
    """(source ip, source port, destination ip, destination port, payload) of an IPv4/IPv6 UDP packet."""
    version = packet[0] >> 4 if packet else 0
    if version == 4 and len(packet) >= 28:
        ihl = (packet[0] & 0xF) * 4
        src, dst = socket.inet_ntop(socket.AF_INET, packet[12:16]), socket.inet_ntop(socket.AF_INET, packet[16:20])
        sport, dport = struct.unpack_from("!HH", packet, ihl)
        return src, sport, dst, dport, packet[ihl + 8:]
    if version == 6 and len(packet) >= 48:
        src, dst = socket.inet_ntop(socket.AF_INET6, packet[8:24]), socket.inet_ntop(socket.AF_INET6, packet[24:40])
        sport, dport = struct.unpack_from("!HH", packet, 40)
        return src, sport, dst, dport, packet[48:]
    return None


@register_sensor
class DnsSensor(LoopSensor):
    name = "dns"
    needs_root = True  # CAP_NET_RAW
    tables = ("DeviceEvents",)

    def __init__(self) -> None:
        super().__init__()
        self.sock: socket.socket | None = None
        self.seen = 0

    def open(self, ctx: SensorContext) -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            attach_filter(sock, UDP_PORT_53)
            sock.settimeout(0.5)
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def run(self) -> None:
        assert self.sock is not None
        while not self.stopping:
            try:
                packet, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                if self.stopping:
                    return
                continue
            if addr[2] == PACKET_OUTGOING:  # every packet we care about also arrives somewhere
                continue
            try:
                self.handle(packet)
            except (ValueError, struct.error, IndexError):
                continue  # not DNS, or malformed: untrusted input, skipped

    def handle(self, packet: bytes) -> None:
        ctx = self.ctx
        assert ctx is not None
        udp = _udp(packet)
        if udp is None or udp[1] != 53:
            return
        src, sport, dst, dport, payload = udp
        answer = parse_response(payload)
        if answer is None:
            return
        self.seen += 1
        for a in answer["answers"]:
            if a["Type"] in ("A", "AAAA"):
                ctx.names[a["Value"]] = answer["name"]
                ctx.names.move_to_end(a["Value"])
        while len(ctx.names) > MAX_NAMES:
            ctx.names.popitem(last=False)
        ctx.sink.emit("DeviceEvents", {
            "Timestamp": iso(time.time()), "ActionType": "DnsQueryResponse", "RemoteIP": src, "RemotePort": sport,
            "LocalIP": dst, "LocalPort": dport, "RemoteUrl": answer["name"],
            "AdditionalFields": {"DnsQueryString": answer["name"], "DnsQueryType": answer["qtype"],
                                 "DnsResponseCode": answer["rcode"], "DnsQueryResult": answer["answers"][:32]},
        })
