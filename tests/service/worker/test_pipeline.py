"""Pure parts of the job pipeline."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from percolate_reading.worker.pipeline import _input_file


def test_input_file_is_private_keeps_the_suffix_and_goes_away() -> None:
    with _input_file("Quarterly Report.PDF") as path:
        assert path.exists()
        assert path.suffix == ".pdf"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.write_bytes(b"%PDF-1.7")
        kept = path
    assert not kept.exists()


def _fail_inside(name: str, seen: list[Path]) -> None:
    with _input_file(name) as path:
        seen.append(path)
        raise RuntimeError("parse failed")


def test_input_file_goes_away_on_failure_and_drops_odd_suffixes() -> None:
    seen: list[Path] = []
    with pytest.raises(RuntimeError):
        _fail_inside("scan.p\u00e9f", seen)
    assert seen[0].suffix == ""
    assert not seen[0].exists()


async def test_a_split_is_published_once_per_range_and_a_recorded_plan_wins(tmp_path: Path) -> None:
    from percolate_reading.config import Settings
    from percolate_reading.contract.jobs import JobMessage, JobRecord, message_id
    from percolate_reading.infra.jobs.rocks_store import RocksJobStore
    from percolate_reading.metrics import Metrics
    from percolate_reading.worker.pipeline import Services
    from percolate_reading.worker.split import publish_parts

    published: list[tuple[str, str, JobMessage]] = []

    async def publish(msg: JobMessage, subject: str) -> None:
        published.append((subject, message_id(msg.job_id, msg.part), msg))

    jobs = RocksJobStore(tmp_path / "jobs")
    msg = JobMessage(
        job_id="j1", tenant_id="acme", file_name="a.pdf", file_type="pdf", s3_uri="s3://f/acme/j1/a.pdf"
    )
    await jobs.create(JobRecord.from_message(msg))
    svc = Services(
        settings=Settings(data_dir=tmp_path),
        store=None,  # type: ignore[arg-type]  # not touched by the plan
        jobs=jobs,
        metrics=Metrics(),
        webhooks=None,  # type: ignore[arg-type]
        tenants=lambda _t: None,
        publish_job=publish,
    )
    assert await publish_parts(svc, msg, "jobs.parse.large", [(1, 10), (11, 20), (21, 25)]) == "split"
    record = await jobs.get("j1")
    assert record is not None
    assert record.parts == ["00001-00010", "00011-00020", "00021-00025"]
    assert [(s, i) for s, i, _ in published] == [
        ("jobs.parse.large", "j1.part-00001-00010"),
        ("jobs.parse.large", "j1.part-00011-00020"),
        ("jobs.parse.large", "j1.part-00021-00025"),
    ]
    parts = [m.part for _, _, m in published]
    assert [(p.index, p.count, p.first_page, p.last_page) for p in parts if p is not None] == [
        (0, 3, 1, 10),
        (1, 3, 11, 20),
        (2, 3, 21, 25),
    ]
    # Redelivered before its ack (settings changed meanwhile): the recorded plan is published
    # again, with the same message ids, so JetStream drops the copies.
    published.clear()
    await publish_parts(svc, msg, "jobs.parse.large", [(1, 25)])
    assert [i for _, i, _ in published] == [
        "j1.part-00001-00010",
        "j1.part-00011-00020",
        "j1.part-00021-00025",
    ]
    await jobs.close()
