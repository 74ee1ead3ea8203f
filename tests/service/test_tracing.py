"""Tracing helpers with the SDK's in-memory exporter: spans nest, and a context carried in
message headers continues the same trace (what the gateway and worker do across NATS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from percolate_reading import tracing
from percolate_reading.config import TracingConfig

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process: this module's, if nobody set one.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.skip("another tracer provider is installed in this process")
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.mark.parametrize(
    ("env", "exporter"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None),
    ],
)
def test_tracing_is_off_unless_otel_variables_ask(env: dict[str, str], exporter: str | None) -> None:
    assert TracingConfig.from_env(env).exporter == exporter


def test_setup_without_configuration_installs_nothing() -> None:
    assert tracing.setup_tracing("percolate-test", TracingConfig(None, None)) is False


def test_spans_nest_and_record_errors(spans: InMemorySpanExporter) -> None:
    with tracing.span("job", {"percolate.job_id": "j1"}, kind="consumer"):
        trace_id = tracing.current_trace_id()
        with pytest.raises(ValueError, match="boom"), tracing.span("parse"):
            raise ValueError("boom")
    parse, job = spans.get_finished_spans()
    assert (job.name, parse.name) == ("job", "parse")
    assert job.kind is trace.SpanKind.CONSUMER
    assert job.attributes is not None
    assert job.attributes["percolate.job_id"] == "j1"
    assert parse.parent is not None
    assert parse.parent.span_id == job.context.span_id
    assert f"{job.context.trace_id:032x}" == trace_id
    assert parse.status.status_code is trace.StatusCode.ERROR
    assert tracing.current_trace_id() is None


def test_headers_carry_the_trace_across(spans: InMemorySpanExporter) -> None:
    headers: dict[str, str] = {"Nats-Msg-Id": "j1"}
    with tracing.span("publish", kind="producer"):
        tracing.inject(headers)
    assert headers["traceparent"].startswith("00-")
    # The "worker" side: nothing current, then the context from the headers.
    with tracing.continued(headers), tracing.span("job", kind="consumer"):
        pass
    job, publish = sorted(spans.get_finished_spans(), key=lambda s: s.name)
    assert job.context.trace_id == publish.context.trace_id
    assert job.parent is not None
    assert job.parent.span_id == publish.context.span_id
    # Without headers, a new trace starts.
    with tracing.continued(None), tracing.span("other"):
        pass
    other = next(s for s in spans.get_finished_spans() if s.name == "other")
    assert other.context.trace_id != publish.context.trace_id
