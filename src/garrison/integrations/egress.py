"""Where connectors may send requests: public addresses, plus the networks the operator allows.

A tenant admin chooses the URLs and SMTP hosts of connections, so without this check the server
would send requests wherever they point: to itself, the cloud metadata service (169.254.169.254)
or the internal network. Every name is resolved here, every address it resolves to is checked, and
the connection is opened to a checked address (the name stays the TLS server name, so certificates
are verified as usual). The check runs when a connection is saved (a clear error) and again on
every connection made (names can resolve differently later).
"""

from __future__ import annotations

import ipaddress
import socket

from garrison.integrations.settings import current

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
HINT = "an operator can allow internal networks with GARRISON_INTEGRATIONS_ALLOWED_NETWORKS"


class Refused(Exception):
    """The destination is not one integrations may reach."""


def reason(ip: Address) -> str | None:
    """Why ``ip`` may not be reached, or None when it may."""
    if any(ip in net for net in current().allowed_networks if net.version == ip.version):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 addresses carried in IPv6 ones reach the IPv4 address
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            why = reason(embedded)
            if why or ip.ipv4_mapped:
                return why
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (such as the cloud metadata service)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


def resolve(host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
    """The addresses of ``host`` connectors may connect to, in resolver order.

    Raises Refused when any address is forbidden (all or nothing: a name that mixes public and
    internal addresses is refused), OSError when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[tuple[socket.AddressFamily, str]] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        why = reason(ip)
        if why:
            shown = f"{ip} is" if host.strip("[]") == str(ip) else f"{host} resolves to {ip},"
            raise Refused(f"{shown} {why}, which integrations may not reach ({HINT})")
        if (family, str(sockaddr[0])) not in out:
            out.append((family, str(sockaddr[0])))
    return out


def check_destination(host: str, port: int, what: str) -> None:
    """For saving a connection: ValueError when ``host`` resolves to a forbidden address."""
    try:
        resolve(host, port)
    except Refused as exc:
        raise ValueError(f"{what}: {exc}") from None
    except (OSError, UnicodeError):
        pass  # does not resolve from here now; every connection made checks again


def connect(host: str, port: int, timeout: float | None,
            source_address: tuple[str, int] | None = None) -> socket.socket:
    """A TCP connection to a checked address of ``host`` (the first that answers)."""
    error: OSError | None = None
    for _family, ip in resolve(host, port):
        try:
            return socket.create_connection((ip, port), timeout, source_address)
        except OSError as exc:
            error = exc
    raise error or OSError(f"{host} has no address")
