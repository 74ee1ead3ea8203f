"""The README's command lines stay runnable: every `percolate-reading ...` line it shows is
accepted by the real argument parser, and `parse`/`submit` options pass the same checks the
gateway makes (a removed flag or a bad example fails here, not for a new user)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from percolate_reading.cli.main import SUBCOMMANDS, build_parser
from percolate_reading.cli.request_options import request_fields
from percolate_reading.cli.submit import form_options
from percolate_reading.parse.request import RequestOptions

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_commands() -> list[list[str]]:
    """Indented `percolate-reading` lines (with their `\\` continuations), comments dropped."""
    text = README.read_text("utf-8").replace("\\\n", " ")
    lines = re.findall(r"^ {4}(percolate-reading .*)$", text, flags=re.M)
    return [shlex.split(line, comments=True)[1:] for line in lines]


def test_the_readme_shows_the_client_commands() -> None:
    shown = {argv[0] for argv in readme_commands()}
    assert {"parse", "serve", "submit", "status", "wait", "download", "list", "cancel"} <= shown


def test_every_readme_command_line_parses() -> None:
    for argv in readme_commands():
        assert argv[0] in SUBCOMMANDS, argv
        argv = [a.replace("JOB...", "0" * 32) for a in argv]
        try:
            args = build_parser(argv).parse_args(argv)
        except SystemExit as exc:  # argparse printed why
            raise AssertionError(f"README command refused: percolate-reading {shlex.join(argv)}") from exc
        if argv[0] == "submit":
            form_options(args)  # UsageError for a value the gateway would refuse
        if argv[0] == "parse":
            RequestOptions.from_fields(request_fields(args))
