"""Webhook signing, delivery to a real local receiver, and the SSRF guard."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from percolate_reading.config import Settings, load_settings
from percolate_reading.infra.webhooks import (
    AllowList,
    CircuitBreakers,
    WebhookRefusedError,
    WebhookSender,
    backoff_delay,
    check_url,
    destination,
    sign,
    verify,
    webhook_id,
)
from percolate_reading.metrics import Metrics
from tests.harness.webhooks import WebhookReceiver

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def settings(tmp_path: Path, **kw: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": tmp_path,
        "webhook_allow_hosts": "127.0.0.1",
        "webhook_backoff_s": 0.01,
        "webhook_max_attempts": 3,
        "webhook_timeout_s": 5,
    }
    base.update(kw)
    return load_settings(**base)


def test_signature_matches_independent_hmac() -> None:
    body = b'{"type":"job.succeeded"}'
    got = sign(SECRET, "msg_1", 1700000000, body)
    expected = base64.b64encode(hmac.new(KEY, b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert got == "v1," + expected
    # A plain-text secret is used as its UTF-8 bytes.
    plain = sign("s3cret", "m", 1, b"x")
    assert plain == "v1," + base64.b64encode(hmac.new(b"s3cret", b"m.1.x", hashlib.sha256).digest()).decode()


def test_verify() -> None:
    body = b"{}"
    ts = int(time.time())
    headers = {
        "webhook-id": "m",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, "m", ts, body),
    }
    assert verify(SECRET, headers, body)
    assert not verify(SECRET, headers, b"{ }")
    assert not verify("whsec_" + base64.b64encode(b"other").decode(), headers, body)
    assert not verify(SECRET, headers, body, now=ts + 3600)
    rotated = dict(headers, **{"webhook-signature": "v1,AAAA " + headers["webhook-signature"]})
    assert verify(SECRET, rotated, body)


def test_webhook_id_is_stable() -> None:
    assert webhook_id("j1", "succeeded") == webhook_id("j1", "succeeded")
    assert webhook_id("j1", "succeeded") != webhook_id("j1", "failed")


def test_backoff_grows_with_jitter() -> None:
    delays = [backoff_delay(n, 1.0, 60.0) for n in (1, 2, 3, 4, 10)]
    assert 0.5 <= delays[0] <= 1.5
    assert 4 <= delays[3] * 1.0 <= 12
    assert delays[4] <= 90


async def test_delivery_to_allowed_local_receiver(receiver: WebhookReceiver, tmp_path: Path) -> None:
    receiver.statuses = [500, 503]  # two failures, then 200
    metrics = Metrics()
    sender = WebhookSender(settings(tmp_path), metrics=metrics)
    try:
        result = await sender.send(receiver.url, SECRET, "msg_j1_succeeded", {"type": "job.succeeded"})
    finally:
        await sender.close()
    assert result.delivered
    assert result.attempts == 3
    assert result.statuses == [500, 503, 200]
    assert len(receiver.received) == 3
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert ids == {"msg_j1_succeeded"}  # same id on every retry
    for got in receiver.received:
        assert got.path == "/hook"
        assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
        assert verify(SECRET, got.headers, got.body)
        assert json.loads(got.body) == {"type": "job.succeeded"}
    exported = metrics.render()
    assert b'webhook_attempt_failures_total{reason="http_5xx"} 2.0' in exported
    assert b'webhook_deliveries_total{outcome="delivered"} 1.0' in exported
    assert b'webhook_delivery_duration_seconds_count{outcome="delivered"} 1.0' in exported


async def test_named_callback_goes_to_the_checked_address_with_its_name(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    # The name is resolved and checked once per try; the request then goes to that address
    # (no second lookup a rebinding DNS server could answer differently), naming the host.
    lookups: list[str] = []

    async def pinned_dns(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    sender = WebhookSender(settings(tmp_path, webhook_allow_hosts="hooks.example"), resolve=pinned_dns)
    try:
        url = f"http://hooks.example:{receiver.port}/hook"
        result = await sender.send(url, SECRET, "msg_named", {"type": "job.succeeded"})
    finally:
        await sender.close()
    assert result.delivered, result.error
    assert lookups == ["hooks.example"]
    (got,) = receiver.received
    assert got.headers["host"] == f"hooks.example:{receiver.port}"
    assert verify(SECRET, got.headers, got.body)


async def test_redirect_is_not_followed(receiver: WebhookReceiver, tmp_path: Path) -> None:
    receiver.statuses = [302, 302, 302]
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data/"
    sender = WebhookSender(settings(tmp_path))
    try:
        result = await sender.send(receiver.url, SECRET, "m", {})
    finally:
        await sender.close()
    assert not result.delivered
    assert result.statuses == [302, 302, 302]
    assert all(r.path == "/hook" for r in receiver.received)


async def test_receiver_refused_without_allow_list(receiver: WebhookReceiver, tmp_path: Path) -> None:
    sender = WebhookSender(settings(tmp_path, webhook_allow_hosts=""))
    try:
        result = await sender.send(receiver.url, SECRET, "m", {})
    finally:
        await sender.close()
    assert not result.delivered
    assert result.statuses == ["refused"]
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://172.16.5.5/x",
        "http://0x7f000001/x",
        "http://2130706433/x",
        "http://0177.0.0.1/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[::ffff:169.254.169.254]/x",
        "http://0.0.0.0/x",
        "http://localhost/x",
        "http://[fe80::1]/x",
        "http://224.0.0.1/x",
        "http://100.64.0.1/x",
        "ftp://example.com/x",
        "file:///etc/passwd",
        "http://user:pw@example.com/x",
    ],
)
async def test_ssrf_targets_refused(url: str) -> None:
    with pytest.raises(WebhookRefusedError):
        await check_url(url, AllowList())


async def fake_dns(host: str, port: int) -> list[str]:
    """A stand-in resolver (no DNS server here): fixed answers for made-up names."""
    answers = {
        "internal.example": ["10.0.0.7"],
        "mixed.example": ["93.184.216.34", "127.0.0.1"],
        "public.example": ["93.184.216.34"],
    }
    return answers[host]


async def test_names_resolving_to_private_addresses_refused() -> None:
    with pytest.raises(WebhookRefusedError, match="private"):
        await check_url("https://internal.example/hook", AllowList(), fake_dns)
    with pytest.raises(WebhookRefusedError, match="loopback"):
        await check_url("https://mixed.example/hook", AllowList(), fake_dns)
    target = await check_url("https://public.example:8443/hook?a=1", AllowList(), fake_dns)
    assert target.pinned_url == "https://93.184.216.34:8443/hook?a=1"
    assert target.host == "public.example"


async def test_allow_list_by_cidr_and_host() -> None:
    allow = AllowList.parse(["10.0.0.0/8", "Internal.Example", ""])
    assert (await check_url("http://10.9.9.9/h", allow)).ip == "10.9.9.9"
    assert (await check_url("http://internal.example/h", allow, fake_dns)).ip == "10.0.0.7"
    with pytest.raises(WebhookRefusedError):
        await check_url("http://192.168.1.1/h", allow)


def test_circuit_opens_after_consecutive_failures_and_closes_on_success() -> None:
    now = [1000.0]
    breakers = CircuitBreakers(threshold=3, open_s=10.0, max_open_s=25.0, clock=lambda: now[0])
    dest = destination("https://Hooks.Example/a?x=1")
    assert dest == "https://hooks.example:443"
    assert destination("https://hooks.example:443/b") == dest  # one circuit per host and port
    for _ in range(2):
        breakers.failed(dest)
        assert breakers.wait_s(dest) == 0.0  # under the threshold: still attempted
    breakers.failed(dest)
    assert breakers.wait_s(dest) == pytest.approx(10.0)  # open: paused for the cooldown
    assert breakers.wait_s("https://other.example:443") == 0.0  # other destinations unaffected
    now[0] += 10.5
    assert breakers.wait_s(dest) == 0.0  # half open: this caller probes
    assert breakers.wait_s(dest) > 0  # ... and nobody else meanwhile
    breakers.failed(dest)  # the probe failed: open again, for twice as long
    assert breakers.wait_s(dest) == pytest.approx(20.0)
    now[0] += 21
    assert breakers.wait_s(dest) == 0.0
    breakers.failed(dest)
    assert breakers.wait_s(dest) == pytest.approx(25.0)  # capped
    now[0] += 26
    assert breakers.wait_s(dest) == 0.0
    breakers.succeeded(dest)
    assert not breakers.is_open(dest)
    assert breakers.wait_s(dest) == 0.0
