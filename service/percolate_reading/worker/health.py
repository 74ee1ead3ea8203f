"""The worker's small HTTP endpoint: /metrics, /health (process up), /ready (NATS connected
and the pull loop alive). Plain asyncio; a worker needs no web framework."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from percolate_reading.metrics import Metrics

log = logging.getLogger(__name__)

_MAX_REQUEST_HEAD = 8192


class HealthServer:
    def __init__(self, metrics: Metrics, ready: Callable[[], tuple[bool, str]], host: str, port: int) -> None:
        self.metrics = metrics
        self.ready = ready
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=_MAX_REQUEST_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("worker health and metrics on http://%s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def respond(self, path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            return 200, self.metrics.content_type, self.metrics.render()
        if path in ("/health", "/healthz"):
            return 200, "text/plain", b"ok\n"
        if path in ("/ready", "/readyz"):
            ok, why = self.ready()
            return (200 if ok else 503), "text/plain", (why + "\n").encode()
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else "/"
            status, ctype, body = (
                self.respond(path) if parts[0] in ("GET", "HEAD") else (405, "text/plain", b"")
            )
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'ERR'}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if parts[0] != "HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
