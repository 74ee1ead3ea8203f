"""`percolate-reading list`: the tenant's jobs, newest first (`--status`, `--limit`, `--all`)."""

from __future__ import annotations

import argparse
import itertools

from percolate_reading.cli.remote import (
    add_connection_args,
    connect,
    job_json,
    job_table,
    print_json,
    run_guarded,
    stdout_console,
)
from percolate_reading.client import JobStatus


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", choices=[s.value for s in JobStatus], help="only jobs in this state")
    parser.add_argument("--limit", type=int, default=20, help="at most this many jobs (default 20)")
    parser.add_argument("--all", action="store_true", help="every job (pages through the listing)")
    add_connection_args(parser)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        with connect(args) as client:
            listing = client.jobs(args.status, page_size=100 if args.all else max(1, min(args.limit, 500)))
            jobs = list(listing if args.all else itertools.islice(listing, max(0, args.limit)))
        if args.json:
            print_json([job_json(j) for j in jobs])
        else:
            stdout_console().print(job_table(jobs, title=f"{len(jobs)} jobs" if jobs else "no jobs"))
        return 0

    return run_guarded("list", body)
