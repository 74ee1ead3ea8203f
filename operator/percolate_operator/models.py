"""Pydantic models of the ParsePool and Tenant specs (the CRDs in `crds/` mirror them).

The API server applies the CRD defaults, but the models carry the same defaults so that a spec
read from anywhere (emulator, tests, an older object) is interpreted the same way; a test checks
the two sets of defaults agree. Validation here is the operator's last line of defence: a spec
the models reject is a permanent error, never retried.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from percolate_reading.contract.jobs import StorageStrategy
from percolate_reading.contract.subjects import Tier, validate_tenant_id

GROUP = "percolate.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

_DURATION_RE = re.compile(r"^([1-9][0-9]*)(s|m|h)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
GPU_RESOURCE = "nvidia.com/gpu"


def duration_seconds(value: str) -> int:
    """`"30s"`, `"5m"`, `"1h"` -> seconds."""
    match = _DURATION_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"invalid duration {value!r}: use a positive integer followed by s, m or h")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class _Spec(BaseModel):
    # camelCase on the wire (Kubernetes convention), snake_case in Python; unknown fields are
    # an error so a typo in a spec is reported instead of silently ignored.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class DeviceKind(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"


class Replicas(_Spec):
    min: int = Field(0, ge=0, le=1000)
    max: int = Field(10, ge=1, le=1000)

    @model_validator(mode="after")
    def _min_le_max(self) -> Replicas:
        if self.min > self.max:
            raise ValueError(f"replicas.min ({self.min}) must not exceed replicas.max ({self.max})")
        return self


class Scaling(_Spec):
    lag_threshold: int = Field(10, ge=1, le=100_000)
    activation_lag_threshold: int = Field(0, ge=0, le=100_000)
    polling_interval: int = Field(15, ge=1, le=3600)
    cooldown_period: int = Field(300, ge=0, le=86_400)
    fallback_replicas: int = Field(1, ge=0, le=1000)


class ComputeAmounts(_Spec):
    cpu: str | None = None
    memory: str | None = None


class ResourceOverrides(_Spec):
    requests: ComputeAmounts = Field(default_factory=ComputeAmounts)
    limits: ComputeAmounts = Field(default_factory=ComputeAmounts)
    gpus: int | None = Field(None, ge=0, le=8)


class ResolvedResources(BaseModel):
    model_config = ConfigDict(frozen=True)
    requests_cpu: str
    requests_memory: str
    limits_cpu: str
    limits_memory: str
    gpus: int

    def as_k8s(self) -> dict[str, dict[str, str]]:
        requests = {"cpu": self.requests_cpu, "memory": self.requests_memory}
        limits = {"cpu": self.limits_cpu, "memory": self.limits_memory}
        if self.gpus:
            # Extended resources: the request must equal the limit.
            requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(self.gpus)
        return {"requests": requests, "limits": limits}


TIER_RESOURCES: dict[Tier, ResolvedResources] = {
    Tier.SMALL: ResolvedResources(
        requests_cpu="1", requests_memory="2Gi", limits_cpu="2", limits_memory="4Gi", gpus=0
    ),
    Tier.LARGE: ResolvedResources(
        requests_cpu="2", requests_memory="8Gi", limits_cpu="4", limits_memory="16Gi", gpus=0
    ),
    Tier.GPU: ResolvedResources(
        requests_cpu="4", requests_memory="16Gi", limits_cpu="8", limits_memory="32Gi", gpus=1
    ),
}


class ConsumerSettings(_Spec):
    ack_wait: str = "5m"
    max_deliver: int = Field(3, ge=1, le=100)
    max_ack_pending: int = Field(100, ge=1, le=100_000)

    @field_validator("ack_wait")
    @classmethod
    def _valid_duration(cls, v: str) -> str:
        duration_seconds(v)
        return v

    @property
    def ack_wait_seconds(self) -> int:
        return duration_seconds(self.ack_wait)


class SecretKeyRef(_Spec):
    name: str
    key: str


class NatsRef(_Spec):
    secret_name: str = "percolate-nats"  # noqa: S105 -- a Secret name
    url_key: str = "url"


class S3Ref(_Spec):
    secret_name: str = "percolate-s3"  # noqa: S105 -- a Secret name
    endpoint_key: str = "endpoint"
    access_key_key: str = "access-key"
    secret_key_key: str = "secret-key"  # noqa: S105 -- a key name


class Toleration(_Spec):
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None


class PoolSettings(_Spec):
    """Everything a pool has except its owner: shared by ParsePool and Tenant.dedicatedPools."""

    tier: Tier
    image: str | None = None
    replicas: Replicas = Field(default_factory=Replicas)
    scaling: Scaling = Field(default_factory=Scaling)
    resources: ResourceOverrides = Field(default_factory=ResourceOverrides)
    device: DeviceKind | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    concurrency: int = Field(2, ge=1, le=64)
    drain_timeout_seconds: int = Field(25, ge=0, le=3600)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    nats: NatsRef = Field(default_factory=NatsRef)
    s3: S3Ref = Field(default_factory=S3Ref)

    @property
    def effective_device(self) -> DeviceKind:
        if self.device is not None:
            return self.device
        return DeviceKind.CUDA if self.tier == Tier.GPU else DeviceKind.CPU

    @property
    def effective_resources(self) -> ResolvedResources:
        base = TIER_RESOURCES[self.tier]
        o = self.resources
        return ResolvedResources(
            requests_cpu=o.requests.cpu or base.requests_cpu,
            requests_memory=o.requests.memory or base.requests_memory,
            limits_cpu=o.limits.cpu or base.limits_cpu,
            limits_memory=o.limits.memory or base.limits_memory,
            gpus=base.gpus if o.gpus is None else o.gpus,
        )


class ParsePoolSpec(PoolSettings):
    tenant: str | None = None

    @field_validator("tenant")
    @classmethod
    def _valid_tenant(cls, v: str | None) -> str | None:
        return None if v is None else validate_tenant_id(v)

    @model_validator(mode="after")
    def _cuda_needs_gpu(self) -> ParsePoolSpec:
        check_device(self)
        return self


def check_device(pool: PoolSettings) -> None:
    if pool.device == DeviceKind.CUDA and pool.tier != Tier.GPU:
        raise ValueError("device cuda needs the gpu tier")


class StorageSpec(_Spec):
    strategy: StorageStrategy = StorageStrategy.SHARED


class QuotaSpec(_Spec):
    max_file_megabytes: int = Field(512, ge=1, le=102_400)
    max_active_jobs: int = Field(1000, ge=1, le=1_000_000)
    retention_days: int = Field(30, ge=1, le=3650)


class TenantSpec(_Spec):
    display_name: str = ""
    storage: StorageSpec = Field(default_factory=StorageSpec)
    quotas: QuotaSpec = Field(default_factory=QuotaSpec)
    allowed_tiers: tuple[Tier, ...] = (Tier.SMALL, Tier.LARGE, Tier.GPU)
    dedicated_pools: tuple[PoolSettings, ...] = ()
    webhook_secret_ref: SecretKeyRef | None = None
    api_key_secret_name: str | None = None

    @model_validator(mode="after")
    def _pools_consistent(self) -> TenantSpec:
        if not self.allowed_tiers:
            raise ValueError("allowedTiers must name at least one tier")
        tiers = [p.tier for p in self.dedicated_pools]
        if len(tiers) != len(set(tiers)):
            raise ValueError("dedicatedPools: at most one pool per tier")
        for tier in tiers:
            if tier not in self.allowed_tiers:
                raise ValueError(f"dedicatedPools: tier {tier.value!r} is not in allowedTiers")
        for pool in self.dedicated_pools:
            check_device(pool)
        return self


def parse_pool_spec(spec: dict[str, Any]) -> ParsePoolSpec:
    return ParsePoolSpec.model_validate(dict(spec))


def parse_tenant_spec(spec: dict[str, Any]) -> TenantSpec:
    return TenantSpec.model_validate(dict(spec))


MAX_POOL_NAME = 40
# A dedicated pool is named <tenant>-<tier>; "-small" is the longest suffix.
MAX_TENANT_NAME_WITH_POOLS = MAX_POOL_NAME - len("-small")


def check_pool_name(name: str) -> None:
    if len(name) > MAX_POOL_NAME:
        raise ValueError(f"ParsePool names are at most {MAX_POOL_NAME} characters: {name!r}")


def check_tenant_name(name: str, spec: TenantSpec) -> None:
    validate_tenant_id(name)
    if spec.dedicated_pools and len(name) > MAX_TENANT_NAME_WITH_POOLS:
        raise ValueError(
            f"tenants with dedicated pools have names of at most {MAX_TENANT_NAME_WITH_POOLS} characters"
        )


def pool_immutable_changes(old: ParsePoolSpec, new: ParsePoolSpec) -> list[str]:
    """Fields that may not change after creation (the CRD's transition rules, in Python)."""
    changed = []
    if old.tier != new.tier:
        changed.append("tier")
    if old.tenant != new.tenant:
        changed.append("tenant")
    return changed


def tenant_immutable_changes(old: TenantSpec, new: TenantSpec) -> list[str]:
    return ["storage.strategy"] if old.storage.strategy != new.storage.strategy else []
