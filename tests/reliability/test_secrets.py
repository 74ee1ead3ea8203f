"""API keys: held only as SHA-256 hashes outside their Secret, compared in constant time against
every hash, and never logged, echoed in an error or exported in /metrics.

Against the real thing: the TENANTS key-value entry on a real nats-server (written the way the
operator writes it), the live gateway's in-memory registry, and every log record of a gateway
and worker run at DEBUG through a real request sequence.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from percolate_operator import builders
from percolate_operator.models import TenantSpec
from percolate_reading.config import LogFormat, Settings
from percolate_reading.contract import tenancy
from percolate_reading.contract.tenancy import TENANTS_KV_BUCKET, TenantRecord, generate_api_key, hash_api_key
from percolate_reading.infra.queue.jetstream import connect
from percolate_reading.infra.registry import TenantRegistry
from percolate_reading.logs import make_handler
from tests.harness.documents import make_pdf
from tests.servers import NatsServer, SeaweedS3
from tests.service.gateway import conftest as gateway_fixtures
from tests.service.gateway.conftest import Tenants, make_settings
from tests.service.gateway.harness import LiveGateway

pytestmark = pytest.mark.integration

worker = gateway_fixtures.worker

DEV_KEY = "pr_dev-key-for-the-secrets-test-0123456789"


def strings_in(obj: Any, seen: set[int] | None = None, depth: int = 0) -> Iterator[str]:
    """Every string reachable from `obj` (containers, pydantic models, plain objects)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 12:
        return
    seen.add(id(obj))
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, bytes):
        yield obj.decode("utf-8", "replace")
    elif isinstance(obj, SecretStr):
        yield obj.get_secret_value()
    elif isinstance(obj, BaseModel):
        yield from strings_in(obj.model_dump(mode="json"), seen, depth + 1)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from strings_in(k, seen, depth + 1)
            yield from strings_in(v, seen, depth + 1)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            yield from strings_in(v, seen, depth + 1)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        yield from strings_in(vars(obj), seen, depth + 1)


def assert_hashes_only(registry: TenantRegistry, keys: dict[str, str]) -> None:
    """`keys`: tenant id -> plaintext key. The registry holds each key's hash, never the key."""
    held = list(strings_in(registry))
    for tenant_id, key in keys.items():
        assert not [s for s in held if key in s], f"{tenant_id}'s plaintext key is in the registry"
        record = registry.get(tenant_id)
        assert record is not None
        assert hashlib.sha256(key.encode()).hexdigest() in record.api_key_hashes
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in record.api_key_hashes)


@pytest.fixture
def settings(
    tmp_path: Path, fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3, tenants_file: Path
) -> Settings:
    return make_settings(
        tmp_path, fresh_nats_server, seaweed_s3, tenants_file, dev_api_key=SecretStr(DEV_KEY)
    )


@pytest.fixture
def gateway(settings: Settings) -> Iterator[LiveGateway]:
    with LiveGateway.running(settings) as gw:
        yield gw


def live_registry(gw: LiveGateway) -> TenantRegistry:
    app: Any = gw.server.config.app
    registry: TenantRegistry = app.state.deps.registry
    return registry


def operator_spec() -> TenantSpec:
    return TenantSpec.model_validate({"displayName": "Initech"})


async def test_kv_entry_and_live_registry_hold_only_hashes(
    gateway: LiveGateway, settings: Settings, tenants: Tenants
) -> None:
    # The operator's way: the key goes to the Secret, its hash to the TENANTS entry.
    kv_key = generate_api_key()
    record = builders.build_tenant_record("initech", operator_spec(), [hash_api_key(kv_key)], None)
    key, value = builders.registry_entry(record)
    assert kv_key.encode() not in value
    nc = await connect(settings)
    try:
        kv = await nc.jetstream().key_value(TENANTS_KV_BUCKET)
        await kv.put(key, value)
        entry = await kv.get("initech")
        assert entry.value is not None
        assert kv_key.encode() not in entry.value
        stored = json.loads(entry.value)
        assert stored["api_key_hashes"] == [hashlib.sha256(kv_key.encode()).hexdigest()]
        assert "api_key" not in stored
        assert "api_keys" not in stored
    finally:
        await nc.close()

    # The gateway picks it up from the watch and authenticates with it.
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {kv_key}"}, timeout=30
    ) as c:
        async with asyncio.timeout(30):
            while True:
                if (await c.get("/v1/jobs")).status_code == 200:
                    break
                await asyncio.sleep(0.1)

    # Tenants file keys (plaintext in the file, like a mounted Secret), the dev key and the KV key:
    # only their hashes are in the live registry.
    assert_hashes_only(
        live_registry(gateway),
        {
            "initech": kv_key,
            tenants.acme: tenants.acme_key,
            tenants.beta: tenants.beta_key,
            settings.dev_tenant_id: DEV_KEY,
        },
    )


def test_tenants_file_keys_are_hashed_on_load(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text("- tenant_id: solo\n  api_key: pr_plain-one\n  api_keys: [pr_plain-two]\n")
    registry = TenantRegistry.from_settings(Settings(tenants_file=path, dev_api_key=SecretStr(DEV_KEY)))
    assert_hashes_only(registry, {"solo": "pr_plain-one", "dev": DEV_KEY})
    record = registry.get("solo")
    assert record is not None
    assert record.api_key_hashes == (hash_api_key("pr_plain-one"), hash_api_key("pr_plain-two"))


class CompareSpy:
    """Records every call and delegates to the real hmac.compare_digest."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.real = hmac.compare_digest

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls.append((a, b))
        return self.real(a, b)


@pytest.fixture
def compare_spy(monkeypatch: pytest.MonkeyPatch) -> CompareSpy:
    spy = CompareSpy()
    # tenancy calls hmac.compare_digest through the module, so this sees every comparison.
    assert tenancy.key_matches.__globals__["hmac"] is hmac
    monkeypatch.setattr(hmac, "compare_digest", spy)
    return spy


@pytest.mark.parametrize("which", [0, 1, 2, None])
def test_every_hash_is_compared_with_compare_digest(compare_spy: CompareSpy, which: int | None) -> None:
    keys = [generate_api_key() for _ in range(3)]
    record = TenantRecord(tenant_id="multi", api_key_hashes=tuple(hash_api_key(k) for k in keys))
    offered = keys[which] if which is not None else generate_api_key()
    assert record.accepts_key(offered) is (which is not None)
    # No early exit: every hash is compared, whichever matched (or none).
    assert len(compare_spy.calls) == 3
    assert [b for _, b in compare_spy.calls] == list(record.api_key_hashes)
    assert all(a == hash_api_key(offered) for a, _ in compare_spy.calls)


def test_registry_authentication_goes_through_compare_digest(compare_spy: CompareSpy) -> None:
    keys = [generate_api_key() for _ in range(2)]
    registry = TenantRegistry([TenantRecord(tenant_id="pair", api_key_hashes=tuple(map(hash_api_key, keys)))])
    record = registry.authenticate(keys[1])
    assert record is not None
    assert record.tenant_id == "pair"
    assert len(compare_spy.calls) == 2
    compare_spy.calls.clear()
    assert registry.authenticate(generate_api_key()) is None
    assert registry.authenticate(keys[1] + "x") is None


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every record also written the way PERCOLATE_READING_LOG_FORMAT=json writes it."""
    out = io.StringIO()
    handler = make_handler(LogFormat.JSON, stream=out)
    root = logging.getLogger()
    root.addHandler(handler)
    yield out
    root.removeHandler(handler)


async def test_keys_never_logged_echoed_or_exported(
    gateway: LiveGateway,
    worker: Any,
    settings: Settings,
    tenants: Tenants,
    caplog: pytest.LogCaptureFixture,
    json_log: io.StringIO,
) -> None:
    caplog.set_level(logging.DEBUG)  # root and everything under it, uvicorn's access log included
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "nats", "percolate_reading", "httpx"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    wrong_key = "pr_wrong-key-that-must-not-be-logged-0123456789"
    near_key = tenants.acme_key + "X"  # a key one character off a real one
    bodies: list[str] = []
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=60) as anon,
        httpx.AsyncClient(
            base_url=gateway.url, headers={"Authorization": f"Bearer {tenants.acme_key}"}, timeout=60
        ) as acme,
    ):
        r = await acme.post("/v1/parse", files={"file": ("keys.pdf", make_pdf("no keys here"))})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        bodies.append(r.text)
        async with asyncio.timeout(120):
            while True:
                job = await acme.get(f"/v1/jobs/{job_id}")
                if job.json()["status"] in ("succeeded", "failed"):
                    break
                await asyncio.sleep(0.1)
        assert job.json()["status"] == "succeeded"
        for path in job.json()["artifacts"]:
            bodies.append((await acme.get(f"/v1/jobs/{job_id}/artifacts/{path}")).text)
        bodies.append((await acme.get("/v1/jobs")).text)
        bodies.append((await acme.get("/v1/jobs/no-such-job")).text)
        bodies.append((await acme.get("/v1/context")).text)
        for bad in (wrong_key, near_key):
            for headers in (
                {"Authorization": f"Bearer {bad}"},
                {"Authorization": f"Basic {bad}"},
                {"Authorization": bad},
                {"Authorization": f"Bearer {bad} {bad}"},
            ):
                for method, path in (
                    ("GET", "/v1/jobs"),
                    ("GET", f"/v1/jobs/{job_id}"),
                    ("POST", "/v1/parse"),
                ):
                    r = await anon.request(method, path, headers=headers)
                    assert r.status_code == 401, (headers, r.text)
                    bodies.append(r.text)
                    bodies.append(json.dumps(dict(r.headers)))
        r = await anon.post(
            "/v1/parse",
            headers={"Authorization": f"Bearer {DEV_KEY}"},
            files={"file": ("x.bin", b"\0" * 10)},
        )
        assert r.status_code in (400, 415, 422), r.text
        bodies.append(r.text)
        metrics = (await anon.get("/metrics")).text
        assert "http_requests_total" in metrics
        bodies.append(metrics)

    secrets_ = [tenants.acme_key, tenants.beta_key, wrong_key, near_key, DEV_KEY]
    assert caplog.records, "nothing was logged at DEBUG: the capture is not working"
    assert any(rec.name.startswith("uvicorn.access") for rec in caplog.records)
    for rec in caplog.records:
        texts = [rec.getMessage(), repr(rec.args), rec.exc_text or "", str(rec.__dict__)]
        for secret in secrets_:
            for text in texts:
                assert secret not in text, f"key logged by {rec.name}: {rec.getMessage()[:200]}"
    for secret in secrets_:
        assert secret not in caplog.text
        for body in bodies:
            assert secret not in body

    # The same run as JSON lines: no key either, and every line of ours that names the job
    # carries its tenant and id as fields (the worker's lines its pool too).
    text = json_log.getvalue()
    for secret in secrets_:
        assert secret not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert any(e["logger"].startswith("uvicorn.access") for e in entries)
    ours = [e for e in entries if e["logger"].startswith("percolate_reading") and job_id in e["message"]]
    assert ours, "no line of ours names the job"
    for entry in ours:
        assert (entry["tenant_id"], entry["job_id"]) == (tenants.acme, job_id), entry
    tagged = [e for e in entries if e["job_id"] == job_id]
    assert any(e["logger"].startswith("percolate_reading.worker") and e["pool"] for e in tagged)
