"""Dependency outages do not consume deliveries.

A job that fails because S3 or the job store (NATS KV) cannot be reached says nothing about
the job: nak'ing it would spend one of its `NATS_MAX_DELIVER` deliveries per try, and a
20-second outage used to spend them all. Instead the worker
- stops pulling new jobs (`wait_open` in the pull loop),
- holds the jobs it has (their in-progress acks keep them ours while NATS answers),
- probes the dependencies every `OUTAGE_PROBE_S` until S3 and the job store answer, and
- then runs the held jobs again in the same delivery.
The budget is time, not deliveries: an outage longer than `DEPENDENCY_OUTAGE_BUDGET_S`
(default 20 min) lets held jobs fall back to the normal transient-failure path (nak with
backoff, dead letter after max deliveries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from percolate_reading.errors import PercolateError, QueueError, StorageError

log = logging.getLogger(__name__)


def is_outage(exc: BaseException) -> bool:
    """A dependency could not be reached (not: a key is missing, a document is bad)."""
    return isinstance(exc, StorageError | QueueError) and not (
        isinstance(exc, PercolateError) and exc.permanent
    )


class OutageGate:
    def __init__(self, probe: Callable[[], Awaitable[None]], probe_every_s: float, budget_s: float) -> None:
        self.probe = probe
        self.probe_every_s = probe_every_s
        self.budget_s = budget_s
        self._open = asyncio.Event()
        self._open.set()
        self.since: float | None = None  # monotonic start of the current outage
        self.reason = ""
        self._prober: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def report(self, exc: BaseException) -> None:
        """A job hit an outage: close the gate and start probing (once)."""
        if self._open.is_set():
            self._open.clear()
            self.since = time.monotonic()
            self.reason = f"{type(exc).__name__}: {exc}"
            log.warning("dependency outage (%s): pulling paused, jobs held, probing", self.reason)
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe_until_back(), name="outage-probe")

    async def _probe_until_back(self) -> None:
        while not self._open.is_set():
            await asyncio.sleep(self.probe_every_s)
            try:
                await asyncio.wait_for(self.probe(), max(self.probe_every_s, 2.0))
            except Exception as exc:
                log.info("dependencies still unreachable after %.0fs: %s", self.down_for(), exc)
                continue
            log.warning("dependencies back after %.0fs: resuming", self.down_for())
            self.since = None
            self.reason = ""
            self._open.set()

    def down_for(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

    async def wait_open(self) -> None:
        await self._open.wait()

    async def wait_recovered(self) -> bool:
        """Until the dependencies answer again (True) or the outage outlasts the budget (False)."""
        left = self.budget_s - self.down_for()
        if left <= 0:
            return False
        try:
            await asyncio.wait_for(self._open.wait(), left)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
