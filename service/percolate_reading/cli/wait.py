"""`percolate-reading wait JOB... [--out DIR]`: wait until the jobs finish (e.g. after an
interrupted `submit --wait`); with `--out`, download each succeeded job's artifacts too.
Exit status 1 when any job failed or was still unfinished at `--timeout`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from percolate_reading.cli.remote import (
    EXIT_INTERRUPTED,
    add_connection_args,
    connect,
    job_json,
    job_table,
    print_json,
    resume_hint,
    run_guarded,
    stdout_console,
    unique_dirs,
    wait_all,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_ids", nargs="+", metavar="JOB", help="job ids")
    parser.add_argument("--out", type=Path, help="download artifacts into OUT/<file stem>/")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    add_connection_args(parser)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        with connect(args) as client:
            try:
                latest, pending = wait_all(client, args.job_ids, args.timeout)
            except KeyboardInterrupt:
                print(
                    f"wait: interrupted; the jobs keep running. Resume with: "
                    f"{resume_hint(args.job_ids, args.out)}",
                    file=sys.stderr,
                )
                return EXIT_INTERRUPTED
            jobs = [latest[j] for j in dict.fromkeys(args.job_ids)]
            if args.out is not None:
                done = [j for j in jobs if j.succeeded]
                for job, where in zip(
                    done, unique_dirs(args.out, [Path(j.file_name).stem for j in done]), strict=True
                ):
                    client.download(job, where)
        if args.json:
            print_json([job_json(j) for j in jobs])
        else:
            stdout_console().print(job_table(jobs))
        if pending:
            print(f"wait: still unfinished after {args.timeout:.0f}s: {' '.join(pending)}", file=sys.stderr)
        return 0 if all(j.succeeded for j in jobs) else 1

    return run_guarded("wait", body)
