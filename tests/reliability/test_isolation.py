"""Tenant isolation through the live gateway and a real worker (real nats-server and SeaweedFS).

Tenant beta parses a document with a secret phrase; tenant acme, with its own valid key, then
tries every way we know to read, list, cancel or download it: beta's real job id, random ids,
crafted artifact paths sent byte-for-byte (no client-side normalisation), query parameters and
headers naming beta. Every attempt is a 404 (or a 400 for a malformed request) that is the same
as for an id that never existed, and no answer holds beta's tenant id, file name or text. A forged
queue message naming acme with beta's job id is rejected by the worker, and beta's job is untouched.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from percolate_reading.config import Settings
from percolate_reading.contract.jobs import JobMessage
from percolate_reading.contract.subjects import STREAM_NAME, consumer_name
from percolate_reading.infra.queue.jetstream import connect
from percolate_reading.infra.storage.base import ObjectStore
from tests.harness.documents import make_pdf
from tests.service.gateway import conftest as gateway_fixtures
from tests.service.gateway.conftest import Tenants
from tests.service.gateway.harness import LiveGateway

pytestmark = pytest.mark.integration

# The gateway tests' fixtures (per-test tenants file, settings, live gateway, object store).
settings = gateway_fixtures.settings
gateway = gateway_fixtures.gateway
store = gateway_fixtures.store
worker = gateway_fixtures.worker

SECRET_TEXT = "Beta confidential merger plan XQZW"
BETA_FILE = "beta-merger-plan.pdf"


def client(gw: LiveGateway, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


async def submit_and_finish(c: httpx.AsyncClient, text: str, name: str) -> dict[str, Any]:
    r = await c.post("/v1/parse", files={"file": (name, make_pdf(text))})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    async with asyncio.timeout(120):
        while True:
            job: dict[str, Any] = (await c.get(f"/v1/jobs/{job_id}")).json()
            if job["status"] in ("succeeded", "failed"):
                assert job["status"] == "succeeded", job
                return job
            await asyncio.sleep(0.1)


async def raw_request(gw: LiveGateway, method: str, target: str, key: str) -> tuple[int, bytes]:
    """Send the request target exactly as given (httpx would normalise `..` and encodings)."""
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        writer.write(head.encode("latin-1") + b"Connection: close\r\n\r\n")
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = data.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), body


def assert_no_leak(body: bytes, tenants: Tenants, where: str) -> None:
    """Nothing of beta's in an answer to acme, beyond what acme itself sent (`where`: an error
    message may echo the requested path, which is the caller's own input)."""
    text = body.decode("utf-8", "replace")
    for secret in (tenants.beta, BETA_FILE, SECRET_TEXT, "merger"):
        if secret in where:
            text = text.replace(secret, "")
        assert secret not in text, f"{where}: {secret!r} leaked in {text[:300]!r}"


def crafted_paths(own_job: str, beta: str, beta_job: str, artifact: str) -> list[str]:
    """Artifact paths under acme's own job that try to reach beta's objects."""
    target = f"{beta}/{beta_job}/{artifact}"
    return [
        f"../{beta_job}/{artifact}",
        f"../../{target}",
        f"%2e%2e/{beta_job}/{artifact}",
        f"%2e%2e%2f%2e%2e%2f{quote(target, safe='')}",
        f"..%2F..%2F{beta}%2F{beta_job}%2F{artifact}",
        f"..%252F..%252F{beta}%252F{beta_job}%252F{artifact}",  # double-encoded
        f"/{target}",  # absolute
        f"//{target}",
        quote(f"/{target}", safe=""),
        target,  # beta's prefix relative to ours
        quote(target, safe=""),
        f"..\\..\\{beta}\\{beta_job}\\{artifact}",
        quote(f"..\\..\\{beta}\\{beta_job}\\{artifact}", safe=""),
        f"{artifact}%00../../{target}",
        f"{artifact}%00",
        f"%0d%0a{artifact}",
        f"%01{artifact}",
        f"./{artifact}/../../../{target}",
        f"{artifact}?tenant_id={beta}",
        f"{artifact};tenant={beta}",
    ]


async def test_tenant_a_cannot_reach_tenant_b(
    gateway: LiveGateway, worker: Any, tenants: Tenants, settings: Settings, store: ObjectStore
) -> None:
    async with client(gateway, tenants.beta_key) as beta, client(gateway, tenants.acme_key) as acme:
        beta_job = await submit_and_finish(beta, SECRET_TEXT, BETA_FILE)
        acme_job = await submit_and_finish(acme, "Acme public note", "acme-note.pdf")
        beta_id, acme_id = beta_job["job_id"], acme_job["job_id"]
        assert beta_job["artifacts"], beta_job
        # The real objects exist, so a 404 below is isolation, not absence.
        for path in beta_job["artifacts"]:
            assert await store.get_bytes("percolate-artifacts", f"{tenants.beta}/{beta_id}/{path}")

        # A random id and beta's real id get the same answer (modulo the echoed id).
        random_id = uuid.uuid4().hex
        r_random = await acme.get(f"/v1/jobs/{random_id}")
        assert r_random.status_code == 404
        r_beta = await acme.get(f"/v1/jobs/{beta_id}")
        assert r_beta.status_code == 404
        assert r_beta.text.replace(beta_id, random_id) == r_random.text
        assert r_beta.headers.keys() == r_random.headers.keys()
        for method, path in [
            ("GET", f"/v1/jobs/{beta_id}"),
            ("DELETE", f"/v1/jobs/{beta_id}"),
            *[("GET", f"/v1/jobs/{beta_id}/artifacts/{p}") for p in beta_job["artifacts"]],
            ("GET", f"/v1/jobs/{beta_id}?tenant_id={tenants.beta}"),
            ("GET", f"/v1/jobs/{beta_id.upper()}"),
            ("GET", f"/v1/jobs/{beta_id}%00"),
            ("GET", f"/v1/jobs/{tenants.beta}%2F{beta_id}"),
            ("GET", f"/v1/jobs/..%2F{tenants.beta}%2F{beta_id}"),
        ]:
            status, body = await raw_request(gateway, method, path, tenants.acme_key)
            assert status == 404, (method, path, body)
            assert_no_leak(body, tenants, f"{method} {path}")
            error = json.loads(body)["error"]
            # job_not_found, or not_found where `%2F` made it no route at all.
            assert error["code"] in ("job_not_found", "not_found"), (path, error)
        assert r_random.json()["error"]["code"] == "job_not_found"
        for _ in range(20):
            guess = uuid.uuid4().hex
            for method in ("GET", "DELETE"):
                status, body = await raw_request(gateway, method, f"/v1/jobs/{guess}", tenants.acme_key)
                assert status == 404, body

        # Crafted artifact paths under acme's own (real, succeeded) job.
        for artifact in beta_job["artifacts"]:
            for path in crafted_paths(acme_id, tenants.beta, beta_id, artifact):
                target = f"/v1/jobs/{acme_id}/artifacts/{path}"
                status, body = await raw_request(gateway, "GET", target, tenants.acme_key)
                # A query string is no part of the path: acme's own artifact, nothing of beta's.
                ok = (400, 404, 200) if "?" in path else (400, 404)
                assert status in ok, (target, status, body)
                assert_no_leak(body, tenants, target)

        # Listing: only acme's jobs, whatever the query asks for.
        for query in (
            "",
            f"?tenant_id={tenants.beta}",
            f"?tenant={tenants.beta}",
            "?status=succeeded",
            "?limit=500",
            f"?cursor=tenant.{tenants.beta}.0",
            f"?cursor=tenant.{tenants.acme}.0&tenant_id={tenants.beta}",
            f"?cursor=tenant.{tenants.acme}.{'9' * 13}.zzz",
        ):
            status, body = await raw_request(gateway, "GET", f"/v1/jobs{query}", tenants.acme_key)
            assert status in (200, 400), (query, status, body)
            assert_no_leak(body, tenants, f"/v1/jobs{query}")
            if status == 200:
                ids = {j["job_id"] for j in json.loads(body)["jobs"]}
                assert beta_id not in ids
                assert ids <= {acme_id}
        listed = (await acme.get("/v1/jobs")).json()["jobs"]
        assert [j["job_id"] for j in listed] == [acme_id]
        assert {j["tenant_id"] for j in listed} == {tenants.acme}

        # A header naming beta changes nothing: the tenant comes from the key only.
        r = await acme.get("/v1/jobs", headers={"X-Tenant-Id": tenants.beta})
        assert [j["job_id"] for j in r.json()["jobs"]] == [acme_id]

        # The context holds acme's document only (poll: the manifest is rebuilt after the job).
        async with asyncio.timeout(60):
            while True:
                r = await acme.get(
                    "/v1/context", params={"include_chunks": "true", "tenant_id": tenants.beta}
                )
                assert r.status_code == 200
                if r.json()["documents"]:
                    break
                await asyncio.sleep(0.2)
        context = r.json()
        assert context["tenant_id"] == tenants.acme
        assert [d["job_id"] for d in context["documents"]] == [acme_id]
        assert_no_leak(r.content, tenants, "/v1/context")

        # Beta still sees its job, not cancelled, with its artifacts.
        after = (await beta.get(f"/v1/jobs/{beta_id}")).json()
        assert after["status"] == "succeeded"
        assert after["artifacts"] == beta_job["artifacts"]
        md = await beta.get(f"/v1/jobs/{beta_id}/artifacts/{beta_job['artifacts'][0]}")
        assert md.status_code == 200


async def test_forged_message_for_another_tenants_job_is_rejected(
    gateway: LiveGateway, worker: Any, tenants: Tenants, settings: Settings, store: ObjectStore
) -> None:
    """A message on the shared subject that names acme, points into acme's prefix, but carries
    beta's job id: the worker rejects it and beta's record stays exactly as it was."""
    async with client(gateway, tenants.beta_key) as beta:
        beta_job = await submit_and_finish(beta, SECRET_TEXT, BETA_FILE)
    beta_id = beta_job["job_id"]
    key = f"{tenants.acme}/{beta_id}/forged.pdf"
    forged_pdf = make_pdf("forged by acme")
    await store.put_bytes("percolate-files", key, forged_pdf)
    forged = JobMessage(
        job_id=beta_id,
        tenant_id=tenants.acme,
        file_name="forged.pdf",
        file_type="pdf",
        s3_uri=f"s3://percolate-files/{key}",
        size_bytes=len(forged_pdf),
    )
    nc = await connect(settings)
    try:
        js = nc.jetstream()
        # Its own message id: beta's id would be de-duplicated by JetStream before any worker.
        await js.publish(
            "jobs.parse.small",
            forged.model_dump_json().encode(),
            headers={"Nats-Msg-Id": "forged-" + uuid.uuid4().hex},
        )
        async with asyncio.timeout(60):
            while True:
                info = await js.consumer_info(STREAM_NAME, consumer_name("small"))
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    break
                await asyncio.sleep(0.05)
    finally:
        await nc.close()
    async with client(gateway, tenants.beta_key) as beta:
        after = (await beta.get(f"/v1/jobs/{beta_id}")).json()
    assert after["status"] == "succeeded"
    assert after["tenant_id"] == tenants.beta
    assert after["attempts"] == beta_job["attempts"]
    assert after["updated_at"] == beta_job["updated_at"]
    assert after["artifacts"] == beta_job["artifacts"]
    # Nothing was written for the forged job under acme's prefix.
    assert await store.list_keys("percolate-artifacts", f"{tenants.acme}/{beta_id}/") == []
    async with client(gateway, tenants.acme_key) as acme:
        assert (await acme.get(f"/v1/jobs/{beta_id}")).status_code == 404
        assert (await acme.get("/v1/jobs")).json()["jobs"] == []
