"""Formats benchmark: per format, text recall against a plain-text extraction and speed
against markitdown and unstructured, all on the same files in one run.

    .venv/bin/python bench/formats_bench.py [--corpus ../shared/corpus/formats] \
        [--out bench/results/formats.md]

Recall: the share of the baseline's word tokens (a multiset, lower-cased) that our output
contains. The baseline is a deliberately plain extraction made without our code: every
text node of the format's XML parts, the decoded text of text formats, the cells calamine
reads, the MIME text parts, an Outlook message's string streams, an RTF control-word strip.
Speed: the median of `--repeat` in-process parses (no sandbox) per tool; ratios are the
other tool's time over ours.
A generated long DOCX (`--docx-pages`, ~40 paragraphs a page) checks the 800-page goal.
"""

from __future__ import annotations

import argparse
import collections
import email
import email.policy
import re
import statistics
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "service"))

from percolate_reading.parse.detect import detect_type  # noqa: E402
from percolate_reading.parse.parsing import parse_file  # noqa: E402
from percolate_reading.parse.providers.base import ParseOptions  # noqa: E402
from percolate_reading.parse.render.markdown import to_markdown  # noqa: E402

WORD = re.compile(r"\w+", re.UNICODE)
OPTIONS = ParseOptions(ocr_enabled=False)


def tokens(text: str) -> collections.Counter[str]:
    return collections.Counter(w.lower() for w in WORD.findall(text))


def recall(baseline: str, ours: str) -> float:
    want = tokens(baseline)
    have = tokens(ours)
    total = sum(want.values())
    if not total:
        return 1.0
    return sum(min(n, have[w]) for w, n in want.items()) / total


# --- plain-text baselines (no code of ours) ----------------------------------------------


def _xml_text(data: bytes, text_tags: tuple[str, ...]) -> str:
    from lxml import etree

    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, recover=True))
    return " ".join(
        el.text or ""
        for el in root.iter()
        if isinstance(el.tag, str) and el.tag.rpartition("}")[2] in text_tags
    )


def baseline_text(path: Path, kind: str) -> str:
    if kind in ("docx", "pptx", "odt", "odp", "epub"):
        parts: list[str] = []
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if (
                    kind == "docx"
                    and name.startswith("word/")
                    and name.endswith(".xml")
                    and "document" in name
                ) or (kind == "pptx" and re.match(r"ppt/(slides|notesSlides)/\w+\.xml$", name)):
                    parts.append(_xml_text(zf.read(name), ("t",)))
                elif kind in ("odt", "odp") and name == "content.xml":
                    from lxml import etree

                    root = etree.fromstring(zf.read(name))
                    body = root.find("{urn:oasis:names:tc:opendocument:xmlns:office:1.0}body")
                    parts.append(" ".join(body.itertext()) if body is not None else "")
                elif kind == "epub" and name.endswith((".xhtml", ".html")):
                    from lxml import html

                    parts.append(html.fromstring(zf.read(name)).text_content())
        return " ".join(parts)
    if kind == "html":
        from lxml import html

        root = html.fromstring(path.read_bytes())
        for bad in root.xpath("//script|//style|//nav|//noscript|//head"):
            bad.drop_tree()
        return root.text_content()
    if kind in ("text", "markdown", "csv"):
        return path.read_bytes().decode("utf-8", errors="replace")
    if kind in ("xls", "ods", "xlsx"):
        import python_calamine as pc

        wb = pc.CalamineWorkbook.from_path(str(path))
        cells: list[str] = []
        for name in wb.sheet_names:
            for row in wb.get_sheet_by_name(name).to_python():
                cells.extend(str(c) for c in row if c not in ("", None))
        return " ".join(cells)
    if kind == "eml":
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        out = [str(msg.get(h, "")) for h in ("From", "To", "Subject")]
        for part in msg.walk():
            if part.get_content_type() == "text/plain" and not part.is_attachment():
                out.append(part.get_content())
        return " ".join(out)
    if kind == "msg":
        import olefile

        # Sender name and address, display To, subject and plain body: the UTF-16 streams.
        with olefile.OleFileIO(str(path)) as ole:
            return " ".join(
                ole.openstream(f"__substg1.0_{prop}001F").read().decode("utf-16-le", "replace")
                for prop in ("0C1A", "0C1F", "0E04", "0037", "1000")
                if ole.exists(f"__substg1.0_{prop}001F")
            )
    if kind == "rtf":
        raw = path.read_bytes().decode("latin-1")
        raw = re.sub(r"\\[a-z]+-?\d* ?|[{}]", " ", raw)
        return raw
    return ""


# --- the other tools -----------------------------------------------------------------------


def _markitdown() -> Callable[[Path], str] | str:
    try:
        from markitdown import MarkItDown
    except Exception as exc:
        return f"not installed ({type(exc).__name__})"
    md = MarkItDown()
    return lambda p: str(md.convert(str(p)).text_content)


def _unstructured() -> Callable[[Path], str] | str:
    try:
        from unstructured.partition.auto import partition
    except Exception as exc:
        return f"not importable ({type(exc).__name__}: {str(exc)[:60]})"
    return lambda p: "\n".join(str(e) for e in partition(filename=str(p)))


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def make_long_docx(pages: int, folder: Path) -> Path:
    import docx

    d = docx.Document()
    for page in range(1, pages + 1):
        d.add_heading(f"Section {page}", level=2)
        for i in range(12):
            d.add_paragraph(
                f"Paragraph {i} of page {page}: the quick brown fox jumps over the lazy dog while the "
                "committee reviews the quarterly figures and drafts its recommendations."
            )
        if page % 10 == 0:
            t = d.add_table(rows=4, cols=3)
            for r in range(4):
                for c in range(3):
                    t.cell(r, c).text = f"r{r}c{c}p{page}"
    path = folder / f"long-{pages}-pages.docx"
    d.save(str(path))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "formats")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "formats.md")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--docx-pages", type=int, default=800)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    files = sorted(p for p in args.corpus.iterdir() if p.is_file()) if args.corpus.exists() else []
    tmp = Path(tempfile.mkdtemp(prefix="formats-bench-"))
    if args.docx_pages:
        files.append(make_long_docx(args.docx_pages, tmp))
    tools: dict[str, Callable[[Path], str] | str] = {
        "markitdown": _markitdown(),
        "unstructured": _unstructured(),
    }
    rows: list[str] = []
    for path in files:
        try:
            kind = detect_type(path, path.name).value
        except Exception as exc:
            rows.append(f"| {path.name} | ? | | refused: {exc} | | | |")
            continue
        ours_s, doc = timed(lambda p=path: parse_file(p, OPTIONS, None, settings=None), args.repeat)
        ours_text = to_markdown(doc) + "\n" + "\n".join(c.text() for c in doc.children)
        base = baseline_text(path, kind)
        rec = recall(base, ours_text)
        cells = [
            path.name,
            kind,
            f"{path.stat().st_size / 1024:.0f} KiB",
            f"{ours_s * 1000:.1f} ms",
            f"{rec:.1%}",
        ]
        for tool in tools.values():
            if isinstance(tool, str):
                cells.append(tool)
                continue
            try:
                other_s, _ = timed(
                    lambda p=path, t=tool: t(p), max(1, args.repeat if path.stat().st_size < 5e6 else 1)
                )
                cells.append(f"{other_s * 1000:.1f} ms ({other_s / ours_s:.1f}x)")
            except Exception as exc:
                cells.append(f"failed: {type(exc).__name__}: {str(exc)[:60]}".replace("|", "/"))
        rows.append("| " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    header = (
        "| file | type | size | percolate-reading | recall vs plain text | markitdown (time, x ours) "
        "| unstructured (time, x ours) |\n|---|---|---|---|---|---|---|"
    )
    text = (
        "# Formats benchmark\n\n"
        "Generated by `bench/formats_bench.py` (one run, same machine, same files; median of "
        f"{args.repeat} in-process parses, no sandbox). Recall: share of the word tokens of a plain "
        "text extraction (no code of ours) present in our structured.md.\n\n"
        f"{header}\n" + "\n".join(rows) + "\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
