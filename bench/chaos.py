# mypy: disable-error-code="no-untyped-call"
"""Chaos: jobs from several tenants through cluster mode while its parts fail at random.

Cluster mode as processes: a real nats-server and SeaweedFS, two gateways and two workers
(`python -m percolate_reading run`). Uploaders of several tenants post small PDFs through
both gateways. At seeded random times during the upload window: a worker is SIGKILLed (and
started again), a worker is SIGSTOPped past ack_wait (then resumed), nats-server is killed
and restarted on its port and store, S3 goes away for 30 s and for 3 min (SeaweedFS killed,
started again on its ports and data), and a gateway is SIGKILLed while a slow upload is
streaming into it (then started again). When every accepted job is final (or the drain
timeout passes) the report counts:

- accepted: uploads answered 202; succeeded; failed, by the reason's code;
- lost: accepted jobs that never reached a final status (must be 0);
- duplicates: jobs whose result appears twice in the tenant's context (must be 0);
- orphaned objects: staged uploads or artifacts in S3 under a job id that was never accepted,
  and incomplete multipart uploads, at the end of the run;
- per-tenant latency: created -> finished, p50 / p95 / max.

Prints Markdown and writes bench/results/chaos.md.

    python bench/chaos.py [--jobs 1000] [--tenants 4] [--window 300] [--seed 13]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness.documents import make_pdf  # noqa: E402
from tests.servers import NatsServer, SeaweedS3, free_port  # noqa: E402

from percolate_reading.config import ENV_PREFIX  # noqa: E402

TERMINAL = ("succeeded", "failed", "cancelled")
SMALL_RUN = "; `--jobs 1000` runs that size"
ACK_WAIT_S = 10.0


@dataclass
class Role:
    """One `python -m percolate_reading run` process (gateway or worker), restartable."""

    name: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "percolate_reading", "run"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def role_env(nats: NatsServer, s3: SeaweedS3, data_dir: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    base = {
        "nats_url": nats.url,
        "s3_endpoint": s3.endpoint,
        "s3_access_key": s3.access_key,
        "s3_secret_key": s3.secret_key,
        "data_dir": str(data_dir),
        "metrics_port": "0",
        "log_level": "WARNING",
        **values,
    }
    env.update({f"{ENV_PREFIX}{k.upper()}": v for k, v in base.items()})
    return env


@dataclass
class Tally:
    accepted: dict[str, str] = field(default_factory=dict)  # job id -> tenant
    answers: Counter[str] = field(default_factory=Counter)
    faults: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class Cluster:
    nats: NatsServer
    s3: SeaweedS3
    gateways: list[Role]
    workers: list[Role]
    ports: list[int]
    keys: dict[str, str]


async def until_ready(url: str, wait_s: float = 180.0) -> None:
    async with httpx.AsyncClient(timeout=5) as c, asyncio.timeout(wait_s):
        while True:
            try:
                if (await c.get(f"{url}/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)


# --- load ------------------------------------------------------------------------------------


async def upload_one(
    client: httpx.AsyncClient, cluster: Cluster, tally: Tally, upload: tuple[str, int, str], backoff_s: float
) -> None:
    """One upload of `upload` (tenant, gateway port, name), counted in `tally`; a refusal or no
    answer waits `backoff_s` (only 202 is an acceptance); any other answer is a failure."""
    tenant, port, name = upload
    try:
        r = await client.post(
            f"http://127.0.0.1:{port}/v1/parse",
            files={"file": (f"{name}.pdf", make_pdf(f"{name} upload {tenant}"))},
            headers={"Authorization": f"Bearer {cluster.keys[tenant]}"},
        )
    except httpx.HTTPError:
        tally.answers["no answer"] += 1  # never an acceptance
        await asyncio.sleep(backoff_s)
        return
    tally.answers[str(r.status_code)] += 1
    if r.status_code == 202:
        tally.accepted[r.json()["job_id"]] = tenant
    elif r.status_code in (429, 503):
        await asyncio.sleep(backoff_s)
    else:
        raise AssertionError(f"unexpected answer {r.status_code}: {r.text}")


async def uploader(cluster: Cluster, tally: Tally, target: int, n: int, pause_s: float) -> None:
    tenants = sorted(cluster.keys)
    i = 0
    async with httpx.AsyncClient(timeout=60) as client:
        while len(tally.accepted) < target:
            i += 1
            await asyncio.sleep(pause_s)
            tenant = tenants[(n + i) % len(tenants)]
            port = cluster.ports[(n + i) % len(cluster.ports)]
            await upload_one(client, cluster, tally, (tenant, port, f"chaos-{n}-{i}"), backoff_s=0.5)


async def slow_body(total: int, chunk: int, pause_s: float) -> AsyncIterator[bytes]:
    boundary = "chaosBoundary7"
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    ).encode()
    sent = 0
    while sent < total:
        yield b"%" + b"x" * (chunk - 2) + b"\n"
        sent += chunk
        await asyncio.sleep(pause_s)
    yield f"\r\n--{boundary}--\r\n".encode()


async def slow_upload(cluster: Cluster, port: int, tally: Tally) -> None:
    """An upload that is still streaming when its gateway is killed."""
    tenant = sorted(cluster.keys)[0]
    headers = {
        "Authorization": f"Bearer {cluster.keys[tenant]}",
        "Content-Type": "multipart/form-data; boundary=chaosBoundary7",
    }
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            r = await client.post(
                f"http://127.0.0.1:{port}/v1/parse",
                content=slow_body(8 << 20, 64 << 10, 0.05),
                headers=headers,
            )
        tally.answers[f"slow upload {r.status_code}"] += 1
        if r.status_code == 202:
            tally.accepted[r.json()["job_id"]] = tenant
    except httpx.HTTPError:
        tally.answers["slow upload cut off"] += 1


# --- faults ----------------------------------------------------------------------------------


async def at(started: float, when: float) -> None:
    await asyncio.sleep(max(0.0, started + when - time.monotonic()))


def note(tally: Tally, started: float, what: str) -> None:
    tally.faults.append((round(time.monotonic() - started, 1), what))
    print(f"[{time.monotonic() - started:7.1f}s] {what}", flush=True)


async def worker_kill(cluster: Cluster, tally: Tally, started: float, when: float, w: int) -> None:
    await at(started, when)
    cluster.workers[w].kill()
    note(tally, started, f"worker {w} SIGKILL")


async def worker_stop(cluster: Cluster, tally: Tally, started: float, when: float, w: int) -> None:
    await at(started, when)
    cluster.workers[w].signal(signal.SIGSTOP)
    note(tally, started, f"worker {w} SIGSTOP")
    await asyncio.sleep(ACK_WAIT_S * 1.5)
    cluster.workers[w].signal(signal.SIGCONT)
    note(tally, started, f"worker {w} SIGCONT")


async def nats_restart(cluster: Cluster, tally: Tally, started: float, when: float) -> None:
    await at(started, when)
    cluster.nats.kill()
    note(tally, started, "nats-server SIGKILL")
    await asyncio.sleep(5)
    cluster.nats.start()
    note(tally, started, "nats-server started again")


async def s3_outages(cluster: Cluster, tally: Tally, started: float, plan: list[tuple[float, float]]) -> None:
    for when, down_s in plan:
        await at(started, when)
        cluster.s3.stop()
        note(tally, started, f"S3 down for {down_s:.0f}s")
        await asyncio.sleep(down_s)
        await asyncio.to_thread(cluster.s3.start)
        note(tally, started, "S3 back")


async def gateway_kill(cluster: Cluster, tally: Tally, started: float, when: float) -> None:
    await at(started, max(0.0, when - 3))
    upload = asyncio.create_task(slow_upload(cluster, cluster.ports[1], tally))
    await asyncio.sleep(3)  # the slow upload is streaming now
    cluster.gateways[1].kill()
    note(tally, started, "gateway 1 SIGKILL mid-upload")
    await upload


async def supervise(cluster: Cluster, tally: Tally, started: float, stop: asyncio.Event) -> None:
    """What Kubernetes does for a pod whose process exited: start it again (a process that
    starts while NATS or S3 is away may exit; it is started again until it stays)."""
    while not stop.is_set():
        for role in (*cluster.gateways, *cluster.workers):
            if role.proc is not None and role.proc.poll() is not None:
                note(tally, started, f"{role.name} exited ({role.proc.returncode}): started again")
                role.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)


def fault_plan(
    rng: random.Random, window: float, args: argparse.Namespace
) -> list[Callable[..., Awaitable[None]]]:
    """The faults with their seeded times; the two S3 outages never overlap."""
    long_at = rng.uniform(0.15, 0.35) * window
    short_at = long_at + args.long_outage + rng.uniform(15, 40)
    return [
        lambda c, t, s: worker_kill(c, t, s, rng.uniform(0.05, 0.9) * window, 0),
        lambda c, t, s: worker_kill(c, t, s, rng.uniform(0.05, 0.9) * window, 1),
        lambda c, t, s: worker_stop(c, t, s, rng.uniform(0.05, 0.8) * window, 1),
        lambda c, t, s: nats_restart(c, t, s, rng.uniform(0.05, 0.9) * window),
        lambda c, t, s: s3_outages(c, t, s, [(long_at, args.long_outage), (short_at, args.short_outage)]),
        lambda c, t, s: gateway_kill(c, t, s, rng.uniform(0.05, 0.9) * window),
    ]


# --- results ---------------------------------------------------------------------------------


async def job_views(cluster: Cluster, tally: Tally) -> dict[str, dict[str, Any]]:
    views: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cluster.ports[0]}", timeout=30) as c:
        for job_id, tenant in tally.accepted.items():
            try:
                r = await c.get(
                    f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {cluster.keys[tenant]}"}
                )
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                views[job_id] = r.json()
    return views


async def contexts(cluster: Cluster) -> Counter[str]:
    seen: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cluster.ports[0]}", timeout=30) as c:
        for key in cluster.keys.values():
            r = await c.get("/v1/context", headers={"Authorization": f"Bearer {key}"})
            if r.status_code == 200:
                seen.update(d["job_id"] for d in r.json()["documents"])
    return seen


async def orphans(cluster: Cluster, accepted: set[str]) -> tuple[int, int]:
    """(objects under a job id never accepted, incomplete multipart uploads)."""
    from percolate_reading.config import Settings
    from percolate_reading.infra.storage.s3 import S3ObjectStore

    settings = Settings(
        s3_endpoint=cluster.s3.endpoint,
        s3_access_key=cluster.s3.access_key,
        s3_secret_key=cluster.s3.secret_key,
    )
    store = await S3ObjectStore.open(settings)
    try:
        stray = 0
        for bucket in ("percolate-files", "percolate-artifacts"):
            for tenant in cluster.keys:
                for key in await store.list_keys(bucket, f"{tenant}/"):
                    parts = key.split("/")
                    if len(parts) >= 3 and parts[1] not in accepted:
                        stray += 1
        # The store has no listing of incomplete uploads of its own (the sweeper aborts them
        # by age): the bench asks the S3 client directly.
        page = await store._client.list_multipart_uploads(Bucket="percolate-files")
        return stray, len(page.get("Uploads", []))
    finally:
        await store.close()


def latency(views: dict[str, dict[str, Any]], jobs: list[str]) -> tuple[float, float, float]:
    secs = []
    for j in jobs:
        v = views.get(j)
        if v and v.get("finished_at") and v.get("created_at"):
            end = datetime.fromisoformat(v["finished_at"])
            secs.append((end - datetime.fromisoformat(v["created_at"])).total_seconds())
    if not secs:
        return (0.0, 0.0, 0.0)
    secs.sort()
    p95 = secs[min(len(secs) - 1, int(0.95 * len(secs)))]
    return (round(statistics.median(secs), 1), round(p95, 1), round(secs[-1], 1))


# --- the run ---------------------------------------------------------------------------------


def start_cluster(work: Path, args: argparse.Namespace) -> Cluster:
    nats = NatsServer(work / "nats")
    nats.start()
    s3 = SeaweedS3(work / "s3")
    s3.start()
    keys = {f"tenant-{n}": f"pr_chaos-key-{n}-0123456789" for n in range(args.tenants)}
    tenants_file = work / "tenants.json"
    tenants_file.write_text(
        json.dumps(
            [
                {"tenant_id": t, "api_keys": [k], "quotas": {"max_active_jobs": args.jobs}}
                for t, k in keys.items()
            ]
        )
    )
    ports = [free_port(), free_port()]
    common = {"tenants_file": str(tenants_file), "nats_ack_wait": str(ACK_WAIT_S)}
    gateways = [
        Role(
            f"gateway-{i}",
            role_env(nats, s3, work / f"gw{i}", gateway_mode="true", host="127.0.0.1", port=str(p), **common),
            work / f"gateway-{i}.log",
        )
        for i, p in enumerate(ports)
    ]
    workers = [
        Role(
            f"worker-{i}",
            role_env(nats, s3, work / f"w{i}", worker_mode="true", worker_concurrency="2", **common),
            work / f"worker-{i}.log",
        )
        for i in range(2)
    ]
    for role in (*gateways, *workers):
        (work / role.name).mkdir(exist_ok=True)
        role.start()
    return Cluster(nats, s3, gateways, workers, ports, keys)


async def chaos(args: argparse.Namespace, work: Path) -> tuple[dict[str, Any], Tally]:
    cluster = start_cluster(work, args)
    tally = Tally()
    rng = random.Random(args.seed)
    try:
        for port in cluster.ports:
            await until_ready(f"http://127.0.0.1:{port}")
        started = time.monotonic()
        stop = asyncio.Event()
        supervisor = asyncio.create_task(supervise(cluster, tally, started, stop))
        faults = [asyncio.create_task(f(cluster, tally, started)) for f in fault_plan(rng, args.window, args)]
        pause = args.uploaders * args.window / args.jobs
        uploads = asyncio.ensure_future(
            asyncio.gather(*(uploader(cluster, tally, args.jobs, n, pause) for n in range(args.uploaders)))
        )
        # A fault that fails (say S3 cannot start again) ends the run instead of leaving the
        # uploaders waiting for a server that never returns.
        done, _ = await asyncio.wait([uploads, *faults], return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                for other in (uploads, *faults):
                    other.cancel()
                raise RuntimeError("a fault could not be carried out") from task.exception()
        await uploads
        uploaded_s = time.monotonic() - started
        await asyncio.gather(*faults)
        deadline = time.monotonic() + args.drain_timeout
        while True:
            views = await job_views(cluster, tally)
            final = {j for j, v in views.items() if v["status"] in TERMINAL}
            if len(final) == len(tally.accepted) or time.monotonic() > deadline:
                break
            await asyncio.sleep(3)
        total_s = time.monotonic() - started
        stop.set()
        await supervisor
        accepted = set(tally.accepted)
        results = await contexts(cluster)
        stray, uploads = await orphans(cluster, accepted)
        failed = Counter(
            (views[j].get("error") or {}).get("code", "?")
            for j in accepted
            if views.get(j, {}).get("status") == "failed"
        )
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for j, t in tally.accepted.items():
            by_tenant[t].append(j)
        report = {
            "accepted": len(accepted),
            "succeeded": sum(1 for j in accepted if views.get(j, {}).get("status") == "succeeded"),
            "failed": dict(failed),
            "cancelled": sum(1 for j in accepted if views.get(j, {}).get("status") == "cancelled"),
            "lost": len(accepted - final),
            "duplicates": sum(1 for j in accepted if results[j] > 1),
            "redelivered": sum(1 for j in accepted if views.get(j, {}).get("attempts", 1) > 1),
            "orphaned_objects": stray,
            "incomplete_uploads": uploads,
            "latency": {t: latency(views, js) for t, js in sorted(by_tenant.items())},
            "per_tenant": {t: len(js) for t, js in sorted(by_tenant.items())},
            "uploaded_s": round(uploaded_s, 1),
            "total_s": round(total_s, 1),
        }
        return report, tally
    finally:
        for role in (*cluster.gateways, *cluster.workers):
            role.terminate()
        cluster.s3.stop()
        cluster.nats.stop()


def markdown(report: dict[str, Any], tally: Tally, args: argparse.Namespace) -> str:
    failed = ", ".join(f"{k}: {v}" for k, v in sorted(report["failed"].items())) or "none"
    rows = [
        ("accepted (202)", report["accepted"]),
        ("succeeded", report["succeeded"]),
        ("failed, by reason", failed),
        ("cancelled", report["cancelled"]),
        ("**lost**", f"**{report['lost']}**"),
        ("**duplicates** (a result twice in a tenant's context)", f"**{report['duplicates']}**"),
        ("**orphaned objects** (S3 objects of a job id never accepted)", f"**{report['orphaned_objects']}**"),
        ("incomplete multipart uploads left", report["incomplete_uploads"]),
        ("redelivered (attempts > 1)", report["redelivered"]),
    ]
    lat = [
        f"| {t} | {report['per_tenant'][t]} | {p50} | {p95} | {mx} |"
        for t, (p50, p95, mx) in report["latency"].items()
    ]
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(tally.answers.items()))
    faults = "; ".join(f"{t:.0f}s {what}" for t, what in tally.faults)
    return "\n".join(
        [
            "# Chaos: jobs of several tenants through cluster mode while its parts fail",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, 2 CPU cores shared with ~8 other sessions. "
            f"`python bench/chaos.py --jobs {args.jobs} --tenants {args.tenants} --window {args.window} "
            f"--seed {args.seed} --long-outage {args.long_outage} --short-outage {args.short_outage}`.",
            "",
            f"Run size: **{report['accepted']} accepted jobs** from {args.tenants} tenants "
            f"(the issue asks for 1,000{'' if report['accepted'] >= 1000 else SMALL_RUN}). "
            "Real nats-server and SeaweedFS, two gateways and two workers (concurrency 2, "
            f"ack_wait {ACK_WAIT_S:.0f} s, max_deliver 3) as processes; uploads alternate between the "
            "gateways and the tenants.",
            "",
            "| count | value |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in rows),
            "",
            "Latency, created -> finished (s):",
            "",
            "| tenant | jobs | p50 | p95 | max |",
            "|---|---|---|---|---|",
            *lat,
            "",
            f"Faults (seeded times): {faults}.",
            f"Upload answers: {answers}.",
            f"Uploads took {report['uploaded_s']} s; all jobs final after {report['total_s']} s.",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--uploaders", type=int, default=4)
    parser.add_argument(
        "--window", type=float, default=300.0, help="seconds over which uploads and faults spread"
    )
    parser.add_argument("--long-outage", type=float, default=180.0)
    parser.add_argument("--short-outage", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "chaos.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        report, tally = asyncio.run(chaos(args, Path(tmp)))
    text = markdown(report, tally, args)
    print(text)
    if args.out:
        args.out.write_text(text)
    ok = report["lost"] == 0 and report["duplicates"] == 0 and report["orphaned_objects"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
