"""Tier routing: which subject a job goes to. Pure: settings + tenant + upload facts in, subject out."""

from __future__ import annotations

from dataclasses import dataclass

from percolate_reading.config import Settings
from percolate_reading.contract.subjects import Tier, job_subject
from percolate_reading.contract.tenancy import TenantRecord


class TierNotAllowedError(ValueError):
    """The tenant asked for (or its upload needs) a tier it may not use."""


@dataclass(frozen=True, slots=True)
class Route:
    tier: Tier
    subject: str


def choose_tier(settings: Settings, file_type: str, size_bytes: int, requested: Tier | None = None) -> Tier:
    """An explicit request wins; otherwise GPU types go to `gpu`, big files to `large`."""
    if requested is not None:
        return requested
    if file_type in settings.gpu_tier_type_set:
        return Tier.GPU
    if size_bytes > settings.small_tier_max_bytes:
        return Tier.LARGE
    return Tier.SMALL


def route_job(
    settings: Settings,
    tenant: TenantRecord,
    file_type: str,
    size_bytes: int,
    requested: Tier | None = None,
) -> Route:
    tier = choose_tier(settings, file_type, size_bytes, requested)
    if tier not in tenant.allowed_tiers:
        if requested is not None:
            raise TierNotAllowedError(f"tier {tier.value!r} is not enabled for this tenant")
        # An automatic choice falls back to the closest tier the tenant has.
        fallback = next((t for t in (Tier.LARGE, Tier.SMALL, Tier.GPU) if t in tenant.allowed_tiers), None)
        if fallback is None:
            raise TierNotAllowedError("this tenant has no tier enabled")
        tier = fallback
    dedicated = tenant.dedicated_subjects.get(tier)
    if dedicated is not None:
        # The operator writes the subject; trust only the shape it must have (its own tenant token).
        expected = job_subject(tier, tenant.tenant_id)
        if dedicated != expected:
            raise TierNotAllowedError(f"dedicated subject {dedicated!r} does not match {expected!r}")
        return Route(tier, dedicated)
    return Route(tier, job_subject(tier))
