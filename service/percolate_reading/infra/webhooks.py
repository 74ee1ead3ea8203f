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
from percolate_reading.contract.webhook_delivery import webhook_id as webhook_id

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


@dataclass(frozen=True)
class Attempt:
    """One HTTP try: `delivered`, `refused` (the SSRF guard: never retried) or `failed`."""

    outcome: str
    error: str | None
    status_code: int | None = None
    reason: str | None = None  # the failure's kind: timeout, connection, http_5xx...


def encode_payload(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


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

    async def attempt(self, url: str, secret: str | None, msg_id: str, body: bytes) -> Attempt:
        """One try: check the URL (re-resolved every time: a name may change between tries),
        POST, and say how it went. Never raises for delivery failures."""
        try:
            target = await check_url(url, self.allow, self._resolve)
        except WebhookRefusedError as exc:
            log.warning("webhook %s refused: %s", msg_id, exc)
            return Attempt("refused", str(exc))
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
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "connection"
            self._attempt_failed(reason)
            return Attempt("failed", f"{type(exc).__name__}: {exc}", reason=reason)
        if 200 <= status_code < 300:
            return Attempt("delivered", None, status_code)
        family = status_code // 100
        reason = f"http_{family}xx" if family in (4, 5) else "http_other"
        self._attempt_failed(reason)
        return Attempt("failed", f"HTTP {status_code}", status_code, reason)

    async def send(
        self, url: str, secret: str | None, msg_id: str, payload: dict[str, Any]
    ) -> DeliveryResult:
        """Deliver one message now, retrying in place with backoff (the worker instead queues
        its webhooks on WEBHOOKS and makes one `attempt` per try); never raises for delivery
        failures (it reports them)."""
        body = encode_payload(payload)
        result = DeliveryResult(delivered=False, attempts=0)
        started = time.monotonic()
        max_attempts = self.settings.webhook_max_attempts
        for number in range(1, max_attempts + 1):
            result.attempts = number
            tried = await self.attempt(url, secret, msg_id, body)
            result.error = tried.error
            if tried.status_code is not None:
                result.status_code = tried.status_code
            fallback = "refused" if tried.outcome == "refused" else "error"
            result.statuses.append(tried.status_code or fallback)
            if tried.outcome in ("delivered", "refused"):
                result.delivered = tried.outcome == "delivered"
                self.record_outcome(tried.outcome, time.monotonic() - started)
                return result
            if number < max_attempts:
                delay = backoff_delay(
                    number, self.settings.webhook_backoff_s, self.settings.webhook_backoff_max_s
                )
                log.info(
                    "webhook %s attempt %d failed (%s); retry in %.1fs", msg_id, number, result.error, delay
                )
                await self._sleep(delay)
        log.warning("webhook %s to %s failed after %d attempts: %s", msg_id, url, max_attempts, result.error)
        self.record_outcome("failed", time.monotonic() - started)
        return result

    def record_outcome(self, outcome: str, elapsed_s: float) -> None:
        """A webhook's final outcome (delivered, refused, failed, lost) and how long it took."""
        if self._metrics is not None:
            self._metrics.webhook_deliveries_total.labels(outcome).inc()
            self._metrics.webhook_delivery_duration_seconds.labels(outcome).observe(max(elapsed_s, 0.0))

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


# --- per-destination circuit breaking --------------------------------------------------------


def destination(url: str) -> str:
    """What a circuit is kept per: scheme, host and port of the callback."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    host = (parts.hostname or "").lower()
    return f"{parts.scheme}://{host}:{port or (443 if parts.scheme == 'https' else 80)}"


@dataclass
class _Circuit:
    failures: int = 0  # consecutive
    open_until: float = 0.0
    opened: int = 0  # times opened in a row, for the cooldown's backoff


class CircuitBreakers:
    """Per destination: after `threshold` consecutive failed attempts the circuit opens and
    nothing is sent there for a cooldown (doubling each time it reopens, up to `max_open_s`);
    then one attempt at a time probes it; a success closes it."""

    def __init__(
        self,
        threshold: int,
        open_s: float,
        max_open_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.open_s = open_s
        self.max_open_s = max_open_s
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._probing: set[str] = set()

    def wait_s(self, dest: str) -> float:
        """0 when an attempt may go to `dest` now, else how long until it may (the caller
        then counts as the probe of a half-open circuit until it reports)."""
        circuit = self._circuits.get(dest)
        if circuit is None or circuit.failures < self.threshold:
            return 0.0
        left = circuit.open_until - self._clock()
        if left > 0:
            return left
        if dest in self._probing:
            return max(self.open_s / 4, 0.5)
        self._probing.add(dest)
        return 0.0

    def release(self, dest: str) -> None:
        """An attempt that said nothing about the destination (refused by the guard, cut
        short by a drain): another may probe it."""
        self._probing.discard(dest)

    def succeeded(self, dest: str) -> None:
        self._probing.discard(dest)
        self._circuits.pop(dest, None)

    def failed(self, dest: str) -> None:
        self._probing.discard(dest)
        circuit = self._circuits.setdefault(dest, _Circuit())
        circuit.failures += 1
        if circuit.failures >= self.threshold:
            circuit.opened += 1
            cooldown = min(self.max_open_s, self.open_s * 2 ** (circuit.opened - 1))
            circuit.open_until = self._clock() + cooldown
            if circuit.opened == 1 or circuit.opened % 10 == 0:
                log.warning(
                    "webhook destination %s failed %d times in a row: paused for %.0fs",
                    dest,
                    circuit.failures,
                    cooldown,
                )
        if len(self._circuits) > 10_000:  # a bound on memory: forget the oldest
            self._circuits.pop(next(iter(self._circuits)))

    def is_open(self, dest: str) -> bool:
        circuit = self._circuits.get(dest)
        return circuit is not None and circuit.failures >= self.threshold
