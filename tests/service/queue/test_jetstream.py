"""JetStream streams, consumers and publishing against a real nats-server."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, DiscardPolicy, RetentionPolicy, StorageType

from percolate_reading.config import load_settings
from percolate_reading.contract.jobs import JobMessage
from percolate_reading.contract.subjects import (
    DLQ_STREAM_NAME,
    consumer_name,
    dead_letter_subject,
    job_subject,
)
from percolate_reading.contract.tenancy import TENANTS_KV_BUCKET
from percolate_reading.contract.topology import (
    TENANTS_HISTORY,
    ConsumerLimits,
    TopologyLimits,
    bucket_stream_name,
    pool_consumer,
    tenants_bucket,
)
from percolate_reading.errors import QueueError
from percolate_reading.infra.queue.jetstream import (
    DLQ_REASON_HEADER,
    connect,
    publish_dead_letter,
    publish_job,
)
from percolate_reading.infra.queue.topology import ensure_pool_consumers, ensure_topology
from tests.harness.jobs import job_message
from tests.harness.settings import settings_for
from tests.servers import NatsServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(fresh_nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[NATS]:
    conn = await connect(settings_for(fresh_nats_server, tmp_path))
    yield conn
    await conn.close()


async def test_streams_match_settings(nc: NATS, fresh_nats_server: NatsServer, tmp_path: Path) -> None:
    settings = settings_for(fresh_nats_server, tmp_path, nats_max_msgs=1234, nats_duplicate_window_s=60)
    js = nc.jetstream()
    await ensure_topology(js, TopologyLimits.from_settings(settings), update=False)
    await ensure_topology(js, TopologyLimits.from_settings(settings), update=False)  # idempotent
    cfg = (await js.stream_info("JOBS")).config
    assert cfg.subjects == ["jobs.>"]
    assert cfg.retention == RetentionPolicy.WORK_QUEUE
    assert cfg.storage == StorageType.FILE
    assert cfg.discard == DiscardPolicy.NEW
    assert cfg.max_msgs == 1234
    assert cfg.max_age == pytest.approx(7 * 24 * 3600)
    assert cfg.duplicate_window == pytest.approx(60)
    assert cfg.num_replicas == 1
    dlq = (await js.stream_info(DLQ_STREAM_NAME)).config
    assert dlq.subjects == ["dlq.>"]
    assert dlq.retention == RetentionPolicy.LIMITS

    # A gateway or worker with other limits leaves the live stream alone; the operator
    # (update=True) brings it to its own.
    await ensure_topology(js, TopologyLimits(max_msgs=99), update=False)
    assert (await js.stream_info("JOBS")).config.max_msgs == 1234
    await ensure_topology(js, TopologyLimits(max_msgs=99), update=True)
    assert (await js.stream_info("JOBS")).config.max_msgs == 99


async def test_consumer_config_and_update(nc: NATS, fresh_nats_server: NatsServer, tmp_path: Path) -> None:
    settings = settings_for(fresh_nats_server, tmp_path, nats_ack_wait=7, nats_max_deliver=4)
    js = nc.jetstream()
    await ensure_topology(js, TopologyLimits.from_settings(settings), update=False)
    subject, durable = job_subject("small"), consumer_name("small")
    await ensure_pool_consumers(js, subject, durable, ConsumerLimits.from_settings(settings))
    info = await js.consumer_info("JOBS", durable)
    assert info.config.ack_policy == AckPolicy.EXPLICIT
    assert info.config.ack_wait == pytest.approx(7)
    assert info.config.max_deliver == 4
    assert info.config.max_ack_pending == 100
    assert info.config.filter_subject == "jobs.parse.small"
    await ensure_pool_consumers(js, subject, durable, ConsumerLimits(ack_wait_s=9))
    assert (await js.consumer_info("JOBS", durable)).config.ack_wait == pytest.approx(9)
    # A dedicated tenant's consumer does not overlap the shared one (workqueue would refuse).
    await ensure_pool_consumers(
        js,
        job_subject("small", "acme"),
        consumer_name("small", "acme"),
        ConsumerLimits.from_settings(settings),
    )


async def test_consumer_keeps_the_operators_description_and_metadata(
    nc: NATS, fresh_nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = settings_for(fresh_nats_server, tmp_path, nats_ack_wait=7)
    js = nc.jetstream()
    await ensure_topology(js, TopologyLimits.from_settings(settings), update=False)
    subject, durable = job_subject("large"), consumer_name("large")
    # As the operator makes it: same settings, plus its own description and owner metadata.
    operator_made = dataclasses.replace(
        pool_consumer(subject, durable, ConsumerLimits.from_settings(settings)),
        description="ParsePool percolate/large",
        metadata={"percolate.dev/owner": "percolate/large"},
    )
    await js.add_consumer("JOBS", operator_made)
    await ensure_pool_consumers(
        js, subject, durable, ConsumerLimits.from_settings(settings)
    )  # a worker starting: nothing to change
    unchanged = (await js.consumer_info("JOBS", durable)).config
    assert unchanged.description == "ParsePool percolate/large"
    assert unchanged.metadata is not None
    assert unchanged.metadata.get("percolate.dev/owner") == "percolate/large"
    # A real difference is applied, still without dropping what the operator wrote.
    await ensure_pool_consumers(js, subject, durable, ConsumerLimits(ack_wait_s=11))
    updated = (await js.consumer_info("JOBS", durable)).config
    assert updated.ack_wait == pytest.approx(11)
    assert updated.description == "ParsePool percolate/large"
    assert updated.metadata is not None
    assert updated.metadata.get("percolate.dev/owner") == "percolate/large"


async def test_duplicate_publish_is_deduplicated(
    nc: NATS, fresh_nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = settings_for(fresh_nats_server, tmp_path)
    js = nc.jetstream()
    await ensure_topology(js, TopologyLimits.from_settings(settings), update=False)
    subject = job_subject("small")
    seq1 = await publish_job(js, job_message("job-1"), subject)
    seq2 = await publish_job(js, job_message("job-1"), subject)
    seq3 = await publish_job(js, job_message("job-2"), subject)
    assert seq1 == seq2
    assert seq3 == seq1 + 1
    assert (await js.stream_info("JOBS")).state.messages == 2
    await ensure_pool_consumers(js, subject, consumer_name("small"), ConsumerLimits.from_settings(settings))
    sub = await js.pull_subscribe_bind(consumer_name("small"), stream="JOBS")
    msgs = await sub.fetch(10, timeout=1)
    assert sorted(JobMessage.model_validate_json(m.data).job_id for m in msgs) == ["job-1", "job-2"]
    assert msgs[0].headers is not None
    assert msgs[0].headers["Nats-Msg-Id"] in ("job-1", "job-2")
    for m in msgs:
        await m.ack()
    await sub.unsubscribe()


async def test_full_stream_refuses_new_jobs(nc: NATS, fresh_nats_server: NatsServer, tmp_path: Path) -> None:
    settings = settings_for(fresh_nats_server, tmp_path, nats_max_msgs=2)
    js = nc.jetstream()
    await ensure_topology(js, TopologyLimits.from_settings(settings), update=False)
    subject = job_subject("large")
    await publish_job(js, job_message("a"), subject)
    await publish_job(js, job_message("b"), subject)
    with pytest.raises(QueueError, match="full"):
        await publish_job(js, job_message("c"), subject)
    # The oldest unprocessed job was kept (discard new, not old).
    assert (await js.stream_info("JOBS")).state.first_seq == 1


async def test_unrouted_subject_and_no_connection(
    nc: NATS, fresh_nats_server: NatsServer, tmp_path: Path
) -> None:
    js = nc.jetstream()
    # No stream yet: nobody answers.
    with pytest.raises(QueueError):
        await publish_job(js, job_message("x"), job_subject("small"), ack_timeout_s=1)
    await nc.close()
    with pytest.raises(QueueError, match="not connected"):
        await publish_job(js, job_message("x"), job_subject("small"))
    with pytest.raises(QueueError):
        await connect(
            load_settings(nats_url=f"nats://127.0.0.1:{free_port()}", data_dir=tmp_path), connect_wait_s=2
        )


async def test_dead_letter_copy(nc: NATS, fresh_nats_server: NatsServer, tmp_path: Path) -> None:
    js = nc.jetstream()
    await ensure_topology(
        js, TopologyLimits.from_settings(settings_for(fresh_nats_server, tmp_path)), update=False
    )
    subject = job_subject("small", "acme")
    seq = await publish_dead_letter(
        js,
        subject,
        dead_letter_subject(subject),
        job_message("p").model_dump_json().encode(),
        job_id="p",
        code="crashed",
        reason="parser died\nwith signal 9",
        deliveries=3,
    )
    stored = await js.get_msg(DLQ_STREAM_NAME, seq)
    assert stored.subject == "dlq.parse.small.acme"
    assert stored.headers is not None
    assert stored.headers[DLQ_REASON_HEADER] == "parser died with signal 9"


async def test_ensure_topology_again_changes_nothing(
    nc: NATS, fresh_nats_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Every worker and gateway start calls this: an unchanged config must not rewrite streams.
    settings = settings_for(fresh_nats_server, tmp_path)
    js = nc.jetstream()
    await ensure_topology(js, TopologyLimits.from_settings(settings), update=False)
    caplog.set_level("INFO", logger="percolate_reading.infra.queue.topology")
    caplog.clear()
    await ensure_topology(js, TopologyLimits.from_settings(settings), update=False)
    assert [r.getMessage() for r in caplog.records if "stream" in r.getMessage()] == []
    assert (await js.stream_info(DLQ_STREAM_NAME)).config.duplicate_window == pytest.approx(
        settings.nats_duplicate_window_s
    )


async def test_only_the_operator_brings_an_old_bucket_to_the_contract(
    nc: NATS, fresh_nats_server: NatsServer, tmp_path: Path
) -> None:
    """TENANTS as a gateway of an older release made it (history 1, no description): a
    gateway or worker leaves it; the operator's update=True brings it to the contract."""
    js = nc.jetstream()
    kv = await js.create_key_value(bucket=TENANTS_KV_BUCKET, history=1)
    await kv.put("acme", b"{}")
    await ensure_topology(js, TopologyLimits(), update=False)
    stream = bucket_stream_name(TENANTS_KV_BUCKET)
    assert (await js.stream_info(stream)).config.max_msgs_per_subject == 1
    await ensure_topology(js, TopologyLimits(), update=True)
    config = (await js.stream_info(stream)).config
    assert config.max_msgs_per_subject == TENANTS_HISTORY
    assert config.description == tenants_bucket(TopologyLimits()).description
    assert config.subjects == [f"$KV.{TENANTS_KV_BUCKET}.>"]  # the rest as the server had it
    assert (await (await js.key_value(TENANTS_KV_BUCKET)).get("acme")).value == b"{}"
    await ensure_topology(js, TopologyLimits(), update=True)  # now nothing to change
    assert (await js.stream_info(stream)).config == config
