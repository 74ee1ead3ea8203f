"""Log set-up: JSON lines with the job's fields from context variables, the trace id of the
current span, and nothing but the fixed fields."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from percolate_reading.config import LogFormat
from percolate_reading.logs import JsonFormatter, job_context, make_handler

FIELDS = {"timestamp", "level", "logger", "message", "tenant_id", "job_id", "pool", "trace_id"}


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    logger = logging.getLogger("percolate_reading.test_logs")
    handler = make_handler(LogFormat.JSON, stream=out)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)
    logger.propagate = True


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_the_job_fields(captured: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = captured
    log.info("before")
    with job_context(tenant_id="acme", job_id="j1", pool="parse-workers-small"):
        log.warning("parsing %s", "a.pdf", extra={"password": "hunter2"})
        with job_context(pool="other"):
            log.info("nested")
    log.info("after")
    before, parsing, nested, after = lines(out)
    for entry in (before, parsing, nested, after):
        assert set(entry) == FIELDS  # the fixed fields only: extras never reach the line
    assert parsing["message"] == "parsing a.pdf"
    assert parsing["level"] == "WARNING"
    assert parsing["logger"] == "percolate_reading.test_logs"
    assert (parsing["tenant_id"], parsing["job_id"], parsing["pool"]) == ("acme", "j1", "parse-workers-small")
    assert (nested["job_id"], nested["pool"]) == ("j1", "other")
    assert before["job_id"] is None
    assert after["tenant_id"] is None
    assert str(parsing["timestamp"]).endswith("+00:00")
    assert "hunter2" not in out.getvalue()


def test_exceptions_are_one_json_field(captured: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = captured
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        log.exception("failed")
    (entry,) = lines(out)
    assert entry["message"] == "failed"
    assert "ValueError: broken" in str(entry["exception"])


async def test_context_is_per_task(captured: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = captured

    async def job(job_id: str) -> None:
        with job_context(tenant_id="t", job_id=job_id):
            await asyncio.sleep(0.01)
            log.info("done %s", job_id)

    await asyncio.gather(*(job(f"j{i}") for i in range(5)))
    assert {(e["message"], e["job_id"]) for e in lines(out)} == {(f"done j{i}", f"j{i}") for i in range(5)}


def test_trace_id_of_the_current_span(captured: tuple[logging.Logger, io.StringIO]) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    log, out = captured
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("job") as span:
        log.info("inside")
    log.info("outside")
    inside, outside = lines(out)
    assert inside["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert outside["trace_id"] is None


def test_text_stays_the_default_format() -> None:
    from percolate_reading.config import Settings

    assert Settings().log_format is LogFormat.TEXT
    handler = make_handler(LogFormat.TEXT)
    assert not isinstance(handler.formatter, JsonFormatter)
