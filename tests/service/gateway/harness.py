"""Test harness for the gateway: a real uvicorn server in a thread, a webhook receiver, and
builders for small real documents. Also used by the serve CLI test and the benchmarks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pymupdf

from percolate_reading.config import Settings
from percolate_reading.gateway.app import create_app
from percolate_reading.gateway.deps import GatewayDeps
from percolate_reading.gateway.server import GatewayServer, uvicorn_config

REPO = Path(__file__).resolve().parents[3]
SPEECH_WAV = REPO / "tests" / "fixtures" / "speech.wav"
SCANNED_NOTE_PNG = REPO / "service" / "percolate_reading" / "samples" / "scanned-note.png"


def ensure_shared_pools(settings: Settings) -> None:
    """What jobs-init (compose) or the operator does in a cluster: the JOBS stream and a
    consumer for each shared tier, so the gateway sees a pool for every tier."""
    from percolate_reading.contract.subjects import Tier, consumer_name, job_subject
    from percolate_reading.infra.queue.jetstream import (
        close_quietly,
        connect,
        ensure_consumer,
        ensure_streams,
    )

    async def ensure() -> None:
        nc = await connect(settings, name="test-pools")
        try:
            js = nc.jetstream()
            await ensure_streams(js, settings)
            for tier in Tier:
                await ensure_consumer(js, settings, job_subject(tier), consumer_name(tier))
        finally:
            await close_quietly(nc)

    # In a thread of its own: callers may be inside a running event loop.
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(ensure())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


class LiveGateway:
    """The gateway app on a real uvicorn server (own thread and event loop) on a free port.

    `shared_pools` (default) first creates a consumer per shared tier, as a cluster has."""

    def __init__(
        self, settings: Settings, deps: GatewayDeps | None = None, *, shared_pools: bool = True
    ) -> None:
        self.settings = settings
        self.shared_pools = shared_pools and settings.nats_enabled and bool(settings.nats_url)
        self.server = GatewayServer(uvicorn_config(settings, create_app(settings, deps), log_config=False))
        self.thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def start(self, timeout: float = 60.0) -> None:
        if self.shared_pools:
            ensure_shared_pools(self.settings)
        self.thread.start()
        done = threading.Event()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the gateway did not start (see the log)")
            done.wait(0.05)
            timeout -= 0.05
            if timeout <= 0:
                raise TimeoutError("the gateway did not start in time")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A local HTTP endpoint that records every POST and answers 204."""

    calls: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.arrived:
                    receiver.calls.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def wait_for(self, predicate: Any, timeout: float = 120.0) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: predicate(self.calls), timeout)
            return list(self.calls)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def standard_webhook_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks: base64 HMAC-SHA256 over `id.timestamp.body`; `whsec_` secrets are
    base64 keys, anything else is used as raw bytes."""
    key = base64.b64decode(secret[len("whsec_") :]) if secret.startswith("whsec_") else secret.encode()
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# --- documents -----------------------------------------------------------------------------------


def make_pdf(text: str, pages: int = 1) -> bytes:
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page()
        page.insert_text((72, 100), f"{text} (page {i + 1})", fontsize=12)
    data: bytes = doc.tobytes()
    doc.close()
    return data


def make_xlsx(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
