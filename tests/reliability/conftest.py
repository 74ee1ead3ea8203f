"""Fault-test harness: the worker test environment (real nats-server and SeaweedFS) plus
workers run as real `percolate-reading run` subprocesses that tests can kill, stop and resume."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from percolate_reading.contract.jobs import JobRecord, JobStatus
from tests.harness.worker_process import spawn_worker, worker_env
from tests.servers import NatsServer, SeaweedS3
from tests.service.gateway import conftest as gateway_fixtures
from tests.service.worker import test_worker
from tests.service.worker.test_worker import SECRET, Env

# The worker tests' environment fixture (real nats-server and SeaweedFS), shared rather than copied.
env = test_worker.env
# The gateway tests' per-test tenants and their tenants file.
tenants = gateway_fixtures.tenants
tenants_file = gateway_fixtures.tenants_file


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc: no psutil needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@dataclass
class WorkerProcess:
    """`python -m percolate_reading run` in worker mode, logging to a file."""

    nats: NatsServer
    s3: SeaweedS3
    data_dir: Path
    extra: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "worker.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        child_env = worker_env(
            self.nats,
            self.s3,
            self.data_dir,
            nats_ack_wait="3",
            worker_concurrency="1",
            webhook_allow_hosts="127.0.0.1",
            webhook_default_secret=SECRET,
            webhook_backoff_s="0.05",
            parse_timeout_s="120",
        )
        child_env.update(self.extra)
        with self.log_path.open("ab") as log:
            self.proc = await spawn_worker(child_env, log)

    async def wait_ready(self, wait_s: float = 90.0) -> None:
        """Until the worker logs that it is pulling (its start-up is done)."""
        async with asyncio.timeout(wait_s):
            while "worker pulling" not in self.log():
                assert self.proc is not None
                assert self.proc.returncode is None, self.log()
                await asyncio.sleep(0.1)

    async def wait_parsing(self, wait_s: float = 90.0) -> None:
        """Until a sandboxed parse runs: a child of the worker's forkserver, so a grandchild
        of the worker (a job marked running may still be downloading its file)."""
        assert self.proc is not None
        async with asyncio.timeout(wait_s):
            while not any(_children(child) for child in _children(self.proc.pid)):
                assert self.proc.returncode is None, self.log()
                await asyncio.sleep(0.02)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, wait_s: float = 60.0) -> int:
        assert self.proc is not None
        async with asyncio.timeout(wait_s):
            return await self.proc.wait()

    async def close(self) -> None:
        """Kill it if still running (also when stopped: SIGKILL works on a stopped process)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()


@dataclass
class WorkerProcesses:
    """Worker subprocesses on the tests' servers, each logging in its own folder."""

    nats: NatsServer
    s3: SeaweedS3
    root: Path
    started: list[WorkerProcess] = field(default_factory=list)

    async def start(self, **extra: str) -> WorkerProcess:
        """A new worker; `extra` are further environment variables (`PERCOLATE_READING_...`)."""
        worker = WorkerProcess(self.nats, self.s3, self.root / f"w{len(self.started)}", extra=extra)
        self.started.append(worker)
        await worker.start()
        return worker

    async def close(self) -> None:
        for worker in self.started:
            await worker.close()


@pytest.fixture
async def worker_procs(
    fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3, tmp_path: Path
) -> AsyncIterator[WorkerProcesses]:
    """Starts worker subprocesses; all are killed at the end."""
    procs = WorkerProcesses(fresh_nats_server, seaweed_s3, tmp_path / "workers")
    yield procs
    await procs.close()


class StatusWatch:
    """Every status a job passes through, polled in the background while in the `async with`
    (to prove it never regresses)."""

    def __init__(self, env: Env, job_id: str) -> None:
        self.env = env
        self.job_id = job_id
        self.seen: list[JobStatus] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StatusWatch:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _watch(self) -> None:
        while not self._stop.is_set():
            record: JobRecord | None = await self.env.jobs.get(self.job_id)
            if record is not None and (not self.seen or self.seen[-1] is not record.status):
                self.seen.append(record.status)
            await asyncio.sleep(0.02)
