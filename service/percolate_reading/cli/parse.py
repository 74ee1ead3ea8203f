"""`percolate-reading parse FILE_OR_DIR... --out DIR`: parse locally, write artifacts per input.

Each file is parsed in its own sandboxed child (N at a time); this process only renders and
writes. Output goes to `<out>/<input stem>/` (stems made unique), plus `<out>/summary.json`.
Exit status 1 when any file failed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from percolate_reading.cli.request_options import add_request_args, flag_message, request_fields
from percolate_reading.config import Settings, load_settings
from percolate_reading.contract.languages import normalize_language
from percolate_reading.errors import PercolateError, WorkerCrashedError
from percolate_reading.parse.cpus import available_cpus
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.render.artifacts import DEFAULT_OUTPUTS, METADATA_JSON, render_artifacts
from percolate_reading.parse.render.chunks import ChunkOptions
from percolate_reading.parse.request import OptionError, RequestOptions
from percolate_reading.parse.sandbox import SandboxLimits

SUMMARY_FILE = "summary.json"
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", type=Path, metavar="FILE_OR_DIR", help="files or folders")
    parser.add_argument(
        "--samples", action="store_true", help=f"also parse the bundled sample documents ({SAMPLES_DIR})"
    )
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        help="parses in parallel (default: the CPUs this process may use)",
    )
    parser.add_argument("--password", default=None, help="password for encrypted PDFs")
    parser.add_argument(
        "--language",
        default=None,
        help="language hint for OCR and speech (e.g. en, de); a mixed recording: en,de or multi",
    )
    parser.add_argument("--no-ocr", action="store_true", help="do not OCR images or scanned pages")
    parser.add_argument("--timeout", type=float, default=None, help="wall-clock seconds per file")
    parser.add_argument("--memory-mb", type=int, default=None, help="memory limit per file (MB)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    # The per-request options the HTTP API takes, validated by the same code.
    add_request_args(parser)


@dataclass(frozen=True, slots=True)
class Job:
    source: Path
    out_name: str


@dataclass(slots=True)
class Outcome:
    job: Job
    ok: bool
    seconds: float
    doc_type: str = ""
    extent: str = ""
    error_code: str = ""
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "file": str(self.job.source),
            "output": self.job.out_name if self.ok else None,
            "ok": self.ok,
            "type": self.doc_type or None,
            "extent": self.extent or None,
            "seconds": round(self.seconds, 3),
            "error_code": self.error_code or None,
            "error": self.error or None,
        }


def expand_inputs(inputs: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(files to parse, inputs that do not exist). Folders are walked recursively, skipping
    hidden files and folders; files named explicitly are always taken."""
    files: list[Path] = []
    missing: list[Path] = []
    for item in inputs:
        if item.is_dir():
            for root, dirs, names in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
        elif item.is_file():
            files.append(item)
        else:
            missing.append(item)
    # The same file named twice is parsed once.
    unique = list(dict.fromkeys(files))
    return unique, missing


def assign_output_names(files: Sequence[Path]) -> list[Job]:
    """`<stem>` per file; equal stems get `-2`, `-3`, ... in input order."""
    used: set[str] = set()
    jobs: list[Job] = []
    for f in files:
        stem = f.stem or f.name or "document"
        name = stem
        n = 2
        while name.lower() in used or name == SUMMARY_FILE:
            name = f"{stem}-{n}"
            n += 1
        used.add(name.lower())
        jobs.append(Job(f, name))
    return jobs


def write_artifacts(out_dir: Path, artifacts: dict[str, bytes]) -> None:
    """Write into a fresh folder, then swap it in, so a rerun never leaves stale files."""
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for rel, data in artifacts.items():
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)


def _extent(meta: dict[str, Any]) -> str:
    if meta.get("page_count") is not None:
        n = meta["page_count"]
        return f"{n} page{'s' if n != 1 else ''}"
    if meta.get("sheet_count") is not None:
        n = meta["sheet_count"]
        return f"{n} sheet{'s' if n != 1 else ''}"
    if meta.get("duration_s") is not None:
        return f"{float(meta['duration_s']):.1f} s audio"
    return ""


def process(
    job: Job,
    out: Path,
    options: ParseOptions,
    limits: SandboxLimits,
    chunks: ChunkOptions,
    settings: Settings,
    cancel: threading.Event,
    outputs: Sequence[str] = DEFAULT_OUTPUTS,
) -> Outcome:
    t0 = time.perf_counter()
    try:
        if cancel.is_set():
            raise WorkerCrashedError("not parsed: interrupted")
        doc = parse_file(
            job.source, options, limits, source_name=job.source.name, settings=settings, cancel=cancel
        )
        artifacts = render_artifacts(doc, chunks, outputs)
        write_artifacts(out / job.out_name, artifacts)
    except PercolateError as exc:
        return Outcome(job, False, time.perf_counter() - t0, error_code=exc.code, error=exc.message)
    except OSError as exc:
        return Outcome(job, False, time.perf_counter() - t0, error_code="io_error", error=str(exc))
    meta = json.loads(artifacts[METADATA_JSON])  # has the counts derived from the blocks too
    return Outcome(job, True, time.perf_counter() - t0, doc_type=doc.doc_type.value, extent=_extent(meta))


def summary_table(outcomes: Sequence[Outcome], out: Path) -> Table:
    failed = sum(1 for o in outcomes if not o.ok)
    table = Table(title=f"Parsed {len(outcomes) - failed} of {len(outcomes)} files into {out}")
    table.add_column("File", overflow="fold")
    table.add_column("Type")
    table.add_column("Size")
    table.add_column("Seconds", justify="right")
    table.add_column("Status", overflow="fold")
    for o in outcomes:
        status = f"ok -> {o.job.out_name}/" if o.ok else f"[red]FAILED[/red] {o.error_code}: {o.error}"
        table.add_row(str(o.job.source), o.doc_type or "-", o.extent or "-", f"{o.seconds:.2f}", status)
    return table


class Stop(Exception):
    """The run cannot start: one line on stderr, exit `code`. `label` is a red prefix."""

    def __init__(self, message: str, code: int = 2, label: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.label = label


@dataclass(frozen=True, slots=True)
class Plan:
    """How every file is parsed: one settings object and the request's options."""

    settings: Settings
    options: ParseOptions
    chunks: ChunkOptions
    outputs: tuple[str, ...]
    workers: int

    def limits(self, files: int) -> SandboxLimits:
        """The sandbox of each parse, when `files` are parsed: the parses at once share the
        CPUs (one file alone gets them all)."""
        return SandboxLimits.from_settings(self.settings, parses_at_once=min(self.workers, files))


def make_plan(args: argparse.Namespace) -> Plan:
    overrides: dict[str, object] = {}
    if args.timeout is not None:
        overrides["parse_timeout_s"] = args.timeout
    if args.memory_mb is not None:
        overrides["parse_memory_mb"] = args.memory_mb
    if args.no_ocr:
        overrides["ocr_enabled"] = False
    try:
        settings = load_settings(**overrides)
    except ValidationError as exc:
        raise Stop(str(exc), label="invalid settings:") from None
    try:
        request = RequestOptions.from_fields(request_fields(args))
        chunks = request.chunk_options(settings)
    except OptionError as exc:
        raise Stop(flag_message(str(exc)), label="invalid option:") from None
    language = None
    if args.language:
        language = normalize_language(args.language)
        if language is None:
            message = "--language: an ISO 639-1 code the speech model knows (en, de, ...), en,de or multi"
            raise Stop(message, label="invalid option:")
    base = ParseOptions.from_settings(settings, password=args.password, language=language)
    options = request.parse_options(base)
    workers = max(1, args.jobs or math.floor(available_cpus()))
    return Plan(settings, options, chunks, request.outputs, workers)


def find_files(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """(files to parse, inputs that do not exist); Stop when there is nothing to do."""
    inputs = [*args.inputs, *([SAMPLES_DIR] if args.samples else [])]
    if not inputs:
        raise Stop("nothing to parse: name files or folders, or pass --samples")
    files, missing = expand_inputs(inputs)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise Stop(f"parse: --out {out} is a file, not a folder")
    if not files and not missing:
        names = ", ".join(str(i) for i in inputs)
        raise Stop(f"parse: no files to parse in {names} (hidden files are skipped)", code=1)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Stop(f"parse: cannot create --out {out}: {exc.strerror or exc}") from None
    return files, missing


def parse_all(jobs: list[Job], out: Path, plan: Plan, err: Console) -> tuple[dict[Job, Outcome], bool]:
    """Parse every job, `plan.workers` at a time: (outcome per job finished, interrupted?)."""
    by_job: dict[Job, Outcome] = {}
    progress = Progress(
        TextColumn("[bold]parse"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    )
    # Children run in their own process groups (Ctrl-C does not reach them): on interrupt,
    # this event makes every parse in flight kill its child, so the pool drains at once.
    cancel = threading.Event()
    limits = plan.limits(len(jobs))
    with progress, ThreadPoolExecutor(max_workers=plan.workers, thread_name_prefix="parse") as pool:
        task = progress.add_task("", total=len(jobs))
        futures: dict[Future[Outcome], Job] = {
            pool.submit(
                process, job, out, plan.options, limits, plan.chunks, plan.settings, cancel, plan.outputs
            ): job
            for job in jobs
        }
        try:
            for fut in as_completed(futures):
                outcome = fut.result()
                by_job[outcome.job] = outcome
                progress.update(task, advance=1, description=outcome.job.source.name)
        except KeyboardInterrupt:
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            done = [(fut, job) for fut, job in futures.items() if fut.done() and not fut.cancelled()]
            by_job.update((job, fut.result()) for fut, job in done)
            return by_job, True
    return by_job, False


def report(args: argparse.Namespace, outcomes: list[Outcome], out: Path) -> None:
    """summary.json in `out`, and the table (or the JSON) on stdout."""
    summary_text = json.dumps([o.as_json() for o in outcomes], indent=2, ensure_ascii=False) + "\n"
    (out / SUMMARY_FILE).write_text(summary_text, "utf-8")
    if args.json:
        print(summary_text, end="")
        return
    console = Console()
    if not console.is_terminal:
        # Piped or captured: do not fold the summary (and its failure reasons) at 80 columns.
        console = Console(width=200)
    console.print(summary_table(outcomes, out))


def run(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
        plan = make_plan(args)
        files, missing = find_files(args)
    except Stop as stop:
        label = f"[red]{stop.label}[/red] " if stop.label else ""
        err.print(label + escape(stop.message), highlight=False, soft_wrap=True)
        return stop.code
    out: Path = args.out
    jobs = assign_output_names(files)
    by_job, interrupted = parse_all(jobs, out, plan, err)
    outcomes = [
        Outcome(Job(m, ""), False, 0.0, error_code="not_found", error="no such file or folder")
        for m in missing
    ]
    outcomes.extend(
        by_job.get(j) or Outcome(j, False, 0.0, error_code="interrupted", error="not parsed: interrupted")
        for j in jobs
    )  # report in input order, not completion order
    report(args, outcomes, out)
    if interrupted:
        err.print("interrupted")
        return 130
    return 1 if any(not o.ok for o in outcomes) else 0
