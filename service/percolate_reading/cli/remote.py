"""What the commands that talk to a gateway share (`submit`, `status`, `wait`, `download`,
`list`, `cancel`): connection options, finding the key, the job table, JSON output, waiting
for jobs, and one-line errors instead of tracebacks.

The key comes from `--api-key`, else PERCOLATE_READING_API_KEY, else the development key
`serve` saved in its data dir (`--data-dir`, else PERCOLATE_READING_DATA_DIR's default)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from percolate_reading.cli.serve import DEV_KEY_FILE
from percolate_reading.client import Client, Job
from percolate_reading.config import load_settings
from percolate_reading.errors import ClientError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
JOB_ID_CHARS = 32
POLL_S = 0.5


class UsageError(Exception):
    """A problem with the command line or the environment: one line, exit 2."""


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="gateway URL (default: PERCOLATE_READING_URL or http://127.0.0.1:8001)")
    parser.add_argument(
        "--api-key", help="API key (default: PERCOLATE_READING_API_KEY, else the key `serve` saved)"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="where `serve` keeps its development key (default: its data dir)"
    )
    add_json_arg(parser)


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON on stdout (for scripts)")


def find_api_key(explicit: str | None, data_dir: Path | None) -> tuple[str, str]:
    """(key, where it came from)."""
    if explicit:
        return explicit, "--api-key"
    settings = load_settings()
    if settings.api_key is not None:
        return settings.api_key.get_secret_value(), "PERCOLATE_READING_API_KEY"
    path = (data_dir or settings.data_dir) / DEV_KEY_FILE
    try:
        key = path.read_text("utf-8").strip()
    except OSError:
        key = ""
    if key:
        return key, str(path)
    raise UsageError(
        f"no API key: pass --api-key, set PERCOLATE_READING_API_KEY, or start `percolate-reading serve` "
        f"(it saves a development key in {path})"
    )


def connect(args: argparse.Namespace) -> Client:
    key, _ = find_api_key(args.api_key, args.data_dir)
    url = args.url or load_settings().url
    return Client(url, api_key=key)


def stdout_console() -> Console:
    console = Console()
    # Piped or captured (and no COLUMNS given): do not fold error messages at 80 columns.
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(width=200)


def stderr_console() -> Console:
    return Console(stderr=True)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def job_json(job: Job) -> dict[str, Any]:
    return job.model_dump(mode="json")


def _seconds(job: Job) -> str:
    if job.started_at and job.finished_at:
        return f"{(job.finished_at - job.started_at).total_seconds():.2f}"
    return "-"


def job_table(jobs: Iterable[Job], title: str | None = None) -> Table:
    table = Table(title=title)
    # Ids are what users copy into the next command: never folded or cut.
    table.add_column("job", no_wrap=True, min_width=JOB_ID_CHARS)
    table.add_column("file", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("tries", justify="right")
    table.add_column("s", justify="right")
    table.add_column("note", overflow="fold")
    for job in jobs:
        note = f"{job.error.code}: {job.error.message}" if job.error else ""
        table.add_row(job.job_id, job.file_name, job.status.value, str(job.attempts), _seconds(job), note)
    return table


def wait_all(
    client: Client,
    job_ids: Sequence[str],
    timeout: float | None,
    on_finished: Callable[[Job], None] | None = None,
) -> tuple[dict[str, Job], list[str]]:
    """Poll until every job is finished or `timeout` passes: (last state of each job, ids
    still unfinished). Ctrl-C propagates as KeyboardInterrupt."""
    deadline = None if timeout is None else time.monotonic() + timeout
    latest: dict[str, Job] = {}
    pending = list(dict.fromkeys(job_ids))
    while pending:
        still = []
        for job_id in pending:
            job = client.job(job_id)
            latest[job_id] = job
            if job.finished:
                if on_finished is not None:
                    on_finished(job)
            else:
                still.append(job_id)
        pending = still
        if not pending or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(POLL_S)
    return latest, pending


def resume_hint(job_ids: Sequence[str], out: Path | None) -> str:
    where = f" --out {out}" if out is not None else ""
    return f"percolate-reading wait {' '.join(job_ids)}{where}"


def run_guarded(command: str, body: Callable[[], int]) -> int:
    """Run a command's body: client errors and usage errors are one line, not a traceback."""
    try:
        return body()
    except UsageError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClientError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def unique_dirs(out: Path, stems: Sequence[str]) -> list[Path]:
    """OUT/<stem>/ per item; a repeated stem gets -2, -3, ... (summary.json stays free)."""
    used: set[str] = {"summary.json"}
    dirs = []
    for raw in stems:
        stem = raw or "document"
        name, n = stem, 2
        while name.lower() in used:
            name, n = f"{stem}-{n}", n + 1
        used.add(name.lower())
        dirs.append(out / name)
    return dirs
