# mypy: disable-error-code="no-untyped-call"
"""Soak: thousands of jobs through `percolate-reading serve` while it is killed and restarted.

`serve` is the single-node deployment: gateway and worker in one process, job state in RocksDB
and objects under its data dir; nats-server runs beside it (a real `nats-server -js`, started
here) so the queue outlives each restart. Uploaders keep posting small PDFs; at random
intervals the serve process gets SIGKILL (a crash: in-flight jobs come back after ack_wait) or
SIGTERM (a scale-in: it drains and exits 0) and is started again on the same port and data dir.
When every accepted job has finished, the report counts:

- accepted: uploads answered 202 (each a unique job id);
- completed / failed: their final status;
- duplicates: jobs whose result appears more than once in the tenant's context;
- redelivered: jobs that took more than one delivery (expected after a SIGKILL);
- lost: accepted jobs that never finished (must be 0).

Prints a Markdown table and writes bench/results/soak.md.

    python bench/soak.py [--jobs 2000] [--seed 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.support import RESULTS, publish  # noqa: E402
from tests.harness.documents import make_pdf  # noqa: E402
from tests.servers import NatsServer, free_port  # noqa: E402

KEY = "pr_soak-bench-key-0123456789"
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Serve:
    """`python -m percolate_reading serve` on a fixed port and data dir, restartable."""

    nats_url: str
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PERCOLATE_READING_NATS_URL": self.nats_url,
                "PERCOLATE_READING_DEV_API_KEY": KEY,
                "PERCOLATE_READING_METRICS_PORT": "0",
                "PERCOLATE_READING_NATS_ACK_WAIT": "5",
                "PERCOLATE_READING_NATS_MAX_DELIVER": "10",
                "PERCOLATE_READING_NAK_BACKOFF_S": "0.2",
                "PERCOLATE_READING_DRAIN_TIMEOUT_S": "3",
                "PERCOLATE_READING_WORKER_CONCURRENCY": "2",
                "PERCOLATE_READING_LOG_LEVEL": "WARNING",
            }
        )
        return env

    def start(self) -> None:
        self.starts += 1
        with (self.data_dir.parent / "serve.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "percolate_reading",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def wait_ready(self, client: httpx.AsyncClient, wait_s: float = 120.0) -> None:
        async with asyncio.timeout(wait_s):
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"serve exited with {self.proc.returncode}; see serve.log")
                try:
                    if (await client.get("/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)

    async def stop(self, sig: int, wait_s: float = 90.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return await asyncio.to_thread(self.proc.wait, wait_s)


@dataclass
class Tally:
    accepted: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    exit_codes: Counter[int] = field(default_factory=Counter)


async def uploader(client: httpx.AsyncClient, tally: Tally, target: int, n: int, pause_s: float) -> None:
    i = 0
    while len(tally.accepted) < target:
        i += 1
        await asyncio.sleep(pause_s)  # paced, so the run spans many restarts
        pdf = make_pdf(f"soak upload {n}-{i}")
        try:
            r = await client.post("/v1/parse", files={"file": (f"soak-{n}-{i}.pdf", pdf)})
        except httpx.HTTPError:
            tally.answers["no answer (restarting)"] += 1  # never an acceptance
            await asyncio.sleep(0.2)
            continue
        tally.answers[str(r.status_code)] += 1
        if r.status_code == 202:
            tally.accepted.append(r.json()["job_id"])
        elif r.status_code in (429, 503):
            await asyncio.sleep(0.2)  # back-pressure or an outage: retry later
        else:
            raise AssertionError(f"unexpected answer {r.status_code}: {r.text}")


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    """GET that rides out a restart (connection refused while serve comes back)."""
    while True:
        try:
            r = await client.get(path, params=params)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)


async def all_jobs(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = await get_json(client, "/v1/jobs", **params)
        for job in page["jobs"]:
            jobs[job["job_id"]] = job
        cursor = page["next_cursor"]
        if not cursor:
            return jobs


async def restarter(
    serve: Serve, client: httpx.AsyncClient, tally: Tally, rng: random.Random, args: Any, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), rng.uniform(args.min_interval, args.max_interval))
            return
        except TimeoutError:
            pass
        how = rng.choice(["SIGKILL", "SIGTERM"])
        rc = await serve.stop(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
        tally.restarts[how] += 1
        tally.exit_codes[rc] += 1
        if how == "SIGTERM" and rc != 0:
            raise AssertionError(f"serve exited {rc} on SIGTERM; see serve.log")
        serve.start()
        await serve.wait_ready(client)


async def soak(args: argparse.Namespace, work: Path) -> tuple[dict[str, Any], Tally]:
    nats = NatsServer(work / "nats")
    nats.start()
    serve = Serve(nats.url, work / "serve", free_port())
    tally = Tally()
    rng = random.Random(args.seed)
    try:
        serve.start()
        headers = {"Authorization": f"Bearer {KEY}"}
        limits = httpx.Limits(max_connections=args.uploaders + 4)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{serve.port}", headers=headers, timeout=60, limits=limits
        ) as client:
            await serve.wait_ready(client)
            started = time.monotonic()
            stop = asyncio.Event()
            restarts = asyncio.create_task(restarter(serve, client, tally, rng, args, stop))
            await asyncio.gather(
                *(
                    uploader(client, tally, args.jobs, n, args.uploaders / args.rate)
                    for n in range(args.uploaders)
                )
            )
            uploaded_s = time.monotonic() - started
            # Keep restarting while the queue drains; stop once every accepted job is final.
            accepted = set(tally.accepted)
            deadline = time.monotonic() + args.drain_timeout
            while True:
                jobs = await all_jobs(client)
                done = {j for j in accepted if j in jobs and jobs[j]["status"] in TERMINAL}
                if done == accepted or time.monotonic() > deadline:
                    break
                await asyncio.sleep(2)
            stop.set()
            await restarts
            total_s = time.monotonic() - started
            context = await get_json(client, "/v1/context")
        results = Counter(d["job_id"] for d in context["documents"])
        statuses = Counter(jobs[j]["status"] for j in accepted if j in jobs)
        report = {
            "jobs_target": args.jobs,
            "accepted": len(tally.accepted),
            "unique_accepted": len(accepted),
            "completed": statuses["succeeded"],
            "failed": statuses["failed"],
            "cancelled": statuses["cancelled"],
            "duplicates": sum(1 for j in accepted if results[j] > 1),
            "results_in_context": sum(1 for j in accepted if results[j] >= 1),
            "redelivered": sum(1 for j in accepted if j in jobs and jobs[j]["attempts"] > 1),
            "lost": len(accepted - done),
            "uploaded_s": round(uploaded_s, 1),
            "total_s": round(total_s, 1),
            "serve_starts": serve.starts,
        }
        return report, tally
    finally:
        if serve.proc is not None and serve.proc.poll() is None:
            serve.proc.send_signal(signal.SIGTERM)
            try:
                serve.proc.wait(60)
            except subprocess.TimeoutExpired:
                serve.proc.kill()
                serve.proc.wait()
        nats.stop()


def markdown(report: dict[str, Any], tally: Tally, args: argparse.Namespace) -> str:
    restarts = ", ".join(f"{k} x{v}" for k, v in sorted(tally.restarts.items())) or "none"
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(tally.answers.items()))
    rows = [
        ("accepted (202)", report["accepted"]),
        ("unique job ids", report["unique_accepted"]),
        ("completed", report["completed"]),
        ("failed", report["failed"]),
        ("cancelled", report["cancelled"]),
        ("duplicates (a result twice in the context)", report["duplicates"]),
        ("results in the context", report["results_in_context"]),
        ("redelivered (attempts > 1)", report["redelivered"]),
        ("**lost**", f"**{report['lost']}**"),
    ]
    lines = [
        "# Soak: jobs through `percolate-reading serve` restarted at random",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, 2 CPU cores shared with other work. "
        f"`python bench/soak.py --jobs {args.jobs} --seed {args.seed} --uploaders {args.uploaders} "
        f"--rate {args.rate} "
        f"--min-interval {args.min_interval} --max-interval {args.max_interval}`.",
        "",
        "One `serve` process (gateway + worker, RocksDB job state, objects under its data dir) "
        "beside a real nats-server; small one-page PDFs uploaded by "
        f"{args.uploaders} concurrent clients at about {args.rate} per second; "
        f"every {args.min_interval}-{args.max_interval} s "
        "(seeded random) serve gets SIGKILL or SIGTERM and is started again on the same port "
        "and data dir, during uploads and while the queue drains.",
        "",
        "| count | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
        f"Restarts: {restarts} (serve started {report['serve_starts']} times; exit codes "
        f"{dict(sorted(tally.exit_codes.items()))}: 0 after SIGTERM, -9 after SIGKILL).",
        f"Upload answers: {answers}.",
        f"Uploads took {report['uploaded_s']} s; all jobs final after {report['total_s']} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--uploaders", type=int, default=4)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--rate", type=float, default=15.0, help="uploads per second, all uploaders")
    parser.add_argument("--min-interval", type=float, default=3.0, help="seconds between restarts, at least")
    parser.add_argument("--max-interval", type=float, default=12.0, help="seconds between restarts, at most")
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        report, tally = asyncio.run(soak(args, Path(tmp)))
    text = markdown(report, tally, args)
    publish(text, args.out)
    ok = report["lost"] == 0 and report["duplicates"] == 0 and report["unique_accepted"] == report["accepted"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
