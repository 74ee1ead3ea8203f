"""`until_up`: unreachable dependencies are waited for (with the reason kept for /ready),
configuration errors are not."""

from __future__ import annotations

import asyncio

import pytest

from percolate_reading.errors import ConfigError, ObjectNotFoundError, QueueError, StorageError
from percolate_reading.infra.startup import StartupState, until_up


async def test_retries_unreachable_dependencies_and_reports_why() -> None:
    state = StartupState()
    failures = [QueueError("connection refused"), StorageError("S3 unreachable")]
    seen: list[str] = []

    async def attempt() -> str:
        seen.append(state.reason)  # what /ready says while this attempt runs
        if failures:
            raise failures.pop(0)
        return "up"

    assert await until_up("the thing", attempt, state, first_retry_s=0.01, max_retry_s=0.02) == "up"
    assert seen[0] == "connecting to the thing"
    assert seen[1] == "waiting for the thing: connection refused"
    assert seen[2] == "waiting for the thing: S3 unreachable"
    assert state.blocked.is_set()
    assert not state.ready
    state.done()
    assert state.ready


CONFIG_ERRORS = [ConfigError("no NATS URL"), ObjectNotFoundError("gone"), ValueError("bug")]


@pytest.mark.parametrize("error", CONFIG_ERRORS)
async def test_does_not_wait_on_configuration_errors(error: Exception) -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await until_up("the thing", attempt, StartupState(), first_retry_s=0.01)
    assert calls == 1


async def test_settled_once_blocked_or_finished() -> None:
    blocked, finished = StartupState(), StartupState()
    blocked.trying("NATS")
    assert blocked.reason == "connecting to NATS"
    blocked.waiting("waiting for NATS: refused")
    await asyncio.wait_for(blocked.settled(), 1)
    assert not blocked.finished.is_set()
    finished.done()
    await asyncio.wait_for(finished.settled(), 1)
    assert finished.ready
