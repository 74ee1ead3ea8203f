"""HTTP/1.1 limits the gateway enforces before a request reaches the app.

uvicorn's h11 protocol bounds the size of a request head (`h11_max_incomplete_event_size`) but
answers 400 for it, and has no timeout at all until a first response was sent: a client that
opens a connection and dribbles header bytes (slowloris), or stops sending a body half-way,
holds a socket and a buffer for as long as it likes. `limited_h11_protocol(limits)` is the
h11 protocol with
- a head-read timeout, from the connection's first byte (or its opening) to a complete head: 408,
- a body idle timeout, between two reads of a request body (not while the app applies
  back-pressure): 408 if no response started, else the connection is closed,
- 431 for a head over the byte limit,
and `HeaderCountLimit` answers 431 for a head with more header fields than allowed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import h11
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from percolate_reading.gateway.api_errors import error_body


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0


def _plain_response(status: int, reason: str, body: str) -> bytes:
    payload = body.encode("ascii")
    return (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(payload)}\r\n"
        "connection: close\r\n\r\n"
    ).encode("ascii") + payload


REQUEST_TIMEOUT = _plain_response(408, "Request Timeout", "Request head or body not received in time.")
HEAD_TOO_LARGE = _plain_response(431, "Request Header Fields Too Large", "Request header fields too large.")


class LimitedH11Protocol(H11Protocol):
    limits: HttpLimits = HttpLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # of the head being received
        self._head_tail = b""  # its last bytes, to find a terminator split over two reads
        # A connection that never sends a byte is also a slow head.
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            if self._head_timer is None:
                self._arm_head_timer()  # first byte of a keep-alive connection's next request
            if self._head_over_limit(data):
                self._reject(HEAD_TOO_LARGE)
                return
        super().data_received(data)
        if self.transport.is_closing():
            self._cancel_timers()
            return
        state = self.conn.their_state
        if state is not h11.IDLE:
            self._head_bytes, self._head_tail = 0, b""
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
        if state is h11.SEND_BODY:
            self._arm_body_timer()
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_over_limit(self, data: bytes) -> bool:
        """Count this read into the head being received; h11 alone checks its buffer only
        while a head is incomplete, so a big head arriving in one read would pass."""
        window = self._head_tail + data
        end = window.find(b"\r\n\r\n")
        if end >= 0:
            return self._head_bytes + end + 4 - len(self._head_tail) > self.limits.max_header_bytes
        self._head_bytes += len(data)
        self._head_tail = window[-3:]
        return self._head_bytes > self.limits.max_header_bytes

    def send_400_response(self, msg: str) -> None:
        # h11 gives up on an over-long head with "Receive buffer too long" (its hint: 431).
        if len(self.conn.trailing_data[0]) > self.limits.max_header_bytes:
            self._reject(HEAD_TOO_LARGE)
            return
        super().send_400_response(msg)

    # --- timers --------------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _arm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timed_out)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._reject(REQUEST_TIMEOUT)

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        if self.flow.read_paused:
            # The app is behind, not the client: wait for it.
            self._arm_body_timer()
            return
        if self.cycle is not None and not self.cycle.response_started:
            self._reject(REQUEST_TIMEOUT)
        else:
            self.transport.close()

    def _reject(self, response: bytes) -> None:
        self._cancel_timers()
        self.logger.info(
            "closing connection from %s: %s", self.client, response.split(b"\r\n", 1)[0].decode()
        )
        self.transport.write(response)
        self.transport.close()


def limited_h11_protocol(limits: HttpLimits) -> type[LimitedH11Protocol]:
    """The protocol class uvicorn instantiates per connection, carrying these limits."""
    return type("LimitedH11Protocol", (LimitedH11Protocol,), {"limits": limits})


class HeaderCountLimit:
    """Pure ASGI middleware: 431 for a request with more header fields than `max_headers`
    (the head's byte size is already bounded by the protocol)."""

    def __init__(self, app: ASGIApp, max_headers: int) -> None:
        self.app = app
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope["headers"]) > self.max_headers:
            await send(
                {
                    "type": "http.response.start",
                    "status": 431,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
                }
            )
            body = error_body("header_fields_too_many", f"more than {self.max_headers} header fields")
            await send({"type": "http.response.body", "body": json.dumps(body).encode()})
            return
        await self.app(scope, receive, send)
