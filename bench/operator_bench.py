"""Operator at scale: time and memory to bring 200 ParsePools and 1,000 Tenants to Ready, and
the steady-state cost of the drift timer.

The operator runs as its own process (`python -m percolate_operator`, the real entrypoint), so
its RSS is measured alone. It talks to kmock's Kubernetes emulator (tests/operator/cluster.py,
served from this process) and to a real nats-server. Every ParsePool is a dedicated pool
(`tenant: bench-N`): shared pools are one per tier, so 200 of them would be 200 claims on 3
subjects. Tenants use shared storage and no dedicated pools, so the counts stay exact.

Kubernetes Events are answered but not stored by the emulator here: kmock scans every stored
object on each request, and thousands of Events would measure kmock, not the operator.

Prints a Markdown table and writes bench/results/operator_bench.md.
Goal: everything Ready within 60 s, operator RSS under 300 MB.

    python bench/operator_bench.py [--pools 200] [--tenants 1000] [--steady 60] [--interval 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import attrs
import kmock
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.operator.cluster import PARSEPOOLS, TENANTS, Api, Cluster, is_ready  # noqa: E402
from tests.servers import NatsServer, free_port, wait_for_port  # noqa: E402

NS = "bench"


@attrs.define(kw_only=True)
class BenchCluster(Cluster):
    requests: int = 0
    events: int = 0

    async def _handle(self, request: kmock.Request) -> Any:
        self.requests += 1
        if request.resource is not None and request.resource.plural == "events":
            if request.action == kmock.action.CREATE:
                self.events += 1
            return aiohttp.web.json_response(request.data or {}, status=201)
        return await super()._handle(request)


def _pool(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "percolate.dev/v1alpha1",
        "kind": "ParsePool",
        "metadata": {"name": f"bench-{i}-small", "namespace": NS},
        "spec": {"tier": "small", "tenant": f"bench-{i}", "replicas": {"min": 0, "max": 4}},
    }


def _tenant(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "percolate.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": f"tenant-{i}"},
        "spec": {"displayName": f"Tenant {i}", "allowedTiers": ["small", "large"]},
    }


def _ready_counts(cluster: Cluster, pools: int, tenants: int) -> tuple[int, int]:
    ready_pools = sum(is_ready(cluster.read(PARSEPOOLS, NS, f"bench-{i}-small")) for i in range(pools))
    ready_tenants = sum(is_ready(cluster.read(TENANTS, None, f"tenant-{i}")) for i in range(tenants))
    return ready_pools, ready_tenants


def _rss_mb(proc: psutil.Process) -> float:
    return proc.memory_info().rss / 1024 / 1024


async def run(args: argparse.Namespace, nats: NatsServer) -> dict[str, Any]:
    cluster = BenchCluster()
    async with cluster, kmock.Server(cluster) as server:
        url = str(server.url).rstrip("/")
        health_port = free_port()
        env = dict(
            os.environ,
            PERCOLATE_OPERATOR_K8S_SERVER=url,
            PERCOLATE_OPERATOR_NATS_URL=nats.url,
            PERCOLATE_OPERATOR_TENANT_NAMESPACE=NS,
            PERCOLATE_OPERATOR_DRIFT_INTERVAL_S=str(args.interval),
            PERCOLATE_OPERATOR_DRIFT_INITIAL_DELAY_S=str(args.interval),
            PERCOLATE_OPERATOR_LIVENESS_ENDPOINT=f"http://127.0.0.1:{health_port}/healthz",
        )
        log_path = args.log or Path(args.workdir) / "operator.log"
        log = open(log_path, "wb")  # noqa: SIM115, ASYNC230 -- closed below
        operator = subprocess.Popen(  # noqa: ASYNC220 -- starting it is quick
            [sys.executable, "-m", "percolate_operator"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        proc = psutil.Process(operator.pid)
        try:
            await asyncio.to_thread(wait_for_port, health_port, 60.0, operator)
            idle_rss = _rss_mb(proc)
            peak_rss = idle_rss
            async with aiohttp.ClientSession() as session:
                api = Api(url, session)
                gate = asyncio.Semaphore(32)

                async def create(resource: str, body: dict[str, Any]) -> None:
                    async with gate:
                        await api.create(resource, body)

                start = time.monotonic()
                await asyncio.gather(
                    *(create(PARSEPOOLS, _pool(i)) for i in range(args.pools)),
                    *(create(TENANTS, _tenant(i)) for i in range(args.tenants)),
                )
                created = time.monotonic() - start
                pools_at = tenants_at = None
                while True:
                    peak_rss = max(peak_rss, _rss_mb(proc))
                    ready_pools, ready_tenants = _ready_counts(cluster, args.pools, args.tenants)
                    now = time.monotonic() - start
                    if pools_at is None and ready_pools == args.pools:
                        pools_at = now
                    if tenants_at is None and ready_tenants == args.tenants:
                        tenants_at = now
                    if pools_at is not None and tenants_at is not None:
                        break
                    if now > args.limit:
                        raise SystemExit(
                            f"not Ready after {args.limit}s: {ready_pools} pools, {ready_tenants} tenants"
                        )
                    if operator.poll() is not None:
                        raise SystemExit(f"operator exited with {operator.returncode}; see operator.log")
                    await asyncio.sleep(0.25)
                all_ready = max(pools_at, tenants_at)
                ready_rss = _rss_mb(proc)

            # Steady state: nothing changes; only the drift timers run.
            await asyncio.sleep(2)  # let the last status patches settle
            cpu0 = sum(proc.cpu_times()[:2])
            req0 = cluster.requests
            steady_start = time.monotonic()
            while time.monotonic() - steady_start < args.steady:
                peak_rss = max(peak_rss, _rss_mb(proc))
                await asyncio.sleep(1)
            steady = time.monotonic() - steady_start
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            requests = cluster.requests - req0
            steady_rss = _rss_mb(proc)
        finally:
            operator.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(operator.wait, 30)
            except subprocess.TimeoutExpired:
                operator.kill()
                await asyncio.to_thread(operator.wait)
            log.close()
    objects = args.pools + args.tenants
    sweeps = steady / args.interval
    return {
        "created_s": created,
        "pools_ready_s": pools_at,
        "tenants_ready_s": tenants_at,
        "all_ready_s": all_ready,
        "idle_rss": idle_rss,
        "ready_rss": ready_rss,
        "steady_rss": steady_rss,
        "peak_rss": peak_rss,
        "steady_s": steady,
        "steady_cpu_s": cpu,
        "cpu_pct": 100 * cpu / steady,
        "cpu_ms_per_object_check": 1000 * cpu / (sweeps * objects) if sweeps else float("nan"),
        "api_requests_per_s": requests / steady,
        "events": cluster.events,
    }


def _met(ok: bool) -> str:
    return "(met)" if ok else "(MISSED)"


def render(args: argparse.Namespace, r: dict[str, Any]) -> str:
    ok_time = r["all_ready_s"] <= 60
    ok_rss = r["peak_rss"] < 300
    lines = [
        "# Operator benchmark",
        "",
        f"{args.pools} ParsePools (dedicated, small tier) and {args.tenants} Tenants applied at once to "
        "kmock's Kubernetes emulator, operator (`python -m percolate_operator`) in its own process, "
        "real nats-server. "
        f"Drift timer every {args.interval:g} s on every object. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs (shared), Python {platform.python_version()}.",
        "",
        "| metric | value | goal |",
        "| --- | --- | --- |",
        f"| objects created (API calls from the bench) | {r['created_s']:.1f} s | |",
        f"| all {args.pools} ParsePools Ready | {r['pools_ready_s']:.1f} s | |",
        f"| all {args.tenants} Tenants Ready | {r['tenants_ready_s']:.1f} s | |",
        f"| **everything Ready** | **{r['all_ready_s']:.1f} s** | <= 60 s {_met(ok_time)} |",
        f"| operator RSS idle / all Ready / steady | {r['idle_rss']:.0f} / {r['ready_rss']:.0f} / "
        f"{r['steady_rss']:.0f} MB | |",
        f"| **operator peak RSS** | **{r['peak_rss']:.0f} MB** | < 300 MB {_met(ok_rss)} |",
        f"| steady state: operator CPU | {r['cpu_pct']:.1f} % of one core over {r['steady_s']:.0f} s | |",
        f"| steady state: CPU per object per drift check | {r['cpu_ms_per_object_check']:.2f} ms | |",
        f"| steady state: Kubernetes API requests | {r['api_requests_per_s']:.0f} /s | |",
        f"| Kubernetes Events posted (whole run) | {r['events']} | |",
        "",
        "Each drift check of a ParsePool reads its Deployment and ScaledObject (2 API reads) and its "
        "consumer (NATS); a Tenant's reads its Secret (1 API read) and registry entry. Status is "
        "patched only when something changed, so an idle cluster sees reads only. At the default "
        "interval (60 s) the steady-state cost is the per-object figure times objects per minute.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=200)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of steady state measured")
    parser.add_argument("--interval", type=float, default=30.0, help="drift timer interval (s)")
    parser.add_argument("--limit", type=float, default=600.0, help="give up after this many seconds")
    parser.add_argument("--log", type=Path, default=None, help="keep the operator's log here")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "operator_bench.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as workdir:
        args.workdir = workdir
        nats = NatsServer(Path(workdir) / "nats")
        nats.start()
        try:
            result = asyncio.run(run(args, nats))
        finally:
            nats.stop()
    report = render(args, result)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
