"""DNS answers from the wire (a packet socket with an in-kernel filter): DnsQueryResponse and RemoteUrl."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import textwrap
import threading

NAME = "garrison-sensor-test.example"
SERVER = ("127.0.0.153", 53)  # a loopback address of its own: no clash with a resolver on 127.0.0.1/53
ANSWER = "127.0.0.154"


def _dns_server(ready: threading.Event, stop: threading.Event) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(SERVER)
    s.settimeout(0.2)
    ready.set()
    while not stop.is_set():
        try:
            query, peer = s.recvfrom(512)
        except TimeoutError:
            continue
        qid = query[:2]
        question = query[12:]
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ANSWER)
        s.sendto(qid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer, peer)
    s.close()


CLIENT = textwrap.dedent(f"""
    import socket, struct
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in "{NAME}".split(".")) + b"\\0" + struct.pack("!HH", 1, 1)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
    u.sendto(q, {SERVER!r}); reply = u.recv(512)
    addr = socket.inet_ntoa(reply[-4:])
    srv = socket.socket(); srv.bind((addr, 0)); srv.listen(1)
    c = socket.create_connection((addr, srv.getsockname()[1])); c.close()
""")


def test_dns_answers_are_recorded_and_name_the_connections_that_follow(start_sensor) -> None:
    ready, stop = threading.Event(), threading.Event()
    server = threading.Thread(target=_dns_server, args=(ready, stop), daemon=True)
    server.start()
    ready.wait(5)
    try:
        run = start_sensor(enabled=["audit", "dns"])
        subprocess.run([sys.executable, "-c", CLIENT], check=True, timeout=30)
        dns = run.recorder.wait_for(lambda r: r["ActionType"] == "DnsQueryResponse"
                                    and r.get("RemoteUrl") == NAME, "DeviceEvents")
        conn = run.recorder.wait_for(lambda r: r["ActionType"] == "ConnectionSuccess"
                                     and r.get("RemoteIP") == ANSWER, "DeviceNetworkEvents")
    finally:
        stop.set()
        server.join(5)
    assert len(dns) == 1, dns  # the response only, once (not the query, not the outgoing copy on lo)
    extra = dns[0]["AdditionalFields"]
    assert extra["DnsQueryString"] == NAME and extra["DnsQueryType"] == "A"
    assert extra["DnsQueryResult"] == [{"Type": "A", "Value": ANSWER}]
    assert dns[0]["RemoteIP"] == SERVER[0] and dns[0]["RemotePort"] == 53
    assert len(conn) == 1 and conn[0]["RemoteUrl"] == NAME
