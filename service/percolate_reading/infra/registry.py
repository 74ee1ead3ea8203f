"""Tenant registry: API key -> TenantRecord, from settings, a tenants file and the TENANTS KV bucket.

Three layers, looked up in this order: the `TENANTS` JetStream key-value bucket (written by
the operator, watched for changes), the tenants file, and the development key. Keys are held
only as SHA-256 hashes; a lookup goes through an index of hashes and is confirmed with
`TenantRecord.accepts_key` (constant-time compare).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from percolate_reading.config import Settings
from percolate_reading.contract.tenancy import TENANTS_KV_BUCKET, Quotas, TenantRecord, hash_api_key
from percolate_reading.contract.topology import TopologyLimits, tenants_bucket
from percolate_reading.errors import ConfigError

log = logging.getLogger(__name__)

KV_RETRY_S = 2.0


def dev_tenant(settings: Settings) -> TenantRecord | None:
    if settings.dev_api_key is None:
        return None
    return TenantRecord(
        tenant_id=settings.dev_tenant_id,
        display_name="development tenant",
        api_key_hashes=(hash_api_key(settings.dev_api_key.get_secret_value()),),
        quotas=Quotas(max_file_bytes=settings.max_upload_bytes, max_active_jobs=settings.max_active_jobs),
    )


def tenant_from_entry(entry: dict[str, Any], settings: Settings | None = None) -> TenantRecord:
    """A TenantRecord from a file entry; plaintext `api_key`/`api_keys` are hashed here."""
    entry = dict(entry)
    plain: list[str] = []
    if "api_key" in entry:
        plain.append(str(entry.pop("api_key")))
    plain.extend(str(k) for k in entry.pop("api_keys", []) or [])
    hashes = list(entry.get("api_key_hashes", []) or [])
    hashes.extend(hash_api_key(k) for k in plain)
    entry["api_key_hashes"] = tuple(hashes)
    if settings is not None and "quotas" not in entry:
        entry["quotas"] = Quotas(
            max_file_bytes=settings.max_upload_bytes, max_active_jobs=settings.max_active_jobs
        )
    return TenantRecord.model_validate(entry)


def load_tenants_file(path: Path, settings: Settings | None = None) -> list[TenantRecord]:
    """Read a YAML or JSON list of tenants (or `{tenants: [...]}`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read tenants file {path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"tenants file {path} is not valid YAML/JSON: {exc}") from exc
    if isinstance(data, dict) and "tenants" in data:
        data = data["tenants"]
    if not isinstance(data, list):
        raise ConfigError(f"tenants file {path} must hold a list of tenants")
    records: list[TenantRecord] = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ConfigError(f"tenants file {path}: entry {i} is not a mapping")
        try:
            records.append(tenant_from_entry(entry, settings))
        except ValidationError as exc:
            raise ConfigError(f"tenants file {path}: entry {i} is invalid: {exc}") from exc
    return records


class TenantRegistry:
    def __init__(self, static: Iterable[TenantRecord] = ()) -> None:
        self._static: dict[str, TenantRecord] = {}
        self._kv: dict[str, TenantRecord] = {}
        self._index: dict[str, str] = {}
        for record in static:
            self._static[record.tenant_id] = record
        self._reindex()
        self.kv_loaded = asyncio.Event()

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantRegistry:
        records: list[TenantRecord] = []
        dev = dev_tenant(settings)
        if dev is not None:
            records.append(dev)
        if settings.tenants_file is not None:
            records.extend(load_tenants_file(settings.tenants_file, settings))
        return cls(records)

    # lookups ----------------------------------------------------------------------------------

    def _reindex(self) -> None:
        index: dict[str, str] = {}
        # Static first, KV last: the operator's record wins for a key both hold.
        for record in (*self._static.values(), *self._kv.values()):
            for key_hash in record.api_key_hashes:
                index[key_hash] = record.tenant_id
        self._index = index

    def get(self, tenant_id: str) -> TenantRecord | None:
        return self._kv.get(tenant_id) or self._static.get(tenant_id)

    def authenticate(self, api_key: str) -> TenantRecord | None:
        tenant_id = self._index.get(hash_api_key(api_key))
        if tenant_id is None:
            return None
        record = self.get(tenant_id)
        if record is None or not record.accepts_key(api_key):
            return None
        return record

    def tenants(self) -> list[TenantRecord]:
        merged = {**self._static, **self._kv}
        return list(merged.values())

    # updates ----------------------------------------------------------------------------------

    def put(self, record: TenantRecord) -> None:
        self._kv[record.tenant_id] = record
        self._reindex()

    def remove(self, tenant_id: str) -> None:
        if self._kv.pop(tenant_id, None) is not None:
            self._reindex()

    def apply_kv_entry(self, key: str, value: bytes | None, operation: str | None) -> None:
        """One KV watch update: a put replaces the tenant, a delete/purge removes it."""
        if operation in ("DEL", "PURGE") or not value:
            self.remove(key)
            return
        try:
            record = TenantRecord.model_validate_json(value)
        except ValidationError as exc:
            # A bad record must not take the gateway down; the tenant stays as it was.
            log.error("ignoring invalid tenant record %r in %s: %s", key, TENANTS_KV_BUCKET, exc)
            return
        if record.tenant_id != key:
            log.error("ignoring tenant record under key %r naming tenant %r", key, record.tenant_id)
            return
        self.put(record)

    async def watch_kv(self, js: Any, limits: TopologyLimits) -> None:
        """Follow the TENANTS bucket for ever (created as the contract says when missing);
        reconnects the watch when it breaks."""
        from percolate_reading.infra.queue.topology import ensure_bucket

        bucket = tenants_bucket(limits)
        while True:
            watcher = None
            try:
                kv = await ensure_bucket(js, bucket, update=False)
                watcher = await kv.watchall()
                seen: set[str] = set()
                initial = True
                async for entry in watcher:
                    if entry is None:
                        if initial:
                            # The initial snapshot is complete: drop tenants that vanished while
                            # we were not watching.
                            for gone in set(self._kv) - seen:
                                self.remove(gone)
                            initial = False
                            self.kv_loaded.set()
                        continue
                    if initial:
                        seen.add(entry.key)
                    self.apply_kv_entry(entry.key, entry.value, entry.operation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("tenant registry watch on %s broke (%s); retrying", bucket.bucket, exc)
            finally:
                if watcher is not None:
                    try:
                        await watcher.stop()  # type: ignore[no-untyped-call]
                    except Exception as exc:
                        log.debug("stopping tenant watcher: %s", exc)
            await asyncio.sleep(KV_RETRY_S)
