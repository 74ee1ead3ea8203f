"""Schemathesis against the live gateway's own OpenAPI schema (real uvicorn, nats-server and
SeaweedFS), authenticated as a real tenant: for every operation, generated requests (valid and
invalid) never get a 5xx, and every answer's status code, content type, headers and body are
the ones the schema declares. Bounded: a fixed number of examples per operation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from percolate_reading.config import Settings
from percolate_reading.gateway.app import create_app
from tests.servers import NatsServer, SeaweedS3
from tests.service.gateway import conftest as gateway_fixtures
from tests.service.gateway.conftest import Tenants, make_settings
from tests.service.gateway.harness import LiveGateway

pytestmark = pytest.mark.integration

tenants = gateway_fixtures.tenants
tenants_file = gateway_fixtures.tenants_file

EXAMPLES_PER_OPERATION = 25

# Everything schemathesis checks about an answer, except `positive_data_acceptance`: a
# schema-valid request may rightly be refused here (an opaque cursor we never issued, random
# bytes as a document), and such refusals are still checked to be declared 4xx answers.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def live(
    tmp_path: Path, fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3, tenants_file: Path
) -> Iterator[LiveGateway]:
    s: Settings = make_settings(tmp_path, fresh_nats_server, seaweed_s3, tenants_file)
    gw = LiveGateway(s)
    gw.start()
    yield gw
    gw.stop()


def operation_labels() -> list[str]:
    """`METHOD /path` of every operation, from the app built in-process (no I/O at collection)."""
    spec = create_app(Settings()).openapi()
    return sorted(f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m in ops)


def load_operation(live: LiveGateway, label: str) -> Any:
    # The schema as the running gateway serves it.
    served = httpx.get(f"{live.url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(served)
    results: list[Any] = list(schema.get_all_operations())
    operations = {op.label: op for op in (r.ok() for r in results)}
    assert label in operations, sorted(operations)
    return operations[label]


def fuzz_operation(
    live: LiveGateway,
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    examples: int,
    expect: set[int] | None = None,
) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS)
        if expect is not None:
            assert response.status_code in expect, (case.path, response.status_code, response.text)

    fuzz()


@pytest.mark.parametrize("label", operation_labels())
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_gateway_conforms_to_its_schema(
    live: LiveGateway, tenants: Tenants, label: str, mode: GenerationMode
) -> None:
    operation = load_operation(live, label)
    if mode is GenerationMode.NEGATIVE and not list(operation.iter_parameters()) and not operation.body:
        pytest.skip("nothing to make invalid: the operation takes no input")
    auth = {"Authorization": f"Bearer {tenants.acme_key}"}
    try:
        fuzz_operation(live, operation, mode, auth, EXAMPLES_PER_OPERATION)
    except Unsatisfiable:
        # Only strings in the path (any string is schema-valid there): no invalid case exists.
        if mode is GenerationMode.POSITIVE:
            raise
        pytest.skip("schemathesis cannot make this operation's input schema-invalid")


@pytest.mark.parametrize("label", [label for label in operation_labels() if " /v1/" in label])
@pytest.mark.parametrize("key", [None, "pr_not-a-key-0123456789"], ids=["no-key", "wrong-key"])
def test_unauthenticated_requests_are_declared_401s(live: LiveGateway, label: str, key: str | None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    # 401 before anything else is looked at, whatever the rest of the request holds.
    fuzz_operation(live, load_operation(live, label), GenerationMode.POSITIVE, headers, 5, expect={401})
