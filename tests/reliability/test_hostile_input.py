"""Hostile documents through the sandbox, the worker and the gateway: each ends in a typed
error (a failed job with a reason, or a 4xx), inside the sandbox's memory and time limits,
and everything keeps serving."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from percolate_reading.config import load_settings
from percolate_reading.contract.jobs import JobStatus
from percolate_reading.errors import PercolateError
from percolate_reading.parse.document import DocumentType, ParsedDocument
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.sandbox import SandboxLimits
from tests.harness.documents import make_pdf, make_xlsx
from tests.reliability import hostile
from tests.service.worker.test_worker import Env, consumer_idle

LIMITS = SandboxLimits(memory_mb=768, timeout_s=60, cpu_s=60)

# Every code a hostile document may legitimately end with; never an untyped error.
REFUSALS = {"corrupt", "empty", "too_large", "memory_limit", "timeout", "unsupported_type"}

HOSTILE: dict[str, tuple[str, Callable[[], bytes], set[str]]] = {
    "xlsx-zip-bomb": ("bomb.xlsx", hostile.xlsx_zip_bomb, {"too_large"}),
    "xlsx-billion-laughs": ("laughs.xlsx", hostile.xlsx_billion_laughs, {"corrupt"}),
    "xlsx-external-entity": ("xxe.xlsx", hostile.xlsx_external_entity, {"corrupt"}),
    "pdf-flate-bomb": ("flate.pdf", hostile.pdf_flate_bomb, REFUSALS),
    "pdf-deep-nesting": ("deep.pdf", hostile.pdf_deep_nesting, REFUSALS),
    "pdf-page-tree-loop": ("tree.pdf", hostile.pdf_page_tree_loop, REFUSALS),
    "pdf-reference-loop": ("loop.pdf", hostile.pdf_reference_loop, REFUSALS),
    "zero-bytes": ("empty.pdf", lambda: b"", {"empty"}),
}


def parse(path: Path) -> ParsedDocument:
    s = load_settings()
    return parse_file(path, ParseOptions.from_settings(s), LIMITS, path.name, s)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_document_is_a_typed_refusal(case: str, tmp_path: Path) -> None:
    name, build, codes = HOSTILE[case]
    path = tmp_path / name
    path.write_bytes(build())
    with pytest.raises(PercolateError) as info:
        parse(path)
    err = info.value
    assert err.code in codes, f"{case}: {err.code}: {err.message}"
    assert err.permanent or err.code == "timeout"
    assert err.message


def test_xxe_does_not_leak_local_files(tmp_path: Path) -> None:
    path = tmp_path / "xxe.xlsx"
    path.write_bytes(hostile.xlsx_external_entity())
    with pytest.raises(PercolateError) as info:
        parse(path)
    assert "root:" not in info.value.message


def test_extension_that_lies_is_parsed_by_content(tmp_path: Path) -> None:
    xlsx_as_pdf = tmp_path / "numbers.pdf"
    xlsx_as_pdf.write_bytes(make_xlsx([["Region", "Revenue"], ["North", 1200]]))
    doc = parse(xlsx_as_pdf)
    assert doc.doc_type is DocumentType.XLSX
    pdf_as_xlsx = tmp_path / "report.xlsx"
    pdf_as_xlsx.write_bytes(make_pdf(["A PDF wearing an xlsx name."]))
    doc = parse(pdf_as_xlsx)
    assert doc.doc_type is DocumentType.PDF
    png_as_pdf = tmp_path / "fake.pdf"
    png_as_pdf.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # an image header and junk
    with pytest.raises(PercolateError):
        parse(png_as_pdf)


@pytest.mark.integration
@pytest.mark.slow
async def test_hostile_batch_through_the_worker(env: Env) -> None:
    """Every hostile document ends failed with its reason on its first delivery (no retry
    storm), and a good document behind them all still succeeds."""
    from percolate_reading.worker.main import start_worker

    settings = env.settings.model_copy(update={"parse_memory_mb": 768, "worker_concurrency": 2})
    worker = await start_worker(settings, nc=env.nc, store=env.store, jobs=env.jobs)
    try:
        submitted = {case: await env.submit(build(), name) for case, (name, build, _) in HOSTILE.items()}
        liar = await env.submit(make_xlsx([["Region", "Revenue"], ["North", 1200]]), "numbers.pdf")
        good = await env.submit(make_pdf(["Still serving after the hostile batch."]))
        for case, job_id in submitted.items():
            record = await env.wait_status(job_id, JobStatus.FAILED, JobStatus.SUCCEEDED, wait_s=180)
            assert record.status is JobStatus.FAILED, case
            assert record.error is not None
            assert record.error.code in HOSTILE[case][2], f"{case}: {record.error}"
            assert record.error.message
        lied = await env.wait_status(liar, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=120)
        assert lied.status is JobStatus.SUCCEEDED, lied.error
        md = (await env.store.get_bytes("percolate-artifacts", f"{env.tenant}/{liar}/structured.md")).decode()
        assert "North" in md
        done = await env.wait_status(good, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=120)
        assert done.status is JobStatus.SUCCEEDED
        await consumer_idle(env, settings.nats_queue_group, wait_s=120)
        assert worker.ready() == (True, "ready")
    finally:
        await worker.drain()
