"""Builders of hostile documents (pure: parameters in, bytes out)."""

from __future__ import annotations

import io
import zipfile
import zlib


def raw_pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF from numbered object bodies (object i+1 = objects[i]) with a correct xref."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    size = len(objects) + 1
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, root, xref))
    return out.getvalue()


def _stream(data: bytes, *, flate: bool = False, extra: bytes = b"") -> bytes:
    if flate:
        data = zlib.compress(data, 9)
    head = b"<< /Length %d%s%s >>" % (len(data), b" /Filter /FlateDecode" if flate else b"", extra)
    return head + b"\nstream\n" + data + b"\nendstream"


def _page_pdf(content: bytes, *, flate: bool = False) -> bytes:
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            _stream(content, flate=flate),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def pdf_flate_bomb(expanded_mb: int = 512) -> bytes:
    """One page whose content stream inflates to `expanded_mb` MiB of text-drawing operators."""
    op = b"BT /F1 1 Tf 10 10 Td (AAAAAAAAAAAAAAAA) Tj ET\n"
    unit = op * (1024 * 1024 // len(op))
    comp = zlib.compressobj(9)
    parts = [comp.compress(unit) for _ in range(expanded_mb)]
    data = b"".join(parts) + comp.flush()
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def pdf_deep_nesting(depth: int = 200_000) -> bytes:
    """Graphics states saved `depth` times and an array nested `depth` deep."""
    content = b"q " * depth + b"BT /F1 12 Tf 72 700 Td (deep) Tj ET " + b"Q " * depth
    pdf = _page_pdf(content)
    nested = b"[" * depth + b"]" * depth
    return pdf.replace(b"/Type /Catalog", b"/Type /Catalog /Deep " + nested, 1)


def pdf_page_tree_loop() -> bytes:
    """A page tree whose node lists itself (and its parent) as kids."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 1000000 >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R 3 0 R] /Count 1000000 >>",
        ]
    )


def pdf_reference_loop() -> bytes:
    """Objects that refer to each other in a ring, a Length that is a loop, and a form
    XObject that draws itself."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /Next 6 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /XObject << /X1 5 0 R >> >> >>",
            b"<< /Length 4 0 R >>\nstream\n/X1 Do\nendstream",
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 10 10] /Length 6"
            b" /Resources << /XObject << /X1 5 0 R >> >> >>\nstream\n/X1 Do\nendstream",
            b"7 0 R",
            b"6 0 R",
        ]
    )


def _xlsx_parts(sheet_xml: bytes, workbook_xml: bytes | None = None) -> dict[str, bytes]:
    ct = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        b'<Default Extension="xml" ContentType="application/xml"/>'
        b'<Override PartName="/xl/workbook.xml" '
        b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        b'<Override PartName="/xl/worksheets/sheet1.xml" '
        b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        b"</Types>"
    )
    rels = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        b'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    )
    wb = workbook_xml or (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        b'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        b'<sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    wb_rels = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        b'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
    )
    return {
        "[Content_Types].xml": ct,
        "_rels/.rels": rels,
        "xl/workbook.xml": wb,
        "xl/_rels/workbook.xml.rels": wb_rels,
        "xl/worksheets/sheet1.xml": sheet_xml,
    }


def _zip(parts: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _sheet(rows: bytes, prolog: bytes = b"") -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        + prolog
        + b'<worksheet xmlns="http://schemas.openxmlformats.org/'
        b'spreadsheetml/2006/main"><sheetData>' + rows + b"</sheetData></worksheet>"
    )


def xlsx_zip_bomb(expanded_mb: int = 256) -> bytes:
    """A workbook whose sheet inflates to `expanded_mb` MiB of whitespace."""
    sheet = _sheet(b" " * (expanded_mb * 1024 * 1024))
    return _zip(_xlsx_parts(sheet))


def xlsx_billion_laughs() -> bytes:
    """The classic entity expansion in a sheet's DTD, used in a cell."""
    lol = [b'<!ENTITY lol0 "lol">']
    for i in range(1, 10):
        lol.append(b'<!ENTITY lol%d "%s">' % (i, b"".join(b"&lol%d;" % (i - 1) for _ in range(10))))
    prolog = b"<!DOCTYPE worksheet [" + b"".join(lol) + b"]>"
    rows = b'<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row>'
    return _zip(_xlsx_parts(_sheet(rows, prolog)))


def xlsx_external_entity() -> bytes:
    """An XXE: a cell that would include /etc/passwd."""
    prolog = b'<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    rows = b'<row r="1"><c r="A1" t="inlineStr"><is><t>&xxe;</t></is></c></row>'
    return _zip(_xlsx_parts(_sheet(rows, prolog)))
