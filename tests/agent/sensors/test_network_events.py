"""DeviceNetworkEvents from the real audit interface: TCP/UDP, IPv4/IPv6, in a private network namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.agent.sensors.conftest import Row

# Runs in its own network namespace (unshare -n): loopback plus a "public" and a "private" address,
# so nothing leaves this machine. Every step prints nothing; the sensor must see all of them.
CLIENT = textwrap.dedent("""
    import errno, socket, sys
    tag = int(sys.argv[1])
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
    port = srv.getsockname()[1]
    c = socket.create_connection(("127.0.0.1", port)); a, _ = srv.accept()
    c.close(); a.close()
    # refused: nothing listens on port+1 … or on a port we know is closed
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", 1))
    except OSError:
        pass
    s.close()
    # IPv6 loopback
    s6 = socket.socket(socket.AF_INET6); s6.bind(("::1", 8443)); s6.listen(1)
    c6 = socket.create_connection(("::1", s6.getsockname()[1])); c6.close(); s6.close()
    # UDP: a bound socket listens; a connected one talks to a "public" and a "private" address
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 5353)); u.close()
    for dst in ("1.1.1.1", "10.20.30.40"):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect((dst, 5300 + tag % 100)); u.close()
    # non-blocking connect: only an attempt is known
    n = socket.socket(); n.setblocking(False)
    n.connect_ex(("10.20.30.40", 9))
    n.close()
""")


def _netns_run(tag: int) -> None:
    setup = ("ip link set lo up && ip addr add 1.1.1.1/32 dev lo && ip addr add 10.20.30.40/32 dev lo && "
             f"exec {sys.executable} -c \"$CLIENT\" {tag}")
    subprocess.run(["unshare", "-n", "sh", "-c", setup], check=True, timeout=30, env={"CLIENT": CLIENT, "PATH":
                   "/usr/sbin:/usr/bin:/sbin:/bin"})


def _find(rows: list[Row], **want: object) -> list[Row]:
    return [r for r in rows if all(r.get(k) == v for k, v in want.items())]


def test_connections_listens_and_accepts_are_recorded_with_the_initiating_process(start_sensor) -> None:
    run = start_sensor()
    tag = 4242
    _netns_run(tag)
    mine = lambda r: "-c" in r.get("InitiatingProcessCommandLine", "") and str(tag) in r.get(
        "InitiatingProcessCommandLine", "")
    rows = run.recorder.wait_for(mine, "DeviceNetworkEvents", count=10)
    pyname = rows[0]["InitiatingProcessFileName"] if rows else ""
    assert pyname.startswith("python"), rows

    listen = _find(rows, ActionType="ListeningConnectionCreated", Protocol="Tcp", LocalIP="127.0.0.1")
    assert len(listen) == 1 and listen[0]["LocalPort"] > 0 and listen[0]["LocalIPType"] == "Loopback"
    port = listen[0]["LocalPort"]
    ok = _find(rows, ActionType="ConnectionSuccess", RemoteIP="127.0.0.1", RemotePort=port, Protocol="Tcp")
    assert len(ok) == 1 and ok[0]["RemoteIPType"] == "Loopback"
    accepted = _find(rows, ActionType="InboundConnectionAccepted", LocalPort=port, LocalIP="127.0.0.1")
    assert len(accepted) == 1 and accepted[0]["RemoteIP"] == "127.0.0.1" and accepted[0]["RemotePort"] > 0
    failed = _find(rows, ActionType="ConnectionFailed", RemoteIP="127.0.0.1", RemotePort=1)
    assert len(failed) == 1 and failed[0]["AdditionalFields"] == {"Error": "ECONNREFUSED"}

    assert _find(rows, ActionType="ListeningConnectionCreated", Protocol="Tcp", LocalIP="::1", LocalPort=8443)
    v6 = _find(rows, ActionType="ConnectionSuccess", RemoteIP="::1", RemotePort=8443)
    assert len(v6) == 1 and v6[0]["Protocol"] == "Tcp" and v6[0]["RemoteIPType"] == "Loopback"

    assert _find(rows, ActionType="ListeningConnectionCreated", Protocol="Udp", LocalIP="127.0.0.1", LocalPort=5353)
    public = _find(rows, ActionType="ConnectionSuccess", RemoteIP="1.1.1.1", Protocol="Udp")
    assert len(public) == 1 and public[0]["RemoteIPType"] == "Public" and public[0]["RemotePort"] == 5342
    private = _find(rows, ActionType="ConnectionSuccess", RemoteIP="10.20.30.40", Protocol="Udp")
    assert len(private) == 1 and private[0]["RemoteIPType"] == "Private"
    attempt = _find(rows, ActionType="ConnectionAttempt", RemoteIP="10.20.30.40", RemotePort=9)
    assert len(attempt) == 1 and attempt[0]["Protocol"] == "Tcp"

    for r in rows:
        assert r["InitiatingProcessId"] > 0 and r["InitiatingProcessSHA256"]
        assert r["InitiatingProcessAccountName"] == "root"
        assert r["InitiatingProcessParentId"] == os.getpid()  # unshare and sh exec: pytest started it


REPEAT = textwrap.dedent("""
    import socket
    srv = socket.socket(); srv.bind(("127.0.0.1", 7070)); srv.listen(16)
    for _ in range(5):
        c = socket.create_connection(("127.0.0.1", 7070)); a, _ = srv.accept(); c.close(); a.close()
""")


def _repeat(window: float, start_sensor) -> list[Row]:
    run = start_sensor({"network_coalesce_seconds": window})
    subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {sys.executable} -c \"$CODE\""],
                   check=True, timeout=30, env={"CODE": REPEAT, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    rows = run.recorder.wait_for(lambda r: r.get("RemotePort") == 7070, "DeviceNetworkEvents",
                                 count=5 if not window else 99, timeout=3 if window else 10)
    accepts = run.recorder.rows("DeviceNetworkEvents")
    run.manager.stop()
    return rows + [r for r in accepts if r["ActionType"] == "InboundConnectionAccepted" and r.get("LocalPort") == 7070]


def test_repeated_identical_connections_are_coalesced_unless_configured_off(start_sensor) -> None:
    coalesced = _repeat(1.0, start_sensor)
    assert [r["ActionType"] for r in coalesced].count("ConnectionSuccess") == 1
    assert [r["ActionType"] for r in coalesced].count("InboundConnectionAccepted") == 1
    every = _repeat(0, start_sensor)
    assert [r["ActionType"] for r in every].count("ConnectionSuccess") == 5
    assert [r["ActionType"] for r in every].count("InboundConnectionAccepted") == 5
