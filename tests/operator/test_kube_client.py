"""The lightkube-based client's edges: Retry-After honoured, errors from the API's Status body,
kubeconfig auth. Served by a small aiohttp app that answers like the API server does."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from percolate_operator.clients.kube import SECRETS, KubeClient, KubeError, load_config

Handler = Any


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}  # fmt: skip


SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}, "data": {}}


class Api:
    def __init__(self) -> None:
        self.answers: list[web.Response] = []
        self.seen: list[tuple[float, str, str | None]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((time.monotonic(), request.path, request.headers.get("Authorization")))
        return self.answers.pop(0) if self.answers else web.json_response(SECRET)


@pytest.fixture
async def api() -> AsyncIterator[tuple[Api, str]]:
    state = Api()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_throttling_waits_what_retry_after_says(api: tuple[Api, str]) -> None:
    state, url = api
    state.answers = [web.json_response(_status(429, "TooManyRequests", "slow down"), status=429,
                                       headers={"Retry-After": "1"})]  # fmt: skip
    client = KubeClient(load_config(url))
    try:
        secret = await client.get(SECRETS, "ns", "s")
    finally:
        await client.close()
    assert secret is not None
    assert secret["metadata"]["name"] == "s"
    (first, _, _), (second, _, _) = state.seen
    assert second - first >= 0.95


async def test_errors_carry_the_status_message(api: tuple[Api, str]) -> None:
    state, url = api
    state.answers = [web.json_response(
        _status(422, "Invalid", 'Secret "s" is invalid: data[x y]: Invalid value'), status=422)]  # fmt: skip
    client = KubeClient(load_config(url))
    try:
        with pytest.raises(KubeError) as caught:
            await client.create(SECRETS, SECRET)
    finally:
        await client.close()
    assert caught.value.status == 422
    assert caught.value.reason == "Invalid"
    assert "Invalid value" in str(caught.value)
    assert not caught.value.temporary
    assert len(state.seen) == 1  # a validation error is not retried


async def test_server_errors_are_retried_then_reported_as_temporary(api: tuple[Api, str]) -> None:
    state, url = api
    state.answers = [web.json_response(_status(503, "ServiceUnavailable", "etcd down"), status=503)
                     for _ in range(3)]  # fmt: skip
    client = KubeClient(load_config(url))
    try:
        with pytest.raises(KubeError) as caught:
            await client.get(SECRETS, "ns", "s")
    finally:
        await client.close()
    assert caught.value.temporary
    assert "etcd down" in str(caught.value)
    assert len(state.seen) == 3


async def test_missing_object_is_none_not_an_error(api: tuple[Api, str]) -> None:
    state, url = api
    state.answers = [web.json_response(_status(404, "NotFound", 'secrets "s" not found'), status=404)]
    client = KubeClient(load_config(url))
    try:
        assert await client.get(SECRETS, "ns", "s") is None
    finally:
        await client.close()


async def test_kubeconfig_token_is_sent(
    api: tuple[Api, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = api
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{url}"}}}}]
users: [{{name: u, user: {{token: sa-token-123}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    client = KubeClient(load_config(None))
    try:
        await client.get(SECRETS, "ns", "s")
    finally:
        await client.close()
    assert state.seen[0][2] == "Bearer sa-token-123"
