"""What the reconcile steps share: settings and the clients (Kubernetes, NATS, S3)."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import kopf

from percolate_operator.clients.jetstream import JetStreamAdmin
from percolate_operator.clients.kube import KubeClient, KubeError, load_config
from percolate_operator.clients.storage import BucketAdmin
from percolate_operator.settings import OperatorSettings


class Runtime:
    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.js = JetStreamAdmin(settings)
        self.buckets = BucketAdmin(settings)
        self._kube: KubeClient | None = None

    @property
    def kube(self) -> KubeClient:
        if self._kube is None:
            raise kopf.TemporaryError("the Kubernetes client is not open yet", delay=1)
        return self._kube

    def open_kube(self) -> None:
        try:
            config = load_config(self.settings.k8s_server)
        except KubeError as exc:
            # Permanent, like the login: without a configuration nothing can ever work, so the
            # process exits non-zero (Kubernetes shows the crash) instead of retrying unseen.
            raise kopf.PermanentError(f"no API server: {exc}") from exc
        self._kube = KubeClient(
            config,
            field_manager=self.settings.field_manager,
            max_in_flight=self.settings.kube_max_connections,
        )

    async def close(self) -> None:
        await self.buckets.close()
        if self._kube is not None:
            await self._kube.close()
            self._kube = None
        await self.js.close()


def connection_info(settings: OperatorSettings, logger: logging.Logger | Any) -> kopf.ConnectionInfo:
    """kopf's own connection (watches, patches of the custom resources): the same order as the
    client's, a plain URL, then the in-cluster service account, then a kubeconfig."""
    if settings.k8s_server:
        return kopf.ConnectionInfo(server=settings.k8s_server)
    kopf_settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=kopf_settings, logger=logger)
    if info is None:
        try:
            info = kopf.login_with_kubeconfig(settings=kopf_settings, logger=logger)
        except (OSError, ValueError) as exc:  # KUBECONFIG names a missing or unreadable file
            raise kopf.PermanentError(f"no API server: kubeconfig unusable: {exc}") from exc
    if info is None:
        # Permanent: kopf would otherwise retry every 60 s forever; the process exits non-zero
        # instead, so Kubernetes shows the crash and restarts it with backoff.
        raise kopf.PermanentError(
            "no API server: set PERCOLATE_OPERATOR_K8S_SERVER, run in-cluster or provide a kubeconfig"
        )
    return info


def pooled_session(info: kopf.ConnectionInfo, max_connections: int) -> kopf.AiohttpSession:
    """kopf's connection as an aiohttp session with a bounded pool.

    kopf's own session has no connection limit: a burst of reconciles (hundreds of objects
    created at once) opens one TLS connection per object in flight, and each holds asyncio's
    256 KiB TLS read buffer; the freed buffers fragment the heap, so RSS stays at the peak.
    Requests beyond the limit wait for a free connection (the API server would queue them
    anyway). kopf closes the session when it drops these credentials (re-login, exit).
    """
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        aiohttp_session=session,
    )
