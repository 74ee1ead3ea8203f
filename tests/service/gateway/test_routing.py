"""Tier routing and the tenant registry (pure; no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from percolate_reading.config import Settings
from percolate_reading.contract.subjects import Tier
from percolate_reading.contract.tenancy import TenantRecord, hash_api_key
from percolate_reading.errors import ConfigError
from percolate_reading.gateway.routing import TierNotAllowedError, route_job
from percolate_reading.infra.registry import TenantRegistry, load_tenants_file


def settings(**kw: object) -> Settings:
    return Settings(small_tier_max_bytes=1000, **kw)  # type: ignore[arg-type]


def test_routes_by_size_and_type() -> None:
    s = settings(gpu_tier_types="audio,image")
    t = TenantRecord(tenant_id="acme")
    assert route_job(s, t, "pdf", 10).subject == "jobs.parse.small"
    assert route_job(s, t, "pdf", 5000).subject == "jobs.parse.large"
    assert route_job(s, t, "audio", 10).subject == "jobs.parse.gpu"
    assert route_job(settings(), t, "audio", 10).subject == "jobs.parse.small"
    assert route_job(s, t, "pdf", 10, Tier.LARGE).tier is Tier.LARGE


def test_dedicated_pool_subject_and_allowed_tiers() -> None:
    t = TenantRecord(
        tenant_id="acme",
        dedicated_subjects={Tier.SMALL: "jobs.parse.small.acme"},
        allowed_tiers=(Tier.SMALL,),
    )
    assert route_job(settings(), t, "pdf", 10).subject == "jobs.parse.small.acme"
    # Too big for small, but large is not allowed: falls back to the tier it has.
    assert route_job(settings(), t, "pdf", 5000).subject == "jobs.parse.small.acme"
    with pytest.raises(TierNotAllowedError):
        route_job(settings(), t, "pdf", 10, Tier.GPU)
    bad = TenantRecord(tenant_id="acme", dedicated_subjects={Tier.SMALL: "jobs.parse.small.other"})
    with pytest.raises(TierNotAllowedError):
        route_job(settings(), bad, "pdf", 10)


def test_registry_from_settings_and_file(tmp_path: Path) -> None:
    f = tmp_path / "tenants.yaml"
    f.write_text(
        "- tenant_id: acme\n  api_keys: [key-a]\n  quotas: {max_file_bytes: 100, max_active_jobs: 2}\n"
        f"- tenant_id: beta\n  api_key_hashes: ['{hash_api_key('key-b')}']\n"
    )
    reg = TenantRegistry.from_settings(settings(dev_api_key=SecretStr("dev-key"), tenants_file=f))
    dev = reg.authenticate("dev-key")
    assert dev is not None
    assert dev.tenant_id == "dev"
    acme = reg.authenticate("key-a")
    assert acme is not None
    assert acme.quotas.max_file_bytes == 100
    beta = reg.authenticate("key-b")
    assert beta is not None
    assert beta.tenant_id == "beta"
    assert reg.authenticate("key-c") is None
    assert reg.authenticate("") is None


def test_registry_kv_updates_override_and_remove() -> None:
    reg = TenantRegistry([TenantRecord(tenant_id="acme", api_key_hashes=(hash_api_key("old"),))])
    new = TenantRecord(tenant_id="acme", api_key_hashes=(hash_api_key("new"),))
    reg.apply_kv_entry("acme", new.model_dump_json().encode(), "PUT")
    assert reg.authenticate("new") is not None
    assert reg.authenticate("old") is None  # the operator's record replaced the file's
    reg.apply_kv_entry("acme", b"{not json", "PUT")  # ignored, not fatal
    assert reg.authenticate("new") is not None
    reg.apply_kv_entry("acme", None, "DEL")
    assert reg.authenticate("old") is not None
    other = TenantRecord(tenant_id="beta", api_key_hashes=(hash_api_key("b"),))
    reg.apply_kv_entry("acme", other.model_dump_json().encode(), "PUT")  # key/tenant mismatch
    assert reg.authenticate("b") is None


def test_bad_tenants_file(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text('[{"tenant_id": "Not Valid"}]')
    with pytest.raises(ConfigError, match="entry 0"):
        load_tenants_file(f)


def test_pool_filters_match_nats_subjects() -> None:
    from percolate_reading.gateway.pools import subject_matches

    assert subject_matches("jobs.parse.small", "jobs.parse.small")
    assert not subject_matches("jobs.parse.small", "jobs.parse.small.acme")
    assert not subject_matches("jobs.parse.small", "jobs.parse.gpu")
    assert subject_matches("jobs.parse.*", "jobs.parse.gpu")
    assert not subject_matches("jobs.parse.*", "jobs.parse.gpu.acme")
    assert subject_matches("jobs.>", "jobs.parse.gpu.acme")
    assert not subject_matches("jobs.parse.gpu.>", "jobs.parse.gpu")
    assert subject_matches("", "jobs.parse.gpu")
