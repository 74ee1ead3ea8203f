"""`percolate-reading status JOB...`: each job's state, attempts, time and error."""

from __future__ import annotations

import argparse

from percolate_reading.cli.remote import (
    add_connection_args,
    connect,
    job_json,
    job_table,
    print_json,
    run_guarded,
    stdout_console,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_ids", nargs="+", metavar="JOB", help="job ids (as submit printed them)")
    add_connection_args(parser)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        with connect(args) as client:
            jobs = [client.job(job_id) for job_id in args.job_ids]
        if args.json:
            print_json([job_json(j) for j in jobs])
        else:
            stdout_console().print(job_table(jobs))
        return 0 if not any(j.error for j in jobs) else 1

    return run_guarded("status", body)
