"""Test harness for the gateway: the app on a real uvicorn server in a thread (documents and
the webhook receiver are in `tests.harness`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from percolate_reading.config import Settings
from percolate_reading.gateway.app import create_app
from percolate_reading.gateway.deps import GatewayDeps
from percolate_reading.gateway.server import GatewayServer, uvicorn_config


class LiveGateway:
    """The gateway app on a real uvicorn server (own thread and event loop) on a free port."""

    def __init__(self, settings: Settings, deps: GatewayDeps | None = None) -> None:
        self.settings = settings
        self.server = GatewayServer(uvicorn_config(settings, create_app(settings, deps), log_config=False))
        self.thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.thread.start()
        done = threading.Event()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the gateway did not start (see the log)")
            done.wait(0.05)
            timeout -= 0.05
            if timeout <= 0:
                raise TimeoutError("the gateway did not start in time")

    @classmethod
    @contextlib.contextmanager
    def running(cls, settings: Settings, deps: GatewayDeps | None = None) -> Iterator[LiveGateway]:
        gateway = cls(settings, deps)
        gateway.start()
        try:
            yield gateway
        finally:
            gateway.stop()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
