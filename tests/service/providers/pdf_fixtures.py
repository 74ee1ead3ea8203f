"""Builders for the PDFs the PDF provider tests parse: drawn with PyMuPDF at test time.

Each builder is pure (returns the PDF bytes) and places every line explicitly, so the
tests know exactly which words sit on which line, in which font and size.
"""

from __future__ import annotations

from collections.abc import Sequence

import pymupdf

PAGE_W, PAGE_H = 595.0, 842.0  # A4 in points
MARGIN = 56.0
BODY = 11.0
REGULAR, BOLD = "helv", "hebo"


def text_width(text: str, size: float = BODY, font: str = REGULAR) -> float:
    return float(pymupdf.get_text_length(text, fontname=font, fontsize=size))


def wrap(text: str, width: float, size: float = BODY, font: str = REGULAR) -> list[str]:
    """Greedy word wrap to `width` points."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and text_width(candidate, size, font) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def put_lines(
    page: pymupdf.Page,
    x: float,
    y: float,
    lines: Sequence[str],
    size: float = BODY,
    font: str = REGULAR,
    leading: float = 1.3,
) -> float:
    """Write one line per entry with its baseline starting at `y`; return the next free y."""
    for line in lines:
        page.insert_text((x, y), line, fontsize=size, fontname=font)
        y += size * leading
    return y


def paragraph(
    page: pymupdf.Page, x: float, y: float, text: str, width: float, size: float = BODY, font: str = REGULAR
) -> float:
    """A wrapped paragraph followed by a paragraph gap; returns the next baseline."""
    y = put_lines(page, x, y, wrap(text, width, size, font), size, font)
    return y + size * 0.9


def heading(page: pymupdf.Page, x: float, y: float, text: str, size: float) -> float:
    page.insert_text((x, y), text, fontsize=size, fontname=BOLD)
    return y + size * 1.8


def ruled_table(
    page: pymupdf.Page,
    x: float,
    y: float,
    rows: Sequence[Sequence[str]],
    col_widths: Sequence[float],
    row_h: float = 20.0,
    size: float = 10.0,
) -> float:
    """Draw a fully ruled grid with one text line per cell; returns the y below the table."""
    total_w = sum(col_widths)
    shape = page.new_shape()
    for r in range(len(rows) + 1):
        shape.draw_line((x, y + r * row_h), (x + total_w, y + r * row_h))
    cx = x
    for w in [0.0, *col_widths]:
        cx += w
        shape.draw_line((cx, y), (cx, y + len(rows) * row_h))
    shape.finish(color=(0, 0, 0), width=0.8)
    shape.commit()
    for r, row in enumerate(rows):
        cx = x
        for c, cell in enumerate(row):
            font = BOLD if r == 0 else REGULAR
            page.insert_text((cx + 4, y + r * row_h + row_h * 0.68), cell, fontsize=size, fontname=font)
            cx += col_widths[c]
    return y + len(rows) * row_h + 24


# --- document builders -----------------------------------------------------------------

INTRO = (
    "Widgets are small devices that make ordinary machines work better. This report "
    "describes how the widget programme performed during the year and what we learned."
)
HYPHEN_LINES = ("The results were extra-", "ordinary in every region we measured.")
METHODS = (
    "We counted every widget shipped from each factory and compared the totals with the "
    "orders recorded by the sales team."
)
NUMBERED = ("Collect the shipping records.", "Match them against the orders.", "Publish the totals.")
BULLETS = ("Red widgets sold best.", "Blue widgets were steady.")
NESTED_BULLET = "Navy widgets led the blue range."
CLOSING = "Next year the programme will expand to three new regions."


def structured_pdf() -> bytes:
    """Headings (24/16 pt bold, bold body-size), paragraphs, a hyphenated line break,
    a numbered list and a bulleted list with one nested item."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    width = PAGE_W - 2 * MARGIN
    x = MARGIN
    y = 80.0
    y = heading(page, x, y, "Annual Widget Report", 24)
    y = heading(page, x, y, "1. Introduction", 16)
    y = paragraph(page, x, y, INTRO, width)
    y = put_lines(page, x, y, HYPHEN_LINES) + BODY * 0.9
    y = heading(page, x, y, "2. Methods", 16)
    y = paragraph(page, x, y, METHODS, width)
    page.insert_text((x, y), "Key findings", fontsize=BODY, fontname=BOLD)
    y += BODY * 2.2
    for i, item in enumerate(NUMBERED, start=1):
        page.insert_text((x, y), f"{i}.", fontsize=BODY, fontname=REGULAR)
        page.insert_text((x + 18, y), item, fontsize=BODY, fontname=REGULAR)
        y += BODY * 1.5
    y += BODY
    for item in BULLETS:
        page.insert_text((x, y), "\u2022", fontsize=BODY, fontname=REGULAR)
        page.insert_text((x + 14, y), item, fontsize=BODY, fontname=REGULAR)
        y += BODY * 1.5
    page.insert_text((x + 24, y), "\u2022", fontsize=BODY, fontname=REGULAR)
    page.insert_text((x + 38, y), NESTED_BULLET, fontsize=BODY, fontname=REGULAR)
    y += BODY * 2.5
    paragraph(page, x, y, CLOSING, width)
    doc.set_metadata({"title": "Widget Report", "author": "Ada Lovelace"})
    data: bytes = doc.tobytes()
    doc.close()
    return data


LEFT_SENTENCES = tuple(
    f"Left column sentence number {n} talks about the northern valley." for n in range(1, 9)
)
RIGHT_SENTENCES = tuple(
    f"Right column sentence number {n} describes the southern coast." for n in range(1, 9)
)


def two_column_pdf() -> bytes:
    """A full-width title, then two columns of wrapped text whose lines share baselines."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    y0 = heading(page, MARGIN, 80.0, "Regional Survey", 22)
    gutter = 30.0
    col_w = (PAGE_W - 2 * MARGIN - gutter) / 2
    left_y = y0
    for sentence in LEFT_SENTENCES[:4]:
        left_y = put_lines(page, MARGIN, left_y, wrap(sentence, col_w))
    left_y += BODY
    for sentence in LEFT_SENTENCES[4:]:
        left_y = put_lines(page, MARGIN, left_y, wrap(sentence, col_w))
    rx = MARGIN + col_w + gutter
    right_y = y0
    for sentence in RIGHT_SENTENCES[:5]:
        right_y = put_lines(page, rx, right_y, wrap(sentence, col_w))
    right_y += BODY
    for sentence in RIGHT_SENTENCES[5:]:
        right_y = put_lines(page, rx, right_y, wrap(sentence, col_w))
    paragraph(page, MARGIN, max(left_y, right_y) + 20, CLOSING, PAGE_W - 2 * MARGIN)
    data: bytes = doc.tobytes()
    doc.close()
    return data


TABLE_ROWS = (
    ("Region", "Units", "Revenue"),
    ("North", "1200", "$4,800"),
    ("South", "950", "$3,610"),
    ("East", "1430", "$5,720"),
    ("West", "610", "$2,440"),
)
TABLE_BEFORE = "The table below lists units and revenue per region."
TABLE_AFTER = "All regions grew compared with the previous year."


def ruled_table_pdf(rows: Sequence[Sequence[str]] = TABLE_ROWS) -> bytes:
    """A paragraph, a fully ruled table, a paragraph."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    width = PAGE_W - 2 * MARGIN
    y = paragraph(page, MARGIN, 80.0, TABLE_BEFORE, width)
    n_cols = max(len(r) for r in rows)
    y = ruled_table(page, MARGIN, y, rows, [width / n_cols] * n_cols)
    paragraph(page, MARGIN, y + 10, TABLE_AFTER, width)
    data: bytes = doc.tobytes()
    doc.close()
    return data


HEADER_TEXT = "ACME Corporation - Internal Use Only"


def body_sentence(page_no: int) -> str:
    return f"Body text of page {page_no} explains one unique finding about widgets."


def header_footer_pdf(pages: int = 5) -> bytes:
    """Every page has the same header line and a 'Page N of M' footer around unique body text."""
    doc = pymupdf.open()
    for n in range(1, pages + 1):
        page = doc.new_page(width=PAGE_W, height=PAGE_H)
        page.insert_text((MARGIN, 36), HEADER_TEXT, fontsize=9, fontname=REGULAR)
        page.insert_text((PAGE_W / 2 - 30, PAGE_H - 30), f"Page {n} of {pages}", fontsize=9)
        paragraph(page, MARGIN, 120, body_sentence(n) + " " + INTRO, PAGE_W - 2 * MARGIN)
    data: bytes = doc.tobytes()
    doc.close()
    return data


SCANNED_TEXT = "SCANNED INVOICE TOTAL"


def scanned_pdf() -> bytes:
    """Page 1 has a text layer; page 2 is only a picture of large printed text."""
    src = pymupdf.open()
    art = src.new_page(width=PAGE_W, height=PAGE_H / 3)
    art.insert_text((40, 120), SCANNED_TEXT, fontsize=36, fontname=BOLD)
    picture = art.get_pixmap(dpi=150).tobytes("png")
    src.close()

    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    paragraph(page, MARGIN, 80, INTRO, PAGE_W - 2 * MARGIN)
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    page.insert_image(pymupdf.Rect(0, 0, PAGE_W, PAGE_H / 3), stream=picture)
    data: bytes = doc.tobytes()
    doc.close()
    return data


def encrypted_pdf(password: str) -> bytes:
    doc = pymupdf.open("pdf", structured_pdf())
    data: bytes = doc.tobytes(
        encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password, owner_pw=password + "-owner"
    )
    doc.close()
    return data


def many_pages_pdf(pages: int) -> bytes:
    doc = pymupdf.open()
    for n in range(1, pages + 1):
        page = doc.new_page(width=PAGE_W, height=PAGE_H)
        page.insert_text((MARGIN, 140), body_sentence(n), fontsize=BODY)
    data: bytes = doc.tobytes()
    doc.close()
    return data


WIDE_BULLETS = ("Bring the signed forms.", "Bring a photo ID.", "Arrive ten minutes early.")


def unruled_table_pdf() -> bytes:
    """A table laid out only by column gaps (no rules), then a list whose bullets sit far
    from their text (wide gaps that must not read as table cells)."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    width = PAGE_W - 2 * MARGIN
    y = paragraph(page, MARGIN, 80.0, TABLE_BEFORE, width)
    for r, row in enumerate(TABLE_ROWS):
        for c, cell in enumerate(row):
            font = BOLD if r == 0 else REGULAR
            page.insert_text((MARGIN + c * 130, y + 6 + r * 16), cell, fontsize=10, fontname=font)
    y += len(TABLE_ROWS) * 16 + 24
    y = paragraph(page, MARGIN, y, TABLE_AFTER, width)
    for item in WIDE_BULLETS:
        page.insert_text((MARGIN, y), "\u2022", fontsize=BODY)
        page.insert_text((MARGIN + 36, y), item, fontsize=BODY)
        y += BODY * 1.5
    data: bytes = doc.tobytes()
    doc.close()
    return data


def three_column_pdf() -> bytes:
    """A wide title, three columns (heading, paragraphs; bullets in the third) and a full-width
    ruled table below them. The title is just narrow enough to look like a column block."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    y = heading(page, MARGIN, 80.0, "Three Column Newsletter", 22)
    gutter = 20.0
    col_w = (PAGE_W - 2 * MARGIN - 2 * gutter) / 3
    for c in range(3):
        x = MARGIN + c * (col_w + gutter)
        yy = heading(page, x, y, f"Section {c + 1}", 14)
        for k in range(3):
            yy = paragraph(page, x, yy, column_paragraph(c + 1, k + 1), col_w)
        if c == 2:
            for i in range(3):
                page.insert_text((x, yy), "\u2022", fontsize=BODY)
                page.insert_text((x + 12, yy), f"point {i + 1}", fontsize=BODY)
                yy += BODY * 1.4
    ruled_table(page, MARGIN, 520.0, TABLE_ROWS, [(PAGE_W - 2 * MARGIN) / 3] * 3)
    data: bytes = doc.tobytes()
    doc.close()
    return data


def column_paragraph(col: int, k: int) -> str:
    return f"Column {col} paragraph {k} has some words about topic {col} and more words to wrap."


def blank_pdf(pages: int) -> bytes:
    doc = pymupdf.open()
    for _ in range(pages):
        doc.new_page(width=PAGE_W, height=PAGE_H)
    data: bytes = doc.tobytes()
    doc.close()
    return data


BOOKTABS_NOTE = "(incl. islands)"
BOOKTABS_HEADER_NOTE = "(sales area)"


def booktabs_table_pdf() -> bytes:
    """A table with horizontal rules only (top, under the header, bottom): a header cell on
    two lines, a body cell on two lines, and a running header and footer rule of the same
    width far apart."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    width = PAGE_W - 2 * MARGIN
    shape = page.new_shape()
    for y in (50.0, PAGE_H - 50):  # decoration rules: not a table band
        shape.draw_line((MARGIN, y), (MARGIN + width, y))
    y = paragraph(page, MARGIN, 90.0, TABLE_BEFORE, width)
    top = y
    rows_y = []
    ry = top + 16
    for r in range(len(TABLE_ROWS)):
        rows_y.append(ry)
        ry += 30 if r in (0, 1) else 18
    bottom = ry - 8
    for rule_y in (top, rows_y[0] + 18, bottom):
        shape.draw_line((MARGIN, rule_y), (MARGIN + width, rule_y))
    shape.finish(color=(0, 0, 0), width=0.8)
    shape.commit()
    for r, row in enumerate(TABLE_ROWS):
        for c, cell in enumerate(row):
            font = BOLD if r == 0 else REGULAR
            page.insert_text((MARGIN + 4 + c * 160, rows_y[r]), cell, fontsize=10, fontname=font)
    page.insert_text((MARGIN + 4, rows_y[0] + 12), BOOKTABS_HEADER_NOTE, fontsize=10, fontname=BOLD)
    page.insert_text((MARGIN + 4, rows_y[1] + 12), BOOKTABS_NOTE, fontsize=10)
    paragraph(page, MARGIN, bottom + 30, TABLE_AFTER, width)
    data: bytes = doc.tobytes()
    doc.close()
    return data


STAMP_TEXT = "EXHIBIT 7"


def stamped_scan_pdf() -> bytes:
    """One page: a full-page picture of printed text with a small text-layer stamp on top."""
    src = pymupdf.open()
    art = src.new_page(width=PAGE_W, height=PAGE_H)
    art.insert_text((40, 200), SCANNED_TEXT, fontsize=36, fontname=BOLD)
    picture = art.get_pixmap(dpi=100).tobytes("png")
    src.close()

    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    page.insert_image(page.rect, stream=picture)
    page.insert_text((PAGE_W - 140, PAGE_H - 120), STAMP_TEXT, fontsize=14, fontname=BOLD)
    data: bytes = doc.tobytes()
    doc.close()
    return data


BOOKTABS_TABLES = (
    (
        "Table 1: Accuracy and latency of the encoder models on the held-out evaluation set, "
        "averaged over five runs of training.",
        (("Model", "Params", "Accuracy", "Latency"),),
        (
            ("BERT-base", "110M", "84.6", "12.1"),
            ("RoBERTa-large", "355M", "90.2", "30.5"),
            ("DistilBERT", "66M", "82.2", "6.4"),
            ("TinyBERT", "14.5M", "79.4", "2.9"),
        ),
    ),
    (
        "Table 2: Dataset sizes in thousands of examples for the three question answering benchmarks.",
        (("Dataset", "Train", "Dev", "Test"), ("", "(k)", "(k)", "(k)")),
        (("SQuAD", "87.6", "10.6", "9.5"), ("NQ", "79.2", "8.8", "3.6"), ("TriviaQA", "78.8", "8.8", "11.3")),
    ),
)
BOOKTABS_WIDTHS = (160.0, 100.0, 110.0, 110.0)


def booktabs_paper_table(
    page: pymupdf.Page,
    y: float,
    caption: str,
    header: Sequence[Sequence[str]],
    rows: Sequence[Sequence[str]],
    size: float = 9.0,
) -> float:
    """A paper-style table: caption above, a heavy top rule, header rows (bold), a light
    mid rule, tightly spaced body rows, a heavy bottom rule; no vertical rules."""
    x = MARGIN
    total = sum(BOOKTABS_WIDTHS)
    for line in wrap(caption, total, size):
        page.insert_text((x, y), line, fontsize=size)
        y += size * 1.25
    y += 4
    rules = [(y, 1.0)]
    y += size * 1.4
    for cells, font in [*((h, BOLD) for h in header), *((r, REGULAR) for r in rows)]:
        if font == REGULAR and len(rules) == 1:
            rules.append((y - size * 0.6, 0.5))
            y += size * 0.8
        cx = x
        for c, cell in enumerate(cells):
            page.insert_text((cx + 2, y), cell, fontsize=size, fontname=font)
            cx += BOOKTABS_WIDTHS[c]
        y += size * 1.2
    rules.append((y - size * 0.6, 1.0))
    shape = page.new_shape()
    for rule_y, width in rules:
        shape.draw_line((x, rule_y), (x + total, rule_y))
        shape.finish(color=(0, 0, 0), width=width)
    shape.commit()
    return y + 14


def booktabs_paper_pdf() -> bytes:
    """A paper page: body text, two booktabs tables stacked with their captions between
    them, body text after."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    width = PAGE_W - 2 * MARGIN
    y = paragraph(page, MARGIN, 70, " ".join((INTRO, METHODS, INTRO)), width, size=10)
    for caption, header, rows in BOOKTABS_TABLES:
        y = booktabs_paper_table(page, y, caption, header, rows)
    paragraph(page, MARGIN, y + 6, " ".join((CLOSING, INTRO)), width, size=10)
    data: bytes = doc.tobytes()
    doc.close()
    return data
