"""ClamAV through clamd, when the machine runs it (found at run time; never required).

The protocol is clamd's own (``man clamd``): ``zPING`` → ``PONG``; ``zINSTREAM`` then chunks of
``<length:uint32 big-endian><bytes>`` ended by a zero length → ``stream: OK`` or
``stream: <Signature> FOUND``. Streaming the bytes (rather than ``SCAN <path>``) means clamd, which
runs as its own user, needs no access to the file.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import IO

SOCKETS = ("/run/clamav/clamd.ctl", "/var/run/clamav/clamd.ctl", "/run/clamd.scan/clamd.sock")
CHUNK = 1 << 16


class Clamd:
    def __init__(self, socket_path: str, timeout: float = 30.0, max_bytes: int = 25 << 20) -> None:
        # clamd's StreamMaxLength defaults to 25 MB: sending more only gets the stream refused.
        self.socket_path, self.timeout, self.max_bytes = socket_path, timeout, max_bytes

    @classmethod
    def detect(cls, candidates: tuple[str, ...] = SOCKETS) -> Clamd | None:
        """A client for the first socket that answers PING, or None (no clamd on this machine)."""
        for path in candidates:
            if not Path(path).exists():
                continue
            client = cls(path, timeout=2.0)
            try:
                if client.ping():
                    client.timeout = 30.0
                    return client
            except OSError:
                continue
        return None

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        return sock

    @staticmethod
    def _reply(sock: socket.socket) -> str:
        data = b""
        while not data.endswith(b"\0") and len(data) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.rstrip(b"\0").decode("utf-8", "replace").strip()

    def ping(self) -> bool:
        with self._connect() as sock:
            sock.sendall(b"zPING\0")
            return self._reply(sock) == "PONG"

    def version(self) -> str:
        with self._connect() as sock:
            sock.sendall(b"zVERSION\0")
            return self._reply(sock)[:200]

    def scan_stream(self, fileobj: IO[bytes]) -> str | None:
        """The signature name clamd found in the stream, or None. Raises OSError/ValueError on failure."""
        with self._connect() as sock:
            sock.sendall(b"zINSTREAM\0")
            sent = 0
            while sent < self.max_bytes:
                chunk = fileobj.read(min(CHUNK, self.max_bytes - sent))
                if not chunk:
                    break
                sock.sendall(struct.pack(">I", len(chunk)) + chunk)
                sent += len(chunk)
            sock.sendall(struct.pack(">I", 0))
            reply = self._reply(sock)
        if reply.endswith(" FOUND"):
            return reply.removeprefix("stream:").removesuffix(" FOUND").strip()[:256]
        if reply.endswith(" OK"):
            return None
        raise ValueError(f"clamd: {reply[:200]}")
