"""The sandbox: limits really hit, typed errors back, only the child dies."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest

from percolate_reading.config import load_settings
from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    MemoryLimitError,
    ParseError,
    ParseTimeoutError,
    WorkerCrashedError,
)
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.sandbox import SandboxLimits, run_in_sandbox

LIMITS = SandboxLimits(memory_mb=1024, timeout_s=30, cpu_s=30)


# Test-only "providers": module-level so the forkserver child can import them by name.


def _echo_doc(name: str) -> ParsedDocument:
    return ParsedDocument(
        source_name=name,
        doc_type=DocumentType.PDF,
        blocks=[Block(BlockKind.HEADING, text="Title", level=1), Block(BlockKind.PARAGRAPH, text="body")],
        metadata={"pid": os.getpid(), "tmpdir": tempfile.gettempdir()},
    )


def _hog_memory(step_mb: int) -> int:
    hoard = []
    while True:  # until the address-space limit stops us
        hoard.append(bytearray(step_mb * 1024 * 1024))


def _sleep_forever() -> None:
    time.sleep(3600)


def _burn_cpu() -> None:
    x = 0
    while True:
        x += 1


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _segfault() -> None:
    ctypes.string_at(0)


def _raise_corrupt() -> None:
    raise CorruptDocumentError("xref table broken at byte 1234")


def _raise_value_error() -> None:
    raise ValueError("provider bug")


def _bad_alloc() -> None:
    raise RuntimeError("std::bad_alloc")


def _corrupt_because_malloc_failed() -> None:
    raise CorruptDocumentError("cannot read PDF: malloc failed (1073741824 bytes)")


def _crash_near_the_limit(limit_mb: int) -> None:
    hoard = bytearray(int(limit_mb * 0.85) * 1024 * 1024)  # noqa: F841 - held on purpose
    raise AttributeError("'NoneType' object has no attribute 'tables'")


def _write_huge_scratch() -> None:
    with open("huge.bin", "wb") as f:
        block = b"\0" * (1 << 20)
        for _ in range(10_000):
            f.write(block)


def _write_scratch() -> str:
    scratch = Path(tempfile.gettempdir()) / "scratch.bin"
    scratch.write_bytes(b"x" * 1000)
    return str(scratch)


def test_result_crosses_back_by_value() -> None:
    doc = run_in_sandbox(_echo_doc, "a.pdf", limits=LIMITS)
    assert doc.source_name == "a.pdf"
    assert [b.text for b in doc.blocks] == ["Title", "body"]
    assert doc.blocks[0].kind is BlockKind.HEADING
    assert doc.metadata["pid"] != os.getpid()
    assert "percolate-parse-" in doc.metadata["tmpdir"]


def test_temp_dir_is_fresh_and_deleted() -> None:
    first = run_in_sandbox(_write_scratch, limits=LIMITS)
    second = run_in_sandbox(_write_scratch, limits=LIMITS)
    assert first != second
    assert not Path(first).exists()
    assert not Path(first).parent.exists()


def test_memory_limit_is_hit_and_named() -> None:
    limits = SandboxLimits(memory_mb=600, timeout_s=60, cpu_s=60)
    with pytest.raises(MemoryLimitError, match="memory limit of 600 MB") as info:
        run_in_sandbox(_hog_memory, 16, limits=limits)
    assert info.value.permanent
    assert info.value.code == "memory_limit"
    assert info.value.sandbox_kill == "memory_limit"


def test_one_huge_allocation_is_a_memory_error() -> None:
    limits = SandboxLimits(memory_mb=600, timeout_s=60, cpu_s=60)
    with pytest.raises(MemoryLimitError, match="600 MB"):
        run_in_sandbox(_hog_memory, 2048, limits=limits)


def test_wall_clock_timeout_kills_the_child() -> None:
    limits = SandboxLimits(memory_mb=1024, timeout_s=1.5, cpu_s=60)
    with pytest.raises(ParseTimeoutError, match=r"wall-clock limit of 1\.5 s") as info:
        run_in_sandbox(_sleep_forever, limits=limits)
    assert not info.value.permanent
    assert info.value.sandbox_kill == "wall_timeout"


def test_cpu_limit_is_a_timeout() -> None:
    limits = SandboxLimits(memory_mb=1024, timeout_s=60, cpu_s=1)
    with pytest.raises(ParseTimeoutError, match="CPU limit of 1 CPU seconds") as info:
        run_in_sandbox(_burn_cpu, limits=limits)
    assert info.value.sandbox_kill == "cpu_limit"


def test_sigkill_is_a_crash_naming_the_signal() -> None:
    with pytest.raises(WorkerCrashedError, match="SIGKILL") as info:
        run_in_sandbox(_kill_self, limits=LIMITS)
    assert not info.value.permanent
    assert info.value.sandbox_kill == "signal"


def test_segfault_is_a_crash_naming_the_signal() -> None:
    with pytest.raises(WorkerCrashedError, match="SIGSEGV"):
        run_in_sandbox(_segfault, limits=LIMITS)


def test_typed_error_comes_back_as_the_same_type() -> None:
    with pytest.raises(CorruptDocumentError, match="xref table broken at byte 1234") as info:
        run_in_sandbox(_raise_corrupt, limits=LIMITS)
    assert info.value.sandbox_kill is None  # the parser's own verdict, not a limit


def test_untyped_error_becomes_a_parse_error() -> None:
    with pytest.raises(ParseError, match="ValueError: provider bug") as info:
        run_in_sandbox(_raise_value_error, limits=LIMITS)
    assert type(info.value) is ParseError


def test_parent_survives_and_keeps_working_after_failures() -> None:
    with pytest.raises(WorkerCrashedError):
        run_in_sandbox(_kill_self, limits=LIMITS)
    assert run_in_sandbox(_echo_doc, "after.pdf", limits=LIMITS).source_name == "after.pdf"


def test_limits_from_settings() -> None:
    limits = SandboxLimits.from_settings(
        load_settings(parse_timeout_s=10, parse_memory_mb=512, parse_threads=2)
    )
    assert limits == SandboxLimits(memory_mb=512, timeout_s=10, cpu_s=20, threads=2)
    explicit = SandboxLimits.from_settings(load_settings(parse_timeout_s=10, parse_cpu_s=3))
    assert explicit.cpu_s == 3


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="invalid sandbox limits"):
        SandboxLimits(memory_mb=1024, timeout_s=0, cpu_s=1)


async def test_concurrent_calls_from_an_event_loop() -> None:
    # The worker calls the sandbox from threads of an asyncio process: one crash must not
    # disturb the parse running beside it.
    good = asyncio.to_thread(run_in_sandbox, _echo_doc, "one.pdf", limits=LIMITS)
    bad = asyncio.to_thread(run_in_sandbox, _kill_self, limits=LIMITS)
    other = asyncio.to_thread(run_in_sandbox, _echo_doc, "two.pdf", limits=LIMITS)
    results = await asyncio.gather(good, bad, other, return_exceptions=True)
    assert isinstance(results[0], ParsedDocument)
    assert results[0].source_name == "one.pdf"
    assert isinstance(results[1], WorkerCrashedError)
    assert isinstance(results[2], ParsedDocument)
    assert results[2].source_name == "two.pdf"


def test_native_allocation_failures_are_the_memory_limit() -> None:
    with pytest.raises(MemoryLimitError, match="memory limit of 1024 MB"):
        run_in_sandbox(_bad_alloc, limits=LIMITS)
    with pytest.raises(MemoryLimitError, match="memory limit of 1024 MB"):
        run_in_sandbox(_corrupt_because_malloc_failed, limits=LIMITS)


def test_unexpected_error_close_to_the_limit_is_the_memory_limit() -> None:
    limits = SandboxLimits(memory_mb=1500, timeout_s=60, cpu_s=60)
    with pytest.raises(MemoryLimitError, match="1500 MB"):
        run_in_sandbox(_crash_near_the_limit, 1500, limits=limits)


def test_scratch_files_are_capped() -> None:
    limits = SandboxLimits(memory_mb=1024, timeout_s=60, cpu_s=60, scratch_mb=20)
    assert LIMITS.scratch_limit_mb == 2048
    with pytest.raises(DocumentTooLargeError, match="scratch file over the limit of 20 MB"):
        run_in_sandbox(_write_huge_scratch, limits=limits)


def test_cancel_kills_the_child() -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    try:
        with pytest.raises(WorkerCrashedError, match="cancelled") as info:
            run_in_sandbox(_sleep_forever, limits=LIMITS, cancel=cancel)
        assert info.value.sandbox_kill == "cancelled"
    finally:
        timer.cancel()


def _child_modules() -> dict[str, object]:
    import sys

    return {
        "warmed": "percolate_reading.parse.providers.warmup" in sys.modules,
        "layout": sys.modules.get("pymupdf.layout", "absent"),
    }


def test_children_start_warm_and_without_the_layout_model() -> None:
    # Forked from a server that already ran one parse (providers.warmup) and imported PyMuPDF
    # without its layout model: neither costs a child anything.
    seen = run_in_sandbox(_child_modules, limits=LIMITS)
    assert seen["warmed"] is True
    assert seen["layout"] is None or seen["layout"] == "absent"


def test_warm_up_document_exercises_the_table_finder(tmp_path: Path) -> None:
    from percolate_reading.parse.parsing import run_provider
    from percolate_reading.parse.providers.base import ParseOptions
    from percolate_reading.parse.providers.warmup import sample_pdf

    path = tmp_path / "warm.pdf"
    path.write_bytes(sample_pdf())
    doc = run_provider(DocumentType.PDF, path, path.name, ParseOptions(ocr_enabled=False))
    kinds = [b.kind for b in doc.blocks]
    assert BlockKind.HEADING in kinds
    assert BlockKind.TABLE in kinds
    assert [c for row in doc.tables[0].rows for c in row] == ["cell 00", "cell 01", "cell 10", "cell 11"]
