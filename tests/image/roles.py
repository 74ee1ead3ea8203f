"""Running the image's roles with podman, and talking to them: helpers of the image tier."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pymupdf

from tests.image.containers import Build, Containers

API_KEY = "pr_image_tier_key"


@dataclass
class Role:
    """One container of the image, started detached; `health_url` is the endpoint its
    HEALTHCHECK probes, as reached from the host (host network)."""

    store: Containers
    name: str
    health_url: str | None = None

    def health(self) -> int:
        return self.store.podman("healthcheck", "run", self.name, check=False, timeout=60).returncode

    def wait_healthy(self, timeout_s: float = 180.0) -> None:
        """Until the role serves, then its HEALTHCHECK must pass. Polled from the host with a
        plain HTTP request (milliseconds) rather than by running the HEALTHCHECK over and over
        (a Python start-up in the container each time, seconds on a busy machine)."""
        # A start-up deadline, not a speed assertion (the roles import their stacks first).
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._serving() and self.health() == 0:
                return
            if self.state()["Status"] == "exited":
                break
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: HEALTHCHECK never passed; log:\n{self.logs()[-4000:]}")

    def _serving(self) -> bool:
        if self.health_url is None:
            return True
        try:
            return httpx.get(self.health_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def state(self) -> dict[str, Any]:
        out = self.store.podman("inspect", self.name, "--format", "{{json .State}}").stdout
        return json.loads(out)  # type: ignore[no-any-return]

    def logs(self) -> str:
        result = self.store.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *argv: str) -> str:
        return self.store.podman("exec", self.name, *argv).stdout

    def stop(self, grace_s: int = 40) -> int:
        """SIGTERM (the image's stop signal), then the exit code."""
        self.store.podman("stop", "-t", str(grace_s), self.name, timeout=grace_s + 60)
        return int(self.state()["ExitCode"])


def start(
    store: Containers,
    names: list[str],
    image: Build,
    name: str,
    env: dict[str, str],
    *args: str,
    health_url: str | None = None,
) -> Role:
    unique = f"pr-image-{name}-{time.monotonic_ns() % 10**8}"
    names.append(unique)
    env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    store.podman(
        "run",
        "-d",
        "--name",
        unique,
        "--network",
        "host",
        "--init",
        # No systemd here: podman cannot schedule healthcheck timers; the tests run them.
        "--health-interval=disable",
        # Read-only root; --read-only-tmpfs=false: no tmpfs on /tmp, /var/tmp or /run from
        # podman, so only the image's VOLUMEs (/data, /tmp, /models) are writable.
        "--read-only",
        "--read-only-tmpfs=false",
        *env_args,
        *args,
        image.variant.tag,
        timeout=120,
    )
    return Role(store, unique, health_url)


def pdf_with_text(path: Path, pages: int, marker: str) -> Path:
    doc = pymupdf.open()
    for number in range(pages):
        page = doc.new_page()
        page.insert_text((72, 72), f"Container test page {number + 1}", fontsize=18)
        for line in range(30):
            text = f"Line {line} of page {number + 1}: {marker}"
            page.insert_text((72, 110 + 20 * line), text, fontsize=10)
    doc.save(path)
    return path


def text_png(path: Path, words: str) -> Path:
    doc = pymupdf.open()
    page = doc.new_page(width=900, height=240)
    page.insert_text((40, 130), words, fontsize=44)
    page.get_pixmap(dpi=110).save(path)
    return path


@dataclass
class Gateway:
    port: int
    api_key: str = API_KEY

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def upload(self, path: Path) -> str:
        with path.open("rb") as body:
            response = httpx.post(
                f"{self.url}/v1/parse",
                headers={"Authorization": f"Bearer {self.api_key}"},
                files={"file": (path.name, body)},
                timeout=60,
            )
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def wait(self, job_id: str, timeout_s: float = 300.0, until: tuple[str, ...] = ()) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        job = self.job(job_id)
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in until or job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s} s")

    def artifact(self, job_id: str, name: str) -> str:
        response = httpx.get(
            f"{self.url}/v1/jobs/{job_id}/artifacts/{name}",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.text
