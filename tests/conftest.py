"""Shared fixtures: real servers started once per test session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

from tests.harness.webhooks import WebhookReceiver
from tests.servers import NatsServer, SeaweedS3

# Tiers whose tests share one heavy resource per session: the image tier shares buildah's store
# and its image tags, the real-cluster tier one control plane (with KEDA). Under pytest-xdist
# (`make test` runs two workers) each stays whole on one worker; every other test is scheduled
# on its own.
WHOLE_ON_ONE_WORKER = ("tests/image/", "tests/kube/")


class TierScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with the tiers above as the only multi-test scopes. (xdist's
    own `--dist loadgroup` marks groups by rewriting node ids, which pytest 9.2 no longer
    carries: pytest-xdist#1386.) Larger scopes are sent first, so the tiers start early."""

    def _split_scope(self, nodeid: str) -> str:
        return next((tier for tier in WHOLE_ON_ONE_WORKER if nodeid.startswith(tier)), nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LoadScopeScheduling:
    return TierScheduling(config, log)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A real nats-server with JetStream, shared by the session. Tests that stop it must
    start it again before they return (use `fresh_nats_server` for destructive tests)."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A private nats-server for one test that may kill and restart it."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real SeaweedFS S3 endpoint shared by the session."""
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A live webhook receiver on 127.0.0.1 (answers 200)."""
    r = WebhookReceiver()
    await r.start()
    yield r
    await r.stop()
