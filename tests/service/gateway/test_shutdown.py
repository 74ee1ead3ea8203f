"""The gateway shuts down cleanly even when NATS went away first (e.g. a node drain that
stops the NATS pod before the gateway's)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from percolate_reading.config import Settings
from percolate_reading.gateway.app import create_app
from tests.servers import NatsServer

pytestmark = pytest.mark.integration


async def test_shutdown_after_nats_died(settings: Settings, fresh_nats_server: NatsServer) -> None:
    app = create_app(settings)
    async with asyncio.timeout(60):
        async with app.router.lifespan_context(app):
            assert app.state.deps.js is not None
            fresh_nats_server.stop(signal.SIGTERM)
            await asyncio.sleep(0.3)
            # Something still buffered for the server that is gone: close() flushes it first.
            await app.state.deps.nc.publish("jobs.none", b"x")
        # Leaving the lifespan closed every connection without raising.
    assert app.state.deps.nc.is_closed
