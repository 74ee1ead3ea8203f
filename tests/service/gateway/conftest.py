"""Fixtures for gateway integration tests: real nats-server (per test) and SeaweedFS (shared).

Each test gets its own tenants (unique ids, so the shared S3 buckets never mix tests) and its
own gateway on a real uvicorn server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from percolate_reading.config import Settings
from percolate_reading.infra.storage import open_object_store
from percolate_reading.infra.storage.base import ObjectStore
from tests.harness.settings import settings_for
from tests.servers import NatsServer, SeaweedS3, free_port
from tests.service.gateway.harness import LiveGateway

WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy0xMjM0NTY3ODkw"  # base64 of a test secret


@dataclass(frozen=True)
class Tenants:
    acme: str
    beta: str
    tiny: str  # max one active job, 64 KiB files
    dedi: str  # a dedicated small-tier pool, small tier only
    acme_key: str = "acme-key-0123456789"
    beta_key: str = "beta-key-0123456789"
    tiny_key: str = "tiny-key-0123456789"
    dedi_key: str = "dedi-key-0123456789"


@pytest.fixture
def tenants(tmp_path: Path) -> Tenants:
    suffix = uuid.uuid4().hex[:8]
    return Tenants(acme=f"acme-{suffix}", beta=f"beta-{suffix}", tiny=f"tiny-{suffix}", dedi=f"dedi-{suffix}")


@pytest.fixture
def tenants_file(tmp_path: Path, tenants: Tenants) -> Path:
    path = tmp_path / "tenants.json"
    path.write_text(
        json.dumps(
            [
                {
                    "tenant_id": tenants.acme,
                    "api_keys": [tenants.acme_key],
                    "webhook_secret": WEBHOOK_SECRET,
                    "quotas": {"max_file_bytes": 8 * 1024 * 1024, "max_active_jobs": 50},
                },
                {"tenant_id": tenants.beta, "api_keys": [tenants.beta_key], "webhook_secret": WEBHOOK_SECRET},
                {
                    "tenant_id": tenants.tiny,
                    "api_keys": [tenants.tiny_key],
                    "quotas": {"max_file_bytes": 64 * 1024, "max_active_jobs": 1},
                },
                {
                    "tenant_id": tenants.dedi,
                    "api_keys": [tenants.dedi_key],
                    "allowed_tiers": ["small"],
                    "dedicated_subjects": {"small": f"jobs.parse.small.{tenants.dedi}"},
                },
            ]
        )
    )
    return path


def make_settings(
    tmp_path: Path, nats: NatsServer, s3: SeaweedS3, tenants_file: Path, **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "tenants_file": tenants_file,
        "host": "127.0.0.1",
        "port": free_port(),
        "webhook_max_attempts": 3,
        "worker_concurrency": 2,
        "ocr_enabled": True,
        **overrides,
    }
    return settings_for(nats, tmp_path / "data", s3, **values)


@pytest.fixture
def settings(
    tmp_path: Path, fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3, tenants_file: Path
) -> Settings:
    return make_settings(tmp_path, fresh_nats_server, seaweed_s3, tenants_file)


@pytest.fixture
def gateway(settings: Settings) -> Iterator[LiveGateway]:
    with LiveGateway.running(settings) as gw:
        yield gw


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ObjectStore]:
    s = await open_object_store(settings)
    yield s
    await s.close()


@pytest.fixture
async def worker(settings: Settings, gateway: LiveGateway) -> AsyncIterator[Any]:
    """An in-process worker on the live gateway's servers (imported late: most gateway tests
    run without one)."""
    from percolate_reading.worker.main import start_worker

    w = await start_worker(settings)
    yield w
    await w.drain()
