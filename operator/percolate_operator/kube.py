"""A small async Kubernetes REST client for the operator's children (Deployments, ScaledObjects,
Secrets, dedicated ParsePools).

kopf watches and patches the custom resources itself; it has no public client for other
objects, and the children need only get/create/apply/delete, so this stays tiny instead of
pulling in a full client library. Writes use server-side apply (`force=true`), so a field the
operator manages that someone edited by hand is taken back on the next reconcile.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp

from percolate_operator.builders import is_subset

Outcome = Literal["created", "updated", "unchanged"]
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status

    @property
    def temporary(self) -> bool:
        # Conflicts, throttling and server errors pass; 4xx validation errors do not.
        return self.status in (409, 429) or self.status >= 500


@dataclass(frozen=True)
class Res:
    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return base + (f"/{name}" if name else "")


DEPLOYMENTS = Res("apps", "v1", "deployments")
SCALED_OBJECTS = Res("keda.sh", "v1alpha1", "scaledobjects")
SECRETS = Res("", "v1", "secrets")
PARSEPOOLS = Res("percolate.dev", "v1alpha1", "parsepools")


def secret_value(secret: Mapping[str, Any], key: str) -> str | None:
    data = secret.get("data") or {}
    if key not in data:
        return None
    return base64.b64decode(data[key]).decode()


class KubeClient:
    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        token_path: Path | None = None,
        ca_path: str | None = None,
        ca_data: bytes | None = None,
        insecure: bool = False,
        certificate_path: str | None = None,
        private_key_path: str | None = None,
        field_manager: str = "percolate-operator",
        timeout_s: float = 30.0,
    ) -> None:
        self._server = server.rstrip("/")
        self._token = token
        # Projected service-account tokens rotate: re-read the file rather than keep a copy.
        self._token_path = token_path
        self._field_manager = field_manager
        ssl_ctx: ssl.SSLContext | bool = True
        if insecure:
            ssl_ctx = False
        elif ca_path or ca_data or certificate_path:
            ssl_ctx = ssl.create_default_context(cafile=ca_path, cadata=ca_data.decode() if ca_data else None)
            if certificate_path:
                ssl_ctx.load_cert_chain(certificate_path, private_key_path)
        self._ssl = ssl_ctx
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        token = self._token
        if self._token_path is not None and self._token_path.exists():
            token = self._token_path.read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = self._headers()
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        try:
            async with self._session.request(
                method, self._server + path, data=data, headers=headers, params=params, ssl=self._ssl
            ) as resp:
                text = await resp.text()
                if resp.status == 404:
                    return None
                if resp.status >= 400:
                    try:
                        message = str(json.loads(text).get("message", text))
                    except ValueError:
                        message = text
                    raise KubeError(resp.status, f"{method} {path}: {message}")
                parsed: dict[str, Any] = json.loads(text) if text else {}
                return parsed
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(503, f"{method} {path}: {exc!r}") from exc

    async def get(self, res: Res, namespace: str | None, name: str) -> dict[str, Any] | None:
        return await self._request("GET", res.path(namespace, name))

    async def delete(self, res: Res, namespace: str | None, name: str) -> bool:
        return await self._request("DELETE", res.path(namespace, name)) is not None

    async def create(self, res: Res, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        created = await self._request(
            "POST", res.path(namespace), body, params={"fieldManager": self._field_manager}
        )
        if created is None:
            raise KubeError(404, f"POST {res.path(namespace)}: resource type not found")
        return created

    async def apply(
        self, res: Res, namespace: str | None, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        applied = await self._request(
            "PATCH",
            res.path(namespace, name),
            body,
            content_type="application/apply-patch+yaml",  # JSON is valid YAML
            params={"fieldManager": self._field_manager, "force": "true"},
        )
        if applied is None:
            raise KubeError(404, f"PATCH {res.path(namespace, name)}: object not found")
        return applied

    async def ensure(
        self,
        res: Res,
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
        current = await self.get(res, namespace, name)
        if current is None:
            payload = _merge(body, on_create or {})
            try:
                return "created", await self.create(res, namespace, payload)
            except KubeError as exc:
                if exc.status != 409:
                    raise
                # Created concurrently (a timer and a change handler raced): compare instead.
                current = await self.get(res, namespace, name)
                if current is None:
                    raise
        if is_subset(_without_status(body), current):
            return "unchanged", current
        return "updated", await self.apply(res, namespace, name, body)


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
