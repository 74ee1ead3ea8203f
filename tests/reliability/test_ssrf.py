"""Webhook SSRF, end to end with real sockets: a redirect from an allowed receiver to a
reachable private server is not followed, and the worker refuses private callbacks while the
job itself still succeeds. (Address classification is unit-tested in test_webhooks.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from percolate_reading.config import load_settings
from percolate_reading.contract.jobs import JobStatus
from percolate_reading.infra.webhooks import WebhookSender
from tests.harness.documents import make_pdf
from tests.harness.webhooks import WebhookReceiver
from tests.service.worker.test_worker import SECRET, Env, consumer_idle, webhooks_settled


async def private_receiver() -> tuple[WebhookReceiver, asyncio.Server, str]:
    """A live receiver on 127.0.0.2: reachable from here, but not on the allow-list
    (which names 127.0.0.1 only)."""
    receiver = WebhookReceiver()
    server = await asyncio.start_server(receiver._handle, "127.0.0.2", 0)
    port = server.sockets[0].getsockname()[1]
    return receiver, server, f"http://127.0.0.2:{port}/internal"


async def close(server: asyncio.Server) -> None:
    server.close()
    await server.wait_closed()


async def test_redirect_to_a_reachable_private_server_is_not_followed(tmp_path: Path) -> None:
    inner, inner_server, inner_url = await private_receiver()
    first_hop = WebhookReceiver(statuses=[302, 307, 308], redirect_to=inner_url)
    await first_hop.start()
    sender = WebhookSender(
        load_settings(
            data_dir=tmp_path, webhook_allow_hosts="127.0.0.1", webhook_backoff_s=0.01, webhook_max_attempts=3
        )
    )
    try:
        result = await sender.send(first_hop.url, SECRET, "msg_redirect", {"type": "job.succeeded"})
        # The private server itself is refused when named directly.
        direct = await sender.send(inner_url, SECRET, "msg_direct", {"type": "job.succeeded"})
    finally:
        await sender.close()
        await first_hop.stop()
        await close(inner_server)
    assert not result.delivered
    assert result.statuses == [302, 307, 308]  # each retry went to the first hop again
    assert [r.path for r in first_hop.received] == ["/hook"] * 3
    assert direct.statuses == ["refused"]
    assert "loopback" in (direct.error or "")
    assert inner.received == []  # nothing ever reached the private server


@pytest.mark.integration
async def test_worker_refuses_private_callbacks_and_still_finishes_the_job(env: Env) -> None:
    inner, inner_server, inner_url = await private_receiver()
    # No allow-list (production): every loopback spelling is refused, not just 127.0.0.2.
    worker = await env.start(webhook_allow_hosts="")
    try:
        targets = [
            inner_url,
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:9/x",
            "http://10.0.0.1/x",
            "http://0x7f000001/x",
            "http://2130706433/x",
            "http://localhost/x",
        ]
        jobs = [
            await env.submit(make_pdf([f"callback {i}"]), callback_url=url) for i, url in enumerate(targets)
        ]
        for job_id in jobs:
            record = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED)
            assert record.status is JobStatus.SUCCEEDED  # a bad callback never fails the parse
        await consumer_idle(env, env.settings.nats_queue_group)
        await webhooks_settled(env)
        assert b'webhook_deliveries_total{outcome="refused"} 7.0' in worker.metrics.render()
        assert inner.received == []
    finally:
        await worker.drain()
        await close(inner_server)
