"""Job-completion webhooks in the Standard Webhooks format, with an SSRF guard.

Headers: `webhook-id` (stable across retries: derived from the job id and its final status),
`webhook-timestamp` (unix seconds) and `webhook-signature` = `v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`. Secrets are `whsec_<base64>` (the Standard Webhooks form) or
plain text. Only a 2xx answer counts; redirects are not followed; each attempt has a timeout;
failures are retried with exponential backoff and jitter.

Callback URLs that resolve to loopback, private, link-local (cloud metadata), reserved,
multicast or otherwise non-global addresses are refused unless the host or the address is in
`settings.webhook_allow_list`. Every address the name resolves to is checked, and the request
connects to the checked address (the Host header and TLS SNI keep the original name), so a
DNS answer that changes between check and connect cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from percolate_reading.config import Settings

# Signing lives in contract/ (the client's verify_webhook checks what this module signs);
# re-exported here for the sender's callers.
from percolate_reading.contract.webhook_signature import DEFAULT_TOLERANCE_S as DEFAULT_TOLERANCE_S
from percolate_reading.contract.webhook_signature import SECRET_PREFIX as SECRET_PREFIX
from percolate_reading.contract.webhook_signature import SIGNATURE_VERSION as SIGNATURE_VERSION
from percolate_reading.contract.webhook_signature import secret_bytes as secret_bytes
from percolate_reading.contract.webhook_signature import sign
from percolate_reading.contract.webhook_signature import verify as verify
from percolate_reading.errors import PercolateError
from percolate_reading.metrics import Metrics

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebhookRefusedError(PercolateError):
    """The callback URL is not one we will call (scheme, or an address the guard refuses)."""

    code = "webhook_refused"
    permanent = True


def webhook_id(job_id: str, status: str) -> str:
    """Stable per (job, final status): a redelivered job's webhook repeats the same id."""
    return f"msg_{job_id}_{status}"


def build_headers(secret: str | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "user-agent": "percolate-reading-webhooks/1",
    }
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return headers


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1-based): base * 2^(attempt-1), jittered 50-150%."""
    r = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
    return float(min(max_s, base_s * 2 ** (attempt - 1)) * r.uniform(0.5, 1.5))


# --- SSRF guard -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: tuple[str, ...] | list[str]) -> AllowList:
        hosts: set[str] = set()
        nets: list[Network] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(nets))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_ip(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)


def _unmapped(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` may not be called, or None for a public unicast address."""
    ip = _unmapped(ip)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_private:
        return "private"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified or ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (numeric forms such as 2130706433
    or 0x7f000001 are normalised by getaddrinfo the way a connect would)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookRefusedError(f"callback host {host!r} does not resolve: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """A checked callback: the URL to request (pointing at a checked address) and the name
    to present as Host and TLS SNI."""

    url: str
    host: str
    ip: str
    pinned_url: str


async def check_url(url: str, allow: AllowList, resolve: Resolver = system_resolve) -> Target:
    """Resolve and check a callback URL; raise WebhookRefusedError when the guard refuses it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefusedError(f"invalid callback URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise WebhookRefusedError("callback URL must be http or https")
    host = parts.hostname
    if not host:
        raise WebhookRefusedError("callback URL has no host")
    if parts.username or parts.password:
        raise WebhookRefusedError("callback URL must not carry credentials")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    if not addresses:
        raise WebhookRefusedError(f"callback host {host!r} does not resolve")
    host_allowed = allow.allows_host(host)
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        reason = address_refusal(ip)
        if reason and not host_allowed and not allow.allows_ip(_unmapped(ip)) and not allow.allows_ip(ip):
            raise WebhookRefusedError(f"callback host {host!r} resolves to a {reason} address ({ip})")
    chosen = addresses[0].split("%", 1)[0]
    netloc_host = f"[{chosen}]" if ":" in chosen else chosen
    pinned = urlunsplit((parts.scheme, f"{netloc_host}:{port}", parts.path or "/", parts.query, ""))
    return Target(url=url, host=host, ip=chosen, pinned_url=pinned)


# --- delivery -------------------------------------------------------------------------------------


@dataclass
class DeliveryResult:
    delivered: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
    statuses: list[int | str] = field(default_factory=list)


class WebhookSender:
    """Sends webhooks with one shared HTTP client (owned here; call `close`).

    aiohttp, not httpx: a webhook costs it ~0.1 ms of CPU against httpx's ~1.1 ms here, and
    the worker sends one per job."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolve: Resolver = system_resolve,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.allow = AllowList.parse(settings.webhook_allow_list)
        self._resolve = resolve
        self._sleep = sleep
        self._metrics = metrics
        self._session: aiohttp.ClientSession | None = None  # made in the event loop, on first use

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s),
                trust_env=False,  # never route callbacks through an environment proxy
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, url: str, secret: str | None, msg_id: str, payload: dict[str, Any]
    ) -> DeliveryResult:
        """Deliver one message; never raises for delivery failures (it reports them)."""
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        result = DeliveryResult(delivered=False, attempts=0)
        started = time.monotonic()
        max_attempts = self.settings.webhook_max_attempts
        for attempt in range(1, max_attempts + 1):
            result.attempts = attempt
            try:
                # Re-resolved and re-checked on every try: a name may change between tries.
                target = await check_url(url, self.allow, self._resolve)
            except WebhookRefusedError as exc:
                result.error = str(exc)
                result.statuses.append("refused")
                log.warning("webhook %s refused: %s", msg_id, exc)
                self._outcome("refused", started)
                return result
            headers = build_headers(secret, msg_id, int(time.time()), body)
            headers["Host"] = _host_header(target)
            # The request goes to the checked address; TLS still presents and verifies the name.
            tls_name = target.host if url.startswith("https") else None
            try:
                # Never read: a receiver cannot make us buffer a large answer.
                async with self._client().post(
                    target.pinned_url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    server_hostname=tls_name,
                ) as resp:
                    status_code = resp.status
                result.status_code = status_code
                result.statuses.append(status_code)
                if 200 <= status_code < 300:
                    result.delivered = True
                    result.error = None
                    self._outcome("delivered", started)
                    return result
                result.error = f"HTTP {status_code}"
                family = status_code // 100
                self._attempt_failed(f"http_{family}xx" if family in (4, 5) else "http_other")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                result.error = f"{type(exc).__name__}: {exc}"
                result.statuses.append("error")
                self._attempt_failed("timeout" if isinstance(exc, TimeoutError) else "connection")
            if attempt < max_attempts:
                delay = backoff_delay(
                    attempt, self.settings.webhook_backoff_s, self.settings.webhook_backoff_max_s
                )
                log.info(
                    "webhook %s attempt %d failed (%s); retry in %.1fs", msg_id, attempt, result.error, delay
                )
                await self._sleep(delay)
        log.warning("webhook %s to %s failed after %d attempts: %s", msg_id, url, max_attempts, result.error)
        self._outcome("failed", started)
        return result

    def _outcome(self, outcome: str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.webhook_deliveries_total.labels(outcome).inc()
            elapsed = time.monotonic() - started
            self._metrics.webhook_delivery_duration_seconds.labels(outcome).observe(elapsed)

    def _attempt_failed(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.webhook_attempt_failures_total.labels(reason).inc()


def _host_header(target: Target) -> str:
    parts = urlsplit(target.url)
    host = target.host
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def job_event(record_json: dict[str, Any], status: str) -> dict[str, Any]:
    """The Standard Webhooks payload for a finished job."""
    return {
        "type": f"job.{status}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": record_json,
    }
