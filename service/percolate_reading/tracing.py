"""OpenTelemetry tracing: one trace per job, from the upload to the webhook.

Off unless the standard OTEL_* variables configure an exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`
or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_TRACES_EXPORTER=otlp|console`;
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off). Export is OTLP over
HTTP/protobuf, batched. The official instrumentations cover FastAPI (the gateway's server
spans) and aiohttp clients (webhooks, and aiobotocore's S3 requests); spans here cover what no
instrumentation sees: the S3 put and download (obstore, aiobotocore's async client), the
publish, and the worker's stages. The gateway injects the W3C `traceparent` into the job
message's headers; the worker continues that trace.

Without the `otel` extra, or with tracing off, every helper here is a no-op (the API's
default tracer records nothing).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from percolate_reading.config import TracingConfig

log = logging.getLogger(__name__)

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind
except ImportError:  # the otel extra is not installed
    propagate = None  # type: ignore[assignment]
    trace = None  # type: ignore[assignment]
    SpanKind = None  # type: ignore[assignment,misc]

TRACER_NAME = "percolate_reading"
_configured = False


def setup_tracing(service_name: str, config: TracingConfig | None = None) -> bool:
    """Install the SDK's tracer provider and the instrumentations when OTEL_* ask for it;
    True when tracing is on. Idempotent per process."""
    global _configured
    config = config or TracingConfig.from_env()
    if _configured:
        return True
    if config.exporter is None:
        return False
    try:
        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_* variables ask for tracing but the otel extra is not installed")
        return False
    assert trace is not None
    attributes = {} if config.service_name else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(_exporter(config.exporter)))
    trace.set_tracer_provider(provider)
    AioHttpClientInstrumentor().instrument()
    _configured = True
    log.info("tracing on: %s exporter, service %s", config.exporter, config.service_name or service_name)
    return True


def _exporter(kind: str) -> Any:
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported here; using otlp", kind)
    # Endpoint, headers, timeout, compression: from the standard OTEL_EXPORTER_OTLP_* variables.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def instrument_app(app: Any) -> None:
    """Server spans for every request of the gateway's FastAPI app (when tracing is on)."""
    if not _configured:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="health,ready,metrics")


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None, *, kind: str = "internal") -> Iterator[None]:
    """A span around a block, child of the current one; records an exception and re-raises."""
    if trace is None:
        yield
        return
    span_kind = {"producer": SpanKind.PRODUCER, "consumer": SpanKind.CONSUMER}.get(kind, SpanKind.INTERNAL)
    with trace.get_tracer(TRACER_NAME).start_as_current_span(
        name, kind=span_kind, attributes=dict(attributes or {})
    ):
        yield


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current trace context (W3C `traceparent`, `tracestate`) to message headers."""
    if propagate is not None:
        propagate.inject(headers)


@contextlib.contextmanager
def continued(headers: Mapping[str, str] | None) -> Iterator[None]:
    """Make the trace context carried in `headers` the current one for the block."""
    if propagate is None or not headers:
        yield
        return
    from opentelemetry import context

    token = context.attach(propagate.extract(dict(headers)))
    try:
        yield
    finally:
        context.detach(token)


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex chars), None outside a recorded trace."""
    if trace is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None
