"""The operator role's smoke check, shared by the entry-point test (a subprocess) and the image
tier (a container): create one ParsePool through the API server, then read its worker Deployment."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp

NAMESPACE = "percolate"
SMALL_POOL: dict[str, Any] = {
    "apiVersion": "percolate.dev/v1alpha1",
    "kind": "ParsePool",
    "metadata": {"name": "small", "namespace": NAMESPACE},
    "spec": {"tier": "small", "replicas": {"min": 0, "max": 2}},
}
WORKER_MODE = {"name": "PERCOLATE_READING_WORKER_MODE", "value": "true"}


async def create_small_pool(session: aiohttp.ClientSession, api: str) -> None:
    async with session.post(
        f"{api}/apis/percolate.dev/v1alpha1/namespaces/{NAMESPACE}/parsepools", json=SMALL_POOL
    ) as response:
        assert response.status < 400, await response.text()


async def small_pool_worker_container(
    session: aiohttp.ClientSession, api: str, logs: Callable[[], str]
) -> dict[str, Any]:
    """The only container of the Deployment the operator made for SMALL_POOL; `logs` names the
    operator's output when it never appears."""
    target = f"{api}/apis/apps/v1/namespaces/{NAMESPACE}/deployments/small-workers"
    for _ in range(900):  # a guard against hangs, not a speed assertion
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(target) as response:
                if response.status == 200:
                    deployment = await response.json()
                    (container,) = deployment["spec"]["template"]["spec"]["containers"]
                    assert WORKER_MODE in container["env"], container["env"]
                    return container  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{target} never appeared; operator log:\n{logs()[-4000:]}")
