"""The gateway against real nats-server and SeaweedFS, without a worker: acceptance, auth,
isolation, quotas, size caps, outages. A job stays queued here (nothing consumes it)."""

from __future__ import annotations

import asyncio
import select
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest

from percolate_reading.config import Settings
from percolate_reading.contract.jobs import JobMessage, JobOptions
from percolate_reading.infra.queue.jetstream import publish_job
from percolate_reading.infra.storage.base import ObjectStore
from tests.harness.documents import make_pdf
from tests.servers import NatsServer, SeaweedS3
from tests.service.gateway.conftest import Tenants, make_settings
from tests.service.gateway.harness import LiveGateway

pytestmark = pytest.mark.integration


def client(gw: LiveGateway, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30)


@pytest.fixture
async def acme(gateway: LiveGateway, tenants: Tenants) -> AsyncIterator[httpx.AsyncClient]:
    async with client(gateway, tenants.acme_key) as c:
        yield c


async def submit_pdf(c: httpx.AsyncClient, text: str = "hello gateway", name: str = "report.pdf") -> str:
    r = await c.post("/v1/parse", files={"file": (name, make_pdf(text))})
    assert r.status_code == 202, r.text
    job_id: str = r.json()["job_id"]
    return job_id


async def test_202_after_puback_with_message_on_stream(
    acme: httpx.AsyncClient, settings: Settings, tenants: Tenants, store: ObjectStore
) -> None:
    pdf = make_pdf("Quarterly report")
    r = await acme.post(
        "/v1/parse",
        files={"file": ("../../Q3 report.pdf", pdf, "text/plain")},
        data={"ocr_enabled": "False", "language": "de", "callback_url": "http://127.0.0.1:9/hook"},
    )
    assert r.status_code == 202, r.text
    body = r.json()
    job_id = body["job_id"]
    assert body["status_url"].endswith(f"/v1/jobs/{job_id}")

    nc = await nats.connect(settings.nats_url)
    try:
        msg = await nc.jetstream().get_last_msg("JOBS", "jobs.parse.small")
    finally:
        await nc.close()
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == job_id
    job = JobMessage.model_validate_json(msg.data)
    assert job.job_id == job_id
    assert job.tenant_id == tenants.acme
    assert job.file_name == "Q3 report.pdf"  # path parts gone
    assert job.file_type == "pdf"  # sniffed, not the client's text/plain
    assert job.options == JobOptions(ocr_enabled=False, language="de")  # parsed once, here
    assert job.callback_url == "http://127.0.0.1:9/hook"
    assert job.size_bytes == len(pdf)
    key = f"{tenants.acme}/{job_id}/Q3 report.pdf"
    assert job.s3_uri == f"s3://percolate-files/{key}"
    assert await store.get_bytes("percolate-files", key) == pdf

    status = (await acme.get(f"/v1/jobs/{job_id}")).json()
    assert status["status"] == "queued"
    assert status["tenant_id"] == tenants.acme
    assert status["file_type"] == "pdf"


async def test_wrong_or_missing_key_is_401(gateway: LiveGateway) -> None:
    async with client(gateway, "not-a-key") as c:
        r = await c.post("/v1/parse", files={"file": ("a.pdf", make_pdf("x"))})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert "not-a-key" not in r.text
        assert (await c.get("/v1/jobs")).status_code == 401
    async with client(gateway, None) as c:
        r = await c.get("/v1/jobs")
        assert r.status_code == 401
        assert r.json()["error"]["message"]


async def test_other_tenants_job_is_404(
    gateway: LiveGateway, acme: httpx.AsyncClient, tenants: Tenants
) -> None:
    job_id = await submit_pdf(acme)
    async with client(gateway, tenants.beta_key) as beta:
        for method, path in (
            ("GET", f"/v1/jobs/{job_id}"),
            ("GET", f"/v1/jobs/{job_id}/artifacts/document.md"),
            ("DELETE", f"/v1/jobs/{job_id}"),
        ):
            r = await beta.request(method, path)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["error"]["code"] == "job_not_found"
        listed = (await beta.get("/v1/jobs")).json()
        assert listed["jobs"] == []
    # And the owner still sees it, uncancelled.
    assert (await acme.get(f"/v1/jobs/{job_id}")).json()["status"] == "queued"


async def test_list_cancel_and_conflict(
    acme: httpx.AsyncClient, store: ObjectStore, tenants: Tenants
) -> None:
    ids = [await submit_pdf(acme, f"doc {i}", f"d{i}.pdf") for i in range(3)]
    r = await acme.delete(f"/v1/jobs/{ids[0]}")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    r = await acme.delete(f"/v1/jobs/{ids[0]}")
    assert r.status_code == 409
    # The cancelled job's staged file is gone; the others' are still there.
    keys = await store.list_keys("percolate-files", f"{tenants.acme}/")
    assert sorted(k.split("/")[1] for k in keys) == sorted(ids[1:])
    assert r.json()["error"]["code"] == "not_cancellable"

    queued = (await acme.get("/v1/jobs", params={"status": "queued"})).json()["jobs"]
    assert sorted(j["job_id"] for j in queued) == sorted(ids[1:])
    cancelled = (await acme.get("/v1/jobs", params={"status": "cancelled"})).json()["jobs"]
    assert [j["job_id"] for j in cancelled] == [ids[0]]
    exported = (await acme.get("/metrics")).text
    assert 'job_duration_seconds_count{outcome="cancelled",tier="small"} 1.0' in exported

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await acme.get("/v1/jobs", params=params)).json()
        assert len(page["jobs"]) <= 2
        seen.extend(j["job_id"] for j in page["jobs"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)


async def test_unsupported_empty_and_bad_requests(
    acme: httpx.AsyncClient, store: ObjectStore, tenants: Tenants
) -> None:
    r = await acme.post("/v1/parse", files={"file": ("notes.pdf", b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 8)})
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_type"
    r = await acme.post("/v1/parse", files={"file": ("empty.pdf", b"")})
    assert r.status_code == 400
    r = await acme.post("/v1/parse", data={"tier": "small"})
    assert r.status_code == 400
    # `priority` is not part of the API (JetStream has no priorities; nothing would read it).
    r = await acme.post("/v1/parse", files={"file": ("a.pdf", make_pdf("x"))}, data={"priority": "4"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "unknown form fields: priority"
    r = await acme.post("/v1/parse", files={"file": ("a.pdf", make_pdf("x"))}, data={"evil": "1"})
    assert r.status_code == 400
    fields = {f"f{i}": "x" for i in range(100)}
    r = await acme.post("/v1/parse", files={"file": ("a.pdf", make_pdf("x"))}, data=fields)
    assert r.status_code == 400
    assert "parts" in r.json()["error"]["message"]
    # An unknown language is refused before the job costs a parse; known ones in any case.
    for language in ("klingon", "e", "en; DROP", "EN-US"):
        r = await acme.post(
            "/v1/parse", files={"file": ("a.pdf", make_pdf("x"))}, data={"language": language}
        )
        assert r.status_code == 400, language
        assert r.json()["error"]["code"] == "invalid_language"
    assert await store.list_keys("percolate-files", f"{tenants.acme}/") == []
    r = await acme.post("/v1/parse", files={"file": ("a.pdf", make_pdf("x"))}, data={"language": " DE "})
    assert r.status_code == 202, r.text
    # A mixed-language recording: its expected languages, or "multi" (each segment detected).
    for language in ("en,de", "multi"):
        r = await acme.post(
            "/v1/parse", files={"file": ("a.pdf", make_pdf("x"))}, data={"language": language}
        )
        assert r.status_code == 202, (language, r.text)


async def test_quota_429(gateway: LiveGateway, tenants: Tenants) -> None:
    async with client(gateway, tenants.tiny_key) as tiny:
        await submit_pdf(tiny)
        r = await tiny.post("/v1/parse", files={"file": ("b.pdf", make_pdf("second"))})
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "too_many_jobs"
        assert r.headers["Retry-After"]


def _raw_upload(gw: LiveGateway, key: str, *, declared: int | None, total: int) -> tuple[bytes, int]:
    """Send a multipart upload over a raw socket, reading the answer as soon as there is one.
    Returns (response head, body bytes sent before the answer came)."""
    boundary = "rawBoundary42"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n%PDF-1.7\n'
    ).encode()
    headers = [
        "POST /v1/parse HTTP/1.1",
        f"Host: 127.0.0.1:{gw.settings.port}",
        f"Authorization: Bearer {key}",
        f"Content-Type: multipart/form-data; boundary={boundary}",
    ]
    headers.append(f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked")
    chunk = b"\0" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", gw.settings.port)) as sock:
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())

        def send(data: bytes) -> None:
            if declared is None:
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            else:
                sock.sendall(data)

        try:
            send(head)
            while sent < total:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                send(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(30)
        response = b""
        while b"\r\n\r\n" not in response:
            data = sock.recv(65536)
            if not data:
                break
            response += data
    return response, sent


async def test_oversized_upload_413_before_the_body_is_read(
    gateway: LiveGateway, tenants: Tenants, store: ObjectStore
) -> None:
    # The tiny tenant may upload 64 KiB. A 10 GiB Content-Length is refused on sight...
    response, sent = await asyncio.to_thread(
        _raw_upload, gateway, tenants.tiny_key, declared=10 * 1024**3, total=10 * 1024**3
    )
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < 64 * 1024 * 1024
    # ...and a chunked body with no length is cut off once the counted bytes pass the cap.
    response, sent = await asyncio.to_thread(
        _raw_upload, gateway, tenants.tiny_key, declared=None, total=1024**3
    )
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < 64 * 1024 * 1024  # the answer came long before the 1 GiB body was sent
    assert await store.list_keys("percolate-files", f"{tenants.tiny}/") == []


async def test_nats_down_is_503_and_leaves_nothing(
    acme: httpx.AsyncClient, fresh_nats_server: NatsServer, store: ObjectStore, tenants: Tenants
) -> None:
    fresh_nats_server.stop()
    r = await acme.post("/v1/parse", files={"file": ("a.pdf", make_pdf("during the outage"))})
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert await store.list_keys("percolate-files", f"{tenants.acme}/") == []
    ready = await acme.get("/ready")
    assert ready.status_code == 503
    fresh_nats_server.start()

    # Once the gateway has reconnected, uploads are accepted again and really queued.
    for _ in range(150):
        r = await acme.post("/v1/parse", files={"file": ("b.pdf", make_pdf("after the outage"))})
        if r.status_code == 202:
            break
        assert r.status_code == 503, r.text
        await asyncio.sleep(0.2)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    nc = await nats.connect(fresh_nats_server.url)
    try:
        msg = await nc.jetstream().get_last_msg("JOBS", "jobs.parse.small")
    finally:
        await nc.close()
    assert JobMessage.model_validate_json(msg.data).job_id == job_id
    assert (await acme.get("/ready")).status_code == 200


async def test_full_queue_503_removes_staged_object_and_fails_record(
    tmp_path: object,
    seaweed_s3: object,
    fresh_nats_server: NatsServer,
    tenants_file: object,
    tenants: Tenants,
) -> None:
    # A stream that holds one message (discard new): the second publish gets no PubAck, after
    # its file was already staged and its record written. Both must be undone.
    from pathlib import Path

    from tests.service.gateway.conftest import make_settings

    settings = make_settings(
        Path(str(tmp_path)), fresh_nats_server, seaweed_s3, tenants_file, nats_max_msgs=1
    )  # type: ignore[arg-type]
    gw = LiveGateway(settings)
    gw.start()
    try:
        async with client(gw, tenants.acme_key) as c:
            first = await submit_pdf(c, "first")
            r = await c.post("/v1/parse", files={"file": ("second.pdf", make_pdf("second"))})
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "queue_unavailable"
            jobs = (await c.get("/v1/jobs")).json()["jobs"]
        from percolate_reading.infra.storage import open_object_store

        store = await open_object_store(settings)
        try:
            keys = await store.list_keys("percolate-files", f"{tenants.acme}/")
        finally:
            await store.close()
        assert keys == [f"{tenants.acme}/{first}/report.pdf"]
        others = [j for j in jobs if j["job_id"] != first]
        assert all(j["status"] == "failed" and j["error"]["code"] == "queue_unavailable" for j in others)
    finally:
        gw.stop()


async def test_duplicate_publish_is_deduplicated(acme: httpx.AsyncClient, settings: Settings) -> None:
    job_id = await submit_pdf(acme)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        msg = await js.get_last_msg("JOBS", "jobs.parse.small")
        before = (await js.stream_info("JOBS")).state.messages
        again = JobMessage.model_validate_json(msg.data)
        assert again.job_id == job_id
        seq = await publish_job(js, again, "jobs.parse.small")
        assert seq == msg.seq
        assert (await js.stream_info("JOBS")).state.messages == before
    finally:
        await nc.close()


async def test_artifact_paths_are_validated(acme: httpx.AsyncClient) -> None:
    job_id = await submit_pdf(acme)
    for path in ("../../other/job/document.md", "%2e%2e/x", "document.md", "a/../../b"):
        r = await acme.get(f"/v1/jobs/{job_id}/artifacts/{path}")
        assert r.status_code == 404, path
    r = await acme.get("/v1/jobs/..%2F..%2Fetc")
    assert r.status_code == 404


async def test_health_ready_metrics(acme: httpx.AsyncClient) -> None:
    assert (await acme.get("/health")).json() == {"status": "ok"}
    ready = await acme.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"nats": "ok", "storage": "ok", "background_tasks": "ok"}
    await submit_pdf(acme)
    text = (await acme.get("/metrics")).text
    assert "http_requests_total" in text
    assert 'endpoint="/v1/parse"' in text
    assert "s3_upload_duration_seconds" in text
    assert "nats_publish_duration_seconds" in text
    # The queue-stats collector runs in the lifespan: its first read lands at start-up.
    async with asyncio.timeout(10):
        while "queue_stats_last_success_timestamp_seconds 0.0" in text:
            await asyncio.sleep(0.1)
            text = (await acme.get("/metrics")).text
    assert "queue_stats_last_success_timestamp_seconds 1." in text


async def test_callback_to_private_address_is_refused(
    acme: httpx.AsyncClient, store: ObjectStore, tenants: Tenants
) -> None:
    for url in ("http://169.254.169.254/latest/meta-data", "http://10.0.0.1/hook", "http://[::1]:8080/x"):
        r = await acme.post("/v1/parse", files={"file": ("a.pdf", make_pdf("x"))}, data={"callback_url": url})
        assert r.status_code == 400, url
        assert r.json()["error"]["code"] == "callback_refused"
    r = await acme.post(
        "/v1/parse", files={"file": ("a.pdf", make_pdf("x"))}, data={"callback_url": "ftp://x/y"}
    )
    assert r.status_code == 400
    assert await store.list_keys("percolate-files", f"{tenants.acme}/") == []


async def test_context_of_a_new_tenant_is_empty(acme: httpx.AsyncClient, tenants: Tenants) -> None:
    r = await acme.get("/v1/context")
    assert r.status_code == 200
    body = r.json()
    assert body["tenant_id"] == tenants.acme
    assert body["documents"] == []


async def test_tenant_written_to_the_kv_registry_can_authenticate(
    gateway: LiveGateway, settings: Settings
) -> None:
    from percolate_reading.contract.tenancy import TENANTS_KV_BUCKET, TenantRecord, hash_api_key

    record = TenantRecord(tenant_id="operator-made", api_key_hashes=(hash_api_key("fresh-key-123"),))
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        try:
            kv = await js.key_value(TENANTS_KV_BUCKET)
        except Exception:
            kv = await js.create_key_value(bucket=TENANTS_KV_BUCKET)
        async with client(gateway, "fresh-key-123") as c:
            assert (await c.get("/v1/jobs")).status_code == 401
            await kv.put("operator-made", record.model_dump_json().encode())
            for _ in range(100):  # the watch delivers the update asynchronously
                if (await c.get("/v1/jobs")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await c.get("/v1/jobs")).status_code == 200
            await kv.delete("operator-made")
            for _ in range(100):
                if (await c.get("/v1/jobs")).status_code == 401:
                    break
                await asyncio.sleep(0.1)
            assert (await c.get("/v1/jobs")).status_code == 401
    finally:
        await nc.close()


async def test_ready_reports_a_stopped_background_task(tmp_path: object) -> None:
    from pathlib import Path

    from percolate_reading.gateway.deps import GatewayDeps
    from percolate_reading.gateway.routes.health import readiness
    from percolate_reading.infra.jobs.rocks_store import RocksJobStore
    from percolate_reading.infra.registry import TenantRegistry
    from percolate_reading.infra.storage.local import LocalObjectStore

    base = Path(str(tmp_path))
    jobs = RocksJobStore(base / "jobs")
    deps = GatewayDeps(
        settings=Settings(data_dir=base),
        store=LocalObjectStore(base / "objects"),
        jobs=jobs,
        registry=TenantRegistry(),
    )

    async def crash() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(crash())
    await asyncio.gather(task, return_exceptions=True)
    deps.tasks["tenant-registry"] = task
    try:
        checks = await readiness(deps)
    finally:
        await jobs.close()
    assert checks["background_tasks"] == "stopped: tenant-registry"
    assert checks["storage"] == "ok"


async def test_s3_down_is_503_and_nothing_is_queued(
    tmp_path: object, fresh_nats_server: NatsServer, tenants_file: object, tenants: Tenants
) -> None:
    from pathlib import Path

    from tests.servers import SeaweedS3
    from tests.service.gateway.conftest import make_settings

    base = Path(str(tmp_path))
    own_s3 = SeaweedS3(base / "own-seaweed")
    own_s3.start()
    try:
        settings = make_settings(base, fresh_nats_server, own_s3, tenants_file)  # type: ignore[arg-type]
        gw = LiveGateway(settings)
        gw.start()
        try:
            async with client(gw, tenants.acme_key) as c:
                await submit_pdf(c, "before the outage")
                own_s3.stop()
                r = await c.post("/v1/parse", files={"file": ("a.pdf", make_pdf("during the outage"))})
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "storage_unavailable"
                assert int(r.headers["Retry-After"]) > 0
                assert (await c.get("/ready")).status_code == 503
                listed = (await c.get("/v1/jobs")).json()["jobs"]
            assert len(listed) == 1  # only the job from before the outage
            nc = await nats.connect(settings.nats_url)
            try:
                assert (await nc.jetstream().stream_info("JOBS")).state.messages == 1
            finally:
                await nc.close()
        finally:
            gw.stop()
    finally:
        own_s3.stop()


async def test_every_error_is_json(acme: httpx.AsyncClient) -> None:
    for method, path, status in (
        ("GET", "/nope", 404),
        ("PUT", "/v1/jobs", 405),
        ("GET", "/v1/jobs?limit=0", 422),
        ("GET", "/v1/jobs?status=bogus", 422),
    ):
        r = await acme.request(method, path)
        assert r.status_code == status, (method, path, r.text)
        error = r.json()["error"]
        assert error["code"]
        assert error["message"]


async def test_dedicated_pool_and_tier_rules(
    gateway: LiveGateway, settings: Settings, tenants: Tenants
) -> None:
    async with client(gateway, tenants.dedi_key) as c:
        job_id = await submit_pdf(c)
        r = await c.post("/v1/parse", files={"file": ("a.pdf", make_pdf("x"))}, data={"tier": "gpu"})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "tier_not_allowed"
    nc = await nats.connect(settings.nats_url)
    try:
        msg = await nc.jetstream().get_last_msg("JOBS", f"jobs.parse.small.{tenants.dedi}")
    finally:
        await nc.close()
    job = JobMessage.model_validate_json(msg.data)
    assert job.job_id == job_id
    assert job.tenant_id == tenants.dedi


async def test_urls_never_reflect_the_host_header(
    tmp_path: Path, fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3, tenants_file: Path, tenants: Tenants
) -> None:
    """Finding: a client-chosen Host ended up in status_url, Location and artifact URLs."""
    for base in (None, "https://parse.example.com/"):
        settings = make_settings(tmp_path, fresh_nats_server, seaweed_s3, tenants_file, public_base_url=base)
        gw = LiveGateway(settings)
        gw.start()
        try:
            async with client(gw, tenants.acme_key) as c:
                evil = {"Host": "evil.example:666", "X-Forwarded-Host": "evil.example"}
                r = await c.post("/v1/parse", files={"file": ("a.pdf", make_pdf("host"))}, headers=evil)
                assert r.status_code == 202, r.text
                job_id = r.json()["job_id"]
                expected = (
                    f"/v1/jobs/{job_id}" if base is None else f"https://parse.example.com/v1/jobs/{job_id}"
                )
                assert r.json()["status_url"] == expected
                assert r.headers["Location"] == expected
                status = await c.get(f"/v1/jobs/{job_id}", headers=evil)
                assert status.json()["status_url"] == expected
                listing = await c.get("/v1/jobs", headers=evil)
                assert "evil" not in listing.text
                assert any(j["status_url"] == expected for j in listing.json()["jobs"])
        finally:
            gw.stop()


async def test_ready_is_false_while_nats_server_is_frozen(
    gateway: LiveGateway, fresh_nats_server: NatsServer
) -> None:
    """The socket of a SIGSTOPped server stays open: only a round-trip notices."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as c:
        assert (await c.get("/ready")).status_code == 200
        assert fresh_nats_server.proc is not None
        fresh_nats_server.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            r = await c.get("/ready")
            assert r.status_code == 503, r.text
            assert r.json()["checks"]["nats"].startswith("no answer")
            assert time.monotonic() - started < 10
        finally:
            fresh_nats_server.proc.send_signal(signal.SIGCONT)
        for _ in range(50):
            if (await c.get("/ready")).status_code == 200:
                break
            await asyncio.sleep(0.2)
        assert (await c.get("/ready")).status_code == 200


async def test_a_tier_without_a_pool_is_refused_at_submit(
    tmp_path: Path,
    fresh_nats_server: NatsServer,
    seaweed_s3: SeaweedS3,
    tenants_file: Path,
    tenants: Tenants,
    store: ObjectStore,
) -> None:
    """Finding: tier=gpu with no gpu pool was accepted and sat queued for 7 days."""
    from percolate_reading.contract.topology import ConsumerLimits
    from percolate_reading.infra.queue.topology import ensure_pool_consumers

    settings = make_settings(tmp_path, fresh_nats_server, seaweed_s3, tenants_file, small_tier_max_bytes=100)
    gw = LiveGateway(settings, shared_pools=False)
    gw.start()  # creates the streams, no consumer
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        limits = ConsumerLimits.from_settings(settings)
        await ensure_pool_consumers(js, "jobs.parse.small", "parse-workers-small", limits)
        async with client(gw, tenants.acme_key) as c:
            r = await c.post("/v1/parse", files={"file": ("a.pdf", make_pdf("gpu"))}, data={"tier": "gpu"})
            assert r.status_code == 409, r.text
            assert r.json()["error"]["code"] == "no_pool_for_tier"
            assert "gpu" in r.json()["error"]["message"]
            assert await store.list_keys("percolate-files", f"{tenants.acme}/") == []
            # Automatic choice (large: over small_tier_max_bytes) falls back to the small pool.
            r = await c.post("/v1/parse", files={"file": ("b.pdf", make_pdf("auto"))})
            assert r.status_code == 202, r.text
            msg = await js.get_last_msg("JOBS", "jobs.parse.small")
            assert JobMessage.model_validate_json(msg.data).job_id == r.json()["job_id"]
            # A pool created now is seen within the refresh interval.
            await ensure_pool_consumers(js, "jobs.parse.gpu", "parse-workers-gpu", limits)
            await asyncio.sleep(2.5)
            r = await c.post("/v1/parse", files={"file": ("c.pdf", make_pdf("gpu"))}, data={"tier": "gpu"})
            assert r.status_code == 202, r.text
    finally:
        await nc.close()
        gw.stop()


async def test_password_is_staged_beside_the_upload_not_in_the_message(
    acme: httpx.AsyncClient, settings: Settings, tenants: Tenants, store: ObjectStore
) -> None:
    """Finding: the password sat in plain text in JOBS (7 days) and its JOBS_DLQ copy (30)."""
    password = "pa55-W0rd-unique-71c3"
    r = await acme.post(
        "/v1/parse", files={"file": ("s.pdf", make_pdf("locked"))}, data={"password": password}
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    nc = await nats.connect(settings.nats_url)
    try:
        msg = await nc.jetstream().get_last_msg("JOBS", "jobs.parse.small")
    finally:
        await nc.close()
    assert password.encode() not in msg.data
    job = JobMessage.model_validate_json(msg.data)
    assert job.job_id == job_id
    assert job.options.password is None
    assert job.options.password_staged
    staged = f"{tenants.acme}/{job_id}/.staged/password"
    assert await store.get_bytes("percolate-files", staged) == password.encode()
    status = await acme.get(f"/v1/jobs/{job_id}")
    assert password not in status.text
