"""The operator's Kubernetes client for its children (Deployments, ScaledObjects, Secrets,
dedicated ParsePools), on lightkube's AsyncClient.

kopf watches and patches the custom resources itself; everything else goes through here. Writes
use server-side apply with the operator's field manager and `force`, so a field the operator
manages that someone edited by hand is taken back on the next reconcile. Typed models for
Deployments and Secrets, generic resources for KEDA's ScaledObject and our ParsePool.

Throttling (429) and server errors are retried a few times, waiting what `Retry-After` says;
every failure surfaces as `KubeError`, with the message of the API's Status body.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Secret

from percolate_operator.builders import is_subset

log = logging.getLogger(__name__)

Outcome = Literal["created", "updated", "unchanged"]
T = TypeVar("T")

ScaledObject = create_namespaced_resource("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects")
ParsePool = create_namespaced_resource("percolate.dev", "v1alpha1", "ParsePool", "parsepools")
Tenant = create_global_resource("percolate.dev", "v1alpha1", "Tenant", "tenants")

# Retries inside one call: short, since kopf retries the whole handler with its own delay.
MAX_ATTEMPTS = 3
MAX_RETRY_AFTER_S = 10.0
TEMPORARY_STATUS = frozenset({409, 429, 500, 502, 503, 504})


class KubeError(Exception):
    def __init__(
        self, status: int, message: str, *, reason: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status}{f' {reason}' if reason else ''}: {message}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    @property
    def temporary(self) -> bool:
        # Conflicts, throttling, server errors and unreachable servers pass; validation and
        # authorization errors need someone to change something.
        return self.status in TEMPORARY_STATUS or self.status >= 500


@dataclass(frozen=True)
class Kind:
    """A resource type the operator manages: lightkube's class and how to build its objects."""

    # lightkube's overloads are per resource class; one table of them is typed loosely here.
    resource: Any
    typed: bool  # typed model (from_dict) vs generic (a dict)

    def load(self, body: Mapping[str, Any]) -> Any:
        return self.resource.from_dict(dict(body))


DEPLOYMENTS = Kind(Deployment, typed=True)
SECRETS = Kind(Secret, typed=True)
SCALED_OBJECTS = Kind(ScaledObject, typed=False)
PARSEPOOLS = Kind(ParsePool, typed=False)
TENANTS = Kind(Tenant, typed=False)


def secret_value(secret: Mapping[str, Any], key: str) -> str | None:
    data = secret.get("data") or {}
    if key not in data:
        return None
    return base64.b64decode(data[key]).decode()


def _retry_after(response: httpx2.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    try:
        return min(float(value), MAX_RETRY_AFTER_S) if value is not None else None
    except ValueError:
        return None


def _translate(exc: Exception, what: str) -> KubeError:
    """lightkube/httpx errors -> KubeError, with the Status body's message where there is one."""
    if isinstance(exc, ApiError):
        status = exc.status
        code = int(status.code or (exc.response.status_code if exc.response is not None else 500))
        return KubeError(
            code,
            f"{what}: {status.message or status.reason}",
            reason=str(status.reason or ""),
            retry_after=_retry_after(exc.response),
        )
    if isinstance(exc, httpx2.HTTPStatusError):
        # lightkube decodes a Status only for an exact `application/json` content type.
        response = exc.response
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            message, reason = str(body.get("message") or body.get("reason")), str(body.get("reason") or "")
        else:
            message, reason = response.text[:500], ""
        return KubeError(
            response.status_code, f"{what}: {message}", reason=reason, retry_after=_retry_after(response)
        )
    return KubeError(503, f"{what}: {exc!r}")  # unreachable, timed out, connection reset


def load_config(server: str | None) -> KubeConfig:
    """A plain URL (tests, `kubectl proxy`), else in-cluster service account, then KUBECONFIG or
    ~/.kube/config (with its auth plugins: exec, token files, client certificates)."""
    if server:
        # Not KubeConfig.from_server: it leaves out the user, which lightkube 1.0 then refuses.
        return KubeConfig.from_one(cluster=Cluster(server=server), user=User())
    try:
        return KubeConfig.from_env()
    except ConfigError as exc:
        raise KubeError(503, f"no Kubernetes configuration: {exc}") from exc


class KubeClient:
    def __init__(
        self,
        config: KubeConfig,
        *,
        field_manager: str = "percolate-operator",
        timeout_s: float = 30.0,
        max_in_flight: int = 32,
    ):
        self._field_manager = field_manager
        # Requests in flight, hence connections, are bounded: each TLS connection holds a
        # 256 KiB read buffer, and a burst of reconciles would otherwise open httpx's 100.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._closed = False
        self._client = AsyncClient(
            config=config, field_manager=field_manager, timeout=httpx2.Timeout(timeout_s), lazy=False
        )

    async def close(self) -> None:
        self._closed = True
        await self._client.close()

    def _stopping(self, what: str) -> KubeError:
        # A handler or timer kopf has not stopped yet may still call after the cleanup
        # activity closed the client: a temporary error, not httpx's RuntimeError traceback.
        return KubeError(503, f"{what}: the operator is stopping", reason="Stopping")

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        delay = 0.2
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if self._closed:
                raise self._stopping(what)
            try:
                async with self._in_flight:
                    return await call()
            except (ApiError, httpx2.HTTPError) as exc:
                error = _translate(exc, what)
            except RuntimeError:
                if self._closed:  # closed while this call was waiting or in flight
                    raise self._stopping(what) from None
                raise
            if error.status not in (429, 500, 502, 503, 504) or attempt == MAX_ATTEMPTS:
                raise error
            wait = error.retry_after if error.retry_after is not None else delay
            log.debug("%s: %s; retrying in %.1fs", what, error, wait)
            await asyncio.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

    async def _call_unless_missing(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """`_call`, with None where the object is not there (404)."""
        try:
            return await self._call(what, call)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = await self._call_unless_missing(
            f"get {kind.resource.__name__} {namespace}/{name}",
            lambda: self._client.get(kind.resource, name, namespace=namespace),
        )
        return None if obj is None else _as_dict(obj)

    async def delete(self, kind: Kind, namespace: str | None, name: str) -> bool:
        """True if the object was there to delete."""

        async def delete() -> bool:
            await self._client.delete(kind.resource, name, namespace=namespace)
            return True

        deleted = await self._call_unless_missing(
            f"delete {kind.resource.__name__} {namespace}/{name}", delete
        )
        return deleted is not None

    async def create(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        obj = kind.load(body)
        created = await self._call(
            f"create {kind.resource.__name__} {meta.get('namespace')}/{meta['name']}",
            lambda: self._client.create(obj),
        )
        return _as_dict(created)

    async def apply(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        obj = kind.load(body)
        applied = await self._call(
            f"apply {kind.resource.__name__} {meta.get('namespace')}/{meta['name']}",
            lambda: self._client.apply(obj, field_manager=self._field_manager, force=True),
        )
        return _as_dict(applied)

    async def ensure(
        self,
        kind: Kind,
        body: Mapping[str, Any],
        *,
        on_create: Mapping[str, Any] | None = None,
    ) -> tuple[Outcome, dict[str, Any]]:
        """Make the object hold at least `body`'s fields.

        `on_create` fields (e.g. initial replicas) are written only when creating, so that
        fields another controller owns afterwards are not fought over.
        """
        meta = body["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        current = await self.get(kind, namespace, name)
        if current is None:
            try:
                return "created", await self.create(kind, _merge(body, on_create or {}))
            except KubeError as exc:
                if exc.status != 409:
                    raise
                # Created concurrently (a timer and a change handler raced): compare instead.
                current = await self.get(kind, namespace, name)
                if current is None:
                    raise
        if is_subset(_without_status(body), current):
            return "unchanged", current
        return "updated", await self.apply(kind, body)


def _as_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return out


def _without_status(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "status"}


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
