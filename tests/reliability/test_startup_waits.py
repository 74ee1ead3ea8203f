"""Processes started before their dependencies wait for them: a gateway and a worker (real
`percolate-reading run` processes) started while nats-server and SeaweedFS are not running
stay alive, answer /ready 503 with what they wait for, log why, and become ready and run a
job once the servers come up; `serve` does the same for its NATS."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from percolate_reading.config import ENV_PREFIX
from tests.harness.documents import make_pdf
from tests.servers import NatsServer, SeaweedS3, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API_KEY = "pr_startup-waits-test-key-0123456789"


def role_env(role: str, nats: NatsServer, s3: SeaweedS3, data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    values = {
        f"{role}_mode": "true",
        "nats_url": nats.url,
        "s3_endpoint": s3.endpoint,
        "s3_access_key": s3.access_key,
        "s3_secret_key": s3.secret_key,
        "data_dir": str(data_dir),
        "dev_api_key": API_KEY,
        "worker_fetch_timeout_s": "0.5",
        "queue_stats_interval_s": "0",
        **settings,
    }
    env.update({f"{ENV_PREFIX}{name.upper()}": value for name, value in values.items()})
    return env


class TcpForward:
    """The session's SeaweedFS behind a port that answers only once `start` was called: S3
    "comes up" without the seconds a fresh SeaweedFS takes to start."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Close the listener and every piped connection (a socket left to the garbage
        collector warns later, in whichever test is running then)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._writers.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers.add(up_writer)
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        except (ConnectionError, asyncio.CancelledError):
            writer.close()


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


async def ready_answer(client: httpx.AsyncClient, url: str) -> tuple[int, str]:
    try:
        resp = await client.get(url)
    except httpx.TransportError as exc:
        return 0, repr(exc)
    return resp.status_code, resp.text


async def until_answer(
    client: httpx.AsyncClient, url: str, status: int, contains: str = "", wait_s: float = 60.0
) -> str:
    last: tuple[int, str] = (0, "")
    try:
        async with asyncio.timeout(wait_s):
            while True:
                last = await ready_answer(client, url)
                if last[0] == status and contains in last[1]:
                    return last[1]
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"{url}: wanted {status} with {contains!r}, last answer {last}") from None


async def until_logged(procs: list[Proc], text: str, wait_s: float = 60.0) -> None:
    async with asyncio.timeout(wait_s):
        while not all(text in proc.log() for proc in procs):
            assert all(proc.alive() for proc in procs)
            await asyncio.sleep(0.2)


async def run_one_job(client: httpx.AsyncClient, base: str) -> dict[str, object]:
    resp = await client.post(
        f"{base}/v1/parse",
        headers={"Authorization": f"Bearer {API_KEY}"},
        files={"file": ("late.pdf", make_pdf(["started before its servers"]), "application/pdf")},
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    async with asyncio.timeout(90):
        while True:
            got = await client.get(f"{base}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {API_KEY}"})
            record: dict[str, object] = got.json()
            if record["status"] in ("succeeded", "failed"):
                return record
            await asyncio.sleep(0.2)


async def test_gateway_and_worker_wait_for_nats_and_s3(
    tmp_path: Path, procs: list[Proc], seaweed_s3: SeaweedS3
) -> None:
    nats = NatsServer(tmp_path / "nats")  # ports chosen, not started yet
    s3_port = TcpForward(seaweed_s3.s3_port)  # nothing listens until started
    s3 = copy.copy(seaweed_s3)
    s3.s3_port = s3_port.port
    gateway_port, worker_port = free_port(), free_port()
    run = [sys.executable, "-m", "percolate_reading", "run"]
    gateway = Proc(
        run,
        role_env("gateway", nats, s3, tmp_path / "gw", port=str(gateway_port), host="127.0.0.1"),
        tmp_path / "gateway.log",
    )
    procs.append(gateway)
    worker = Proc(
        run,
        role_env("worker", nats, s3, tmp_path / "wk", metrics_port=str(worker_port), host="127.0.0.1"),
        tmp_path / "worker.log",
    )
    procs.append(worker)
    base = f"http://127.0.0.1:{gateway_port}"
    worker_ready = f"http://127.0.0.1:{worker_port}/ready"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            # Alive, not ready, saying why.
            await until_answer(client, f"{base}/health", 200)
            await until_answer(client, f"{base}/ready", 503, "NATS at")
            await until_answer(client, worker_ready, 503, "NATS at")
            upload = await client.post(f"{base}/v1/parse", headers={"Authorization": f"Bearer {API_KEY}"})
            assert upload.status_code == 503, upload.text
            assert upload.headers["retry-after"]
            assert upload.json()["error"]["code"] == "starting"

            await until_logged([gateway, worker], "waiting for NATS")
            nats.start()
            # NATS answers; S3 still does not: the reason moves on.
            await until_answer(client, f"{base}/ready", 503, "S3 at")
            await until_answer(client, worker_ready, 503, "S3 at")
            assert gateway.alive()
            assert worker.alive()

            await until_logged([gateway, worker], "waiting for S3")
            await s3_port.start()
            await until_answer(client, f"{base}/ready", 200, wait_s=90)
            await until_answer(client, worker_ready, 200, wait_s=90)
            record = await run_one_job(client, base)
            assert record["status"] == "succeeded", record
        for proc in (gateway, worker):
            assert "Traceback" not in proc.log(), proc.log()
        assert gateway.stop() == 0, gateway.log()
        assert worker.stop() == 0, worker.log()
    finally:
        for proc in procs:
            proc.stop()
        nats.stop()
        await s3_port.stop()


async def test_serve_waits_for_its_nats(tmp_path: Path, procs: list[Proc]) -> None:
    nats = NatsServer(tmp_path / "nats")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(
        {
            f"{ENV_PREFIX}NATS_URL": nats.url,
            f"{ENV_PREFIX}DEV_API_KEY": API_KEY,
            f"{ENV_PREFIX}WORKER_FETCH_TIMEOUT_S": "0.5",
        }
    )
    args = [sys.executable, "-m", "percolate_reading", "serve", "--host", "127.0.0.1", "--port", str(port)]
    serve = Proc([*args, "--data-dir", str(tmp_path / "data")], env, tmp_path / "serve.log")
    procs.append(serve)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await until_answer(client, f"{base}/ready", 503, "NATS at")
            await until_logged([serve], "waiting for NATS")
            nats.start()
            await until_answer(client, f"{base}/ready", 200)
            record = await run_one_job(client, base)
            assert record["status"] == "succeeded", record
        assert serve.stop() == 0, serve.log()
        assert "Traceback" not in serve.log(), serve.log()
    finally:
        serve.stop()
        nats.stop()
