"""Bounded-time fuzz of every provider through `parse_file` and the sandbox: mutated real
documents (bytes flipped, cut, inserted, slices repeated) either parse or fail with a typed
PercolateError; nothing else ever comes out, and the parent keeps working."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from percolate_reading.config import load_settings
from percolate_reading.errors import PercolateError
from percolate_reading.parse.document import ParsedDocument
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.sandbox import SandboxLimits

SAMPLES = Path(__file__).resolve().parents[2] / "service" / "percolate_reading" / "samples"
# The production memory limit (OCR and Whisper need it); a shorter clock keeps the fuzz bounded.
LIMITS = SandboxLimits(memory_mb=load_settings().parse_memory_mb, timeout_s=60, cpu_s=120)
SETTINGS = load_settings()


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "zero"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, max(len(data) // 4, 1)))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "repeat":
            chunk = data[pos : pos + draw(st.integers(1, 256))]
            data[pos:pos] = chunk * draw(st.integers(1, 50))
        elif op == "zero":
            end = pos + draw(st.integers(1, 512))
            data[pos:end] = bytes(len(data[pos:end]))
    return bytes(data)


def parse_bytes(data: bytes, name: str) -> ParsedDocument | PercolateError:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return parse_file(path, ParseOptions.from_settings(SETTINGS), LIMITS, name, SETTINGS)
        except PercolateError as exc:  # anything else propagates and fails the test
            outcome: PercolateError = exc
    assert outcome.message, f"{type(outcome).__name__} without a message"
    return outcome


def fuzz(seed_name: str, examples: int) -> None:
    seed = (SAMPLES / seed_name).read_bytes()

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same inputs on every run: CI stays reproducible
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated(seed))
    def one(data: bytes) -> None:
        parse_bytes(data, seed_name)

    one()
    # The parent is unharmed: the unmodified seed still parses.
    assert isinstance(parse_bytes(seed, seed_name), ParsedDocument)


def test_fuzz_pdf() -> None:
    fuzz("sample-report.pdf", 25)


def test_fuzz_xlsx() -> None:
    fuzz("sample-budget.xlsx", 25)


@pytest.mark.slow
@pytest.mark.ocr
def test_fuzz_image() -> None:
    fuzz("scanned-note.png", 8)


@pytest.mark.slow
@pytest.mark.audio
def test_fuzz_audio() -> None:
    fuzz("speech.wav", 5)


MAGIC = [b"", b"%PDF-1.7\n", b"PK\x03\x04", b"\x89PNG\r\n\x1a\n", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"ID3\x03"]


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    st.sampled_from(MAGIC),
    st.binary(max_size=4096),
    st.sampled_from(["x.pdf", "x.xlsx", "x.png", "x.wav", "x"]),
)
def test_fuzz_random_bytes_behind_real_magic(magic: bytes, data: bytes, name: str) -> None:
    # A real magic number gets random bytes past detection into the providers.
    parse_bytes(magic + data, name)
