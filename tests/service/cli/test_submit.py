"""`submit`'s pure helpers: where artifacts land, refusing names that would escape, and a flag
for every field of POST /v1/parse."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from percolate_reading.cli.main import build_parser
from percolate_reading.cli.remote import UsageError
from percolate_reading.cli.submit import Submission, form_options, out_dirs
from percolate_reading.client._common import artifact_target, form_fields
from percolate_reading.errors import ClientError
from percolate_reading.gateway.routes.parse import PARSE_OPENAPI


def test_artifact_paths_stay_inside_the_output_folder(tmp_path: Path) -> None:
    assert artifact_target(tmp_path, "document.md") == tmp_path / "document.md"
    assert artifact_target(tmp_path, "tables/sheet1.csv") == tmp_path / "tables" / "sheet1.csv"
    for bad in ("../x", "/etc/passwd", "a/../../b", "a\\b", "", "a//b"):
        with pytest.raises(ClientError):
            artifact_target(tmp_path, bad)


def test_repeated_stems_get_their_own_folders(tmp_path: Path) -> None:
    subs = [Submission(Path("a/report.pdf")), Submission(Path("b/report.pdf")), Submission(Path("x.xlsx"))]
    out_dirs(subs, tmp_path)
    assert [s.out_dir for s in subs] == [tmp_path / "report", tmp_path / "report-2", tmp_path / "x"]


def submit_args(*argv: str) -> argparse.Namespace:
    return build_parser(["submit", *argv]).parse_args(["submit", *argv])


# Fields whose flag is not `--<name with dashes>`.
FLAG_OF = {"ocr_enabled": "--no-ocr"}
FLAG_VALUES = {
    "callback_url": "https://hooks.example.com/x",
    "tier": "large",
    "password": "secret",
    "language": "de",
    "outputs": "markdown,text",
    "pages": "2-5",
    "ocr": "force",
    "ocr_languages": "en,de",
    "table_mode": "fast",
    "include_images": "true",
    "chunk_strategy": "fixed",
    "chunk_size": "800",
    "chunk_overlap": "80",
}


def test_every_field_of_the_api_has_a_flag() -> None:
    """Each form field POST /v1/parse documents is a first-class flag of `submit` (not only
    `--option`), and reaches the form as the API spells it; fails when the API grows one."""
    schema = PARSE_OPENAPI["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    fields = set(schema) - {"file"}
    argv: list[str] = []
    for name in sorted(fields):
        if name in FLAG_OF:
            argv.append(FLAG_OF[name])
        else:
            assert name in FLAG_VALUES, f"no test value for the API's field {name!r}: give it a flag"
            argv += [f"--{name.replace('_', '-')}", FLAG_VALUES[name]]
    options = form_options(submit_args(*argv, "doc.pdf"))
    fields_sent = form_fields(options)
    assert set(fields_sent) == fields
    assert fields_sent["ocr_enabled"] == "false"
    for name, value in FLAG_VALUES.items():
        assert fields_sent[name] == value, name


@pytest.mark.parametrize("command", ["submit", "parse"])
def test_every_flag_shows_its_values_in_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A closed set of values (booleans too) is listed as argparse choices, anything else has
    a metavar: no request flag shows argparse's OPT_<NAME> placeholder."""
    with pytest.raises(SystemExit):
        build_parser([command, "--help"]).parse_args([command, "--help"])
    text = capsys.readouterr().out
    assert "OPT_" not in text
    assert "--include-images {true,false}" in text
    assert "never fetched" in " ".join(text.split())
    with pytest.raises(SystemExit):
        build_parser([command]).parse_args([command, "--include-images", "yes", "doc.pdf"])
    assert "invalid choice: 'yes'" in capsys.readouterr().err


def test_flags_are_checked_before_anything_is_sent() -> None:
    for argv, message in [
        (["--pages", "5-2"], "--pages: the range must start"),
        (["--outputs", "markdown,pdf"], "--outputs: unknown pdf"),
        (["--chunk-size", "800", "--chunk-overlap", "900"], "--chunk-overlap: must be smaller"),
        (["--ocr-languages", "english!"], "--ocr-languages: up to 8"),
        (["--option", "pages=x"], "--pages: use a 1-based page"),
        (["--option", "novalue"], "--option wants NAME=VALUE"),
    ]:
        with pytest.raises(UsageError, match=re.escape(message)):
            form_options(submit_args(*argv, "doc.pdf"))
    with pytest.raises(SystemExit):
        submit_args("--ocr", "sometimes", "doc.pdf")  # argparse names the choices


def test_option_passes_a_field_the_cli_does_not_know() -> None:
    assert form_options(submit_args("--option", "future_knob=7", "doc.pdf")) == {"future_knob": "7"}
