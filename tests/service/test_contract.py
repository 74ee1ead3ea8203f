"""The contract's pure parts: the job message and record, object keys, topology limits."""

from __future__ import annotations

import json

import pytest

from percolate_reading.config import load_settings
from percolate_reading.contract import keys
from percolate_reading.contract.jobs import JobMessage, JobOptions, JobRecord, JobStatus
from percolate_reading.contract.topology import ConsumerLimits, TopologyLimits

MESSAGE = {
    "job_id": "0190aa5b2c3d4e5f60718293a4b5c6d7",
    "tenant_id": "acme",
    "file_name": "Q3 report.pdf",
    "file_type": "pdf",
    "s3_uri": "s3://percolate-files/acme/0190aa5b2c3d4e5f60718293a4b5c6d7/Q3 report.pdf",
    "size_bytes": 1234,
    "callback_url": "https://example.com/hook",
    "tier": "large",
}


def test_record_from_message_carries_every_shared_field() -> None:
    msg = JobMessage.model_validate(MESSAGE)
    record = JobRecord.from_message(msg)
    assert record.status is JobStatus.QUEUED
    shared = set(JobMessage.model_fields) & set(JobRecord.model_fields)
    assert shared == {
        "job_id",
        "tenant_id",
        "file_name",
        "file_type",
        "size_bytes",
        "tier",
        "callback_url",
        "created_at",
    }
    for name in shared:
        assert getattr(record, name) == getattr(msg, name), name


def test_options_are_typed_and_old_messages_still_read() -> None:
    # A message an older gateway queued: string options, and the retired priority/resources.
    old = dict(
        MESSAGE, priority=4, resources={"cpu": "1"}, options={"ocr_enabled": "false", "language": "de"}
    )
    msg = JobMessage.model_validate_json(json.dumps(old))
    assert msg.options == JobOptions(ocr_enabled=False, language="de")
    assert "priority" not in msg.model_dump_json()
    with pytest.raises(ValueError, match="extra"):
        JobMessage.model_validate(dict(MESSAGE, surprise=1))
    with pytest.raises(ValueError, match="ocr_enabled"):
        JobOptions.model_validate({"ocr_enabled": "maybe"})


def test_object_keys_and_uris() -> None:
    job_id = keys.new_job_id()
    assert keys.is_job_id(job_id)
    assert len(job_id) == 32
    key = keys.object_key("acme", job_id, "a b.pdf")
    assert key == f"acme/{job_id}/a b.pdf"
    assert keys.parse_s3_uri(keys.s3_uri("percolate-files", key)) == ("percolate-files", key)
    assert keys.is_job_object(key, "acme", job_id)
    for outside in (f"acme/{job_id}/../x", f"other/{job_id}/a.pdf", f"acme/{job_id}/", f"acme/{job_id}//a"):
        assert not keys.is_job_object(outside, "acme", job_id), outside
    for bad in ("file:///etc/passwd", "s3://bucket-only", "s3:///key"):
        with pytest.raises(ValueError, match="URI"):
            keys.parse_s3_uri(bad)
    with pytest.raises(ValueError, match="invalid job id"):
        keys.object_key("acme", "../x", "a.pdf")
    assert keys.context_chunks_key("acme", job_id) == f"acme/chunks/{job_id}.jsonl"


def test_limits_read_back_from_the_environment_they_write(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = TopologyLimits(
        replicas=3, max_msgs=42, max_age_s=4000.5, duplicate_window_s=30, dlq_max_age_s=9e6, status_history=5
    )
    consumer = ConsumerLimits(ack_wait_s=1800, max_deliver=5, max_ack_pending=7)
    for name, value in (limits.worker_env() | consumer.worker_env()).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert TopologyLimits.from_settings(settings) == limits
    assert ConsumerLimits.from_settings(settings) == consumer


def test_artifact_media_types_come_from_the_name() -> None:
    from percolate_reading.contract.keys import artifact_media_type
    from percolate_reading.gateway.routes.jobs import served_media_type

    assert artifact_media_type("images/3.PNG") == "image/png"
    assert artifact_media_type("attachments/1-a.pdf/structured.md").startswith("text/markdown")
    assert artifact_media_type("tables/1.csv").startswith("text/csv")
    assert artifact_media_type("images/1.svg") == "application/octet-stream"  # could carry script
    assert artifact_media_type("README") == "application/octet-stream"
    # Stored as HTML, served as text: the gateway's origin never renders a document's HTML.
    assert artifact_media_type("structured.html").startswith("text/html")
    assert served_media_type("structured.html").startswith("text/plain")
    assert served_media_type("images/2.jpg") == "image/jpeg"
