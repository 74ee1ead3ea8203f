"""docker-compose.yml, checked without Docker: parsed, cross-checked against the settings
model, and its stream-creating one-shot job run for real against a nats-server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import nats
import pytest
import yaml

from percolate_reading.cli.run import Role, resolve_role
from percolate_reading.config import ARTIFACTS_BUCKET, CONTEXT_BUCKET, FILES_BUCKET, Settings
from percolate_reading.contract.subjects import STREAM_NAME, consumer_name, job_subject
from tests.servers import NatsServer

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "PERCOLATE_READING_"
PLATFORM_SERVICES = ("gateway", "worker", "jobs-init")


def _env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(ln.split("=", 1) for ln in lines if ln.strip() and not ln.startswith("#"))


def _resolve(value: Any) -> str:
    """Compose interpolation with .env.example as the .env: `${VAR:-default}` -> default,
    `${VAR:?message}` -> the value .env.example gives (required: no default in the file)."""
    example = _env_example()
    text = str(value)
    text = re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: example[m.group(1)], text)
    text = re.sub(r"\$\{(\w+):?-([^}]*)\}", lambda m: m.group(2), text)
    assert "${" not in text, f"variable without a default: {value}"
    return text.replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]  # type: ignore[no-any-return]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _resolve(v) for k, v in env.items()}


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def _ports(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port; every port must be published on 127.0.0.1 only."""
    out: dict[int, int] = {}
    for spec in service.get("ports", []):
        address, host, container = str(spec).split(":")
        assert address == "127.0.0.1", f"{spec}: published beyond this machine"
        out[int(container)] = int(host)
    return out


def test_every_published_port_is_loopback_only(services: dict[str, Any]) -> None:
    published = {name: _ports(svc) for name, svc in services.items() if svc.get("ports")}
    assert set(published) == {"nats", "minio", "gateway", "worker"}


def test_credentials_come_from_the_env_file(services: dict[str, Any]) -> None:
    """No secret has a default in the compose file: each is required from .env, whose
    template .env.example is committed (and .env itself git-ignored)."""
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "PERCOLATE_DEV_API_KEY"):
        assert re.search(rf"\$\{{{name}:\?", text), name
        assert not re.search(rf"\$\{{{name}:?-", text), f"{name} has a default"
        assert name in _env_example()
    assert "/.env" in (ROOT / ".gitignore").read_text().splitlines()
    # MinIO refuses root passwords shorter than 8 characters.
    assert len(_env_example()["MINIO_ROOT_PASSWORD"]) >= 8


def test_default_worker_image_has_speech_and_ocr(compose: dict[str, Any]) -> None:
    from tests.image.containers import MEDIA

    args = {k: _resolve(v) for k, v in compose["x-percolate-image"]["build"]["args"].items()}
    extras = set(args["EXTRAS"].split(","))
    assert {"audio", "audio-model", "ocr", "server"} <= extras
    # The bundled Whisper base, not a /models directory that may not exist.
    assert args["WHISPER_MODEL"] == "base"
    # The image tests/image/test_compose_up.py brings the stack up with is this build.
    assert args == MEDIA.build_args


def test_compose_file_validates_against_the_compose_spec(compose: dict[str, Any]) -> None:
    """The official Compose Specification schema (as vendored by check-jsonschema)."""
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    schema = json.loads(text)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{e.json_path}: {e.message[:300]}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_services_present(services: dict[str, Any]) -> None:
    assert {"nats", "minio", "minio-init", "jobs-init", "gateway", "worker"} <= set(services)


def test_nats_runs_jetstream_with_monitoring(services: dict[str, Any]) -> None:
    nats_svc = services["nats"]
    command = nats_svc["command"]
    assert "-js" in command
    assert command[command.index("-m") + 1] == "8222"
    assert _ports(nats_svc) == {4222: 4222, 8222: 8222}
    assert "8222/healthz" in " ".join(nats_svc["healthcheck"]["test"])


def test_every_platform_env_var_is_a_setting_and_parses(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = set(Settings.model_fields)
    for name in PLATFORM_SERVICES:
        env = _env(services[name])
        assert env, name
        for var in env:
            assert var.startswith(PREFIX), f"{name}: {var} is not a percolate-reading setting"
            assert var.removeprefix(PREFIX).lower() in fields, f"{name}: {var} is not in Settings"
        _settings_from(env, monkeypatch)  # every value parses


def test_each_service_runs_exactly_its_role(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = _settings_from(_env(services["gateway"]), monkeypatch)
    assert resolve_role(gateway) is Role.GATEWAY
    worker = _settings_from(_env(services["worker"]), monkeypatch)
    assert resolve_role(worker) is Role.WORKER


def test_ports_and_healthchecks_match_settings(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = _settings_from(_env(services["gateway"]), monkeypatch)
    assert gateway.port in _ports(services["gateway"])
    worker = _settings_from(_env(services["worker"]), monkeypatch)
    assert worker.metrics_port in _ports(services["worker"])
    for name in ("gateway", "worker"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "percolate-reading", "run", "--healthcheck"]
        assert services[name]["image"] == services["gateway"]["image"]
        assert services[name]["build"]["context"] == "."


def test_worker_stops_gracefully_after_its_drain_timeout(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _settings_from(_env(services["worker"]), monkeypatch)
    grace = services["worker"]["stop_grace_period"]
    match = re.fullmatch(r"(\d+)s", grace)
    assert match, grace
    assert int(match.group(1)) > worker.drain_timeout_s


def test_worker_consumes_what_the_gateway_publishes(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _settings_from(_env(services["worker"]), monkeypatch)
    assert worker.nats_queue_subject == job_subject("small")
    assert worker.nats_queue_group == consumer_name("small")
    init = _settings_from(_env(services["jobs-init"]), monkeypatch)
    assert (init.nats_queue_subject, init.nats_queue_group) == (
        worker.nats_queue_subject,
        worker.nats_queue_group,
    )
    # Only a small-tier worker runs locally, so the gateway must route everything there.
    gateway = _settings_from(_env(services["gateway"]), monkeypatch)
    assert gateway.small_tier_max_bytes >= gateway.max_upload_bytes
    assert not gateway.gpu_tier_type_set


def test_buckets_created_and_credentials_shared(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    script = " ".join(services["minio-init"]["command"])
    for bucket in (FILES_BUCKET, ARTIFACTS_BUCKET, CONTEXT_BUCKET):
        assert f"local/{bucket}" in script
    assert "--ignore-existing" in script
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    minio_env = _env(services["minio"])
    for name in PLATFORM_SERVICES:
        settings = _settings_from(_env(services[name]), monkeypatch)
        assert (settings.s3_bucket, settings.s3_artifacts_bucket, settings.s3_context_bucket) == (
            FILES_BUCKET,
            ARTIFACTS_BUCKET,
            CONTEXT_BUCKET,
        )
        assert settings.s3_access_key == minio_env["MINIO_ROOT_USER"]
        assert settings.s3_secret_key is not None
        assert settings.s3_secret_key.get_secret_value() == minio_env["MINIO_ROOT_PASSWORD"]
        assert settings.s3_endpoint == "http://minio:9000"
        assert settings.nats_url == "nats://nats:4222"


def test_every_service_asks_for_the_same_topology(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever service starts first creates the streams and buckets with its limits (no
    operator here to correct them): they must all ask for the same."""
    from percolate_reading.contract.topology import TopologyLimits

    limits = {
        name: TopologyLimits.from_settings(_settings_from(_env(services[name]), monkeypatch))
        for name in PLATFORM_SERVICES
    }
    assert len(set(limits.values())) == 1, limits


def test_platform_waits_for_its_one_shot_jobs(services: dict[str, Any]) -> None:
    for name in ("gateway", "worker"):
        depends = services[name]["depends_on"]
        assert depends["jobs-init"]["condition"] == "service_completed_successfully"
        assert depends["minio-init"]["condition"] == "service_completed_successfully"
    assert services["jobs-init"]["depends_on"]["nats"]["condition"] == "service_healthy"
    assert services["jobs-init"]["restart"] == "no"


@pytest.mark.integration
async def test_jobs_init_creates_the_stream_and_consumer(
    services: dict[str, Any], fresh_nats_server: NatsServer, tmp_path: Path
) -> None:
    """Run the one-shot job's own script (as the container would, `python -c`) against a real
    nats-server, twice (it must be idempotent), then read back what it made."""
    init = services["jobs-init"]
    assert init["entrypoint"] == ["python", "-c"]
    (script,) = init["command"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update(_env(init))
    env[f"{PREFIX}NATS_URL"] = fresh_nats_server.url
    for _ in range(2):
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    nc = await nats.connect(fresh_nats_server.url)
    try:
        js = nc.jetstream()
        stream = await js.stream_info(STREAM_NAME)
        assert stream.config.subjects == ["jobs.>"]
        # nats-py's policies are str enums.
        assert stream.config.retention == "workqueue"
        assert stream.config.discard == "new"
        assert stream.config.max_msgs == Settings.model_fields["nats_max_msgs"].default
        dlq = await js.stream_info("JOBS_DLQ")
        assert dlq.config.subjects == ["dlq.>"]
        consumer = await js.consumer_info(STREAM_NAME, consumer_name("small"))
        assert consumer.config.filter_subject == job_subject("small")
        assert consumer.config.max_deliver == 3
    finally:
        await nc.close()
