"""This process's integration settings: the private networks connectors may reach, and the key that
encrypts connection secrets at rest.

Set once when a process starts (the server's app, the job worker) from the server settings; see
``garrison.server.settings`` and ``docs/integrations.md``. The defaults refuse every non-public
destination and keep no key.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
KEY_BYTES = 32  # AES-256-GCM


@dataclass(frozen=True)
class IntegrationSettings:
    allowed_networks: tuple[Network, ...] = ()  # non-public networks connectors may reach anyway
    keys: tuple[bytes, ...] = ()  # operator-given keys; the first encrypts, all decrypt
    key_file: Path | None = None  # used when no key is given; created (0600) on first encryption

    @classmethod
    def build(cls, allowed_networks: Iterable[str] = (), keys: str | None = None,
              key_file: Path | None = None) -> IntegrationSettings:
        """Parse the operator's values; raises ValueError naming the bad one."""
        nets = []
        for raw in allowed_networks:
            try:
                nets.append(ipaddress.ip_network(raw.strip(), strict=False))
            except ValueError:
                raise ValueError(f"integrations allowed network {raw!r} is not a network; use CIDR such as "
                                 "10.20.0.0/16") from None
        parsed = tuple(decode_key(k) for k in (keys or "").split(",") if k.strip())
        return cls(tuple(nets), parsed, key_file)


def decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a secrets key must be {KEY_BYTES} random bytes in URL-safe base64 (44 characters), "
                         "e.g. from: python3 -c 'import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())'")
    return key


_current = IntegrationSettings()


def configure(settings: IntegrationSettings) -> None:
    global _current
    _current = settings


def current() -> IntegrationSettings:
    return _current
