"""JetStream I/O for the operator: streams, pool consumers, consumer lag, the TENANTS registry.

Every failure to reach NATS surfaces as `NatsUnavailable` (handlers turn it into a kopf
TemporaryError with a delay); a consumer another ParsePool owns surfaces as `ConsumerConflict`
(a permanent error: retrying cannot fix a spec that collides with another pool).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal

import nats
from nats.aio.client import Client
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.api import ConsumerConfig, ConsumerInfo
from nats.js.errors import (
    APIError,
    KeyNotFoundError,
    NotFoundError,
    ServiceUnavailableError,
)
from nats.js.kv import KeyValue

from percolate_operator.builders import topology_limits
from percolate_operator.settings import OperatorSettings
from percolate_reading.contract.subjects import CONSUMER_OWNER_KEY
from percolate_reading.contract.tenancy import TENANTS_KV_BUCKET
from percolate_reading.contract.topology import TopologyLimits, consumer_drift, tenants_bucket
from percolate_reading.errors import QueueError
from percolate_reading.infra.queue.topology import ensure_bucket, ensure_topology

logger = logging.getLogger(__name__)

Outcome = Literal["created", "updated", "unchanged"]

_UNREACHABLE = (
    NoServersError,
    ConnectionClosedError,
    NoRespondersError,
    NatsTimeoutError,
    ServiceUnavailableError,
    asyncio.TimeoutError,
    OSError,
)


class NatsUnavailable(Exception):
    """NATS could not be reached or did not answer in time (retry later)."""


class ConsumerConflict(Exception):
    """The pool's consumer (or filter subject) belongs to another ParsePool."""


def _plain(config: js_api.ConsumerConfig) -> dict[str, Any]:
    """A server-returned consumer config in the builders' units (seconds, plain strings)."""
    return {
        "filter_subject": config.filter_subject,
        "ack_wait": config.ack_wait,
        "max_deliver": config.max_deliver,
        "max_ack_pending": config.max_ack_pending,
        "metadata": dict(config.metadata or {}),
    }


async def _log_error(exc: Exception) -> None:
    # nats-py's default prints a traceback per failed attempt; callers already get the error.
    logger.debug("NATS client error: %r", exc)


class JetStreamAdmin:
    """One NATS connection shared by all handlers; (re)connected on demand."""

    def __init__(self, settings: OperatorSettings) -> None:
        self._settings = settings
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()
        # Topology already confirmed on the server: skip re-checking on every reconcile of
        # every pool, but forget it on any error so a deleted stream gets recreated.
        self._topology_ok = False

    async def _context(self) -> JetStreamContext:
        async with self._lock:
            if self._nc is not None and self._nc.is_connected and self._js is not None:
                return self._js
            if self._nc is not None and not self._nc.is_closed:
                await self._nc.close()
            try:
                self._nc = await nats.connect(
                    servers=self._settings.nats_url.split(","),
                    connect_timeout=self._settings.nats_connect_timeout_s,
                    # No background reconnect loop: a lost connection closes, the handler gets
                    # NatsUnavailable (retry with delay), and the next call connects afresh.
                    # max_reconnect_attempts also bounds the *first* connect (0 would mean forever).
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.5,
                    name="percolate-operator",
                    error_cb=_log_error,
                )
            except _UNREACHABLE as exc:
                self._nc = None
                raise NatsUnavailable(
                    f"cannot connect to NATS at {self._settings.nats_url}: {exc!r}"
                ) from exc
            self._js = self._nc.jetstream(timeout=self._settings.nats_request_timeout_s)
            self._kv = None
            self._topology_ok = False
            return self._js

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def close(self) -> None:
        async with self._lock:
            if self._nc is not None and not self._nc.is_closed:
                await self._nc.close()
            self._nc = self._js = self._kv = None

    def _forget(self) -> None:
        self._topology_ok = False

    # --- streams -------------------------------------------------------------------------

    async def ensure_topology(self, limits: TopologyLimits) -> None:
        """Every stream and bucket of the contract, brought to the operator's limits (the
        only process that updates existing ones). Checked once per connection."""
        if self._topology_ok:
            return
        js = await self._context()
        try:
            await ensure_topology(js, limits, update=True)
        except QueueError as exc:
            self._forget()
            raise NatsUnavailable(f"ensuring the JetStream topology: {exc}") from exc
        self._topology_ok = True

    # --- consumers -----------------------------------------------------------------------

    async def ensure_consumer(self, stream: str, cfg: ConsumerConfig) -> Outcome:
        """Create or update the pool's durable consumer; refuse one owned by another pool."""
        js = await self._context()
        name = str(cfg.durable_name)
        owner = str((cfg.metadata or {})[CONSUMER_OWNER_KEY])
        try:
            try:
                info = await js.consumer_info(stream, name)
            except NotFoundError:
                info = None
            if info is not None:
                theirs = (info.config.metadata or {}).get(CONSUMER_OWNER_KEY)
                if theirs is not None and theirs != owner:
                    raise ConsumerConflict(
                        f"consumer {name} on {cfg.filter_subject} already belongs to ParsePool {theirs}"
                    )
                if not consumer_drift(info.config, cfg):
                    return "unchanged"
            try:
                await js.add_consumer(stream, cfg)
            except NotFoundError as exc:
                # The stream itself is gone (deleted behind our back): the retry recreates it.
                self._forget()
                raise NatsUnavailable(f"stream {stream} is missing; recreating it on retry") from exc
            except APIError as exc:
                if exc.err_code == 10100 or "overlap" in str(exc.description or "").lower():
                    raise ConsumerConflict(
                        f"filter subject {cfg.filter_subject} overlaps another consumer: {exc.description}"
                    ) from exc
                raise
            return "created" if info is None else "updated"
        except _UNREACHABLE as exc:
            self._forget()
            raise NatsUnavailable(f"ensuring consumer {name}: {exc!r}") from exc

    async def delete_pool_consumers(self, consumers: Sequence[tuple[str, str]], owner: str) -> list[str]:
        """Delete a pool's consumers, (stream, durable) each; the names deleted.

        The first is the pool's own consumer, marked with its owner: when it belongs to another
        pool nothing is deleted (the others, made by that pool's workers, carry no owner).
        Already missing (consumer or stream) is fine: deletion is what was wanted.
        """
        js = await self._context()
        deleted: list[str] = []
        try:
            stream, name = consumers[0]
            try:
                info = await js.consumer_info(stream, name)
            except NotFoundError:
                info = None
            theirs = None if info is None else (info.config.metadata or {}).get(CONSUMER_OWNER_KEY)
            if theirs is not None and theirs != owner:
                logger.info("consumer %s belongs to %s, not %s: left in place", name, theirs, owner)
                return deleted
            for stream, name in consumers:
                try:
                    await js.delete_consumer(stream, name)
                except NotFoundError:
                    continue
                deleted.append(name)
            return deleted
        except _UNREACHABLE as exc:
            raise NatsUnavailable(f"deleting the consumers of {owner}: {exc!r}") from exc

    async def consumer_pending(self, stream: str, name: str) -> tuple[int, int] | None:
        """(waiting, in flight) jobs of the pool's consumer: undelivered, and delivered but not
        yet acknowledged (KEDA scales on their sum); None when the consumer is missing."""
        info = await self._consumer_info(stream, name)
        if info is None:
            return None
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)

    async def consumer_config(self, stream: str, name: str) -> dict[str, Any] | None:
        info = await self._consumer_info(stream, name)
        return None if info is None else _plain(info.config)

    async def _consumer_info(self, stream: str, name: str) -> ConsumerInfo | None:
        js = await self._context()
        try:
            info: ConsumerInfo = await js.consumer_info(stream, name)
        except NotFoundError:
            return None
        except _UNREACHABLE as exc:
            raise NatsUnavailable(f"reading consumer {name}: {exc!r}") from exc
        return info

    # --- tenant registry -----------------------------------------------------------------

    async def _registry(self) -> KeyValue:
        js = await self._context()
        if self._kv is not None:
            return self._kv
        try:
            bucket = tenants_bucket(topology_limits(self._settings))
            self._kv = await ensure_bucket(js, bucket, update=True)
        except QueueError as exc:
            raise NatsUnavailable(f"opening the {TENANTS_KV_BUCKET} bucket: {exc!r}") from exc
        return self._kv

    async def put_tenant(self, key: str, value: bytes) -> bool:
        """Write the tenant's record; False when it already held exactly this value."""
        kv = await self._registry()
        try:
            try:
                entry = await kv.get(key)
                if entry.value == value:
                    return False
            except KeyNotFoundError:
                pass
            await kv.put(key, value)
            return True
        except _UNREACHABLE as exc:
            self._kv = None
            raise NatsUnavailable(f"writing tenant {key}: {exc!r}") from exc

    async def get_tenant(self, key: str) -> bytes | None:
        kv = await self._registry()
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        except _UNREACHABLE as exc:
            raise NatsUnavailable(f"reading tenant {key}: {exc!r}") from exc
        return entry.value

    async def delete_tenant(self, key: str) -> None:
        """Remove the tenant (a delete marker; gateways see it as gone). Missing is fine."""
        kv = await self._registry()
        try:
            await kv.delete(key)
        except KeyNotFoundError:
            return
        except _UNREACHABLE as exc:
            raise NatsUnavailable(f"deleting tenant {key}: {exc!r}") from exc
