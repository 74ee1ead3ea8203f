"""Which job subjects have a pool: a JetStream consumer of JOBS whose filter takes them.

A job published to a subject no consumer reads would sit in the queue until it expires
(7 days), holding its tenant's quota. The gateway refuses it at submit instead. The consumer
list is cached for `TTL_S` and re-read (at most every `MISS_REFRESH_S`) before a refusal, so a
pool created a moment ago is seen. When the list cannot be read (NATS trouble), nothing is
refused here: publishing fails anyway, with its own 503.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

TTL_S = 15.0
MISS_REFRESH_S = 2.0


def subject_matches(filter_subject: str, subject: str) -> bool:
    """NATS subject matching: `*` takes one token, a trailing `>` one or more."""
    if not filter_subject:
        return True  # a consumer without a filter reads the whole stream
    want = filter_subject.split(".")
    have = subject.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or part not in ("*", have[i]):
            return False
    return len(want) == len(have)


class PoolDirectory:
    def __init__(self, js: Any, stream: str) -> None:
        self.js = js
        self.stream = stream
        self._filters: list[str] | None = None
        self._read_at = float("-inf")

    async def _refresh(self) -> None:
        infos = await self.js.consumers_info(self.stream)
        filters: list[str] = []
        for info in infos:
            config = info.config
            subjects = list(getattr(config, "filter_subjects", None) or [])
            if config.filter_subject:
                subjects.append(config.filter_subject)
            filters.extend(subjects or [""])
        self._filters = filters
        self._read_at = time.monotonic()

    def _served(self, subject: str) -> bool:
        return any(subject_matches(f, subject) for f in self._filters or ())

    async def serves(self, subject: str) -> bool:
        """Whether some pool consumes `subject` (True when that cannot be found out)."""
        age = time.monotonic() - self._read_at
        try:
            if self._filters is None or age > TTL_S or (not self._served(subject) and age > MISS_REFRESH_S):
                await self._refresh()
        except Exception as exc:
            log.warning("cannot list the consumers of %s: %s", self.stream, exc)
            return True
        return self._served(subject)
