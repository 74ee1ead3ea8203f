"""Operator at scale: time and memory to bring 200 ParsePools and 1,000 Tenants to Ready, and
the steady-state cost of the drift timer.

The operator runs as its own process (`python -m percolate_operator`, the real entrypoint), so
its RSS is measured alone, against a real nats-server and, side by side, two Kubernetes APIs:
kmock's emulator (tests/operator/cluster.py, served from this process) and a real
kube-apiserver + etcd from KUBEBUILDER_ASSETS (tests/kube/controlplane.py; KEDA's CRDs applied,
no KEDA operator, no kubelet). The real API server is the number that counts.
Every ParsePool is a dedicated pool
(`tenant: bench-N`): shared pools are one per tier, so 200 of them would be 200 claims on 3
subjects. Tenants use shared storage and no dedicated pools, so the counts stay exact.

Kubernetes Events are answered but not stored by the emulator here: kmock scans every stored
object on each request, and thousands of Events would measure kmock, not the operator.

Prints a Markdown table and writes bench/results/operator_bench.md.
Goal: everything Ready within 60 s, operator RSS under 300 MB.

    KUBEBUILDER_ASSETS=$(../shared/envtest/unpack.sh) python bench/operator_bench.py \
        [--pools 200] [--tenants 1000] [--steady 60] [--interval 30] [--backends kmock,real]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import ssl
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

from bench.support import RESULTS, publish  # noqa: E402
from tests.kube.controlplane import ROOT, ControlPlane, assets_dir, keda_crds_dir  # noqa: E402
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


async def _create_all(api: Api, pools: list[dict[str, Any]], tenants: list[dict[str, Any]]) -> None:
    """Every object, 32 requests in flight (as a controller or a parallel `kubectl apply`
    would): the clock measures the operator, not a serial client."""
    gate = asyncio.Semaphore(32)

    async def create(resource: str, body: dict[str, Any]) -> None:
        async with gate:
            await api.create(resource, body)

    await asyncio.gather(*(create(PARSEPOOLS, p) for p in pools), *(create(TENANTS, t) for t in tenants))


class KmockBackend:
    name = "kmock emulator"
    poll_s = 0.25

    def __init__(self, cluster: BenchCluster, url: str, session: aiohttp.ClientSession) -> None:
        self.cluster = cluster
        self.api = Api(url, session)
        self.env = {"PERCOLATE_OPERATOR_K8S_SERVER": url}

    async def create_all(self, pools: list[dict[str, Any]], tenants: list[dict[str, Any]]) -> None:
        await _create_all(self.api, pools, tenants)

    async def ready_counts(self, pools: int, tenants: int) -> tuple[int, int]:
        # Read in memory: a LIST through kmock scans every stored object.
        return _ready_counts(self.cluster, pools, tenants)

    def requests(self) -> int | None:
        return self.cluster.requests

    def events(self) -> int | None:
        return self.cluster.events


class RealBackend:
    name = "real kube-apiserver"
    # A LIST served from the API server's watch cache: cheap enough to poll often (a kubectl
    # process per poll cost more CPU than the operator on a 2-core machine).
    poll_s = 0.5

    def __init__(self, cp: ControlPlane, session: aiohttp.ClientSession) -> None:
        self.cp = cp
        self.api = Api(cp.server, session)
        self.env = {"KUBECONFIG": str(cp.kubeconfig)}

    async def create_all(self, pools: list[dict[str, Any]], tenants: list[dict[str, Any]]) -> None:
        await _create_all(self.api, pools, tenants)

    async def ready_counts(self, pools: int, tenants: int) -> tuple[int, int]:
        ready_pools = sum(map(is_ready, await self.api.list(PARSEPOOLS, NS)))
        ready_tenants = sum(map(is_ready, await self.api.list(TENANTS)))
        return ready_pools, ready_tenants

    def requests(self) -> int | None:
        return None

    def events(self) -> int | None:
        done = self.cp.kubectl_run("get", "events", "-A", "--no-headers", check=False)
        return len(done.stdout.splitlines())


async def run_kmock(args: argparse.Namespace, nats: NatsServer) -> dict[str, Any]:
    cluster = BenchCluster()
    async with cluster, kmock.Server(cluster) as server, aiohttp.ClientSession() as session:
        return await run(args, nats, KmockBackend(cluster, str(server.url).rstrip("/"), session))


async def run_real(args: argparse.Namespace, nats: NatsServer, assets: Path) -> dict[str, Any]:
    cp = ControlPlane(assets, Path(args.workdir) / "kube")
    try:
        await asyncio.to_thread(cp.start)
        crds = keda_crds_dir(assets)
        if crds is None:
            raise SystemExit("no KEDA CRDs (PERCOLATE_KEDA_CRDS or ../shared/envtest/keda-crds)")
        cp.kubectl_run("apply", "--server-side", "-k", str(ROOT / "crds"))
        cp.kubectl_run("apply", "--server-side", "-f", str(crds))
        cp.wait_established("parsepools.percolate.dev", "tenants.percolate.dev", "scaledobjects.keda.sh")
        cp.kubectl_run("create", "namespace", NS)
        # The bench's own client: the admin certificate, as kubectl would use it.
        tls = ssl.create_default_context(cafile=str(cp.pki / "ca.crt"))
        tls.load_cert_chain(str(cp.pki / "admin.crt"), str(cp.pki / "admin.key"))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as session:
            return await run(args, nats, RealBackend(cp, session))
    finally:
        await asyncio.to_thread(cp.stop)


async def run(args: argparse.Namespace, nats: NatsServer, backend: Any) -> dict[str, Any]:
    health_port = free_port()
    env = dict(
        os.environ,
        **backend.env,
        PERCOLATE_OPERATOR_NATS_URL=nats.url,
        PERCOLATE_OPERATOR_TENANT_NAMESPACE=NS,
        PERCOLATE_OPERATOR_DRIFT_INTERVAL_S=str(args.interval),
        PERCOLATE_OPERATOR_DRIFT_INITIAL_DELAY_S=str(args.interval),
        PERCOLATE_OPERATOR_LIVENESS_ENDPOINT=f"http://127.0.0.1:{health_port}/healthz",
    )
    log_path = Path(args.workdir) / f"operator-{backend.name.split()[0]}.log"
    log = open(log_path, "wb")  # noqa: SIM115, ASYNC230 -- closed below
    operator = subprocess.Popen(  # noqa: ASYNC220 -- starting it is quick
        [sys.executable, "-m", "percolate_operator"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    proc = psutil.Process(operator.pid)
    try:
        # Generous: on a loaded machine the imports alone can take a minute.
        await asyncio.to_thread(wait_for_port, health_port, 180.0, operator)
        idle_rss = _rss_mb(proc)
        peak_rss = idle_rss
        start = time.monotonic()
        await backend.create_all(
            [_pool(i) for i in range(args.pools)], [_tenant(i) for i in range(args.tenants)]
        )
        created = time.monotonic() - start
        pools_at = tenants_at = None
        while True:
            peak_rss = max(peak_rss, _rss_mb(proc))
            ready_pools, ready_tenants = await backend.ready_counts(args.pools, args.tenants)
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
            await asyncio.sleep(backend.poll_s)
        all_ready = max(pools_at, tenants_at)
        ready_rss = _rss_mb(proc)

        # Steady state: nothing changes; only the drift timers run.
        await asyncio.sleep(2)  # let the last status patches settle
        cpu0 = sum(proc.cpu_times()[:2])
        req0 = backend.requests()
        steady_start = time.monotonic()
        while time.monotonic() - steady_start < args.steady:
            peak_rss = max(peak_rss, _rss_mb(proc))
            await asyncio.sleep(1)
        steady = time.monotonic() - steady_start
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        req1 = backend.requests()
        requests = None if req0 is None or req1 is None else req1 - req0
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
        "api_requests_per_s": None if requests is None else requests / steady,
        "events": backend.events(),
    }


def _met(ok: bool) -> str:
    return "(met)" if ok else "(MISSED)"


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def render(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    head = "| metric | " + " | ".join(names) + " | goal |"
    rows = [
        ("objects created (API calls from the bench)", "created_s", ".1f", " s", ""),
        (f"all {args.pools} ParsePools Ready", "pools_ready_s", ".1f", " s", ""),
        (f"all {args.tenants} Tenants Ready", "tenants_ready_s", ".1f", " s", ""),
        ("**everything Ready**", "all_ready_s", ".1f", " s", "<= 60 s"),
        ("operator RSS idle", "idle_rss", ".0f", " MB", ""),
        ("operator RSS all Ready", "ready_rss", ".0f", " MB", ""),
        ("operator RSS steady", "steady_rss", ".0f", " MB", ""),
        ("**operator peak RSS**", "peak_rss", ".0f", " MB", "< 300 MB"),
        ("steady state: operator CPU (% of one core)", "cpu_pct", ".1f", " %", ""),
        ("steady state: CPU per object per drift check", "cpu_ms_per_object_check", ".2f", " ms", ""),
        ("steady state: Kubernetes API requests", "api_requests_per_s", ".0f", " /s", ""),
        ("Kubernetes Events posted (whole run)", "events", "d", "", ""),
    ]
    lines = [
        "# Operator benchmark",
        "",
        f"{args.pools} ParsePools (dedicated, small tier) and {args.tenants} Tenants created at once "
        "(32 requests in flight; Ready counted by LISTs from the API server's cache); the operator "
        "(`python -m percolate_operator`) in its own process, real nats-server, against kmock's "
        "emulator and a real kube-apiserver v1.28 + etcd 3.4 (KEDA CRDs, no KEDA operator, no kubelet), "
        f"side by side in one run. Drift timer every {args.interval:g} s on every object. Machine: "
        f"{platform.machine()}, {os.cpu_count()} CPUs shared with other work (load average at start "
        f"{os.getloadavg()[0]:.0f}), Python {platform.python_version()}.",
        "",
        head,
        "| --- | " + " | ".join("---" for _ in names) + " | --- |",
    ]
    for label, key, spec, unit, goal in rows:
        cells = [_fmt(results[n][key], spec, unit) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {goal} |")
    real = results.get(RealBackend.name)
    if real is not None:
        lines += [
            "",
            f"Goals on the real API server: everything Ready {real['all_ready_s']:.1f} s "
            f"{_met(real['all_ready_s'] <= 60)}, peak RSS {real['peak_rss']:.0f} MB "
            f"{_met(real['peak_rss'] < 300)}.",
        ]
    lines += [
        "",
        "Each drift check of a ParsePool reads its Deployment and ScaledObject (2 API reads) and its "
        "consumer (NATS); a Tenant's reads its Secret (1 API read) and registry entry. Status is "
        "patched only when something changed, so an idle cluster sees reads only. The real API server "
        "does admission, defaulting and etcd writes for every object and status patch, which the "
        "emulator does not; its request rate is not counted here (n/a).",
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
    parser.add_argument("--backends", default="kmock,real", help="comma-separated: kmock, real")
    parser.add_argument("--out", type=Path, default=RESULTS / "operator_bench.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as workdir:
        args.workdir = workdir
        results: dict[str, dict[str, Any]] = {}
        for backend in args.backends.split(","):
            # A fresh nats-server per backend: the same starting point for both.
            nats = NatsServer(Path(workdir) / f"nats-{backend}")
            nats.start()
            try:
                if backend == "kmock":
                    results[KmockBackend.name] = asyncio.run(run_kmock(args, nats))
                elif backend == "real":
                    assets = assets_dir()
                    if assets is None:
                        raise SystemExit("real: set KUBEBUILDER_ASSETS (../shared/envtest/unpack.sh)")
                    results[RealBackend.name] = asyncio.run(run_real(args, nats, assets))
                else:
                    raise SystemExit(f"unknown backend {backend!r}")
            finally:
                nats.stop()
    report = render(args, results)
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
