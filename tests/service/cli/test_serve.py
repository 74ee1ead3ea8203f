"""`percolate-reading serve` + `submit` end to end: a private nats-server, local storage,
RocksDB job state, one process; then SIGTERM leaves nothing running."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.documents import make_pdf
from tests.servers import free_port

pytestmark = pytest.mark.integration

KEY = "pr_serve-test-key-0123456789"


def clean_env() -> dict[str, str]:
    # The child must not pick up a NATS URL or S3 endpoint from the developer's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCOLATE_READING_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def processes_mentioning(needle: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline and "nats-server" in cmdline:
            pids.append(int(entry.name))
    return pids


class Serve:
    def __init__(self, data_dir: Path, port: int, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "percolate_reading",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.output.append(line)
            self.lines.put(line)

    def wait_for_line(self, needle: str, timeout: float = 120.0) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    "serve printed no line with " + needle + ":\n" + "".join(self.output)
                ) from None
            if needle in line:
                return line

    def close(self, data_dir: Path) -> None:
        if self.proc.poll() is None:
            # SIGTERM first: serve stops its private nats-server on the way out.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in processes_mentioning(str(data_dir)):  # only if serve itself was killed
            os.kill(pid, signal.SIGKILL)
        self.reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[Serve, int, Path]]:
    data_dir = tmp_path / "state"
    port = free_port()
    env = clean_env()
    env["PERCOLATE_READING_DEV_API_KEY"] = KEY
    proc = Serve(data_dir, port, env)
    try:
        yield proc, port, data_dir
    finally:
        proc.close(data_dir)


def test_serve_submit_and_clean_shutdown(serve: tuple[Serve, int, Path], tmp_path: Path) -> None:
    proc, port, data_dir = serve
    proc.wait_for_line("serving on")
    key_line = proc.wait_for_line("API key")
    assert KEY in key_line
    assert processes_mentioning(str(data_dir)), "serve should run a private nats-server"

    doc = tmp_path / "annual-report.pdf"
    doc.write_bytes(make_pdf("Serve mode parses this sentence"))
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "percolate_reading",
            "submit",
            str(doc),
            "--url",
            f"http://127.0.0.1:{port}",
            "--api-key",
            KEY,
            "--wait",
            "--out",
            str(out),
            "--timeout",
            "300",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=400,
    )
    assert result.returncode == 0, result.stdout + result.stderr + "".join(proc.output)
    job_dir = out / "annual-report"
    files = [p for p in job_dir.rglob("*") if p.is_file()]
    assert files, result.stdout
    texts = [p.read_text(errors="replace") for p in files if p.suffix in (".md", ".json", ".jsonl", ".txt")]
    assert any("Serve mode parses this sentence" in t for t in texts)

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(120) == 0, "".join(proc.output)
    assert processes_mentioning(str(data_dir)) == []


def test_submit_refused_file_exits_1(serve: tuple[Serve, int, Path], tmp_path: Path) -> None:
    proc, port, _ = serve
    proc.wait_for_line("serving on")
    bad = tmp_path / "notes.pdf"
    bad.write_bytes(b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 8)  # no document type at all
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "percolate_reading",
            "submit",
            str(bad),
            "--url",
            f"http://127.0.0.1:{port}",
            "--api-key",
            KEY,
            "--wait",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    assert result.returncode == 1
    assert "415" in result.stdout


@pytest.mark.audio
def test_sigterm_mid_job_then_restart_finishes_it(tmp_path: Path) -> None:
    """A job in flight when serve is stopped is finished during the drain or returned to the
    queue; either way the next serve on the same data dir reports it succeeded."""
    import httpx

    from tests.harness.documents import SPEECH_WAV

    data_dir = tmp_path / "state"
    env = clean_env()
    env["PERCOLATE_READING_DEV_API_KEY"] = KEY
    headers = {"Authorization": f"Bearer {KEY}"}

    port = free_port()
    first = Serve(data_dir, port, env)
    try:
        first.wait_for_line("serving on")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as c:
            r = c.post("/v1/parse", files={"file": ("speech.wav", SPEECH_WAV.read_bytes())})
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            for _ in range(600):  # until a worker has it
                if c.get(f"/v1/jobs/{job_id}").json()["status"] != "queued":
                    break
                threading.Event().wait(0.1)
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(120) == 0, "".join(first.output)
    finally:
        first.close(data_dir)
    assert processes_mentioning(str(data_dir)) == []

    port = free_port()
    second = Serve(data_dir, port, env)
    try:
        second.wait_for_line("serving on")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as c:
            for _ in range(3000):
                job = c.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("succeeded", "failed"):
                    break
                threading.Event().wait(0.1)
            assert job["status"] == "succeeded", job
            texts = [c.get(f"/v1/jobs/{job_id}/artifacts/{p}").text.lower() for p in job["artifacts"]]
            assert any("lazy dog" in t for t in texts)
    finally:
        second.close(data_dir)


@pytest.mark.parametrize("command", ["serve", "run"])
def test_port_in_use_exits_1_with_one_line(tmp_path: Path, command: str) -> None:
    """Output redirected to a file (as under a supervisor): no hang, no traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env() | {
            "PERCOLATE_READING_HOST": "127.0.0.1",
            "PERCOLATE_READING_PORT": str(port),
            "PERCOLATE_READING_DATA_DIR": str(tmp_path / "state"),
            "PERCOLATE_READING_DEV_API_KEY": KEY,
            "PERCOLATE_READING_S3_ENABLED": "false",
            "PERCOLATE_READING_NATS_URL": "nats://127.0.0.1:1",
        }
        if command == "run":
            env["PERCOLATE_READING_GATEWAY_MODE"] = "true"
        else:
            del env["PERCOLATE_READING_NATS_URL"]
        out = tmp_path / "out.log"
        with out.open("wb") as fh:
            result = subprocess.run(
                [sys.executable, "-m", "percolate_reading", command],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=60,
            )
        text = out.read_text()
        assert result.returncode == 1, text
        assert "Traceback" not in text
        errors = [line for line in text.splitlines() if str(port) in line]
        assert len(errors) == 1, text
        assert "in use" in errors[0], text
        assert not processes_mentioning(str(tmp_path / "state"))
