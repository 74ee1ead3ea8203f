"""docker-compose.yml brought up for real with podman-compose (from the lock), as a user would.

No registry is reachable here, so the three third-party images are swapped for local
stand-ins by a second compose file (tests/image/compose.offline.yml: NATS from the image's own
nats-server, SeaweedFS's S3 for MinIO, the platform's bucket creation for `mc`); the platform
services, their ports, health checks, dependencies and the credentials from the env file are
docker-compose.yml's own. podman 4.3 without systemd runs no healthcheck timers, and
podman-compose skips `service_healthy` conditions on podman < 4.6: the test brings the stack
up in depends_on's order and runs each HEALTHCHECK itself (`podman healthcheck run`), as the
timers would.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from percolate_reading.contract.subjects import STREAM_NAME, consumer_name, job_subject
from tests.image.containers import ROOT, Build, Containers
from tests.image.roles import Gateway, pdf_with_text

pytestmark = pytest.mark.image

PROJECT = "percolate-compose-test"
LONG_RUNNING = ("nats", "minio", "gateway", "worker")
ONE_SHOT = ("minio-init", "jobs-init")
PORTS = {"nats": 4222, "gateway": 8001, "worker": 9090}


def _env_file(tmp: Path) -> tuple[Path, dict[str, str]]:
    """.env.example with fresh secrets: what a user's .env looks like."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value
    values["MINIO_ROOT_PASSWORD"] = "compose-test-secret-1"
    values["PERCOLATE_DEV_API_KEY"] = "pr_compose_test_key"
    path = tmp / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path, values


class Compose:
    def __init__(self, store: Containers, env_file: Path) -> None:
        self.store = store
        compose = shutil.which("podman-compose") or str(Path(sys.executable).parent / "podman-compose")
        self.argv = [
            compose,
            "--project-name",
            PROJECT,
            "--env-file",
            str(env_file),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-f",
            str(ROOT / "tests/image/compose.offline.yml"),
        ]

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args], env=self.store.env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )

    def container(self, service: str) -> str:
        return f"{PROJECT}_{service}_1"

    def state(self, service: str) -> tuple[str, int]:
        out = self.store.podman(
            "inspect", self.container(service), "--format", "{{.State.Status}} {{.State.ExitCode}}"
        ).stdout.split()
        return out[0], int(out[1])

    def health(self, service: str) -> int:
        return self.store.podman("healthcheck", "run", self.container(service), check=False).returncode

    def logs(self, service: str) -> str:
        result = self.store.podman("logs", self.container(service), check=False)
        return (result.stdout + result.stderr)[-3000:]


# What each HEALTHCHECK probes, as published on the host: polled first with a plain request
# (milliseconds), so the HEALTHCHECK itself (a process start in the container, seconds on a
# busy machine) runs about once per service.
PROBES = {
    "nats": "http://127.0.0.1:8222/healthz?js-enabled-only=true",
    "gateway": "http://127.0.0.1:8001/health",
    "worker": "http://127.0.0.1:9090/health",
}


def _serving(service: str) -> bool:
    url = PROBES.get(service)
    if url is None:
        return True
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(compose: Compose, services: tuple[str, ...], one_shot: bool = False) -> None:
    """Until each service is healthy (its HEALTHCHECK run now, as a timer would) or, for a
    one-shot job, has exited."""
    pending = set(services)
    deadline = time.monotonic() + 300  # a start-up guard, not a speed assertion
    while pending and time.monotonic() < deadline:
        for service in sorted(pending):
            status, _ = compose.state(service)
            if one_shot:
                if status == "exited":
                    pending.discard(service)
                continue
            assert status == "running", f"{service} {status}:\n{compose.logs(service)}"
            if _serving(service) and compose.health(service) == 0:
                pending.discard(service)
        if pending:
            time.sleep(0.3)
    assert not pending, {s: compose.logs(s) for s in pending}


# docker-compose.yml's depends_on, step by step: podman-compose on podman < 4.6 skips the
# service_healthy conditions, and podman 4.3 cannot start a container that `--requires` an
# exited one-shot job, so each step is `up --no-deps` once the previous one's condition holds.
STEPS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("nats", "minio"), False),
    (ONE_SHOT, True),
    (("gateway", "worker"), False),
)


@pytest.fixture(scope="module")
def stack(
    containers: Containers, media_image: Build, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Compose, dict[str, str]]]:
    # The image compose builds (its build args are the audio/OCR variant's; see
    # tests/shipping/test_compose.py), under the name compose gives it.
    containers.podman("tag", media_image.variant.tag, "localhost/percolate-reading:local")
    containers.ensure_seaweedfs()
    env_file, values = _env_file(tmp_path_factory.mktemp("compose"))
    compose = Compose(containers, env_file)
    compose("down", "-v", timeout=180)
    try:
        for services, one_shot in STEPS:
            up = compose("up", "-d", "--no-build", "--no-deps", *services)
            assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
            _wait(compose, services, one_shot)
        yield compose, values
    finally:
        # -t 10: the services' graceful stops are tested elsewhere; a stand-in that ignores
        # SIGTERM must not hold the tier up for long.
        down = compose("down", "-v", "-t", "10", timeout=300)
        assert down.returncode == 0, down.stderr[-2000:]


def test_every_service_is_healthy_and_the_one_shots_succeeded(stack: tuple[Compose, dict[str, str]]) -> None:
    compose, _ = stack
    for service in LONG_RUNNING:
        assert compose.health(service) == 0, compose.logs(service)
    for service in ONE_SHOT:
        assert compose.state(service) == ("exited", 0), compose.logs(service)
    # The platform containers run as the image's user, on a read-only root.
    for service in ("gateway", "worker"):
        user = compose.store.podman("exec", compose.container(service), "id", "-u").stdout.strip()
        assert user == "10001"
        read_only = compose.store.podman(
            "inspect", compose.container(service), "--format", "{{.HostConfig.ReadonlyRootfs}}"
        ).stdout.strip()
        assert read_only == "true"


def test_ports_are_published_on_loopback_only(stack: tuple[Compose, dict[str, str]]) -> None:
    compose, _ = stack
    for service, port in PORTS.items():
        mapping = compose.store.podman("port", compose.container(service), str(port)).stdout.strip()
        assert mapping == f"127.0.0.1:{port}", (service, mapping)


def test_upload_through_the_stack_and_the_jobs_stream(
    stack: tuple[Compose, dict[str, str]], tmp_path: Path
) -> None:
    compose, values = stack
    api = Gateway(8001, api_key=values["PERCOLATE_DEV_API_KEY"])
    job_id = api.upload(pdf_with_text(tmp_path / "compose.pdf", pages=2, marker="compose marker 2718"))
    job = api.wait(job_id)
    assert job["status"] == "succeeded", (job, compose.logs("worker"))
    assert "compose marker 2718" in api.artifact(job_id, "structured.md")

    # What README's `nats stream info JOBS` / `nats consumer info JOBS parse-workers-small`
    # show, read through the published NATS port.
    async def jetstream() -> None:
        nc = await nats.connect("nats://127.0.0.1:4222")
        try:
            js = nc.jetstream()
            stream = await js.stream_info(STREAM_NAME)
            assert stream.config.subjects == ["jobs.>"]
            assert stream.config.retention == "workqueue"
            # Work-queue retention: the acknowledged job is gone from the stream.
            assert stream.state.messages == 0
            consumer = await js.consumer_info(STREAM_NAME, consumer_name("small"))
            assert consumer.config.filter_subject == job_subject("small")
            assert consumer.delivered.stream_seq >= 1
            assert consumer.num_ack_pending == 0
            assert consumer.num_pending == 0
            names = {s.config.name for s in await js.streams_info()}
            assert {"JOBS", "JOBS_DLQ", "JOBS_STRANDED"} <= names
        finally:
            await nc.close()

    asyncio.run(jetstream())
