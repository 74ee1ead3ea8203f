"""Tenant records: what the operator writes to the `TENANTS` registry and gateways/workers read.

API keys never appear here, only their SHA-256 (keys are 32 random bytes, so a fast hash is
enough; compare with `hmac.compare_digest`). The registry is a JetStream key-value bucket
keyed by tenant id; single-node and test setups load the same records from a file or from
`PERCOLATE_READING_DEV_API_KEY`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pydantic import BaseModel, ConfigDict, Field, field_validator

from percolate_reading.contract.jobs import StorageStrategy
from percolate_reading.contract.subjects import Tier, validate_tenant_id

TENANTS_KV_BUCKET = "TENANTS"
API_KEY_PREFIX = "pr_"


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_matches(api_key: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(api_key), key_hash)


class Quotas(BaseModel):
    model_config = ConfigDict(frozen=True)
    max_file_bytes: int = Field(512 * 1024 * 1024, ge=1)
    max_active_jobs: int = Field(1000, ge=1)
    retention_days: int = Field(30, ge=1)


class TenantRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant_id: str
    display_name: str = ""
    api_key_hashes: tuple[str, ...] = ()
    storage_strategy: StorageStrategy = StorageStrategy.SHARED
    # Bucket names for this tenant; with the shared strategy these are the platform buckets
    # and keys are prefixed `<tenant>/`.
    files_bucket: str = "percolate-files"
    artifacts_bucket: str = "percolate-artifacts"
    context_bucket: str = "percolate-context"
    quotas: Quotas = Field(default_factory=Quotas)
    allowed_tiers: tuple[Tier, ...] = (Tier.SMALL, Tier.LARGE, Tier.GPU)
    # tier -> subject of the tenant's dedicated pool (jobs.parse.<tier>.<tenant>)
    dedicated_subjects: dict[Tier, str] = Field(default_factory=dict)
    webhook_secret: str | None = None

    @field_validator("tenant_id")
    @classmethod
    def _valid_id(cls, v: str) -> str:
        return validate_tenant_id(v)

    def accepts_key(self, api_key: str) -> bool:
        # Check every hash (no early exit) so timing does not reveal which key matched.
        matched = False
        for key_hash in self.api_key_hashes:
            matched |= key_matches(api_key, key_hash)
        return matched
