"""The operator's side of "API keys only as hashes outside their Secret, never logged": kopf
running the real handlers against kmock's Kubernetes emulator and a real nats-server."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from percolate_reading.contract.tenancy import TENANTS_KV_BUCKET, TenantRecord, hash_api_key
from percolate_reading.logs import JsonFormatter
from tests.operator import test_operator as operator_fixtures
from tests.operator.cluster import SECRETS, TENANTS, eventually, is_ready
from tests.operator.crd_schema import EXAMPLES_DIR, load_yaml

pytestmark = pytest.mark.integration

env = operator_fixtures.env
NS = operator_fixtures.NS


async def test_operator_keeps_the_key_in_its_secret_only(
    env: operator_fixtures.Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await env.api.create(TENANTS, load_yaml(EXAMPLES_DIR / "tenant-shared.yaml"))
    await eventually(lambda: is_ready(env.cluster.read(TENANTS, None, "acme")))
    # A spec change makes the operator reconcile (and log) again with the same key.
    await env.api.patch(TENANTS, None, "acme", {"spec": {"quotas": {"maxActiveJobs": 42}}})

    async def quota_applied() -> bool:
        kv = await env.js.key_value(TENANTS_KV_BUCKET)
        value = (await kv.get("acme")).value or b"{}"
        return bool(TenantRecord.model_validate_json(value).quotas.max_active_jobs == 42)

    await eventually(quota_applied)

    secret = env.cluster.read(SECRETS, NS, "acme-api-key")
    assert secret is not None
    api_key = base64.b64decode(secret["data"]["api-key"]).decode()
    assert len(api_key) >= 32
    b64_key = base64.b64encode(api_key.encode()).decode()

    # Every revision of the registry entry holds the hash, never the key.
    kv = await env.js.key_value(TENANTS_KV_BUCKET)
    history = await kv.history("acme")
    assert len(history) >= 2
    for entry in history:
        if not entry.value:
            continue
        assert api_key.encode() not in entry.value
        assert TenantRecord.model_validate_json(entry.value).api_key_hashes == (hash_api_key(api_key),)

    # Nothing else the operator wrote to the cluster (the Tenant's status, events, pools...)
    # holds it in either spelling; only the Secret does.
    holders = []
    for key in list(env.cluster.objects):
        obj = env.cluster.objects[key]
        text = json.dumps(obj.raw, default=str)
        if api_key in text or b64_key in text:
            holders.append(key)
    assert holders == [key for key in holders if key[0] == SECRETS], holders
    assert len(holders) == 1

    # And no log record of kopf or the operator (DEBUG) carries it.
    assert caplog.records
    assert any(r.name.startswith("kopf") for r in caplog.records)
    # Nor the same records as PERCOLATE_READING_LOG_FORMAT=json would write them.
    as_json = JsonFormatter()
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        line = as_json.format(record)
        assert json.loads(line)["logger"] == record.name
        for written in (text, line):
            assert api_key not in written, record.name
            assert b64_key not in written, record.name
