"""`percolate-reading submit FILE...`: upload to a gateway, wait for the jobs, download artifacts.

Uploads stream from disk (httpx reads the file in chunks). With `--wait` it polls every job
until it is finished, with a progress bar, and with `--out DIR` downloads each job's
artifacts into `DIR/<file stem>/`. Exit status 1 if any upload was refused or any job failed.
The gateway URL and key come from `--url`/`--api-key` or PERCOLATE_READING_URL /
PERCOLATE_READING_API_KEY.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from percolate_reading.config import load_settings

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
MAX_UPLOAD_TRIES = 5
POLL_INTERVAL_S = 0.5


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="documents to parse")
    parser.add_argument("--url", help="gateway URL (default: PERCOLATE_READING_URL or http://127.0.0.1:8001)")
    parser.add_argument("--api-key", help="API key (default: PERCOLATE_READING_API_KEY)")
    parser.add_argument("--wait", action="store_true", help="wait until every job has finished")
    parser.add_argument("--out", type=Path, help="download artifacts into OUT/<stem>/ (implies --wait)")
    parser.add_argument("--callback-url", help="webhook URL notified when each job finishes")
    parser.add_argument("--tier", choices=["small", "large", "gpu"], help="force a worker tier")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="give up waiting after this many seconds"
    )


@dataclass
class Submission:
    path: Path
    job_id: str | None = None
    status: str = "not sent"
    error: str = ""
    artifacts: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    downloaded: int = 0


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        err = body.get("error", {})
        return f"{response.status_code} {err.get('code', '')}: {err.get('message', '')}".strip()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"


def upload(client: httpx.Client, sub: Submission, form: dict[str, str]) -> None:
    for attempt in range(1, MAX_UPLOAD_TRIES + 1):
        try:
            with sub.path.open("rb") as fh:
                response = client.post("/v1/parse", files={"file": (sub.path.name, fh)}, data=form)
        except httpx.TransportError as exc:
            sub.status, sub.error = "refused", f"cannot reach the gateway: {exc}"
            return
        if response.status_code == 202:
            sub.job_id = response.json()["job_id"]
            sub.status = "queued"
            return
        if response.status_code in (429, 503) and attempt < MAX_UPLOAD_TRIES:
            time.sleep(min(float(response.headers.get("Retry-After", "2") or 2), 30.0))
            continue
        sub.status, sub.error = "refused", error_message(response)
        return


def safe_artifact_path(out_dir: Path, rel: str) -> Path | None:
    """Where an artifact goes, or None if its name would leave `out_dir`."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        return None
    return out_dir.joinpath(*parts)


def download(client: httpx.Client, sub: Submission) -> None:
    assert sub.job_id is not None
    assert sub.out_dir is not None
    sub.out_dir.mkdir(parents=True, exist_ok=True)
    for rel in sub.artifacts:
        dest = safe_artifact_path(sub.out_dir, rel)
        if dest is None:
            sub.error = f"skipped artifact with an unsafe name {rel!r}"
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        with client.stream("GET", f"/v1/jobs/{sub.job_id}/artifacts/{rel}") as response:
            if response.status_code != 200:
                response.read()
                sub.error = f"download of {rel} failed: {error_message(response)}"
                continue
            tmp = dest.with_name(dest.name + ".partial")
            with tmp.open("wb") as fh:
                for chunk in response.iter_bytes(1 << 16):
                    fh.write(chunk)
            tmp.replace(dest)
        sub.downloaded += 1


def out_dirs(subs: list[Submission], out: Path) -> None:
    """DIR/<stem>/ per file; a repeated stem gets -2, -3, ..."""
    used: dict[str, int] = {}
    for sub in subs:
        stem = sub.path.stem or "document"
        used[stem] = used.get(stem, 0) + 1
        sub.out_dir = out / (stem if used[stem] == 1 else f"{stem}-{used[stem]}")


def wait_for(client: httpx.Client, subs: list[Submission], timeout: float, console: Console) -> None:
    pending = [s for s in subs if s.job_id is not None]
    deadline = time.monotonic() + timeout
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("parsing", total=len(pending))
        while pending and time.monotonic() < deadline:
            still: list[Submission] = []
            for sub in pending:
                try:
                    response = client.get(f"/v1/jobs/{sub.job_id}")
                except httpx.TransportError:
                    still.append(sub)  # the gateway may be restarting; keep polling
                    continue
                if response.status_code != 200:
                    if response.status_code in (429, 502, 503, 504):
                        still.append(sub)
                    else:
                        sub.status, sub.error = "unknown", error_message(response)
                        progress.advance(task)
                    continue
                record: dict[str, Any] = response.json()
                sub.status = str(record["status"])
                if sub.status in TERMINAL:
                    sub.artifacts = list(record.get("artifacts") or [])
                    err = record.get("error") or {}
                    if err:
                        sub.error = f"{err.get('code')}: {err.get('message')}"
                    progress.advance(task)
                else:
                    still.append(sub)
            pending = still
            progress.update(task, description=f"parsing ({len(pending)} left)")
            if pending:
                time.sleep(POLL_INTERVAL_S)
    for sub in pending:
        sub.error = f"still {sub.status} after {timeout:.0f}s"


def summary(subs: list[Submission], console: Console) -> None:
    table = Table(title="percolate-reading submit")
    for col in ("file", "job", "status", "artifacts", "note"):
        table.add_column(col)
    for sub in subs:
        where = (
            f"{sub.downloaded} in {sub.out_dir}"
            if sub.out_dir and sub.downloaded
            else str(len(sub.artifacts))
        )
        table.add_row(sub.path.name, sub.job_id or "-", sub.status, where, sub.error)
    console.print(table)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    url = args.url or settings.url
    key = args.api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
    console = Console(stderr=False)
    if not key:
        print("submit: no API key; pass --api-key or set PERCOLATE_READING_API_KEY", file=sys.stderr)
        return 2
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        print(f"submit: not a file: {', '.join(missing)}", file=sys.stderr)
        return 2
    form: dict[str, str] = {}
    if args.callback_url:
        form["callback_url"] = args.callback_url
    if args.tier:
        form["tier"] = args.tier
    subs = [Submission(path) for path in args.files]
    wait = args.wait or args.out is not None
    if args.out is not None:
        out_dirs(subs, args.out)

    timeout = httpx.Timeout(60.0, connect=10.0)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout) as client:
        for sub in subs:
            upload(client, sub, form)
            console.print(f"{sub.path.name}: " + (f"queued as {sub.job_id}" if sub.job_id else sub.error))
        if wait:
            wait_for(client, subs, args.timeout, console)
            if args.out is not None:
                for sub in subs:
                    if sub.status == "succeeded":
                        download(client, sub)
    summary(subs, console)
    ok_states = {"succeeded"} if wait else {"queued"}
    return 0 if all(s.status in ok_states and not s.error for s in subs) else 1
