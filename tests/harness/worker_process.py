"""A worker as its own process: `python -m percolate_reading run` on the tests' real servers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import IO

from percolate_reading.config import ENV_PREFIX
from tests.servers import NatsServer, SeaweedS3


def process_env(nats: NatsServer, s3: SeaweedS3, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a `percolate-reading` process on the real servers, with none of the
    caller's own `PERCOLATE_READING_*` variables; `settings` are further fields by name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    values = {
        "nats_url": nats.url,
        "s3_endpoint": s3.endpoint,
        "s3_access_key": s3.access_key,
        "s3_secret_key": s3.secret_key,
        "data_dir": str(data_dir),
        **settings,
    }
    env.update({f"{ENV_PREFIX}{name.upper()}": value for name, value in values.items()})
    return env


def worker_env(nats: NatsServer, s3: SeaweedS3, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of `python -m percolate_reading run` as a worker on the real servers;
    `settings` are further fields by name (`nats_ack_wait="3"`)."""
    defaults = {"worker_mode": "true", "metrics_port": "0", "worker_fetch_timeout_s": "0.5"}
    return process_env(nats, s3, data_dir, **(defaults | settings))


async def spawn_worker(
    env: dict[str, str], log: IO[bytes], cpus: set[int] | None = None
) -> asyncio.subprocess.Process:
    """Start the worker with `env`, its stdout and stderr going to `log`; `cpus`: the cores it
    and every process it starts may run on (as a pod pinned to them would)."""

    def pin() -> None:
        assert cpus is not None
        os.sched_setaffinity(0, cpus)

    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "percolate_reading",
        "run",
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=pin if cpus is not None else None,  # none: the faster spawn path
    )
