"""The operator's API connections at their edges: Retry-After honoured, errors from the API's
Status body, kubeconfig auth, connections bounded (the lightkube client and kopf's session).
Served by a small aiohttp app that answers like the API server does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kopf
import pytest
from aiohttp import web

from percolate_operator.clients.kube import SECRETS, KubeClient, KubeError, load_config
from percolate_operator.reconcile.runtime import pooled_session

Handler = Any


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}  # fmt: skip


SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}, "data": {}}


class Api:
    def __init__(self) -> None:
        self.answers: list[web.Response] = []
        self.seen: list[tuple[float, str, str | None]] = []
        self.delay_s = 0.0  # how long each answer takes
        self.in_flight = self.most_in_flight = 0
        self.client_ports: set[int] = set()  # one per connection the client opened
        self.arrived = asyncio.Event()  # set by the first request

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((time.monotonic(), request.path, request.headers.get("Authorization")))
        self.arrived.set()
        self.client_ports.add(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
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


async def test_a_call_after_close_is_a_temporary_error_not_a_crash(api: tuple[Api, str]) -> None:
    """At shutdown kopf closes the client in its cleanup activity while a drift timer may still
    be running: that timer must fail temporarily, without a traceback in the log."""
    state, url = api
    state.delay_s = 0.5
    client = KubeClient(load_config(url))
    in_flight = asyncio.create_task(client.get(SECRETS, "ns", "s"))
    await state.arrived.wait()
    await client.close()
    for call in (in_flight, client.get(SECRETS, "ns", "s")):
        with pytest.raises(KubeError) as caught:
            await call
        assert caught.value.temporary
        assert caught.value.reason == "Stopping"
    assert len(state.seen) == 1  # nothing is sent once closed


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


async def test_requests_in_flight_and_connections_are_bounded(api: tuple[Api, str]) -> None:
    """A burst of reconciles waits for a free slot instead of opening a TLS connection (and its
    256 KiB read buffer) per object."""
    state, url = api
    state.delay_s = 0.1
    client = KubeClient(load_config(url), max_in_flight=3)
    try:
        found = await asyncio.gather(*(client.get(SECRETS, "ns", "s") for _ in range(12)))
    finally:
        await client.close()
    assert [s["metadata"]["name"] for s in found if s is not None] == ["s"] * 12
    assert state.most_in_flight == 3
    assert len(state.client_ports) <= 3


async def test_kopf_session_is_bounded_and_authenticated(api: tuple[Api, str]) -> None:
    """kopf's own connection (watches, patches, events) as the login handler returns it."""
    state, url = api
    state.delay_s = 0.1
    context = pooled_session(kopf.ConnectionInfo(server=url, token="sa-token-456"), 3)
    assert context.server == url
    session = context.aiohttp_session
    try:

        async def get() -> int:
            async with session.get(f"{url}/api/v1/namespaces/ns/secrets/s") as response:
                return response.status

        statuses = await asyncio.gather(*(get() for _ in range(12)))
    finally:
        await session.close()
    assert statuses == [200] * 12
    assert state.most_in_flight == 3
    assert len(state.client_ports) <= 3
    assert {auth for _, _, auth in state.seen} == {"Bearer sa-token-456"}
