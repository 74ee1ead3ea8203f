"""The Python client against a live `serve`: every method, sync and async, the models
against the served OpenAPI schema, and signed webhooks checked with verify_webhook."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from percolate_reading.client import (
    ApiResponseError,
    AsyncClient,
    Client,
    ClientError,
    Job,
    JobStatus,
    Tier,
    WaitTimeoutError,
    verify_webhook,
)
from percolate_reading.client.models import SCHEMA_NAMES
from tests.harness.documents import make_pdf, scanned_pages_pdf
from tests.harness.webhooks import WebhookReceiver
from tests.service.live_serve import WEBHOOK_SECRET, LiveServe, live_serve

pytestmark = pytest.mark.integration
_ = live_serve  # the module's shared serve

SAMPLES = Path(__file__).resolve().parents[3] / "service" / "percolate_reading" / "samples"


@pytest.fixture(scope="module")
def client(live_serve: LiveServe) -> Any:
    with Client(live_serve.url, api_key=live_serve.api_key) as c:
        yield c


def test_parse_wait_download_a_document(client: Client, tmp_path: Path) -> None:
    job = client.parse(SAMPLES / "sample-report.pdf", language="en")
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED)
    assert job.file_name == "sample-report.pdf"
    assert job.file_type == "pdf"
    done = client.wait(job, timeout=300)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.finished_at is not None
    assert "structured.md" in client.artifacts(done)
    markdown = client.text(done)
    assert len(markdown) > 100
    written = client.download(done, tmp_path / "report")
    assert {p.relative_to(tmp_path / "report").as_posix() for p in written} == set(done.artifacts)
    assert (tmp_path / "report" / "structured.md").read_text("utf-8") == markdown
    meta = json.loads(client.artifact(done, "metadata.json"))
    assert meta["doc_type"] == "pdf"


def readme_client_example() -> str:
    """The README's first client example (the one that opens a Client), as written."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    return next(b for b in blocks if "Client(" in b)


def test_the_readme_client_example_runs_as_written(
    live_serve: LiveServe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five lines a new user copies: only the address, the key and the file are theirs."""
    example = readme_client_example()
    lines = [line for line in example.splitlines() if line.strip()]
    assert len(lines) <= 5, example
    for placeholder in ('"http://127.0.0.1:8001"', '"pr_..."', '"report.pdf"', '"out/report"'):
        assert placeholder in example, placeholder
    (tmp_path / "report.pdf").write_bytes((SAMPLES / "sample-report.pdf").read_bytes())
    monkeypatch.chdir(tmp_path)  # "report.pdf" and "out/report" are relative, as a user runs it
    code = example.replace('"http://127.0.0.1:8001"', repr(live_serve.url)).replace(
        '"pr_..."', repr(live_serve.api_key)
    )
    printed: list[str] = []
    exec(compile(code, "README.md", "exec"), {"print": printed.append})
    (markdown,) = printed
    assert "Sample Report" in markdown
    assert (tmp_path / "out" / "report" / "structured.md").read_text("utf-8") == markdown
    assert (tmp_path / "out" / "report" / "elements.jsonl").is_file()


def test_parse_bytes_and_file_objects_with_options(client: Client) -> None:
    pdf = make_pdf("Bytes uploaded from memory")
    job = client.wait(client.parse(pdf, file_name="memory.pdf", ocr=False, tier=Tier.SMALL), 300)
    assert job.succeeded, job.error
    assert job.file_name == "memory.pdf"
    assert job.tier is Tier.SMALL
    assert "Bytes uploaded from memory" in client.text(job)
    with (SAMPLES / "sample-budget.xlsx").open("rb") as fh:
        sheet = client.wait(client.parse(fh), 300)
    assert sheet.file_name == "sample-budget.xlsx"
    assert sheet.file_type == "xlsx"
    assert any(a.startswith("tables/") for a in sheet.artifacts)


def test_errors_are_typed(client: Client, live_serve: LiveServe) -> None:
    with pytest.raises(ApiResponseError) as missing:
        client.job("0" * 32)
    assert (missing.value.status, missing.value.code) == (404, "job_not_found")
    with pytest.raises(ApiResponseError) as refused:
        client.parse(bytes(range(256)) * 8, file_name="blob.bin")  # no known type
    assert refused.value.status == 415
    with pytest.raises(ApiResponseError) as bad_tier:
        client.parse(make_pdf("x"), tier="enormous")
    assert bad_tier.value.status == 400
    with (
        Client(live_serve.url, api_key="pr_wrong-key-0123456789") as stranger,
        pytest.raises(ApiResponseError) as unauthorized,
    ):
        stranger.jobs().__next__()
    assert unauthorized.value.status == 401
    with pytest.raises(ClientError, match="not a file"):
        client.parse("/no/such/file.pdf")


def test_listing_pages_filters_and_cancel(client: Client) -> None:
    jobs = [client.parse(make_pdf(f"listing document {i}"), file_name=f"list-{i}.pdf") for i in range(3)]
    for job in jobs:
        client.wait(job, 300)
    listed = list(client.jobs(page_size=1))
    ids = [j.job_id for j in listed]
    assert len(ids) == len(set(ids)), "a page repeated a job"
    assert {j.job_id for j in jobs} <= set(ids)
    # Newest first.
    assert [i for i in ids if i in {j.job_id for j in jobs}] == [j.job_id for j in reversed(jobs)]
    succeeded = list(client.jobs(status="succeeded"))
    assert succeeded
    assert all(j.status is JobStatus.SUCCEEDED for j in succeeded)
    with pytest.raises(ApiResponseError) as finished:
        client.cancel(jobs[0])
    assert (finished.value.status, finished.value.code) == (409, "not_cancellable")


def test_wait_times_out(client: Client) -> None:
    # OCR of four scanned pages takes seconds on any machine; a text-layer PDF, even of 300
    # pages, can be parsed (~60 ms) before the first look comes back.
    job = client.parse(scanned_pages_pdf(4), file_name="scan.pdf")
    with pytest.raises(WaitTimeoutError) as timed_out:
        client.wait(job, timeout=0)
    assert job.job_id in str(timed_out.value)
    done = client.wait(job, 300)
    assert done.status is JobStatus.SUCCEEDED, done.error


def test_context_lists_parsed_documents(client: Client) -> None:
    job = client.wait(client.parse(make_pdf("Context corpus entry")), 300)
    for _ in range(100):
        context = client.context(include_chunks=True)
        docs = {d.job_id: d for d in context.documents}
        if job.job_id in docs:
            break
        time.sleep(0.1)
    doc = docs[job.job_id]
    assert doc.chunk_count >= 1
    assert doc.chunks
    assert "Context corpus entry" in json.dumps(doc.chunks)
    assert context.document_count == len(context.documents)


def test_async_client_does_the_same(live_serve: LiveServe, tmp_path: Path) -> None:
    async def flow() -> tuple[Job, list[Path], list[Job]]:
        async with AsyncClient(live_serve.url, api_key=live_serve.api_key) as client:
            jobs = await asyncio.gather(
                *(client.parse(make_pdf(f"async document {i}"), file_name=f"a{i}.pdf") for i in range(2))
            )
            done = [await client.wait(j, 300) for j in jobs]
            written = await client.download(done[0], tmp_path)
            listed = [j async for j in client.jobs(page_size=2)]
            return done[0], written, listed

    job, written, listed = asyncio.run(flow())
    assert job.succeeded
    assert (tmp_path / "structured.md").read_text("utf-8").strip()
    assert len(written) == len(job.artifacts)
    assert job.job_id in {j.job_id for j in listed}


def test_webhook_from_serve_verifies(client: Client) -> None:
    async def receive() -> tuple[dict[str, str], bytes]:
        receiver = WebhookReceiver()
        await receiver.start()
        try:
            job = await asyncio.to_thread(
                client.parse, make_pdf("webhook document"), callback_url=receiver.url
            )
            received = await receiver.wait_for(1, 120)
            assert received[0].headers["webhook-id"]
            assert job.job_id in received[0].body.decode()
            return received[0].headers, received[0].body
        finally:
            await receiver.stop()

    headers, body = asyncio.run(receive())
    event = verify_webhook(headers, body, WEBHOOK_SECRET)
    assert event["type"] == "job.succeeded"
    assert event["data"]["status"] == "succeeded"
    from percolate_reading.client import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body.replace(b"succeeded", b"failed"), WEBHOOK_SECRET)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, "whsec_" + "QUJD" * 8)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, WEBHOOK_SECRET, now=int(headers["webhook-timestamp"]) + 3600)


# --- the models against the served schema -------------------------------------------------------


def _types(prop: dict[str, Any], names: dict[str, str]) -> frozenset[str]:
    """A property's JSON types, refs named by the served component they stand for."""
    if "$ref" in prop:
        ref = prop["$ref"].rsplit("/", 1)[-1]
        return frozenset({names.get(ref, ref)})
    if "anyOf" in prop:
        return frozenset().union(*(_types(p, names) for p in prop["anyOf"]))
    kind = prop.get("type", "any")
    if kind == "array":
        return frozenset({"array[" + ",".join(sorted(_types(prop.get("items", {}), names))) + "]"})
    if kind == "object":
        extra = prop.get("additionalProperties")
        inner = ",".join(sorted(_types(extra, names))) if isinstance(extra, dict) else "any"
        return frozenset({f"object[{inner}]"})
    return frozenset({f"{kind}:{prop['format']}" if "format" in prop else kind})


def test_models_match_the_served_openapi(live_serve: LiveServe) -> None:
    served = httpx.get(f"{live_serve.url}/openapi.json", timeout=30).json()["components"]["schemas"]
    client_to_served = {model.__name__: name for name, model in SCHEMA_NAMES.items()}
    client_to_served.update({"JobStatus": "JobStatus", "Tier": "Tier"})
    drift: list[str] = []
    for name, model in SCHEMA_NAMES.items():
        server = served[name]
        mine = model.model_json_schema(ref_template="#/$defs/{model}")
        mine_props = mine["properties"]
        if set(server["properties"]) != set(mine_props):
            drift.append(f"{name}: fields {sorted(set(server['properties']) ^ set(mine_props))}")
            continue
        # The client must not require what the server may leave out.
        if not set(mine.get("required", [])) <= set(server.get("required", [])):
            drift.append(f"{name}: client requires {mine.get('required')}, served {server.get('required')}")
        for field, prop in server["properties"].items():
            theirs = _types(prop, {})
            ours = _types(mine_props[field], client_to_served)
            if theirs != ours:
                drift.append(f"{name}.{field}: served {sorted(theirs)}, client {sorted(ours)}")
    for enum_name, enum in (("JobStatus", JobStatus), ("Tier", Tier)):
        if set(served[enum_name]["enum"]) != {e.value for e in enum}:
            drift.append(f"{enum_name}: {served[enum_name]['enum']}")
    assert not drift, "client models drifted from the API:\n" + "\n".join(drift)


def test_drift_check_can_fail() -> None:
    class Renamed(BaseModel):
        job: str

    served = {"properties": {"job_id": {"type": "string"}}}
    assert set(served["properties"]) != set(Renamed.model_json_schema()["properties"])
    assert _types({"type": "integer"}, {}) != _types({"anyOf": [{"type": "integer"}, {"type": "null"}]}, {})


def test_client_imports_no_server_code() -> None:
    probe = (
        "import sys, percolate_reading.client; "
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('percolate_reading'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    allowed = ("percolate_reading.client", "percolate_reading.contract", "percolate_reading.errors")
    strays = [m for m in loaded if m != "percolate_reading" and not m.startswith(allowed)]
    assert not strays, strays
