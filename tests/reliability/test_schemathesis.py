"""Schemathesis against the live gateway's own OpenAPI schema (real uvicorn, nats-server and
SeaweedFS), authenticated as a real tenant: for every operation, generated requests (valid and
invalid) never get a 5xx, and every answer's status code, content type, headers and body are
the ones the schema declares. Bounded: a fixed number of examples per operation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
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
from tests.harness.documents import make_pdf
from tests.servers import NatsServer, SeaweedS3
from tests.service.gateway.conftest import Tenants, make_settings
from tests.service.gateway.harness import LiveGateway

pytestmark = pytest.mark.integration


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


def without_security(served: dict[str, Any]) -> dict[str, Any]:
    """The served schema less its bearer scheme: these tests send the key themselves, and
    schemathesis would otherwise count "no Authorization header" among the invalid inputs of
    a request that carries one. Unauthenticated calls have their own test below."""
    served = {**served, "components": dict(served.get("components", {}))}
    served["components"].pop("securitySchemes", None)
    for ops in served["paths"].values():
        for op in ops.values():
            op.pop("security", None)
    return served


def load_operation(live: LiveGateway, label: str) -> Any:
    # The schema as the running gateway serves it.
    served = without_security(httpx.get(f"{live.url}/openapi.json", timeout=30).json())
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
    checks: list[Any] | None = None,
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
        response = case.call_and_validate(base_url=live.url, headers=headers, checks=checks or CHECKS)
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
    checks = CHECKS
    if mode is GenerationMode.NEGATIVE and label == "POST /v1/parse":
        # Multipart fields are text: a "boolean" password is the text "false", a valid password,
        # so "schema-violating data accepted" is no finding there. No 5xx and declared answers
        # are still checked; test_typed_form_fields_match_the_schema covers the typed fields.
        checks = [c for c in CHECKS if c is not negative_data_rejection]
    try:
        fuzz_operation(live, operation, mode, auth, EXAMPLES_PER_OPERATION, checks=checks)
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


async def test_real_answers_match_the_served_schema(live: LiveGateway, tenants: Tenants) -> None:
    """Generated requests rarely reach a real job: here every success (and the common errors)
    of a real job's life is validated against the schema the gateway serves."""
    from percolate_reading.worker.main import start_worker

    async with httpx.AsyncClient(base_url=live.url, timeout=60) as anon:
        served = without_security((await anon.get("/openapi.json")).json())
    ops: dict[str, Any] = {
        op.label: op
        for op in (r.ok() for r in list[Any](schemathesis.openapi.from_dict(served).get_all_operations()))
    }
    checked: list[tuple[str, int]] = []

    async def post_file(c: httpx.AsyncClient, name: str, data: bytes) -> httpx.Response:
        # Read the multipart body first: the validator looks at the request it answers.
        request = c.build_request("POST", "/v1/parse", files={"file": (name, data)})
        request.read()
        return await c.send(request)

    def check(label: str, response: httpx.Response) -> None:
        ops[label].validate_response(response)
        checked.append((label, response.status_code))

    worker = await start_worker(live.settings)
    try:
        headers = {"Authorization": f"Bearer {tenants.acme_key}"}
        async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=60) as acme:
            r = await post_file(acme, "real.pdf", make_pdf("a real document"))
            assert r.status_code == 202, r.text
            check("POST /v1/parse", r)
            job_id = r.json()["job_id"]
            while True:
                r = await acme.get(f"/v1/jobs/{job_id}")
                check("GET /v1/jobs/{job_id}", r)
                if r.json()["status"] in ("succeeded", "failed"):
                    break
                await asyncio.sleep(0.1)
            job = r.json()
            assert job["status"] == "succeeded", job
            for path in job["artifacts"]:
                r = await acme.get(f"/v1/jobs/{job_id}/artifacts/{path}")
                assert r.status_code == 200
                check("GET /v1/jobs/{job_id}/artifacts/{path}", r)
            r = await acme.delete(f"/v1/jobs/{job_id}")
            assert r.status_code == 409
            check("DELETE /v1/jobs/{job_id}", r)
            r = await acme.get("/v1/jobs", params={"limit": 1})
            assert [j["job_id"] for j in r.json()["jobs"]] == [job_id]
            check("GET /v1/jobs", r)
            r = await acme.get("/v1/jobs", params={"cursor": "forged"})
            assert r.status_code == 400
            check("GET /v1/jobs", r)
            while True:
                r = await acme.get("/v1/context", params={"include_chunks": "true"})
                if r.json()["documents"]:
                    break
                await asyncio.sleep(0.1)
            check("GET /v1/context", r)
            r = await post_file(acme, "x.pdf", b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 8)
            assert r.status_code in (400, 415), r.text
            check("POST /v1/parse", r)
            for label, path in (
                ("GET /ready", "/ready"),
                ("GET /health", "/health"),
                ("GET /metrics", "/metrics"),
            ):
                r = await acme.get(path)
                assert r.status_code == 200
                check(label, r)
    finally:
        await worker.drain()
    assert len(checked) >= 12
    # The validator is not vacuous: a list answer of the wrong shape fails it.
    bogus = httpx.Response(200, json={"jobs": "none"}, request=httpx.Request("GET", f"{live.url}/v1/jobs"))
    bogus.elapsed = timedelta(0)
    with pytest.raises((AssertionError, BaseExceptionGroup)):
        ops["GET /v1/jobs"].validate_response(bogus)


async def test_typed_form_fields_match_the_schema(live: LiveGateway, tenants: Tenants) -> None:
    """What schemathesis cannot judge for multipart (all text): each typed field's invalid
    values are a 400, its declared spellings are accepted."""
    headers = {"Authorization": f"Bearer {tenants.acme_key}"}
    pdf = make_pdf("fields")
    async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=60) as acme:
        for field, value in (
            ("priority", "4"),  # not a field of the API
            ("tier", "huge"),
            ("ocr_enabled", "maybe"),
            ("ocr_enabled", "2"),
            ("callback_url", "http://x/" + "a" * 5000),
        ):
            r = await acme.post("/v1/parse", files={"file": ("a.pdf", pdf)}, data={field: value})
            assert r.status_code == 400, (field, value, r.text)
            assert r.json()["error"]["message"]
        for field, value in (
            ("ocr_enabled", "TRUE"),
            ("ocr_enabled", "0"),
            ("tier", "small"),
        ):
            r = await acme.post("/v1/parse", files={"file": ("a.pdf", pdf)}, data={field: value})
            assert r.status_code == 202, (field, value, r.text)
