"""Abusive HTTP clients against a real gateway process (`percolate-reading run`, gateway role):
a header flood and slowloris leave its memory and file descriptors flat and are cut off within
the configured timeouts (431/408), while ordinary requests keep being served. Loopback only;
every client loop is bounded."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import NatsServer, free_port, wait_for_port

pytestmark = pytest.mark.integration

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
MAX_HEADER_BYTES = 32 * 1024


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def open_sockets(self) -> int:
        fd_dir = Path(f"/proc/{self.proc.pid}/fd")
        count = 0
        for fd in fd_dir.iterdir():
            try:
                if os.readlink(fd).startswith("socket:"):
                    count += 1
            except OSError:
                continue
        return count


@pytest.fixture(scope="module")
def gateway_process(
    nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp_path = tmp_path_factory.mktemp("gateway-limits")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCOLATE_READING_")} | {
        "PERCOLATE_READING_GATEWAY_MODE": "true",
        "PERCOLATE_READING_HOST": "127.0.0.1",
        "PERCOLATE_READING_PORT": str(port),
        "PERCOLATE_READING_NATS_URL": nats_server.url,
        "PERCOLATE_READING_S3_ENABLED": "false",
        "PERCOLATE_READING_DATA_DIR": str(tmp_path / "data"),
        "PERCOLATE_READING_DEV_API_KEY": "pr_test_limits_key",
        "PERCOLATE_READING_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "PERCOLATE_READING_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "PERCOLATE_READING_HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "PERCOLATE_READING_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "percolate_reading", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port, timeout=90, proc=proc)
        yield GatewayProcess(proc, port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _status_line(reader: asyncio.StreamReader, wait_s: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.readline(), wait_s)
    except (ConnectionError, TimeoutError):
        return b""


async def _get_health(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    status = await _status_line(reader, 10)
    writer.close()
    return status


async def _header_flood(port: int, total_bytes: int) -> tuple[bytes, int]:
    """Send one request head of up to `total_bytes` of headers; returns the answer's status
    line and how many bytes went out before the server stopped reading."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    line = b"X-Flood: " + b"a" * 4000 + b"\r\n"
    sent = 0
    try:
        while sent < total_bytes:  # bounded: stops at total_bytes or when the server closes
            writer.write(line * 16)
            await asyncio.wait_for(writer.drain(), 10)
            sent += len(line) * 16
    except (ConnectionError, TimeoutError):
        pass
    status = await _status_line(reader, 10)
    writer.close()
    return status, sent


async def test_header_over_the_limit_gets_431(gateway_process: GatewayProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway_process.port)
    writer.write(
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 1024) + b"\r\n\r\n"
    )
    await writer.drain()
    assert (await _status_line(reader, 10)).startswith(b"HTTP/1.1 431")
    writer.close()


async def test_header_flood_is_cut_off_and_memory_stays_flat(gateway_process: GatewayProcess) -> None:
    gw = gateway_process
    assert (await _get_health(gw.port)).startswith(b"HTTP/1.1 200")
    rss_before = gw.rss_kb()
    results = await asyncio.gather(*(_header_flood(gw.port, 50 * 1024 * 1024) for _ in range(8)))
    for status, sent in results:
        # Answered 431 and closed (a client still writing may see the reset instead of the
        # answer) after at most the head limit plus what the sockets' buffers held.
        assert status == b"" or status.startswith(b"HTTP/1.1 431"), status
        assert sent < 8 * 1024 * 1024, sent
    rss_after = gw.rss_kb()
    assert rss_after - rss_before < 20 * 1024, (rss_before, rss_after)
    assert (await _get_health(gw.port)).startswith(b"HTTP/1.1 200")


async def test_too_many_header_fields_get_431(gateway_process: GatewayProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway_process.port)
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(150))
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    await writer.drain()
    assert (await _status_line(reader, 10)).startswith(b"HTTP/1.1 431")
    writer.close()


async def _slowloris(port: int, closed_after: list[float], seconds: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    try:
        # One header byte every 0.3 s, for at most `seconds`: never a complete head.
        while time.monotonic() - start < seconds:
            writer.write(b"X-Slow: a\r\n"[: 1 + int((time.monotonic() - start) * 10) % 5])
            await writer.drain()
            if reader.at_eof():
                break
            try:
                data = await asyncio.wait_for(reader.read(1024), 0.3)
            except TimeoutError:
                continue
            if not data or b"408" in data:
                break
    except ConnectionError:
        pass
    closed_after.append(time.monotonic() - start)
    writer.close()


async def test_slowloris_connections_are_closed_within_the_header_timeout(
    gateway_process: GatewayProcess,
) -> None:
    gw = gateway_process
    assert (await _get_health(gw.port)).startswith(b"HTTP/1.1 200")
    sockets_before = gw.open_sockets()
    rss_before = gw.rss_kb()
    closed_after: list[float] = []
    clients = [asyncio.create_task(_slowloris(gw.port, closed_after, 20.0)) for _ in range(300)]
    await asyncio.sleep(0.5)
    # Ordinary clients are still served while the slow ones hang on.
    assert (await _get_health(gw.port)).startswith(b"HTTP/1.1 200")
    await asyncio.gather(*clients)
    assert len(closed_after) == 300
    # Closed by the server at the head timeout, not by the clients giving up at 20 s.
    assert max(closed_after) < HEADER_TIMEOUT_S + 5, max(closed_after)
    await asyncio.sleep(0.5)
    assert gw.open_sockets() <= sockets_before + 5, (sockets_before, gw.open_sockets())
    assert gw.rss_kb() - rss_before < 20 * 1024


async def test_idle_connection_and_stalled_body_get_408(gateway_process: GatewayProcess) -> None:
    gw = gateway_process
    # A connection that never sends a byte.
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    start = time.monotonic()
    assert (await _status_line(reader, HEADER_TIMEOUT_S + 5)).startswith(b"HTTP/1.1 408")
    assert time.monotonic() - start < HEADER_TIMEOUT_S + 3
    writer.close()

    # A body that stops half-way.
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(
        b"POST /v1/parse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer pr_test_limits_key\r\n"
        b"Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 100000\r\n\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello'
    )
    await writer.drain()
    start = time.monotonic()
    status = await _status_line(reader, BODY_TIMEOUT_S + 10)
    assert status.startswith(b"HTTP/1.1 408"), status
    assert time.monotonic() - start < BODY_TIMEOUT_S + 5
    writer.close()
