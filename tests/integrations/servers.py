"""Local servers the integration tests drive: an HTTP server that speaks a service's API subset and
records every request, and a tiny SMTP server (asyncio, standard library) that keeps the messages."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Recorded], Reply]


class HttpService:
    """``handler(request) -> Reply`` behind a real HTTP server on 127.0.0.1 (or ``host``); ``requests`` records all."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.requests: list[Recorded] = []
        self.server_names: list[str | None] = []  # TLS SNI of each handshake
        self.tls = tls
        service = self

        class _H(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                rec = Recorded(self.command, parts.path, parse_qs(parts.query),
                               {k.lower(): v for k, v in self.headers.items()}, body)
                service.requests.append(rec)
                try:
                    reply = service.handler(rec)
                except Exception as exc:  # noqa: BLE001 - a fake's bug shows as a 500
                    reply = Reply(500, {"error": str(exc)})
                data = b"" if reply.body is None else (reply.body if isinstance(reply.body, bytes)
                                                       else json.dumps(reply.body).encode())
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), _H)
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)  # type: ignore[assignment]
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def basic_auth(rec: Recorded) -> tuple[str, str] | None:
    h = rec.headers.get("authorization", "")
    if not h.startswith("Basic "):
        return None
    user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
    return user, pw


# --- SMTP ----------------------------------------------------------------------------------------

@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class SmtpServer:
    """Enough of RFC 5321 for smtplib: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def __init__(self, username: str | None = None, password: str | None = None,
                 refuse: set[str] | None = None) -> None:
        self.username, self.password = username, password
        self.refuse = refuse or set()
        self.messages: list[Mail] = []
        self.logins: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    def __enter__(self) -> Self:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._client, "127.0.0.1", 0), self.loop)
        self._server = fut.result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write((line + "\r\n").encode())

        say("220 localhost test SMTP")
        sender, rcpts, authed = "", [], self.username is None
        while True:
            raw = await reader.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                if verb == "EHLO":
                    say("250-localhost")
                    if self.username is not None:
                        say("250-AUTH PLAIN")
                    say("250 8BITMIME")
                else:
                    say("250 localhost")
            elif verb == "AUTH":
                parts = line.split()
                creds = base64.b64decode(parts[2]).split(b"\0") if len(parts) > 2 else []
                if len(creds) == 3 and creds[1].decode() == self.username and creds[2].decode() == self.password:
                    authed = True
                    self.logins.append(creds[1].decode())
                    say("235 2.7.0 Authentication successful")
                else:
                    say("535 5.7.8 Authentication credentials invalid")
            elif verb == "MAIL":
                if not authed:
                    say("530 5.7.0 Authentication required")
                    continue
                sender, rcpts = line.split(":", 1)[1].strip().split()[0].strip("<>"), []
                say("250 OK")
            elif verb == "RCPT":
                addr = line.split(":", 1)[1].strip().split()[0].strip("<>")
                if addr in self.refuse:
                    say("550 5.1.1 No such user")
                else:
                    rcpts.append(addr)
                    say("250 OK")
            elif verb == "DATA":
                say("354 End data with <CR><LF>.<CR><LF>")
                await writer.drain()
                chunks = []
                while True:
                    part = await reader.readline()
                    if part in (b".\r\n", b".\n", b""):
                        break
                    chunks.append(part[1:] if part.startswith(b"..") else part)
                self.messages.append(Mail(sender, list(rcpts), b"".join(chunks)))
                say("250 OK queued")
            elif verb == "RSET":
                sender, rcpts = "", []
                say("250 OK")
            elif verb == "NOOP":
                say("250 OK")
            elif verb == "QUIT":
                say("221 Bye")
                await writer.drain()
                break
            else:
                say("502 Command not implemented")
            await writer.drain()
        writer.close()
