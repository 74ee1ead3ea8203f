"""The `percolate-operator` entrypoint as a process: liveness endpoint up, clean SIGTERM exit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.operator.cluster import serving_cluster
from tests.servers import NatsServer, free_port, wait_for_port

pytestmark = pytest.mark.integration


async def test_entrypoint_serves_liveness_and_stops_on_sigterm(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    port = free_port()
    async with serving_cluster() as (_, url):
        env = dict(
            os.environ,
            PERCOLATE_OPERATOR_K8S_SERVER=url,
            PERCOLATE_OPERATOR_NATS_URL=nats_server.url,
            PERCOLATE_OPERATOR_LIVENESS_ENDPOINT=f"http://127.0.0.1:{port}/healthz",
        )
        log_path = tmp_path / "operator.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # noqa: ASYNC220 -- starting is quick
                [sys.executable, "-m", "percolate_operator"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                wait_for_port(port, timeout=60, proc=proc)
                async with httpx.AsyncClient() as client:
                    resp = await client.get(f"http://127.0.0.1:{port}/healthz")
                assert resp.status_code == 200
                assert "nats" in resp.json()  # our probe reports the NATS connection
            finally:
                proc.send_signal(signal.SIGTERM)
                # Wait off the loop: the emulator (served by this loop) must see the operator's
                # connections close, or their transports are left for the GC to complain about.
                code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0, log_path.read_text()
