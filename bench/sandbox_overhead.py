"""Per-parse cost of the sandbox: the same parse in-process vs in a sandboxed child.

    python bench/sandbox_overhead.py [FILE] [N]

Prints a Markdown table (median ms over N runs, after one warm-up that starts the forkserver).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from percolate_reading.parsing import parse_file
from percolate_reading.providers.base import ParseOptions
from percolate_reading.sandbox import SandboxLimits, run_in_sandbox, warm_up

SAMPLE = (
    Path(__file__).resolve().parents[1] / "service" / "percolate_reading" / "samples" / "sample-report.pdf"
)


def _noop() -> None:
    return None


def _median_ms(fn: object, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else SAMPLE
    n = int(argv[1]) if len(argv) > 1 else 20
    limits = SandboxLimits(memory_mb=2048, timeout_s=120, cpu_s=120)
    options = ParseOptions(ocr_enabled=False)
    t0 = time.perf_counter()
    warm_up()
    start_ms = (time.perf_counter() - t0) * 1000
    parse_file(path, options, None)  # import providers in this process too
    empty = _median_ms(lambda: run_in_sandbox(_noop, limits=limits), n)
    inproc = _median_ms(lambda: parse_file(path, options, None), n)
    boxed = _median_ms(lambda: parse_file(path, options, limits), n)
    print(f"File: {path.name}, {n} runs each, median\n")
    print("| measure | ms |\n|---|---:|")
    print(f"| forkserver start (once, preloads pymupdf/openpyxl) | {start_ms:.1f} |")
    print(f"| empty sandboxed call | {empty:.1f} |")
    print(f"| parse in-process | {inproc:.1f} |")
    print(f"| parse sandboxed | {boxed:.1f} |")
    print(f"| sandbox overhead per parse | {boxed - inproc:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
