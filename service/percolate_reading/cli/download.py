"""`percolate-reading download JOB... --out DIR`: a finished job's artifacts into
DIR/<file stem>/ (or straight into DIR with `--flat` for one job)."""

from __future__ import annotations

import argparse
from pathlib import Path

from percolate_reading.cli.remote import (
    UsageError,
    add_connection_args,
    connect,
    print_json,
    run_guarded,
    stdout_console,
    unique_dirs,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_ids", nargs="+", metavar="JOB", help="ids of finished jobs")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    parser.add_argument("--flat", action="store_true", help="one job: its files straight into OUT")
    add_connection_args(parser)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        if args.flat and len(args.job_ids) != 1:
            raise UsageError("--flat takes exactly one job")
        if args.out.exists() and not args.out.is_dir():
            raise UsageError(f"--out {args.out} is a file, not a folder")
        with connect(args) as client:
            jobs = [client.job(job_id) for job_id in dict.fromkeys(args.job_ids)]
            unfinished = [j.job_id for j in jobs if not j.finished]
            if unfinished:
                raise UsageError(f"not finished yet: {' '.join(unfinished)} (use `wait --out`)")
            dirs = [args.out] if args.flat else unique_dirs(args.out, [Path(j.file_name).stem for j in jobs])
            results = []
            for job, where in zip(jobs, dirs, strict=True):
                files = client.download(job, where) if job.succeeded else []
                results.append(
                    {
                        "job_id": job.job_id,
                        "status": job.status.value,
                        "out": str(where),
                        "files": [str(f) for f in files],
                    }
                )
        if args.json:
            print_json(results)
        else:
            console = stdout_console()
            for r in results:
                console.print(
                    f"{r['job_id']}: {len(r['files'])} files in {r['out']} ({r['status']})", highlight=False
                )
        return 0 if all(r["status"] == "succeeded" for r in results) else 1

    return run_guarded("download", body)
