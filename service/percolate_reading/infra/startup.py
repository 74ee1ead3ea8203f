"""Start-up that waits for its dependencies instead of dying.

A gateway, worker or `serve` started while nats-server or S3 is still coming up (a node
boot, a cluster restart, compose starting everything at once) keeps running, answers
/health, answers /ready 503 with what it waits for, logs why every few seconds and retries
with backoff until the dependency answers; then it proceeds normally. Only unreachable
dependencies are waited for (`QueueError`, `StorageError` that are not permanent); a
configuration error still ends the process with one line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from percolate_reading.errors import PercolateError, QueueError, StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 5.0
LOG_EVERY_S = 5.0


class StartupState:
    """What a starting process is doing, for /ready and for whoever waits on it.

    `blocked` is set as soon as one dependency did not answer (the process then serves
    /ready 503 while it keeps trying); `finished` once every dependency is up."""

    def __init__(self) -> None:
        self.reason = "starting"
        self.started_at = time.monotonic()
        self.blocked = asyncio.Event()
        self.finished = asyncio.Event()
        self.failed: BaseException | None = None

    @property
    def ready(self) -> bool:
        return self.finished.is_set() and self.failed is None

    def trying(self, what: str) -> None:
        if not self.blocked.is_set():
            self.reason = f"connecting to {what}"

    def waiting(self, reason: str) -> None:
        self.reason = reason
        self.blocked.set()

    def done(self, failed: BaseException | None = None) -> None:
        self.failed = failed
        self.reason = "started" if failed is None else f"start-up failed: {failed!r}"
        self.finished.set()
        self.blocked.set()

    async def settled(self) -> None:
        """Until start-up finished or one dependency did not answer its first attempt (a
        start with everything up is complete before the process serves, as without waiting;
        an attempt at a silent host ends within seconds)."""
        await self.blocked.wait()


def is_unreachable(exc: BaseException) -> bool:
    """A dependency did not answer (worth waiting for), as opposed to a bad configuration."""
    return isinstance(exc, QueueError | StorageError) and not (
        isinstance(exc, PercolateError) and exc.permanent
    )


async def until_up(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    state: StartupState | None = None,
    *,
    first_retry_s: float = FIRST_RETRY_S,
    max_retry_s: float = MAX_RETRY_S,
    log_every_s: float = LOG_EVERY_S,
) -> T:
    """`attempt()` until it succeeds, retrying with backoff while the dependency is
    unreachable; logs why at most every `log_every_s` and keeps `state.reason` current."""
    delay = first_retry_s
    started = time.monotonic()
    last_log = float("-inf")
    waited = False
    if state is not None:
        state.trying(what)
    while True:
        try:
            result = await attempt()
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            now = time.monotonic()
            reason = f"waiting for {what}: {exc}"
            if state is not None:
                state.waiting(reason)
            if now - last_log >= log_every_s:
                log.warning("%s (retrying; %.0fs so far)", reason, now - started)
                last_log = now
            waited = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_retry_s)
            continue
        if waited:
            log.info("%s is up after %.0fs", what, time.monotonic() - started)
        return result


def storage_name(s3_enabled: bool, s3_endpoint: str | None) -> str:
    """How the object store is named in start-up messages."""
    return f"S3 at {s3_endpoint}" if s3_enabled and s3_endpoint else "the local object store"
