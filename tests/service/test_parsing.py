"""parse_file end to end on the bundled samples, in-process and sandboxed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pymupdf
import pytest

from percolate_reading.config import load_settings
from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
    MemoryLimitError,
    UnsupportedTypeError,
)
from percolate_reading.parse.document import BlockKind, DocumentType
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers import PROVIDERS, get_provider, missing_dependency_error
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.sandbox import SandboxLimits

SAMPLES = Path(__file__).resolve().parents[2] / "service" / "percolate_reading" / "samples"
PDF = SAMPLES / "sample-report.pdf"
XLSX = SAMPLES / "sample-budget.xlsx"
LIMITS = SandboxLimits(memory_mb=2048, timeout_s=120, cpu_s=120)
OPTIONS = ParseOptions(ocr_enabled=False)


@pytest.mark.parametrize("limits", [None, LIMITS], ids=["in-process", "sandboxed"])
def test_pdf_sample(limits: SandboxLimits | None) -> None:
    doc = parse_file(PDF, OPTIONS, limits)
    assert doc.doc_type is DocumentType.PDF
    assert doc.source_name == "sample-report.pdf"
    headings = [b.text for b in doc.blocks if b.kind is BlockKind.HEADING]
    assert headings == ["Sample Report", "1. Introduction", "2. Method", "3. Two Columns", "4. Results"]
    text = doc.text()
    # Two columns: all of the left one before the right one.
    assert text.index("orchards") < text.index("bicycles, which")
    (table,) = doc.tables
    assert table.rows[0] == ("Region", "Q1", "Q2", "Total")
    assert table.rows[3] == ("East", "143", "151", "294")
    assert table.page == 3
    assert doc.metadata["doc_type"] == "pdf"
    assert doc.metadata["file_size"] == PDF.stat().st_size
    assert doc.metadata["sha256"] == hashlib.sha256(PDF.read_bytes()).hexdigest()
    assert doc.metadata["page_count"] == 3
    assert {"detect_s", "parse_s", "total_s"} <= doc.timings.keys()
    assert doc.timings["total_s"] >= doc.timings["parse_s"] > 0


def test_xlsx_sample_sandboxed() -> None:
    doc = parse_file(XLSX, OPTIONS, LIMITS, source_name="budget.xlsx")
    assert doc.source_name == "budget.xlsx"
    assert doc.doc_type is DocumentType.XLSX
    budget, codes = doc.tables
    assert budget.sheet == "Budget"
    assert ("Paper", "2026-01-15", "120.5") in budget.rows
    assert budget.rows[-1][0] == "Total"
    assert budget.rows[-1][2] == "850.49"  # the formula's cached value
    assert codes.rows == (("Code", "Meaning"), ("A", "Approved"), ("P", "Pending"))


def test_sandboxed_and_in_process_agree() -> None:
    a = parse_file(PDF, OPTIONS, None)
    b = parse_file(PDF, OPTIONS, LIMITS)
    assert a.blocks == b.blocks
    assert a.warnings == b.warnings


def test_encrypted_pdf_error_crosses_the_sandbox(tmp_path: Path) -> None:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "secret words")
    path = tmp_path / "locked.pdf"
    doc.save(str(path), encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="user")
    doc.close()
    with pytest.raises(EncryptedDocumentError):
        parse_file(path, OPTIONS, LIMITS)
    opened = parse_file(path, ParseOptions(ocr_enabled=False, password="user"), LIMITS)
    assert "secret words" in opened.text()


def test_detection_errors_come_before_any_child(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(EmptyDocumentError):
        parse_file(empty, OPTIONS, LIMITS)
    binary = tmp_path / "notes.pdf"
    binary.write_bytes(b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 8)
    with pytest.raises(UnsupportedTypeError, match="unknown binary data"):
        parse_file(binary, OPTIONS, LIMITS)


def test_text_named_pdf_is_parsed_as_text(tmp_path: Path) -> None:
    text = tmp_path / "notes.pdf"
    text.write_text("just words")
    doc = parse_file(text, OPTIONS, LIMITS)
    assert doc.doc_type is DocumentType.TEXT
    assert doc.text() == "just words"


def test_wrong_extension_is_parsed_by_content(tmp_path: Path) -> None:
    disguised = tmp_path / "budget.pdf"
    disguised.write_bytes(XLSX.read_bytes())
    doc = parse_file(disguised, OPTIONS, LIMITS)
    assert doc.doc_type is DocumentType.XLSX
    assert doc.source_name == "budget.pdf"
    assert doc.tables[1].rows[1] == ("A", "Approved")


def test_truncated_and_oversized_pdfs(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.pdf"
    truncated.write_bytes(PDF.read_bytes()[:300])
    with pytest.raises(CorruptDocumentError):
        parse_file(truncated, OPTIONS, LIMITS)
    with pytest.raises(DocumentTooLargeError, match="3 pages; the limit is 2"):
        parse_file(PDF, ParseOptions(ocr_enabled=False, max_pages=2), LIMITS)


def test_registry_names_every_type() -> None:
    assert set(PROVIDERS) == set(DocumentType)
    for doc_type in (DocumentType.PDF, DocumentType.XLSX):
        assert get_provider(doc_type).doc_type is doc_type
    settings = load_settings()
    assert get_provider(DocumentType.XLSX, settings).doc_type is DocumentType.XLSX


def _dense_pdf(path: Path, lines: int = 3000, words: int = 250) -> None:
    """One huge page packed with ~3.7 MB of text: extracting it needs a few hundred MB."""
    with pymupdf.open() as pdf:
        page = pdf.new_page(width=5000, height=5000)
        page.insert_text((2, 2), "seed", fontsize=1)  # registers a font resource to name
        font = page.get_fonts()[0][4]
        row = " ".join(["word"] * words)
        ops = "".join(
            f"BT /{font} 1 Tf 2 {4998 - i * 1.5:.1f} Td (row {i} {row}) Tj ET\n" for i in range(lines)
        )
        pdf.update_stream(page.get_contents()[0], ops.encode())
        pdf.save(path)


def test_real_parse_under_a_tiny_memory_limit(tmp_path: Path) -> None:
    # MuPDF reports the failed allocation as a page error ("calloc (...) failed"); the sandbox
    # must still name the memory limit, not call the document corrupt.
    dense = tmp_path / "dense.pdf"
    _dense_pdf(dense)
    assert "row 2999" in parse_file(dense, OPTIONS, None).text()
    with pytest.raises(MemoryLimitError, match="memory limit of 256 MB"):
        parse_file(dense, OPTIONS, SandboxLimits(memory_mb=256, timeout_s=60, cpu_s=60))


def test_loader_out_of_memory_is_not_a_missing_package() -> None:
    cause = ImportError("/x/cv2.abi3.so: failed to map segment from shared object", name="cv2")
    wrapped = ImportError("OCR needs rapidocr-onnxruntime", name="cv2")
    wrapped.__cause__ = cause
    with pytest.raises(MemoryError, match="failed to map segment"):
        missing_dependency_error(DocumentType.IMAGE, wrapped)


def test_missing_extra_names_the_install_command() -> None:
    err = missing_dependency_error(
        DocumentType.AUDIO, ImportError("no faster_whisper", name="faster_whisper")
    )
    assert isinstance(err, UnsupportedTypeError)
    assert err.message == (
        "audio parsing needs the Python package 'faster_whisper', which is not installed; "
        "install it with: pip install 'percolate-reading[audio]'"
    )
    ocr = missing_dependency_error(DocumentType.IMAGE, ImportError("x", name="rapidocr_onnxruntime"))
    assert "percolate-reading[ocr]" in ocr.message


def test_the_contract_languages_are_the_speech_models() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    from percolate_reading.contract.languages import LANGUAGE_CODES

    assert set(_LANGUAGE_CODES) == LANGUAGE_CODES


def test_language_names_one_code_the_expected_languages_or_multi() -> None:
    from percolate_reading.contract.languages import expected_languages, normalize_language

    assert normalize_language(" DE ") == "de"
    assert normalize_language("EN, de ,en") == "en,de"
    assert normalize_language("Multilingual") == "multi"
    for bad in ("en,xx", "en,", ",", "klingon", "en;de"):
        assert normalize_language(bad) is None, bad
    assert expected_languages("multi") == (True, ())
    assert expected_languages("en,de") == (True, ("en", "de"))
    assert expected_languages("de") == (False, ("de",))
    assert expected_languages(None) == (False, ())


@pytest.mark.parametrize("limits", [None, LIMITS], ids=["in-process", "sandboxed"])
def test_errors_name_the_upload_not_the_scratch_file(tmp_path: Path, limits: SandboxLimits | None) -> None:
    """Finding: an audio error named the worker's temp file (FFmpeg puts the path in its text)."""
    speech = Path(__file__).resolve().parents[1] / "fixtures" / "speech.wav"
    scratch = tmp_path / "percolate-job-k2j4h1.wav"
    scratch.write_bytes(speech.read_bytes()[:12] + b"fmt " + b"\0" * 30)
    with pytest.raises(CorruptDocumentError) as caught:
        parse_file(scratch, OPTIONS, limits, source_name="meeting notes.wav")
    assert "meeting notes.wav" in caught.value.message
    assert "percolate-job" not in caught.value.message
    assert str(tmp_path) not in str(caught.value)


def test_parse_and_render_in_the_sandbox_matches_in_process() -> None:
    """The worker's path: rendering happens in the child, the parent gets only bytes."""
    from percolate_reading.parse.parsing import parse_and_render
    from percolate_reading.parse.render.artifacts import render_artifacts
    from percolate_reading.parse.render.chunks import ChunkOptions

    chunk_options = ChunkOptions(max_chars=800, overlap_chars=100)
    for sample in (PDF, XLSX):
        sandboxed, metadata = parse_and_render(
            sample, OPTIONS, LIMITS, chunk_options, "upload" + sample.suffix
        )
        expected = render_artifacts(
            parse_file(sample, OPTIONS, None, "upload" + sample.suffix), chunk_options
        )
        assert sandboxed.keys() == expected.keys()
        for name in expected:
            if name != "metadata.json":
                assert sandboxed[name] == expected[name], name
        # metadata.json differs only in what the run measured (peak memory, timings).
        assert _without_measurements(json.loads(sandboxed["metadata.json"])) == _without_measurements(
            json.loads(expected["metadata.json"])
        )
        assert metadata["sha256"] == hashlib.sha256(sample.read_bytes()).hexdigest()
        assert {"parse_s", "render_s", "detect_s", "total_s"} <= set(metadata["timings"])


def _without_measurements(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_measurements(v) for k, v in value.items() if k not in ("peak_rss_mb", "timings")}
    if isinstance(value, list):
        return [_without_measurements(v) for v in value]
    return value
