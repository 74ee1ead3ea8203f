"""`run_gateway(settings)`: the gateway as a blocking uvicorn server (container role)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from percolate_reading import tracing
from percolate_reading.config import Settings
from percolate_reading.errors import ConfigError
from percolate_reading.gateway.app import create_app
from percolate_reading.gateway.http_limits import HttpLimits, limited_h11_protocol
from percolate_reading.logs import setup_logging


class GatewayServer(uvicorn.Server):
    """uvicorn without its signal re-raise.

    uvicorn re-raises a caught SIGTERM after shutting down, which kills the process before the
    caller can drain workers and close connections. The caller installs the handlers instead
    (`install_signal_handlers`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def install_signal_handlers(server: uvicorn.Server, loop: asyncio.AbstractEventLoop) -> None:
    def on_signal() -> None:
        if server.should_exit:
            server.force_exit = True  # a second Ctrl-C: stop waiting for open connections
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_header_bytes=settings.http_max_header_bytes,
        max_headers=settings.http_max_headers,
        header_timeout_s=settings.http_header_timeout_s,
        body_timeout_s=settings.http_body_timeout_s,
    )


def uvicorn_config(settings: Settings, app: FastAPI, *, log_config: bool = True) -> uvicorn.Config:
    limits = http_limits(settings)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # Access lines carry method, path and status only, never the Authorization header.
        access_log=True,
        lifespan="on",
        # h11 with head/body timeouts and a 431 for big heads (uvicorn alone has neither).
        http=limited_h11_protocol(limits),
        h11_max_incomplete_event_size=limits.max_header_bytes,
        limit_concurrency=settings.http_max_concurrency,
        timeout_keep_alive=int(settings.http_keep_alive_s),
        timeout_graceful_shutdown=30,
        proxy_headers=True,
        # JSON logs: uvicorn's loggers propagate to the root handler instead of their own.
        log_config=uvicorn.config.LOGGING_CONFIG if log_config and settings.log_format == "text" else None,
    )


def bind_listener(settings: Settings) -> socket.socket:
    """The gateway's listening socket, bound before anything else starts: a port in use is a
    one-line ConfigError, not uvicorn's sys.exit from inside a running server."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    return sock


async def serve_gateway(settings: Settings, sock: socket.socket) -> bool:
    server = GatewayServer(uvicorn_config(settings, create_app(settings)))
    install_signal_handlers(server, asyncio.get_running_loop())
    await server.serve(sockets=[sock])
    # `started` is set only once the lifespan and the socket came up.
    return server.started


def run_gateway(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code (non-zero if start-up failed)."""
    setup_logging(settings)
    tracing.setup_tracing("percolate-gateway")
    try:
        sock = bind_listener(settings)
    except ConfigError as exc:
        print(f"percolate-reading: {exc}", file=sys.stderr)
        return 1
    with sock:
        return 0 if asyncio.run(serve_gateway(settings, sock)) else 1
