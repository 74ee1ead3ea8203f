"""A Kubernetes API for the operator tests: kmock's KubernetesEmulator plus the bits of the
real API server the operator relies on (kmock stores objects but assigns none of these):

- metadata.uid, creationTimestamp, resourceVersion on every write;
- metadata.generation: 1 at creation, +1 when a write changes `spec`;
- generateName (kopf's Events use it);
- a Secret's stringData turned into base64 data, as the API server does.

No controllers run: Deployments get no status, nothing is garbage-collected.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import datetime
import itertools
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import attrs
import kmock
import kopf
from kmock._internal.dicts import merge_patch_dict
from kmock._internal.k8s import KubernetesObjectNotFoundError

from percolate_operator.handlers import Runtime, register
from percolate_operator.settings import OperatorSettings

PARSEPOOLS = "percolate.dev/v1alpha1/parsepools"
TENANTS = "percolate.dev/v1alpha1/tenants"
DEPLOYMENTS = "apps/v1/deployments"
SCALED_OBJECTS = "keda.sh/v1alpha1/scaledobjects"
SECRETS = "v1/secrets"
EVENTS = "v1/events"
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}


# kmock keeps every request for assertions and routes each new one by scanning that whole
# history (`request in view`), so serving N requests costs O(N^2): minutes for the benchmark.
# The history its router sees here is just the request being served (per task), and finished
# requests are dropped. Routing itself is unchanged.
_CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar("percolate_kmock_request", default=None)


class _InFlight(list[Any]):
    def __iter__(self) -> Iterator[Any]:
        current = _CURRENT.get()
        return iter(() if current is None else (current,))


@attrs.define(kw_only=True)
class Cluster(kmock.KubernetesEmulator):
    _versions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._requests = _InFlight()
        info = kmock.ResourceInfo
        self.resources[PARSEPOOLS] = info(
            kind="ParsePool", singular="parsepool", namespaced=True, subresources={"status"}, verbs=VERBS,
            shortnames={"pp"},
        )  # fmt: skip
        self.resources[TENANTS] = info(
            kind="Tenant", singular="tenant", namespaced=False, subresources={"status"}, verbs=VERBS,
            shortnames={"tn"},
        )  # fmt: skip
        self.resources[DEPLOYMENTS] = info(kind="Deployment", namespaced=True, verbs=VERBS)
        self.resources[SCALED_OBJECTS] = info(kind="ScaledObject", namespaced=True, verbs=VERBS)
        self.resources[SECRETS] = info(kind="Secret", namespaced=True, verbs=VERBS)
        self.resources[EVENTS] = info(kind="Event", namespaced=True, verbs=VERBS)
        # kopf waits for namespaces to be discoverable before it starts any watch.
        self.resources["v1/namespaces"] = info(kind="Namespace", namespaced=False, verbs=VERBS)
        self.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = info(
            kind="CustomResourceDefinition", namespaced=False, verbs=VERBS
        )

    async def _handle(self, request: kmock.Request) -> Any:
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if request.action == kmock.action.CREATE:
                self._on_create(request, data, meta)
            elif request.action == kmock.action.UPDATE:
                self._on_update(request, data, meta)
        _CURRENT.set(request)
        try:
            return await super()._handle(request)
        finally:
            self._forget(request)

    def _forget(self, request: kmock.Request) -> None:
        """Drop a finished request from kmock's history (these tests assert on objects)."""
        for i in range(len(self._requests) - 1, -1, -1):
            if self._requests[i] is request:
                del self._requests[i]
                break
        for payload in self._payloads:
            payload._requests.clear()

    def _on_create(self, request: kmock.Request, data: dict[str, Any], meta: dict[str, Any]) -> None:
        if "name" not in meta and "generateName" in meta:
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if request.namespace and "namespace" not in meta:
            meta["namespace"] = request.namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["generation"] = 1
        meta["resourceVersion"] = str(next(self._versions))
        if request.resource is not None and request.resource.plural == "secrets" and "stringData" in data:
            string_data = data.pop("stringData")
            encoded = {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}
            data["data"] = {**(data.get("data") or {}), **encoded}

    def _on_update(self, request: kmock.Request, data: dict[str, Any], meta: dict[str, Any]) -> None:
        meta["resourceVersion"] = str(next(self._versions))
        key = (request.resource, request.namespace, request.name)
        if request.subresource is None and "spec" in data and key in self.objects:
            current = self.objects[key]
            if not current.deleted:
                old_spec = dict(current.raw.get("spec") or {})
                new_spec = merge_patch_dict(old_spec, data["spec"])
                if new_spec != old_spec:
                    meta["generation"] = int(current.raw.get("metadata", {}).get("generation", 1)) + 1

    # kmock finds the object of a request by scanning every stored object; with thousands of
    # objects (the benchmark) that dominates. Same answers, found by key.
    def _find(self, request: kmock.Request) -> Any:
        data = request.data if isinstance(request.data, dict) else {}
        meta = data.get("metadata") or {}
        key = (request.resource, request.namespace or meta.get("namespace"), request.name or meta.get("name"))
        if key not in self.objects:
            return None
        return self.objects[key]

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        obj = self._find(request)
        if obj is None or obj.deleted:
            raise KubernetesObjectNotFoundError()
        return obj.raw

    async def _serve_create(self, request: kmock.Request) -> Any:
        return self._find(request).last.raw

    async def _serve_update(self, request: kmock.Request) -> Any:
        return self._find(request).last.raw

    async def _serve_delete(self, request: kmock.Request) -> Any:
        return self._find(request).last.raw

    def read(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (kmock.resource(resource), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        raw: dict[str, Any] = self.objects[key].raw
        return raw


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.asynccontextmanager
async def serving_cluster() -> AsyncIterator[tuple[Cluster, str]]:
    async with Cluster() as cluster, kmock.Server(cluster) as server:
        yield cluster, str(server.url).rstrip("/")


@contextlib.asynccontextmanager
async def running_operator(settings: OperatorSettings) -> AsyncIterator[Runtime]:
    """kopf with the operator's handlers, in a thread with its own event loop.

    Not in the test's loop: on stop, kopf cancels every task created after it started, which
    would include the test's own. The emulator keeps serving from the test's loop meanwhile.
    """
    registry = kopf.OperatorRegistry()
    runtime = register(registry, settings)
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry, clusterwide=True, standalone=True, stop_flag=stop, ready_flag=ready
                )
            )
        except asyncio.CancelledError:
            pass  # kopf's normal way of ending on the stop flag
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="kopf-operator", daemon=True)
    thread.start()
    try:
        assert await asyncio.to_thread(ready.wait, 60), "kopf did not start"
        yield runtime
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 60)
    assert not thread.is_alive(), "kopf did not stop"
    if errors:
        raise errors[0]


class Api:
    """A client for the test itself: what `kubectl apply/patch/delete` would send."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base = base_url
        self.session = session

    @staticmethod
    def path(resource: str, namespace: str | None, name: str | None = None) -> str:
        group_version, plural = resource.rsplit("/", 1)
        prefix = f"/api/{group_version}" if group_version == "v1" else f"/apis/{group_version}"
        ns = f"/namespaces/{namespace}" if namespace else ""
        return f"{prefix}{ns}/{plural}" + (f"/{name}" if name else "")

    async def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.base + self.path(resource, body["metadata"].get("namespace"))
        async with self.session.post(url, json=body) as resp:
            assert resp.status < 400, await resp.text()
            out: dict[str, Any] = await resp.json()
            return out

    async def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of the kind (from the API server's watch cache: `resourceVersion=0`)."""
        url = self.base + self.path(resource, namespace)
        async with self.session.get(url, params={"resourceVersion": "0"}) as resp:
            assert resp.status < 400, await resp.text()
            items: list[dict[str, Any]] = (await resp.json())["items"]
            return items

    async def patch(self, resource: str, namespace: str | None, name: str, body: dict[str, Any]) -> None:
        url = self.base + self.path(resource, namespace, name)
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.session.patch(url, json=body, headers=headers) as resp:
            assert resp.status < 400, await resp.text()

    async def delete(self, resource: str, namespace: str | None, name: str) -> None:
        async with self.session.delete(self.base + self.path(resource, namespace, name)) as resp:
            assert resp.status < 400, await resp.text()


async def eventually(check: Callable[[], Awaitable[Any] | Any], limit_s: float = 60.0) -> Any:
    """Poll until `check` returns something truthy (a guard against hangs, not a speed check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    last: Any = None
    while True:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        last = result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {limit_s}s (last: {last!r})")
        await asyncio.sleep(0.1)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def is_ready(obj: dict[str, Any] | None) -> bool:
    cond = condition(obj, "Ready")
    return cond is not None and cond["status"] == "True"
