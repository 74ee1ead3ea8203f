"""`percolate-reading cancel JOB...`: cancel queued jobs (a running or finished job is refused)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from percolate_reading.cli.remote import (
    add_connection_args,
    connect,
    job_json,
    print_json,
    run_guarded,
    stdout_console,
)
from percolate_reading.errors import ApiResponseError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_ids", nargs="+", metavar="JOB", help="ids of queued jobs")
    add_connection_args(parser)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        results: list[dict[str, Any]] = []
        with connect(args) as client:
            for job_id in args.job_ids:
                try:
                    job = client.cancel(job_id)
                    results.append({"job_id": job_id, "cancelled": True, "job": job_json(job)})
                except ApiResponseError as exc:
                    if exc.status not in (404, 409):
                        raise
                    results.append(
                        {"job_id": job_id, "cancelled": False, "error": exc.code, "message": exc.message}
                    )
        if args.json:
            print_json(results)
        else:
            console = stdout_console()
            for r in results:
                line = f"{r['job_id']}: cancelled" if r["cancelled"] else f"{r['job_id']}: {r['message']}"
                console.print(line, highlight=False, soft_wrap=True)
        refused = [r for r in results if not r["cancelled"]]
        if refused and not args.json:
            print(f"cancel: {len(refused)} of {len(results)} not cancelled", file=sys.stderr)
        return 1 if refused else 0

    return run_guarded("cancel", body)
