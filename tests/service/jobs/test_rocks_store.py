"""RocksJobStore (single node)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from percolate_reading.config import load_settings
from percolate_reading.contract.jobs import JobStatus
from percolate_reading.infra.jobs import open_job_store
from percolate_reading.infra.jobs.rocks_store import RocksJobStore
from percolate_reading.infra.jobs.store import JobStore
from tests.service.jobs.contract import JobStoreContract, rec


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[JobStore]:
    s = await open_job_store(load_settings(data_dir=tmp_path))
    assert isinstance(s, RocksJobStore)
    yield s
    await s.close()


class TestRocksJobStore(JobStoreContract):
    pass


async def test_state_survives_reopen(tmp_path: Path) -> None:
    s = RocksJobStore(tmp_path / "db")
    await s.create(rec("k1"))
    await s.transition("k1", JobStatus.RUNNING)
    await s.close()
    s = RocksJobStore(tmp_path / "db")
    got = await s.get("k1")
    assert got is not None
    assert got.status is JobStatus.RUNNING
    page, _ = await s.list_for_tenant("acme")
    assert [r.job_id for r in page] == ["k1"]
    await s.close()
