"""Parse slots: at most N parses at once; a drain hands back the jobs still waiting for one."""

from __future__ import annotations

import asyncio

import pytest

from percolate_reading.worker.pipeline import ParseSlots


async def test_slots_bound_parses_and_close_cancels_only_the_waiting() -> None:
    slots = ParseSlots(2)
    inside = 0
    most = 0
    release = asyncio.Event()
    two_in = asyncio.Event()
    entered: list[int] = []

    async def job(i: int) -> int:
        nonlocal inside, most
        async with slots.slot():
            inside += 1
            most = max(most, inside)
            entered.append(i)
            if len(entered) == 2:
                two_in.set()
            await release.wait()
            inside -= 1
        return i

    tasks = [asyncio.create_task(job(i)) for i in range(5)]
    await two_in.wait()
    await asyncio.sleep(0.01)  # the other three are queued on the semaphore by now
    assert most == 2
    slots.close()
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    finished = [r for r in results if isinstance(r, int)]
    cancelled = [r for r in results if isinstance(r, asyncio.CancelledError)]
    # The two parsing jobs finish; the three waiting ones are cancelled (returned by the runner).
    assert sorted(finished) == sorted(entered)
    assert len(cancelled) == 3
    # A job that asks after the drain began does not start a parse either.
    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(job(9))
    assert 9 not in entered
