"""The JetStream topology is defined once: gateway, worker and operator, started in every
order against one real nats-server, leave identical streams and buckets, and only the
operator ever rewrites one.

Each role runs its real start-up path (the gateway's `open_deps`, the worker's
`start_worker`, the operator's `JetStreamAdmin`); a plain subscriber counts the JetStream API
requests that create or update a stream (key-value buckets are streams too).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from percolate_operator import builders
from percolate_operator.clients.jetstream import JetStreamAdmin
from percolate_operator.settings import OperatorSettings
from percolate_reading.config import Settings
from percolate_reading.contract import topology
from percolate_reading.contract.topology import TopologyLimits
from percolate_reading.gateway.app import open_deps
from percolate_reading.worker.main import start_worker
from tests.harness.settings import settings_for
from tests.servers import NatsServer

pytestmark = pytest.mark.integration

ROLES = ("gateway", "worker", "operator")
STREAMS = (
    *(s.name for s in topology.streams(TopologyLimits())),
    *(topology.bucket_stream_name(b.bucket) for b in topology.buckets(TopologyLimits())),
)
# What differs between two identical streams made at different times.
_VOLATILE = ("created",)


class ApiWatch:
    """Counts STREAM.CREATE and STREAM.UPDATE requests by stream, as the server receives them."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    async def on_request(self, msg: Msg) -> None:
        # $JS.API.STREAM.<CREATE|UPDATE>.<stream>
        _, _, _, verb, stream = msg.subject.split(".", 4)
        self.calls[(verb, stream)] += 1

    def of(self, verb: str) -> dict[str, int]:
        return {stream: n for (v, stream), n in self.calls.items() if v == verb}


@pytest.fixture
async def watcher(fresh_nats_server: NatsServer) -> AsyncIterator[tuple[NATS, ApiWatch]]:
    nc = await nats.connect(fresh_nats_server.url)
    watch = ApiWatch()
    await nc.subscribe("$JS.API.STREAM.CREATE.*", cb=watch.on_request)
    await nc.subscribe("$JS.API.STREAM.UPDATE.*", cb=watch.on_request)
    await nc.flush()
    yield nc, watch
    await nc.close()


async def start_gateway(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        await open_deps(settings, stack)


async def start_worker_once(settings: Settings) -> None:
    worker = await start_worker(settings)
    await worker.drain(0)


def start_operator(operator_settings: OperatorSettings) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        admin = JetStreamAdmin(operator_settings)
        try:
            # What a ParsePool and a Tenant reconcile do first.
            await admin.ensure_topology(builders.topology_limits(operator_settings))
            await admin.get_tenant("nobody")
        finally:
            await admin.close()

    return run


async def configs(nc: NATS) -> dict[str, dict[str, Any]]:
    js = nc.jetstream()
    out = {}
    for name in STREAMS:
        config = (await js.stream_info(name)).config.as_dict()
        out[name] = {k: v for k, v in config.items() if k not in _VOLATILE}
    return out


async def reset(nc: NATS) -> None:
    js = nc.jetstream()
    for name in STREAMS:
        with suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(name)


async def run_orders(
    nc: NATS,
    watch: ApiWatch,
    steps: dict[str, Callable[[], Awaitable[None]]],
) -> dict[tuple[str, ...], tuple[dict[str, Any], dict[str, dict[str, int]]]]:
    """For every order of the roles: fresh topology, start them in that order; the final
    configs and, per role, the stream updates it caused."""
    results = {}
    for order in itertools.permutations(ROLES):
        await reset(nc)
        await nc.flush()
        watch.calls.clear()
        updates_by_role: dict[str, dict[str, int]] = {}
        for role in order:
            before = dict(watch.of("UPDATE"))
            await steps[role]()
            await nc.flush()
            after = watch.of("UPDATE")
            updates_by_role[role] = {
                s: n - before.get(s, 0) for s, n in after.items() if n != before.get(s, 0)
            }
        creates = watch.of("CREATE")
        assert all(n == 1 for n in creates.values()), (order, creates)
        assert sorted(creates) == sorted(STREAMS), (order, creates)
        results[order] = (await configs(nc), updates_by_role)
    return results


async def every_order(
    nc: NATS, watch: ApiWatch, settings: Settings, operator_settings: OperatorSettings
) -> tuple[dict[tuple[str, ...], tuple[dict[str, Any], dict[str, dict[str, int]]]], dict[str, Any]]:
    """`run_orders` with the three roles; the topology every order left, checked identical."""
    steps = {
        "gateway": lambda: start_gateway(settings),
        "worker": lambda: start_worker_once(settings),
        "operator": start_operator(operator_settings),
    }
    results = await run_orders(nc, watch, steps)
    snapshots = [snapshot for snapshot, _ in results.values()]
    assert all(s == snapshots[0] for s in snapshots[1:])
    return results, snapshots[0]


async def test_every_order_gives_the_same_topology_and_no_rewrites(
    watcher: tuple[NATS, ApiWatch], fresh_nats_server: NatsServer, tmp_path: Path
) -> None:
    nc, watch = watcher
    settings = settings_for(fresh_nats_server, tmp_path / "data")  # local object store
    operator_settings = OperatorSettings(nats_url=fresh_nats_server.url)
    assert builders.topology_limits(operator_settings) == TopologyLimits.from_settings(settings)
    results, snapshot = await every_order(nc, watch, settings, operator_settings)
    for order, (_, updates) in results.items():
        assert updates == {role: {} for role in ROLES}, order
    tenants = snapshot[topology.bucket_stream_name("TENANTS")]
    assert tenants["max_msgs_per_subject"] == topology.TENANTS_HISTORY
    dlq = snapshot["JOBS_DLQ"]
    assert dlq["max_msgs"] == -1


async def test_the_operators_limits_win_whoever_starts_first(
    watcher: tuple[NATS, ApiWatch], fresh_nats_server: NatsServer, tmp_path: Path
) -> None:
    """The drift the issue measured: an operator with its own limits, a gateway and workers
    with the defaults. In every order the operator's limits end up applied, and a gateway or
    worker that starts after the operator changes nothing."""
    nc, watch = watcher
    settings = settings_for(fresh_nats_server, tmp_path / "data")  # local object store
    operator_settings = OperatorSettings(
        nats_url=fresh_nats_server.url,
        stream_max_msgs=5000,
        stream_max_age_s=3600.0,
        dlq_max_age_s=7200.0,
        stream_duplicate_window_s=60.0,
    )
    wanted = builders.topology_limits(operator_settings)
    assert wanted != TopologyLimits.from_settings(settings)
    results, snapshot = await every_order(nc, watch, settings, operator_settings)
    final = snapshot
    assert final["JOBS"]["max_msgs"] == 5000
    assert final["JOBS"]["max_age"] == 3600 * 10**9
    assert final["JOBS"]["duplicate_window"] == 60 * 10**9
    assert final["JOBS_DLQ"]["max_age"] == 7200 * 10**9
    assert final["JOBS_STRANDED"]["max_age"] == 3600 * 10**9
    assert final[topology.bucket_stream_name("TENANTS")]["max_msgs_per_subject"] == topology.TENANTS_HISTORY
    for order, (_, updates) in results.items():
        assert updates["gateway"] == {}, order
        assert updates["worker"] == {}, order
        first_service = min(order.index("gateway"), order.index("worker"))
        if order.index("operator") < first_service:
            assert updates["operator"] == {}, order  # it created them: nothing to correct
        else:
            # It corrects the four streams the defaults made, once each; buckets agree.
            assert updates["operator"] == {"JOBS": 1, "JOBS_DLQ": 1, "JOBS_STRANDED": 1, "WEBHOOKS": 1}, order
