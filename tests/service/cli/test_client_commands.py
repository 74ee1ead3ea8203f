"""The client commands (`submit`, `status`, `wait`, `download`, `list`, `cancel`) as a user
runs them: real subprocesses against a live `serve`, with the key `serve` saved."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.documents import SPEECH_WAV, make_pdf
from tests.service.cli.test_serve import clean_env
from tests.service.live_serve import LiveServe, live_serve

pytestmark = pytest.mark.integration
_ = live_serve

SAMPLES = Path(__file__).resolve().parents[3] / "service" / "percolate_reading" / "samples"


def cli(serve: LiveServe, *args: str | Path, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    if columns is not None:
        env["COLUMNS"] = str(columns)
    # No --api-key: the commands find the key serve saved in its data dir.
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "percolate_reading",
            *map(str, args),
            "--url",
            serve.url,
            "--data-dir",
            serve.data_dir,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
        check=False,
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def test_submit_waits_downloads_and_writes_a_summary(live_serve: LiveServe, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = cli(
        live_serve,
        "submit",
        SAMPLES / "sample-report.pdf",
        SAMPLES / "scanned-note.png",
        "--no-ocr",
        "--language",
        "en",
        "--option",
        "chunk_strategy=page",
        "--out",
        out,
        columns=80,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [Path(s["file"]).name for s in summary] == ["sample-report.pdf", "scanned-note.png"]
    assert all(s["status"] == "succeeded" for s in summary)
    assert (out / "sample-report" / "structured.md").read_text().strip()
    assert summary[0]["output"] == str(out / "sample-report")
    note = summary[1]
    assert any("OCR is disabled" in w for w in note["warnings"]), note
    # At 80 columns: every job id whole on one line, and the warning in the table.
    lines = proc.stdout.splitlines()
    for s in summary:
        assert any(s["job_id"] in line for line in lines), proc.stdout
    assert any("scanned-note.png: warning: OCR is disabled" in line for line in lines), proc.stdout
    assert max(len(line) for line in lines) <= 80


def test_submit_options_take_effect(live_serve: LiveServe, tmp_path: Path) -> None:
    """First-class flags reach the worker: only the asked outputs, only the asked pages, the
    asked chunking."""
    doc = tmp_path / "pages.pdf"
    doc.write_bytes(make_pdf("Quarterly figures for the board", pages=4))
    out = tmp_path / "o"
    proc = cli(
        live_serve,
        "submit",
        doc,
        "--outputs",
        "markdown,text,chunks",
        "--pages",
        "2-3",
        "--chunk-strategy",
        "page",
        "--out",
        out,
        "--json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sub,) = as_json(proc)
    assert sorted(sub["artifacts"]) == [
        "chunks.jsonl",
        "chunks.langchain.jsonl",
        "metadata.json",
        "plain.txt",
        "structured.md",
    ]
    meta = json.loads((out / "pages" / "metadata.json").read_text())
    assert meta["outputs"] == ["chunks", "markdown", "text"]
    assert meta["chunk_options"]["strategy"] == "page"
    markdown = (out / "pages" / "structured.md").read_text()
    assert "<!-- page 2 -->" in markdown
    assert "<!-- page 3 -->" in markdown
    assert "<!-- page 1 -->" not in markdown
    assert "<!-- page 4 -->" not in markdown
    refused = cli(live_serve, "submit", doc, "--pages", "3-1")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "submit: --pages: the range must start at 1 or later and not end before it starts"
    ]


def test_job_commands_with_json(live_serve: LiveServe, tmp_path: Path) -> None:
    doc = tmp_path / "minutes.pdf"
    doc.write_bytes(make_pdf("Minutes of the meeting"))
    submitted = as_json(cli(live_serve, "submit", doc, "--json"))
    assert submitted[0]["status"] in ("queued", "running", "succeeded")
    job_id = submitted[0]["job_id"]
    assert len(job_id) == 32

    waited = cli(live_serve, "wait", job_id, "--json", "--out", tmp_path / "w")
    assert waited.returncode == 0, waited.stderr
    assert as_json(waited)[0]["status"] == "succeeded"
    assert (tmp_path / "w" / "minutes" / "structured.md").exists()

    status = as_json(cli(live_serve, "status", job_id, "--json"))
    assert status[0]["job_id"] == job_id
    assert status[0]["artifacts"]

    listed = as_json(cli(live_serve, "list", "--json", "--limit", "3", "--status", "succeeded"))
    assert 1 <= len(listed) <= 3
    assert job_id in {j["job_id"] for j in listed}
    everything = as_json(cli(live_serve, "list", "--json", "--all"))
    assert job_id in {j["job_id"] for j in everything}

    dl = cli(live_serve, "download", job_id, "--out", tmp_path / "d", "--flat", "--json")
    assert dl.returncode == 0, dl.stderr
    files = as_json(dl)[0]["files"]
    assert str(tmp_path / "d" / "structured.md") in files

    cancelled = cli(live_serve, "cancel", job_id, "--json")
    assert cancelled.returncode == 1
    assert as_json(cancelled) == [
        {
            "job_id": job_id,
            "cancelled": False,
            "error": "not_cancellable",
            "message": f"job {job_id!r} is succeeded; only queued jobs can be cancelled",
        }
    ]
    text = cli(live_serve, "status", job_id, columns=80)
    assert job_id in text.stdout


def test_errors_are_one_line(live_serve: LiveServe, tmp_path: Path) -> None:
    missing = cli(live_serve, "status", "0" * 32)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [f"status: 404 job_not_found: no job '{'0' * 32}'"]
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    refused = cli(live_serve, "submit", SAMPLES / "sample-report.pdf", "--out", not_a_folder)
    assert refused.returncode == 2
    assert "is a file, not a folder" in refused.stderr
    assert "Traceback" not in refused.stderr
    env = clean_env()
    no_key = subprocess.run(
        [sys.executable, "-m", "percolate_reading", "list", "--url", live_serve.url, "--data-dir", tmp_path],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert no_key.returncode == 2
    assert len(no_key.stderr.strip().splitlines()) == 1
    assert "percolate-reading serve" in no_key.stderr


def test_ctrl_c_while_waiting_leaves_the_jobs_running(live_serve: LiveServe, tmp_path: Path) -> None:
    env = clean_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "percolate_reading",
            "submit",
            str(SPEECH_WAV),
            "--wait",
            "--url",
            live_serve.url,
            "--data-dir",
            str(live_serve.data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert "queued as" in first, first
    job_id = first.rsplit(" ", 1)[1].strip()
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert f"percolate-reading wait {job_id}" in lines[0]
    # The job was not cancelled: it still finishes.
    waited = cli(live_serve, "wait", job_id, "--json", "--timeout", "300")
    assert as_json(waited)[0]["status"] == "succeeded"
