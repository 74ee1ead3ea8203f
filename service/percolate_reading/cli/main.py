"""`percolate-reading` command line: one sub-command per module, imported only when used.

Each sub-command module exposes `configure(parser)` (adds its arguments) and
`run(args) -> int` (the exit code). Importing lazily keeps `parse` free of server deps.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from percolate_reading import __version__

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "parse": ("percolate_reading.cli.parse", "Parse files locally and write artifacts to a folder."),
    "serve": ("percolate_reading.cli.serve", "Run gateway and worker in one process (single node)."),
    "submit": ("percolate_reading.cli.submit", "Upload files to a gateway, wait, download artifacts."),
    "status": ("percolate_reading.cli.status", "Show jobs' state, attempts, time and errors."),
    "wait": ("percolate_reading.cli.wait", "Wait for jobs to finish (and download their artifacts)."),
    "download": ("percolate_reading.cli.download", "Download finished jobs' artifacts."),
    "list": ("percolate_reading.cli.list_jobs", "List this tenant's jobs, newest first."),
    "cancel": ("percolate_reading.cli.cancel", "Cancel queued jobs."),
    "run": ("percolate_reading.cli.run", "Run the role the environment selects (container entrypoint)."),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="percolate-reading", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module_name)
        # Only the chosen sub-command's module is imported, for its arguments and its run().
        if argv and argv[0] == name:
            importlib.import_module(module_name).configure(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(args._module)
    return int(module.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
