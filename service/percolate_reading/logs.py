"""The one logging set-up of every process (gateway, worker, serve).

The operator is left out: kopf configures its own logging, and a second root handler would
print every line twice.

Two formats (`PERCOLATE_READING_LOG_FORMAT`): `text` (the default, for a terminal) and `json`,
one object per line with `timestamp`, `level`, `logger`, `message`, `tenant_id`, `job_id`,
`pool` and `trace_id` (null where unknown), plus `exception` with the traceback. The job
fields come from context variables set where a job is handled (`job_context`): every line
logged while handling it carries them, in any module, including lines from the parse thread
(it runs in a copy of the context). Only these fields are written, never a record's extras,
so nothing a caller attaches to a record can leak into the logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

from percolate_reading.config import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOB_FIELDS = ("tenant_id", "job_id", "pool")

_tenant_id: ContextVar[str | None] = ContextVar("percolate_tenant_id", default=None)
_job_id: ContextVar[str | None] = ContextVar("percolate_job_id", default=None)
_pool: ContextVar[str | None] = ContextVar("percolate_pool", default=None)
_VARS = {"tenant_id": _tenant_id, "job_id": _job_id, "pool": _pool}


@contextlib.contextmanager
def job_context(
    *, tenant_id: str | None = None, job_id: str | None = None, pool: str | None = None
) -> Iterator[None]:
    """Tag every log line inside the block with these job fields (None leaves one as it is)."""
    given = {"tenant_id": tenant_id, "job_id": job_id, "pool": pool}
    tokens = [(var, var.set(given[name])) for name, var in _VARS.items() if given[name] is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_job_fields() -> dict[str, str | None]:
    return {name: var.get() for name, var in _VARS.items()}


class JobContextFilter(logging.Filter):
    """Copies the job fields and the current trace id onto each record (for any formatter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from percolate_reading.tracing import current_trace_id

        for name, value in current_job_fields().items():
            setattr(record, name, value)
        record.trace_id = current_trace_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; only the fixed fields, never the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*JOB_FIELDS, "trace_id"):
            entry[name] = getattr(record, name, None)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def make_handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing `log_format` lines (to stderr unless `stream` is given)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(LOG_FORMAT))
    handler.addFilter(JobContextFilter())
    return handler


def setup_logging(settings: Settings) -> None:
    """Log to stderr at `settings.log_level` in `settings.log_format`. Idempotent: like
    logging.basicConfig, it changes nothing once the root logger has a handler."""
    logging.basicConfig(level=settings.log_level.upper(), handlers=[make_handler(settings.log_format)])
