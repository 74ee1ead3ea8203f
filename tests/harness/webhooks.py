"""The one webhook receiver of the tests: a real HTTP server on 127.0.0.1 (asyncio, no
framework), and the Standard Webhooks signature to check what it received against."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers each request with the next status from `statuses` (then 200)."""

    statuses: list[int] = field(default_factory=list)
    redirect_to: str | None = None
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def wait_for(self, count: int, wait_s: float = 30.0) -> list[Received]:
        async with asyncio.timeout(wait_s):
            while len(self.received) < count:
                self._event.clear()
                await self._event.wait()
        return self.received

    async def wait_until(
        self, done: Callable[[list[Received]], bool], wait_s: float = 120.0
    ) -> list[Received]:
        """Until `done(received)` holds."""
        async with asyncio.timeout(wait_s):
            while not done(self.received):
                self._event.clear()
                await self._event.wait()
        return list(self.received)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, path, headers, body))
            status = self.statuses.pop(0) if self.statuses else 200
            extra = f"Location: {self.redirect_to}\r\n" if self.redirect_to and 300 <= status < 400 else ""
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n{extra}Connection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
            self._event.set()


def standard_webhook_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks: base64 HMAC-SHA256 over `id.timestamp.body`; `whsec_` secrets are
    base64 keys, anything else is used as raw bytes."""
    key = base64.b64decode(secret[len("whsec_") :]) if secret.startswith("whsec_") else secret.encode()
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()
