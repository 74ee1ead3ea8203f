"""The image, built by buildah from the Dockerfile and run by podman, as a user would run it.

Gateway, worker and operator containers (host network) against nats-server and SeaweedFS on
loopback: an upload goes through the gateway container, the worker container parses it, the
artifact comes back. Each container runs as uid 10001 on a read-only root filesystem with only
the image's declared volumes writable (no tmpfs added by podman), passes its HEALTHCHECK
(`podman healthcheck run`: no systemd here, so no timers run it), and stops cleanly on
SIGTERM. The audio/OCR image transcribes speech and reads text from an image.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from percolate_reading.contract.subjects import consumer_name, job_subject
from tests.harness.operator_role import create_small_pool, small_pool_worker_container
from tests.image.containers import Build, Containers
from tests.image.roles import API_KEY, Gateway, Role, pdf_with_text, start, text_png
from tests.servers import NatsServer, SeaweedS3, free_port

pytestmark = pytest.mark.image

APP_UID = "10001"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Only what a fresh run may leave out of the CPU image: PyMuPDF 2.0's add-ons, unused here.
PRUNED = ("pymupdf-layout", "pymupdf4llm", "onnxruntime", "numpy", "networkx", "psutil")


def _common_env(nats: NatsServer, s3: SeaweedS3) -> dict[str, str]:
    return {
        "PERCOLATE_READING_HOST": "127.0.0.1",
        "PERCOLATE_READING_NATS_URL": nats.url,
        "PERCOLATE_READING_NATS_REPLICAS": "1",
        "PERCOLATE_READING_NATS_QUEUE_SUBJECT": job_subject("small"),
        "PERCOLATE_READING_NATS_QUEUE_GROUP": consumer_name("small"),
        "PERCOLATE_READING_S3_ENABLED": "true",
        "PERCOLATE_READING_S3_ENDPOINT": s3.endpoint,
        "PERCOLATE_READING_S3_REGION": "us-east-1",
        "PERCOLATE_READING_S3_ACCESS_KEY": s3.access_key,
        "PERCOLATE_READING_S3_SECRET_KEY": s3.secret_key,
        "PERCOLATE_READING_DEV_TENANT_ID": "dev",
        "PERCOLATE_READING_DEV_API_KEY": API_KEY,
        "PERCOLATE_READING_LOG_LEVEL": "INFO",
    }


@dataclass
class Stack:
    gateway: Role
    worker: Role
    api: Gateway
    env: dict[str, str]
    image: Build


@pytest.fixture(scope="module")
def cpu_stack(
    containers: Containers, cpu_image: Build, nats_server: NatsServer, seaweed_s3: SeaweedS3
) -> Iterator[Stack]:
    names: list[str] = []
    env = _common_env(nats_server, seaweed_s3)
    port, metrics = free_port(), free_port()
    try:
        gateway = start(
            containers,
            names,
            cpu_image,
            "gateway",
            {
                **env,
                "PERCOLATE_READING_GATEWAY_MODE": "true",
                "PERCOLATE_READING_PORT": str(port),
                "PERCOLATE_READING_SMALL_TIER_MAX_BYTES": str(512 << 20),
                "PERCOLATE_READING_MAX_UPLOAD_BYTES": str(512 << 20),
            },
            health_url=f"http://127.0.0.1:{port}/health",
        )
        worker_env = {
            **env,
            "PERCOLATE_READING_WORKER_MODE": "true",
            "PERCOLATE_READING_METRICS_PORT": str(metrics),
            "PERCOLATE_READING_WORKER_CONCURRENCY": "2",
            # Long enough for the drain test's job to finish within the drain even on a busy
            # machine (a hand-back means a second worker start and a second parse).
            "PERCOLATE_READING_DRAIN_TIMEOUT_S": "90",
            "PERCOLATE_READING_NATS_ACK_WAIT": "300",
        }
        worker = start(
            containers,
            names,
            cpu_image,
            "worker",
            worker_env,
            health_url=f"http://127.0.0.1:{metrics}/health",
        )
        gateway.wait_healthy()
        worker.wait_healthy()
        yield Stack(gateway, worker, Gateway(port), worker_env, cpu_image)
    finally:
        containers.remove_containers(names)


def test_image_keeps_its_healthcheck_and_runs_as_uid_10001(containers: Containers, cpu_image: Build) -> None:
    image = containers.inspect(cpu_image.variant.tag)
    config = image["Config"]
    assert isinstance(config, dict)
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    # Docker-format image: the HEALTHCHECK survives (an OCI-format build drops it).
    assert image["ManifestType"] == "application/vnd.docker.distribution.manifest.v2+json"
    healthcheck = image["Healthcheck"]
    assert isinstance(healthcheck, dict)
    assert healthcheck["Test"] == ["CMD", "percolate-reading", "run", "--healthcheck"]
    assert set(config["Volumes"]) == {"/data", "/tmp", "/models"}
    assert config["Entrypoint"] == ["percolate-reading", "run"]


def test_cpu_image_is_slim_and_installed_from_the_lock(containers: Containers, cpu_image: Build) -> None:
    # One container answers everything (each `podman run` is seconds on a busy machine).
    probe = (
        "import importlib.metadata as md, json, os, shutil, sys, sysconfig\n"
        "def absent(name):\n"
        "    try:\n"
        "        md.distribution(name)\n"
        "    except md.PackageNotFoundError:\n"
        "        return True\n"
        "    return False\n"
        "stdlib = sysconfig.get_paths(vars={'base': sys.base_prefix})['stdlib']\n"
        f"print(json.dumps({{'missing': [d for d in {list(PRUNED)!r} if absent(d)],"
        "'prefix': sys.prefix, 'purelib': sysconfig.get_paths()['purelib'],"
        "'externally_managed_base': os.path.exists(stdlib + '/EXTERNALLY-MANAGED'),"
        "'tools': [t for t in ('gcc', 'cc', 'make', 'pip', 'uv') if shutil.which(t)],"
        "'requirements': open('/opt/percolate/requirements.lock.txt').read()}))"
    )
    out = containers.podman(
        "run", "--rm", "--entrypoint", "python", cpu_image.variant.tag, "-c", probe, timeout=120
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["missing"] == list(PRUNED)
    # The venv, on the stand-in's apt Python, which is PEP 668 "externally managed".
    assert found["prefix"] == "/opt/percolate"
    assert found["purelib"].startswith("/opt/percolate/lib/python3.")
    assert found["externally_managed_base"] is True
    # What was installed is the lock's, hash-pinned; the file is kept in the image.
    requirements = found["requirements"]
    assert re.search(r"^pymupdf==\S+", requirements, re.MULTILINE)
    assert "--hash=sha256:" in requirements
    assert not re.search(r"^onnxruntime==", requirements, re.MULTILINE)
    # No compilers, no installer (pip, uv) in the image.
    assert found["tools"] == []


def test_gateway_and_worker_are_healthy_non_root_and_read_only(cpu_stack: Stack) -> None:
    for role in (cpu_stack.gateway, cpu_stack.worker):
        assert role.health() == 0
        assert role.exec("id", "-u").strip() == APP_UID
        # The root filesystem refuses writes, even where the user owns the directory (its
        # home); the declared volumes take them.
        denied = role.store.podman("exec", role.name, "touch", "/home/percolate/x", check=False)
        assert denied.returncode != 0
        assert "Read-only file system" in denied.stderr
        role.exec("touch", "/tmp/ok", "/data/ok")


def test_upload_through_the_containers_end_to_end(cpu_stack: Stack, tmp_path: Path) -> None:
    pdf = pdf_with_text(tmp_path / "report.pdf", pages=2, marker="container marker 4711")
    job_id = cpu_stack.api.upload(pdf)
    job = cpu_stack.api.wait(job_id)
    assert job["status"] == "succeeded", (job, cpu_stack.worker.logs()[-3000:])
    markdown = cpu_stack.api.artifact(job_id, "structured.md")
    assert "container marker 4711" in markdown
    assert "Container test page 2" in markdown


def test_healthcheck_fails_when_the_role_is_not_serving(containers: Containers, cpu_image: Build) -> None:
    result = containers.podman(
        "run", "--rm", "--network", "host", "--health-interval=disable",
        "-e", "PERCOLATE_READING_GATEWAY_MODE=true", "-e", f"PERCOLATE_READING_PORT={free_port()}",
        "-e", "PERCOLATE_READING_HOST=127.0.0.1",
        cpu_image.variant.tag, "--healthcheck",
        check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr


def test_worker_drains_on_sigterm(containers: Containers, cpu_stack: Stack, tmp_path: Path) -> None:
    """SIGTERM while a job runs: the worker finishes (or hands back) its work and exits 0;
    the job ends succeeded either way. Last in this module: it stops the stack's worker."""
    # Long enough to be parsing when SIGTERM arrives (the log line below proves it was).
    pdf = pdf_with_text(tmp_path / "long.pdf", pages=600, marker="drain marker")
    job_id = cpu_stack.api.upload(pdf)
    job = cpu_stack.api.wait(job_id, until=("running",))
    assert job["status"] in ("running", "succeeded"), job
    code = cpu_stack.worker.stop(grace_s=120)
    logs = cpu_stack.worker.logs()
    assert code == 0, logs[-4000:]
    assert "SIGTERM: draining" in logs, logs[-4000:]
    assert "draining 1 in-flight job(s)" in logs, logs[-4000:]
    job = cpu_stack.api.job(job_id)
    if job["status"] != "succeeded":
        # Handed back to the queue by the drain: a fresh worker container finishes it.
        assert job["status"] in ("queued", "running"), job
        names: list[str] = []
        try:
            successor = start(containers, names, cpu_stack.image, "worker2", cpu_stack.env)
            job = cpu_stack.api.wait(job_id)
            assert job["status"] == "succeeded", successor.logs()[-3000:]
        finally:
            containers.remove_containers(names)
    assert job["status"] == "succeeded", job


# --- the operator role ------------------------------------------------------------------------


def test_operator_without_an_api_server_exits_1(containers: Containers, cpu_image: Build) -> None:
    result = containers.podman(
        "run", "--rm", "--network", "host", "--read-only", "--read-only-tmpfs=false",
        "-e", "PERCOLATE_READING_OPERATOR_MODE=true",
        "-e", f"PERCOLATE_OPERATOR_LIVENESS_ENDPOINT=http://127.0.0.1:{free_port()}/healthz",
        "-e", f"PERCOLATE_OPERATOR_NATS_URL=nats://127.0.0.1:{free_port()}",
        cpu_image.variant.tag,
        check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert "percolate-operator: stopped: no API server" in result.stderr


async def test_operator_reconciles_a_parsepool_healthy_and_stops_on_sigterm(
    containers: Containers, cpu_image: Build, nats_server: NatsServer, container_names: list[str]
) -> None:
    """The operator container against kmock's Kubernetes API emulator (tests/operator/cluster.py,
    the operator tests' API server) on loopback: its HEALTHCHECK probes kopf's liveness
    endpoint, a ParsePool gets its worker Deployment, SIGTERM stops it with exit 0."""
    import aiohttp

    from tests.operator.cluster import serving_cluster

    liveness = free_port()
    async with serving_cluster() as (_, url), aiohttp.ClientSession() as session:
        operator = await asyncio.to_thread(
            start,
            containers,
            container_names,
            cpu_image,
            "operator",
            {
                "PERCOLATE_READING_OPERATOR_MODE": "true",
                "PERCOLATE_OPERATOR_K8S_SERVER": url,
                "PERCOLATE_OPERATOR_NATS_URL": nats_server.url,
                "PERCOLATE_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{liveness}/healthz",
                "PERCOLATE_OPERATOR_TENANT_NAMESPACE": "percolate",
            },
            health_url=f"http://127.0.0.1:{liveness}/healthz",
        )
        await asyncio.to_thread(operator.wait_healthy)
        await create_small_pool(session, url)
        await small_pool_worker_container(session, url, operator.logs)
        assert await asyncio.to_thread(operator.stop, 30) == 0, operator.logs()[-4000:]


# --- the audio/OCR image --------------------------------------------------------------------------


def test_audio_ocr_worker_transcribes_speech_and_reads_images(
    containers: Containers,
    media_image: Build,
    cpu_stack: Stack,
    container_names: list[str],
    tmp_path: Path,
) -> None:
    """The compose default worker image: speech (faster-whisper, bundled Whisper base) and
    OCR (RapidOCR), behind the CPU stack's gateway, as its only worker."""
    metrics = free_port()
    env = {**cpu_stack.env, "PERCOLATE_READING_METRICS_PORT": str(metrics)}
    worker = start(
        containers,
        container_names,
        media_image,
        "media-worker",
        env,
        health_url=f"http://127.0.0.1:{metrics}/health",
    )
    worker.wait_healthy()
    assert worker.exec("id", "-u").strip() == APP_UID
    # RapidOCR's cv2 is OpenCV's headless build: no libGL/Mesa in the image.
    opencv = worker.exec(
        "python", "-c",
        "import importlib.metadata as md, cv2\n"
        "for name in ('opencv-python-headless', 'opencv-python'):\n"
        "    try:\n        print(name, md.version(name))\n"
        "    except md.PackageNotFoundError:\n        print(name, 'absent')",
    )  # fmt: skip
    assert "opencv-python-headless absent" not in opencv, opencv
    assert "opencv-python absent" in opencv, opencv
    assert worker.exec("sh", "-c", "ls /usr/lib/*/libGL.so.1 2>/dev/null || true").strip() == ""
    # Stop the CPU worker first, if it still runs, so this one takes the jobs.
    if cpu_stack.worker.state()["Status"] == "running":
        cpu_stack.worker.stop()
    speech = cpu_stack.api.upload(FIXTURES / "speech.wav")
    image = cpu_stack.api.upload(text_png(tmp_path / "sign.png", "PERCOLATE READING 4711"))
    for job_id in (speech, image):
        job = cpu_stack.api.wait(job_id)
        assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    transcript = cpu_stack.api.artifact(speech, "structured.md").lower()
    # Key words, not one build's exact tokens ("brown" came back as "round" in one run).
    spoken = ("the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog")
    heard = [w for w in spoken if re.search(rf"\b{w}\b", transcript)]
    assert len(heard) / len(spoken) >= 0.7, transcript[:2000]
    read = cpu_stack.api.artifact(image, "structured.md").upper()
    assert "4711" in read, read[:2000]
    assert "PERCOLATE" in read, read[:2000]
    assert worker.stop() == 0, worker.logs()[-3000:]
