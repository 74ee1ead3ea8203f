"""Gateway benchmark: upload-to-202 latency and throughput, and gateway memory on a 1 GiB upload.

Starts a real nats-server and SeaweedFS (tests/servers.py) and the gateway as a separate
process (so its RSS is its own), then measures, in the same run:

* upload-to-202 p50/p99 and uploads/s at concurrency 1, 16, 64 for 100 KiB and 1 MiB files;
* the bare cost of what the gateway must do anyway: one S3 put of the same bytes plus one
  JetStream publish (with PubAck), at the same concurrency, from this process;
* uploads come from bench/loadgen.py (aiohttp, body encoded once), a client cheap enough
  not to be the bottleneck on the cores it shares with the gateway;
* the gateway's peak RSS while a 1 GiB upload (generated on the fly, never on disk) streams
  through it to S3.

Prints Markdown tables and writes bench/results/gateway.md.
Goals: p50 within 2x bare; RSS under 200 MB for 1 GiB.

    python bench/gateway_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.loadgen import multipart_body, session, upload  # noqa: E402
from bench.support import RESULTS, publish, service_env  # noqa: E402
from tests.servers import NatsServer, SeaweedS3, free_port, wait_for_port  # noqa: E402

from percolate_reading.config import Settings  # noqa: E402
from percolate_reading.contract.jobs import JobMessage  # noqa: E402
from percolate_reading.contract.topology import TopologyLimits  # noqa: E402
from percolate_reading.infra.queue.jetstream import connect, publish_job  # noqa: E402
from percolate_reading.infra.queue.topology import ensure_topology  # noqa: E402
from percolate_reading.infra.storage import open_object_store  # noqa: E402

KEY = "pr_bench-key-0123456789"
GIB = 1024**3
ROUNDS = 4


def gateway_env(nats: NatsServer, s3: SeaweedS3, port: int, data_dir: Path) -> dict[str, str]:
    return service_env(
        nats, s3, port, data_dir, KEY, max_upload_bytes=str(2 * GIB), max_active_jobs="1000000"
    )


def start_gateway(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from percolate_reading.config import load_settings; "
        "from percolate_reading.gateway.server import run_gateway; sys.exit(run_gateway(load_settings()))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    wait_for_port(port, timeout=60, proc=proc)
    return proc


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def pdf_payload(size: int) -> bytes:
    # The gateway sniffs only the first bytes; the rest is filler of the wanted size.
    head = b"%PDF-1.7\n"
    return head + os.urandom(size - len(head))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_concurrent(
    n: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[list[float], float]:
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def task(i: int) -> None:
        async with sem:
            t0 = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(task(i) for i in range(n)))
    return latencies, time.perf_counter() - started


async def bench_gateway(url: str, payload: bytes, n: int, concurrency: int) -> tuple[list[float], float]:
    body, content_type = multipart_body("doc.pdf", payload)
    async with session(url, KEY, concurrency) as client:

        async def one(i: int) -> None:
            await upload(client, body, content_type)

        return await run_concurrent(n, concurrency, one)


async def bench_bare(
    settings: Settings, payload: bytes, n: int, concurrency: int
) -> tuple[list[float], float]:
    store = await open_object_store(settings)
    nc = await connect(settings)
    js = nc.jetstream()
    run = os.urandom(4).hex()
    try:

        async def one(i: int) -> None:
            job_id = f"bare{run}{concurrency}{i:06d}"
            key = f"bench/{job_id}/doc.pdf"
            await store.put_bytes(settings.s3_bucket, key, payload, "application/pdf")
            msg = JobMessage(
                job_id=job_id,
                tenant_id="bench",
                file_name="doc.pdf",
                file_type="pdf",
                s3_uri=f"s3://{settings.s3_bucket}/{key}",
                size_bytes=len(payload),
            )
            await publish_job(js, msg, "jobs.parse.bench")

        return await run_concurrent(n, concurrency, one)
    finally:
        await nc.close()
        await store.close()


async def big_upload(url: str, size: int, pid: int) -> tuple[float, float, float]:
    """Stream a generated `size`-byte upload; returns (seconds, peak RSS MB, RSS before MB)."""
    boundary = "benchBoundary7"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    chunk = b"\0" * (1 << 20)

    async def body() -> AsyncIterator[bytes]:
        yield head + b"%PDF-1.7\n"
        sent = 9
        while sent < size:
            piece = chunk[: min(len(chunk), size - sent)]
            sent += len(piece)
            yield piece
        yield tail

    before = rss_mb(pid)
    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    length = len(head) + size + len(tail)
    t0 = time.perf_counter()
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=600
        ) as c:
            r = await c.post(
                "/v1/parse",
                content=body(),
                headers={
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(length),
                },
            )
    finally:
        stop.set()
        sampler.join()
    if r.status_code != 202:
        raise RuntimeError(f"1 GiB upload: {r.status_code} {r.text}")
    return time.perf_counter() - t0, max(peak, rss_mb(pid, "VmHWM")), before


def fmt_ms(s: float) -> str:
    return f"{s * 1000:.1f}"


async def main(quick: bool) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="gwbench-"))
    nats = NatsServer(tmp / "nats")
    s3 = SeaweedS3(tmp / "seaweed")
    nats.start()
    s3.start()
    port = free_port()
    env = gateway_env(nats, s3, port, tmp / "data")
    settings = Settings(
        nats_url=nats.url,
        s3_endpoint=s3.endpoint,
        s3_access_key=s3.access_key,
        s3_secret_key=SecretStr(s3.secret_key),
        data_dir=tmp / "data",
    )
    gw = start_gateway(env, port)
    url = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        # Memory first, on a fresh gateway, so earlier runs do not raise its high-water mark.
        big = 256 * 1024 * 1024 if quick else GIB
        async with httpx.AsyncClient(base_url=url) as c:
            for _ in range(100):
                if (await c.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
        secs, peak, before = await big_upload(url, big, gw.pid)
        lines += [
            "## Gateway memory during one large upload",
            "",
            "| upload | time s | MB/s | RSS before MB | peak RSS MB | goal |",
            "|---|---|---|---|---|---|",
            f"| {big / GIB:.2f} GiB (generated stream) | {secs:.1f} | {big / secs / 1e6:.0f} | "
            f"{before:.0f} | {peak:.0f} | < 200 MB: {'met' if peak < 200 else 'NOT met'} |",
            "",
        ]

        # Set up the streams for the bare run (the gateway already did) and warm both paths.
        nc = await connect(settings)
        await ensure_topology(nc.jetstream(), TopologyLimits.from_settings(settings), update=False)
        await nc.close()
        await bench_gateway(url, pdf_payload(1024), 5, 1)
        await bench_bare(settings, pdf_payload(1024), 5, 1)

        lines += [
            "## Upload to 202 vs bare S3 put + JetStream publish",
            "",
            "| size | concurrency | uploads | gateway p50 ms | gateway p99 ms | gateway uploads/s "
            "| bare p50 ms | bare p99 ms | bare ops/s | p50 ratio | goal (<= 2x) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for size, label in ((100 * 1024, "100 KiB"), (1024 * 1024, "1 MiB")):
            payload = pdf_payload(size)
            for conc in (1, 16, 64):
                n = max(20 if quick else 40, conc * (2 if quick else 3))
                # Interleave rounds of both, so load from other work on a shared machine
                # falls on both sides alike rather than on whichever ran second.
                g_lat, b_lat, g_wall, b_wall = [], [], 0.0, 0.0
                per_round = max(conc, n // ROUNDS)
                for _ in range(ROUNDS):
                    lat, wall = await bench_gateway(url, payload, per_round, conc)
                    g_lat += lat
                    g_wall += wall
                    lat, wall = await bench_bare(settings, payload, per_round, conc)
                    b_lat += lat
                    b_wall += wall
                n = per_round * ROUNDS
                ratio = statistics.median(g_lat) / statistics.median(b_lat)
                g50, g99 = fmt_ms(statistics.median(g_lat)), fmt_ms(percentile(g_lat, 0.99))
                b50, b99 = fmt_ms(statistics.median(b_lat)), fmt_ms(percentile(b_lat, 0.99))
                lines.append(
                    f"| {label} | {conc} | {n} | {g50} | {g99} | {n / g_wall:.1f} | {b50} | {b99} "
                    f"| {n / b_wall:.1f} | {ratio:.2f}x | {'met' if ratio <= 2 else 'NOT met'} |"
                )
                print(lines[-1], flush=True)
        lines.append("")
    finally:
        gw.terminate()
        gw.wait(30)
        nats.stop()
        s3.stop()
    cpu = os.cpu_count()
    header = [
        "# Gateway benchmark",
        "",
        f"Machine: {cpu} CPU cores (shared), nats-server and SeaweedFS on loopback, gateway in its own "
        "process (one uvicorn worker). Bare = this process doing one S3 PUT of the same bytes and one "
        "JetStream publish with PubAck per upload, at the same concurrency; the two run in "
        f"{ROUNDS} interleaved rounds per row.",
        "",
    ]
    return "\n".join(header + lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts and a 256 MiB upload")
    args = parser.parse_args()
    report = asyncio.run(main(args.quick))
    publish(report, RESULTS / "gateway.md")
