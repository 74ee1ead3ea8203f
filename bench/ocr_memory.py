"""OCR memory: peak RSS of a process that parses one scanned page (OCR at 200 dpi), against
the same process parsing a text-layer page and the bare imports. Goal (issue 14): under
400 MB per scanned page.

    python bench/ocr_memory.py [--pages N]

The baseline, measured in the same run, is the same parse with RapidOCR's whole-page
detection and six-line recognition batches (ocr.DET_BAND_PIXELS and REC_BATCH_WIDTH lifted);
CPU seconds are the child's user + system time (all threads), steadier than wall time on a
shared machine. Each case runs in a fresh child (like the sandbox's parse child), so ru_maxrss is that
parse's own peak; the report is Markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_MB = 400.0

CHILD = """
import json, resource, sys
from pathlib import Path
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.pdf import PdfProvider
path = Path(sys.argv[1])
if sys.argv[2] == "unbounded":  # the baseline: RapidOCR's whole-page detection, 6-line batches
    from percolate_reading.parse.providers import ocr
    ocr.DET_BAND_PIXELS = ocr.REC_BATCH_WIDTH = 10**9
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
doc = None if sys.argv[2] == "imports" else PdfProvider().parse(path, path.name, ParseOptions())
usage = resource.getrusage(resource.RUSAGE_SELF)
pages = doc.metadata["pages_ocr"] if doc else 0
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps({"imports_mb": before, "peak_mb": usage.ru_maxrss / 1024, "pages_ocr": pages, "cpu_s": cpu}))
"""


def scanned_pdf(pages: int, scanned: bool) -> bytes:
    import pymupdf

    text = (
        "Quarterly report of the widget programme. Every factory shipped more units than in the "
        "previous year, and the northern region grew fastest. "
    ) * 3
    doc = pymupdf.open()
    for _ in range(pages):
        src = pymupdf.open()
        art = src.new_page(width=595, height=842)
        art.insert_textbox((56, 56, 539, 786), text * 6, fontsize=11)
        if scanned:
            png = art.get_pixmap(dpi=300, colorspace=pymupdf.csGRAY).tobytes("png")
            page = doc.new_page(width=595, height=842)
            page.insert_image(page.rect, stream=png)
        else:
            doc.insert_pdf(src)
        src.close()
    data: bytes = doc.tobytes(deflate=True)
    doc.close()
    return data


def run(path: Path, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "service"), "PATH": "/usr/bin:/bin"},
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text_pdf = Path(tmp) / "text.pdf"
        scan_pdf = Path(tmp) / "scan.pdf"
        text_pdf.write_bytes(scanned_pdf(args.pages, scanned=False))
        scan_pdf.write_bytes(scanned_pdf(args.pages, scanned=True))
        rows = [
            ("imports only", run(text_pdf, "imports")),
            (f"text-layer PDF, {args.pages} page(s)", run(text_pdf, "parse")),
            (
                f"scanned PDF, {args.pages} page(s), OCR at 200 dpi, unbounded (baseline)",
                run(scan_pdf, "unbounded"),
            ),
            (f"scanned PDF, {args.pages} page(s), OCR at 200 dpi", run(scan_pdf, "parse")),
        ]
    base = rows[-2][1]
    print("| Case | Peak RSS (MB) | vs baseline | CPU (s) | Pages OCR'd |\n|---|---:|---:|---:|---:|")
    for name, r in rows:
        ratio = f"{r['peak_mb'] / base['peak_mb']:.2f}x" if r["pages_ocr"] else ""
        print(f"| {name} | {r['peak_mb']:.0f} | {ratio} | {r['cpu_s']:.1f} | {r['pages_ocr']:.0f} |")
    peak = rows[-1][1]["peak_mb"]
    print(
        f"\nGoal: under {GOAL_MB:.0f} MB per scanned page: "
        f"{'yes' if peak < GOAL_MB else 'no'} ({peak:.0f} MB)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
