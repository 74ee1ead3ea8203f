"""The per-request parse options as command-line flags, shared by `parse` (local) and `submit`
(remote): one flag per field of parse/request.py, with that module's help and value sets, so
the CLI takes exactly what POST /v1/parse takes."""

from __future__ import annotations

import argparse

from percolate_reading.parse.render.chunks import CHUNK_STRATEGIES
from percolate_reading.parse.request import BOOLEAN_VALUES, FIELD_HELP, OCR_MODES, REQUEST_FIELDS, TABLE_MODES

# The fields with a closed set of values: argparse lists them in --help and refuses others.
CHOICES: dict[str, tuple[str, ...]] = {
    "ocr": OCR_MODES,
    "table_mode": TABLE_MODES,
    "chunk_strategy": CHUNK_STRATEGIES,
    "include_images": BOOLEAN_VALUES,
}
METAVARS = {
    "outputs": "LIST",
    "pages": "RANGE",
    "ocr_languages": "CODES",
    "chunk_size": "CHARS",
    "chunk_overlap": "CHARS",
}


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def add_request_args(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    for name in REQUEST_FIELDS:
        parser.add_argument(
            flag(name),
            dest=f"opt_{name}",
            default=None,
            choices=CHOICES.get(name),
            metavar=METAVARS.get(name),
            help=FIELD_HELP[name],
        )


def request_fields(args: argparse.Namespace) -> dict[str, str]:
    """The per-request fields the flags set (as the form's text fields)."""
    values = {name: getattr(args, f"opt_{name}", None) for name in REQUEST_FIELDS}
    return {name: value for name, value in values.items() if value is not None}


def flag_message(message: str) -> str:
    """An OptionError's "field: reason" as "--field: reason" (what the user typed)."""
    field, sep, reason = message.partition(":")
    return f"{flag(field)}:{reason}" if sep and field in REQUEST_FIELDS else message
