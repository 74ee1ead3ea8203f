"""The pull loop's safety nets: a crashed loop is logged and restarted; a failed ack, nak or
term is logged (JetStream redelivers the message), never dropped in silence."""

from __future__ import annotations

import asyncio
import logging

import nats
import pytest

from percolate_reading.contract.subjects import STREAM_NAME
from percolate_reading.contract.topology import ConsumerLimits, TopologyLimits, pool_consumer
from percolate_reading.infra.queue.topology import ensure_consumer, ensure_topology
from percolate_reading.worker import runner
from percolate_reading.worker.runner import acknowledge, keep_running
from tests.servers import NatsServer


async def test_a_crashed_loop_is_logged_and_restarted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "LOOP_RESTART_S", 0.01)
    turns: list[int] = []
    crashes: list[int] = []

    async def loop() -> None:
        turns.append(len(turns))
        if len(turns) < 3:
            raise RuntimeError(f"bad turn {len(turns)}")

    caplog.set_level(logging.ERROR, logger=runner.__name__)
    await asyncio.wait_for(keep_running(loop, "pull loop of test", lambda: crashes.append(1)), 5)
    assert turns == [0, 1, 2]  # ran again after each crash, then returned normally
    assert len(crashes) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["pull loop of test crashed; restarting in 0.0s"] * 2
    assert "bad turn 1" in (caplog.records[0].exc_text or "")


async def test_a_cancelled_loop_stops() -> None:
    started = asyncio.Event()

    async def loop() -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(keep_running(loop, "pull loop"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.integration
async def test_a_failed_nak_is_logged(
    fresh_nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await nats.connect(fresh_nats_server.url)
    js = nc.jetstream()
    await ensure_topology(js, TopologyLimits(), update=False)
    await ensure_consumer(js, STREAM_NAME, pool_consumer("jobs.parse.small", "test-pool", ConsumerLimits()))
    await js.publish("jobs.parse.small", b"{}")
    sub = await js.pull_subscribe_bind("test-pool", stream=STREAM_NAME)
    (msg,) = await sub.fetch(1, timeout=5)
    await nc.close()  # the connection is gone: the nak cannot be sent
    caplog.set_level(logging.WARNING, logger=runner.__name__)
    await acknowledge("nak", msg.nak(delay=0), msg)
    # Only the runner's records: what else is captured depends on the logging earlier tests set up.
    (record,) = [r for r in caplog.records if r.name == runner.__name__]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("nak of jobs.parse.small (stream seq 1) failed")
