"""The image tier: needs root, buildah, podman, runc and mmdebstrap (Debian packages).

Without them it skips with a message, except under CI=true, where it fails: CI installs them
(.ci/run) and must never pass by not running this tier.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.image.containers import APT_PACKAGES, CPU, MEDIA, Build, Containers, missing_tools


def _unavailable() -> str | None:
    missing = missing_tools()
    if os.geteuid() != 0:
        missing.append("root")
    if not missing:
        return None
    return (
        f"the image tier needs {', '.join(missing)}: run as root after "
        f"`apt-get install {' '.join(APT_PACKAGES)}` (.ci/run does)"
    )


@pytest.fixture(scope="session")
def containers() -> Containers:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    store = Containers()
    store.ensure_base()
    return store


@pytest.fixture(scope="session")
def cpu_image(containers: Containers) -> Build:
    return containers.build(CPU)


@pytest.fixture(scope="session")
def media_image(containers: Containers) -> Build:
    return containers.build(MEDIA)


@pytest.fixture
def container_names(containers: Containers) -> Iterator[list[str]]:
    """Names of the containers a test starts; all removed (with their volumes) afterwards."""
    names: list[str] = []
    yield names
    containers.remove_containers(names)
