"""`percolate-reading submit FILE...`: upload to a gateway, wait for the jobs, download artifacts.

Built on `percolate_reading.client`: uploads stream from disk and are retried on 503/429
after Retry-After. Every option of POST /v1/parse has a flag (`--pages`, `--outputs`, `--ocr`,
`--password`, `--tier`, ...), checked here by the gateway's own validator before anything is
sent; `--option NAME=VALUE` passes any other form field (one a newer gateway takes).
With `--wait` it follows every job to its end; with `--out DIR` it downloads each job's
artifacts into `DIR/<file stem>/` and writes `DIR/summary.json`, as `parse` does.
Ctrl-C while waiting leaves the jobs running and prints how to resume.
Exit status 1 if any upload was refused or any job failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from percolate_reading.cli.remote import (
    EXIT_INTERRUPTED,
    JOB_ID_CHARS,
    UsageError,
    add_connection_args,
    connect,
    print_json,
    resume_hint,
    run_guarded,
    stderr_console,
    stdout_console,
    unique_dirs,
    wait_all,
)
from percolate_reading.cli.request_options import add_request_args, flag_message, request_fields
from percolate_reading.client import Client, Job, Tier
from percolate_reading.errors import ApiResponseError, ClientError
from percolate_reading.parse.request import REQUEST_FIELDS, OptionError, RequestOptions

SUMMARY_FILE = "summary.json"
METADATA_JSON = "metadata.json"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="documents to parse")
    parser.add_argument("--wait", action="store_true", help="wait until every job has finished")
    parser.add_argument("--out", type=Path, help="download artifacts into OUT/<stem>/ (implies --wait)")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="give up waiting after this many seconds"
    )
    options = parser.add_argument_group("parse options (the fields of POST /v1/parse)")
    options.add_argument("--password", help="password of encrypted PDFs and workbooks")
    options.add_argument("--language", help="language hint for OCR and speech (e.g. en, de)")
    options.add_argument(
        "--no-ocr", action="store_true", help="do not OCR images or scanned pages (same as --ocr off)"
    )
    options.add_argument("--tier", choices=[t.value for t in Tier], help="force a worker tier")
    options.add_argument("--callback-url", help="webhook URL notified when each job finishes")
    # The per-request options, described once in parse/request.py (as for `parse`).
    add_request_args(options)
    options.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other form field of POST /v1/parse (repeatable)",
    )
    add_connection_args(parser)


@dataclass
class Submission:
    path: Path
    job_id: str | None = None
    status: str = "not sent"
    error: str = ""
    artifacts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    downloaded: int = 0
    seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "job_id": self.job_id,
            "status": self.status,
            "output": str(self.out_dir) if self.out_dir is not None and self.downloaded else None,
            "artifacts": self.artifacts,
            "seconds": self.seconds,
            "warnings": self.warnings,
            "error": self.error or None,
        }


def form_options(args: argparse.Namespace) -> dict[str, Any]:
    """The form fields the flags ask for; UsageError for a value the gateway would refuse
    (checked by the same validator, so nothing is uploaded just to be refused)."""
    options: dict[str, Any] = {
        "password": args.password,
        "language": args.language,
        "tier": args.tier,
        "callback_url": args.callback_url,
    }
    if args.no_ocr:
        options["ocr_enabled"] = False  # its own field: --ocr MODE may come with it
    options.update(request_fields(args))
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--option wants NAME=VALUE, not {item!r}")
        options[name.strip()] = value
    chosen = {k: v for k, v in options.items() if v is not None}
    try:
        RequestOptions.from_fields({k: v for k, v in chosen.items() if k in REQUEST_FIELDS})
    except OptionError as exc:
        raise UsageError(flag_message(str(exc))) from None
    return chosen


def out_dirs(subs: list[Submission], out: Path) -> None:
    """OUT/<stem>/ per file; a repeated stem gets -2, -3, ..."""
    for sub, where in zip(subs, unique_dirs(out, [s.path.stem for s in subs]), strict=True):
        sub.out_dir = where


def record(sub: Submission, job: Job) -> None:
    sub.status = job.status.value
    sub.artifacts = list(job.artifacts)
    if job.error is not None:
        sub.error = f"{job.error.code}: {job.error.message}"
    if job.started_at and job.finished_at:
        sub.seconds = round((job.finished_at - job.started_at).total_seconds(), 3)


def collect(client: Client, sub: Submission, job: Job) -> None:
    """A finished job's outcome: status, its metadata's warnings, its artifacts downloaded."""
    record(sub, job)
    if not job.succeeded:
        return
    if METADATA_JSON in job.artifacts:
        try:
            meta = json.loads(client.artifact(job, METADATA_JSON))
            sub.warnings = [str(w) for w in meta.get("warnings") or []]
        except (ClientError, ValueError):
            pass  # warnings are a courtesy; the job itself succeeded
    if sub.out_dir is not None:
        try:
            sub.downloaded = len(client.download(job, sub.out_dir))
        except (ClientError, OSError) as exc:
            sub.error = f"download failed: {exc}"


def summary_table(subs: list[Submission], out: Path | None) -> Table:
    """One row per file; warnings and errors under the table (its caption), where they have
    the full width: at 80 columns a note column would be a few characters wide."""
    notes = []
    for sub in subs:
        if sub.error:
            notes.append(f"[red]{escape(sub.path.name)}: {escape(sub.error)}[/red]")
        notes.extend(f"[yellow]{escape(sub.path.name)}: warning:[/yellow] {escape(w)}" for w in sub.warnings)
    title = "percolate-reading submit" + (f": artifacts in {escape(str(out))}/" if out is not None else "")
    table = Table(title=title, caption="\n".join(notes) or None, caption_justify="left")
    table.add_column("file", overflow="fold")
    # The id is what `wait`/`status` need: never cut, whatever the width.
    table.add_column("job", no_wrap=True, min_width=JOB_ID_CHARS)
    table.add_column("status", no_wrap=True)
    table.add_column("files", justify="right", no_wrap=True)
    for sub in subs:
        files = str(sub.downloaded if sub.out_dir and sub.downloaded else len(sub.artifacts))
        status = sub.status + ("*" if sub.warnings else "")
        table.add_row(escape(sub.path.name), sub.job_id or "-", status, files)
    return table


def write_summary(out: Path, subs: list[Submission]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps([s.as_json() for s in subs], indent=2, ensure_ascii=False) + "\n"
    (out / SUMMARY_FILE).write_text(text, "utf-8")


def upload_all(client: Client, subs: list[Submission], options: dict[str, Any], err: Console) -> None:
    for sub in subs:
        try:
            job = client.parse(sub.path, **options)
        except ApiResponseError as exc:
            sub.status, sub.error = "refused", str(exc)
        except ClientError as exc:
            sub.status, sub.error = "refused", exc.message
        else:
            sub.job_id = job.job_id
            record(sub, job)
        line = f"queued as {sub.job_id}" if sub.job_id else sub.error
        err.print(f"{sub.path.name}: {line}", highlight=False, soft_wrap=True)


def follow(client: Client, subs: list[Submission], timeout: float, err: Console) -> None:
    by_id = {s.job_id: s for s in subs if s.job_id is not None}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("parsing", total=len(by_id))

        def finished(job: Job) -> None:
            collect(client, by_id[job.job_id], job)
            progress.advance(task)

        latest, pending = wait_all(client, list(by_id), timeout, on_finished=finished)
    for job_id in pending:
        sub = by_id[job_id]
        record(sub, latest[job_id])
        sub.error = f"still {sub.status} after {timeout:.0f}s"


def check_paths(args: argparse.Namespace) -> None:
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        raise UsageError(f"not a file: {', '.join(missing)}")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a folder")


def interrupted(subs: list[Submission], out: Path | None) -> int:
    """Ctrl-C: one line saying the jobs keep running and how to follow them again."""
    queued = [s.job_id for s in subs if s.job_id is not None and s.status in ("queued", "running")]
    hint = f"; resume with: {resume_hint(queued, out)}" if queued else ""
    print(f"submit: interrupted; {len(queued)} jobs keep running on the gateway{hint}", file=sys.stderr)
    return EXIT_INTERRUPTED


def report(args: argparse.Namespace, subs: list[Submission], waited: bool) -> int:
    """summary.json (with --out), the table or JSON, and the exit status."""
    if args.out is not None:
        write_summary(args.out, subs)
    if args.json:
        print_json([s.as_json() for s in subs])
    else:
        stdout_console().print(summary_table(subs, args.out))
    ok_states = {"succeeded"} if waited else {"queued", "running", "succeeded"}
    return 0 if all(s.status in ok_states and not s.error for s in subs) else 1


def submit(args: argparse.Namespace) -> int:
    check_paths(args)
    options = form_options(args)
    subs = [Submission(path) for path in args.files]
    waits = args.wait or args.out is not None
    if args.out is not None:
        out_dirs(subs, args.out)
    err = stderr_console()
    with connect(args) as client:
        try:
            upload_all(client, subs, options, err)
            if waits:
                follow(client, subs, args.timeout, err)
        except KeyboardInterrupt:
            return interrupted(subs, args.out)
    return report(args, subs, waits)


def run(args: argparse.Namespace) -> int:
    return run_guarded("submit", lambda: submit(args))
