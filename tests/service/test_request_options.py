"""Per-request options: one validator for the form, the CLI and the worker."""

from __future__ import annotations

import json
from pathlib import Path

import pptx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from percolate_reading.cli.main import main
from percolate_reading.config import load_settings
from percolate_reading.contract.jobs import JobOptions
from percolate_reading.gateway.routes.parse import router
from percolate_reading.gateway.submission import Refused, read_form
from percolate_reading.parse.document import BlockKind
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.request import OptionError, RequestOptions
from percolate_reading.worker.pipeline import JobRejectedError, parse_options


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"outputs": "markdown,pdf"}, "outputs: unknown pdf"),
        ({"pages": "5-2"}, "pages: the range"),
        ({"pages": "first"}, "pages: use a 1-based page"),
        ({"ocr": "sometimes"}, "ocr: one of off, auto, force"),
        ({"ocr_languages": "english!"}, "ocr_languages"),
        ({"table_mode": "slow"}, "table_mode: one of fast, accurate"),
        ({"chunk_strategy": "sentence"}, "chunk_strategy: one of heading, page, fixed"),
        ({"chunk_size": "10"}, "chunk_size: between 20"),
        ({"chunk_size": "abc"}, "chunk_size: an integer"),
        ({"chunk_size": "100", "chunk_overlap": "100"}, "chunk_overlap: must be smaller"),
    ],
)
def test_invalid_options_are_refused_with_the_field_named(fields: dict[str, str], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        RequestOptions.from_fields(fields)
    with pytest.raises(Refused) as info:
        read_form(fields)
    assert info.value.status == 400
    assert message in info.value.message


def test_options_round_trip_and_apply() -> None:
    fields = {
        "outputs": "elements, text",
        "pages": "2-",
        "ocr": "off",
        "ocr_languages": "en,de",
        "table_mode": "fast",
        "chunk_strategy": "page",
        "chunk_size": "500",
        "chunk_overlap": "50",
    }
    request = RequestOptions.from_fields(fields)
    assert RequestOptions.from_fields(request.to_fields()) == request
    assert request.outputs == ("elements", "text")
    assert request.page_range == (2, None)
    parse = request.parse_options(ParseOptions())
    assert parse.ocr_enabled is False
    assert parse.ocr_mode == "off"
    assert parse.ocr_languages == ("en", "de")
    assert parse.language == "en"
    assert parse.table_mode == "fast"
    chunks = request.chunk_options(load_settings())
    assert (chunks.max_chars, chunks.overlap_chars, chunks.strategy) == (500, 50, "page")
    # What the gateway forwards is what the worker reads back.
    forwarded = read_form(fields).options
    assert parse_options(load_settings(), forwarded).page_range == (2, None)


def test_worker_rejects_a_message_with_bad_options() -> None:
    with pytest.raises(JobRejectedError, match="invalid parse option"):
        parse_options(load_settings(), JobOptions(request={"ocr": "maybe"}))


def _deck(tmp_path: Path) -> Path:
    prs = pptx.Presentation()
    for title in ("One", "Two", "Three"):
        slide = prs.slides.add_slide(prs.slide_layouts[5])
        slide.shapes.title.text = title
    path = tmp_path / "deck.pptx"
    prs.save(str(path))
    return path


def test_page_range_keeps_only_those_pages(tmp_path: Path) -> None:
    options = RequestOptions.from_fields({"pages": "2-3"}).parse_options(ParseOptions(ocr_enabled=False))
    doc = parse_file(_deck(tmp_path), options, None)
    assert [b.text for b in doc.blocks if b.kind in (BlockKind.TITLE, BlockKind.HEADING)] == ["Two", "Three"]
    assert doc.metadata["page_range"] == [2, 3]


def test_cli_takes_the_same_options(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "parse",
            str(_deck(tmp_path)),
            "--out",
            str(out),
            "--no-ocr",
            "--jobs",
            "1",
            "--outputs",
            "elements,text",
            "--pages",
            "3",
        ]
    )
    assert code == 0
    folder = out / "deck"
    assert sorted(p.name for p in folder.iterdir()) == ["elements.jsonl", "metadata.json", "plain.txt"]
    elements = [json.loads(line) for line in (folder / "elements.jsonl").read_text().splitlines()]
    assert [(e["text"], e["slide"]) for e in elements] == [("Three", 3)]
    # Refused by the one validator (exit 2, the message names the flag) ...
    assert main(["parse", str(_deck(tmp_path)), "--out", str(out), "--chunk-size", "5"]) == 2
    # ... or, for a closed set of values, by argparse's choices (its exit status is 2 too).
    for flag, value in (("--ocr", "never"), ("--include-images", "yes")):
        with pytest.raises(SystemExit) as refused:
            main(["parse", str(_deck(tmp_path)), "--out", str(out), flag, value])
        assert refused.value.code == 2


def test_gateway_serves_the_schema_and_documents_the_options() -> None:
    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    resp = client.get("/schemas/elements.json")
    assert resp.status_code == 200
    assert resp.json()["$id"].endswith("/elements/1.0")
    form = app.openapi()["paths"]["/v1/parse"]["post"]["requestBody"]["content"]["multipart/form-data"]
    props = form["schema"]["properties"]
    assert props["ocr"]["enum"] == ["off", "auto", "force"]
    assert "page range" in props["pages"]["description"]
    assert props["chunk_strategy"]["description"]
