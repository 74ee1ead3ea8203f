"""OCR parses at once: each with the libraries' own thread pools, or with its CPU share.

onnxruntime (RapidOCR) and OpenCV size their thread pools to the machine's cores, and
onnxruntime's threads spin while they wait. A worker runs `WORKER_CONCURRENCY` parses at once
(2 by default), so every parse with its own full-size pool means more busy threads than
cores. Since the CPU share (parse/cpus.py), each sandboxed parse gets the CPUs the process
may use divided by the parses at once.

For 1 and for N (the cores) parses at once, this parses the same scanned PDFs (each in its
sandboxed child, as the worker does) with `threads=0` (the libraries' defaults: the
baseline, as before the share) and with the share, and prints pages per minute and the
ratio. The OCR text of every run is checked to be the same.

    python bench/ocr_threads.py [--pages 4] [--dpi 150] [--files-per-slot 2]

Report to stdout and bench/results/ocr_threads.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.support import RESULTS, publish  # noqa: E402
from tests.harness.documents import scanned_pages_pdf  # noqa: E402

from percolate_reading.config import load_settings  # noqa: E402
from percolate_reading.parse.cpus import available_cpus, threads_per_parse  # noqa: E402
from percolate_reading.parse.parsing import parse_file  # noqa: E402
from percolate_reading.parse.providers.base import ParseOptions  # noqa: E402
from percolate_reading.parse.sandbox import SandboxLimits  # noqa: E402


def run(files: list[Path], at_once: int, threads: int) -> tuple[float, list[str]]:
    """Parse `files`, `at_once` at a time, each child with `threads` (0: defaults);
    (seconds, each file's text)."""
    settings = load_settings(parse_timeout_s=1800)
    limits = dataclasses.replace(SandboxLimits.from_settings(settings), threads=threads)
    options = ParseOptions.from_settings(settings)

    def one(path: Path) -> str:
        doc = parse_file(path, options, limits, path.name)
        return "\n".join(block.text for block in doc.blocks)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        texts = list(pool.map(one, files))
    return time.perf_counter() - t0, texts


def main(args: argparse.Namespace) -> str:
    cpus = available_cpus()
    cores = max(1, int(cpus))
    rows: list[tuple[int, str, int, float, float]] = []
    reference: list[str] | None = None
    same = True
    with tempfile.TemporaryDirectory(prefix="ocr-threads-") as tmp:
        # Untimed: starts the forkserver and fills the page cache with the models.
        warm = Path(tmp) / "warm-up.pdf"
        warm.write_bytes(scanned_pages_pdf(1, args.dpi))
        run([warm], 1, 0)
        for at_once in sorted({1, cores}):
            files = []
            for i in range(at_once * args.files_per_slot):
                path = Path(tmp) / f"scan-{at_once}-{i}.pdf"
                path.write_bytes(scanned_pages_pdf(args.pages, args.dpi))
                files.append(path)
            pages = len(files) * args.pages
            share = threads_per_parse(0, at_once)
            for label, threads in (("libraries' defaults", 0), (f"CPU share ({share})", share)):
                seconds, texts = run(files, at_once, threads)
                reference = reference or texts[:1]
                same = same and all(text == reference[0] for text in texts)
                rows.append((at_once, label, pages, seconds, pages / seconds * 60))
                print(f"{at_once} at once, {label}: {seconds:.1f} s", flush=True)
    load = os.getloadavg()
    lines = [
        f"# OCR parses at once: the libraries' thread pools vs each parse's CPU share ({args.dpi} dpi)",
        "",
        f"Machine: {os.cpu_count()} cores, {cpus:g} available to this process; load average at the "
        f"end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}. Each file: {args.pages} scanned pages, "
        "parsed in its own sandboxed child. Baseline: the same parses at once with the libraries' "
        "default threads.",
        "",
        "| parses at once | threads per parse | pages | seconds | pages/min | vs baseline |",
        "|---:|:---|---:|---:|---:|---:|",
    ]
    for i, (at_once, label, pages, seconds, rate) in enumerate(rows):
        base_rate = rows[i - i % 2][4]
        lines.append(
            f"| {at_once} | {label} | {pages} | {seconds:.1f} | {rate:.1f} | {rate / base_rate:.2f}x |"
        )
    lines += ["", f"OCR text identical across every run: {'yes' if same else 'NO'}."]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--files-per-slot", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "ocr_threads.md")
    parsed = parser.parse_args()
    publish(main(parsed), parsed.out)
