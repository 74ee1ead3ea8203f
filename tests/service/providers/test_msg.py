"""Outlook MSG: headers as metadata, the body (plain, HTML, RTF), attachments and attached
messages as child documents, and hostile files contained. Messages are built here
(msg_fixtures.py); the corpus file is read too when the shared corpus is there."""

from __future__ import annotations

import datetime as dt
import random
import sys
from pathlib import Path

import compressed_rtf
import pytest

from percolate_reading.errors import CorruptDocumentError, DocumentTooLargeError, PercolateError
from percolate_reading.parse.document import BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.email import MAX_ATTACHMENT_DEPTH, MAX_PARTS
from percolate_reading.parse.sandbox import SandboxLimits
from tests.harness.documents import make_docx

from .msg_fixtures import Attached, Message, Recipient, compound_file, msg_bytes

OPTS = ParseOptions(ocr_enabled=False)
LIMITS = SandboxLimits(memory_mb=1024, timeout_s=120, cpu_s=120)
CORPUS_MSG = Path(__file__).resolve().parents[4] / "shared/corpus/formats/fake-email-attachment.msg"
# 2024-12-02 10:00:00 UTC as a FILETIME (100 ns ticks since 1601).
SUBMITTED = int((dt.datetime(2024, 12, 2, 10) - dt.datetime(1601, 1, 1)).total_seconds()) * 10_000_000


def _parse(tmp_path: Path, msg: Message | bytes, name: str = "m.msg") -> ParsedDocument:
    path = tmp_path / name
    path.write_bytes(msg if isinstance(msg, bytes) else msg_bytes(msg))
    return parse_file(path, OPTS, None)


def _headers(doc: ParsedDocument) -> dict[str, str]:
    return {b.label or "": b.text for b in doc.blocks if b.kind is BlockKind.EMAIL_HEADER}


def _engine_notes() -> Message:
    return Message(
        subject="Engine notes",
        sender_name="Ada Lovelace",
        sender_address="ada@example.com",
        recipients=[
            Recipient("Charles Babbage", "charles@example.com"),
            Recipient("Mary Somerville", "mary@example.com", 2),
            Recipient("Auditor", "audit@example.com", 3),
        ],
        body="Plain body: see the attached notes.\n\nSecond paragraph.",
        html=b"<html><body><p>HTML body: see the attached notes.</p></body></html>",
        message_id="<engine-1@example.com>",
        submit_time=SUBMITTED,
        attachments=[
            Attached(
                "design.docx",
                make_docx("Analytical engine design"),
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            Attached("parts.csv", b"part,qty\nmill,1\nstore,2\n", "text/csv"),
            Attached(
                "Earlier reply",
                message=Message(
                    subject="Earlier reply",
                    sender_address="charles@example.com",
                    body="The store holds a thousand numbers.",
                    attachments=[Attached("table.csv", b"a,b\n1,2\n", "text/csv")],
                ),
            ),
        ],
    )


def test_msg_headers_body_and_attachments(tmp_path: Path) -> None:
    doc = _parse(tmp_path, _engine_notes())
    assert doc.doc_type is DocumentType.MSG
    assert doc.blocks[0].kind is BlockKind.TITLE
    assert doc.blocks[0].text == "Engine notes"
    headers = _headers(doc)
    assert headers == {
        "From": "Ada Lovelace <ada@example.com>",
        "To": "Charles Babbage <charles@example.com>",
        "Cc": "Mary Somerville <mary@example.com>",
        "Bcc": "Auditor <audit@example.com>",
        "Date": "Mon, 02 Dec 2024 10:00:00 +0000",
        "Subject": "Engine notes",
        "Message-ID": "<engine-1@example.com>",
    }
    assert doc.metadata["headers"] == headers
    # No table in the HTML body: the plain text one is read.
    assert doc.metadata["body_type"] == "text/plain"
    assert "Plain body: see the attached notes." in doc.text()
    assert "HTML body" not in doc.text()
    children = {c.source_name: c for c in doc.children}
    assert list(children) == ["design.docx", "parts.csv", "Earlier reply.msg"]
    assert children["design.docx"].doc_type is DocumentType.DOCX
    assert "Analytical engine design" in children["design.docx"].text()
    assert children["parts.csv"].tables[0].rows == (("part", "qty"), ("mill", "1"), ("store", "2"))
    earlier = children["Earlier reply.msg"]
    assert earlier.doc_type is DocumentType.MSG
    assert "a thousand numbers" in earlier.text()
    assert earlier.metadata["headers"]["From"] == "charles@example.com"
    # The attached message's own attachment is its child, parsed too.
    assert [c.source_name for c in earlier.children] == ["table.csv"]
    assert earlier.children[0].tables[0].rows == (("a", "b"), ("1", "2"))
    listed = doc.metadata["attachments"]
    assert [(a["name"], a["status"], a["doc_type"]) for a in listed] == [
        ("design.docx", "parsed", "docx"),
        ("parts.csv", "parsed", "csv"),
        ("Earlier reply.msg", "parsed", "msg"),
    ]
    assert listed[1]["size"] == len(b"part,qty\nmill,1\nstore,2\n")
    assert listed[2]["size"] > 0


def test_msg_in_the_sandbox(tmp_path: Path) -> None:
    path = tmp_path / "notes.msg"
    path.write_bytes(msg_bytes(_engine_notes()))
    doc = parse_file(path, OPTS, LIMITS)
    assert doc.metadata["headers"]["Subject"] == "Engine notes"
    assert [c.source_name for c in doc.children] == ["design.docx", "parts.csv", "Earlier reply.msg"]


def test_transport_headers_win_and_encoded_words_are_decoded(tmp_path: Path) -> None:
    transport = (
        "From: =?utf-8?q?J=C3=BCrgen_Gro=C3=9F?= <jg@example.com>\r\n"
        "To: team@example.com,\r\n ops@example.com\r\n"
        "Date: Tue, 03 Dec 2024 08:30:00 +0100\r\n"
        "Subject: =?utf-8?q?Bericht_=C3=BCber_M=C3=A4rz?=\r\n"
        "Message-ID: <report-7@example.com>\r\n\r\n"
    )
    msg = Message(
        subject="Bericht über März",
        sender_name="Someone Else",
        sender_address="other@example.com",
        recipients=[Recipient("Not Shown", "hidden@example.com")],
        transport_headers=transport,
        body="Die Zahlen für März.",
    )
    headers = _headers(_parse(tmp_path, msg))
    assert headers["From"] == "Jürgen Groß <jg@example.com>"
    assert headers["To"] == "team@example.com, ops@example.com"
    assert headers["Date"] == "Tue, 03 Dec 2024 08:30:00 +0100"
    assert headers["Subject"] == "Bericht über März"
    assert headers["Message-ID"] == "<report-7@example.com>"


def test_eight_bit_strings_in_the_message_code_page(tmp_path: Path) -> None:
    msg = Message(
        subject="Отчёт за март",
        sender_name="Иван Петров",
        sender_address="ivan@example.com",
        body="Цифры за март.",
        codepage=1251,
    )
    doc = _parse(tmp_path, msg)
    assert _headers(doc)["From"] == "Иван Петров <ivan@example.com>"
    assert doc.blocks[0].text == "Отчёт за март"
    assert "Цифры за март." in doc.text()


def test_html_body_with_a_table_is_read(tmp_path: Path) -> None:
    html = (
        "<html><head><meta charset='utf-8'></head><body><p>Quarterly figures — see below.</p>"
        "<table><tr><th>Quarter</th><th>Revenue</th></tr><tr><td>Q1</td><td>10</td></tr></table>"
        "</body></html>"
    ).encode()
    doc = _parse(tmp_path, Message(subject="Figures", body="Quarterly figures", html=html))
    assert doc.metadata["body_type"] == "text/html"
    assert "Quarterly figures — see below." in doc.text()
    assert [t.rows for t in doc.tables] == [(("Quarter", "Revenue"), ("Q1", "10"))]


def test_rtf_only_body_is_read(tmp_path: Path) -> None:
    rtf = (
        rb"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}}\f0 First paragraph of the RTF body.\par "
        rb"Caf\'e9 closes at noon.\par}"
    )
    doc = _parse(tmp_path, Message(subject="RTF only", rtf_compressed=compressed_rtf.compress(rtf)))
    assert doc.metadata["body_type"] == "text/rtf"
    assert "First paragraph of the RTF body." in doc.text()
    assert "Café closes at noon." in doc.text()


def test_broken_rtf_body_is_a_warning(tmp_path: Path) -> None:
    doc = _parse(tmp_path, Message(subject="Bad RTF", rtf_compressed=b"\x10" * 40))
    assert doc.blocks[0].text == "Bad RTF"
    assert any("RTF body" in w for w in doc.warnings)


def test_bad_attachment_is_listed_not_fatal(tmp_path: Path) -> None:
    msg = Message(
        subject="Broken",
        body="Body stays.",
        attachments=[Attached("x.docx", b"PK\x03\x04 broken zip", "application/zip")],
    )
    doc = _parse(tmp_path, msg)
    assert "Body stays." in doc.text()
    assert doc.metadata["attachments"][0]["status"] == "failed"
    assert doc.children == []


def test_attached_messages_nested_deeper_than_the_limit_are_skipped(tmp_path: Path) -> None:
    inner = Message(subject="level 10", body="deepest")
    for level in range(9, 0, -1):
        attached = [Attached(f"l{level}", message=inner)]
        inner = Message(subject=f"level {level}", body=f"body {level}", attachments=attached)
    doc = _parse(tmp_path, inner)
    chain = [doc]
    while chain[-1].children:
        chain.append(chain[-1].children[0])
    assert [d.blocks[0].text for d in chain] == [f"level {i}" for i in range(1, MAX_ATTACHMENT_DEPTH + 2)]
    assert chain[-1].metadata["attachments"][0]["status"] == "skipped"


def test_attachment_bomb_is_refused(tmp_path: Path) -> None:
    msg = Message(subject="Many", attachments=[Attached(f"{i}.txt", b"x") for i in range(MAX_PARTS + 1)])
    with pytest.raises(DocumentTooLargeError, match="attachments"):
        _parse(tmp_path, msg)


def test_degenerate_directory_tree_is_refused(tmp_path: Path) -> None:
    # Thousands of siblings in one chain: olefile walks it recursively; refused, not a crash.
    # Longer than the recursion limit, which a library imported earlier in this process may
    # have raised (celpy sets 2500): else the attachment cap would refuse it first.
    siblings = sys.getrecursionlimit() + 500
    msg = Message(subject="Chain", attachments=[Attached(f"{i}.txt", b"x") for i in range(siblings)])
    with pytest.raises(DocumentTooLargeError, match="nested too deeply"):
        _parse(tmp_path, msg_bytes(msg, balanced=False))


def test_compound_file_without_a_message_is_corrupt(tmp_path: Path) -> None:
    # Outlook-looking stream names, but no properties stream: not a message.
    data = compound_file({"__substg1.0_0037001F": "subject".encode("utf-16-le")})
    with pytest.raises(CorruptDocumentError, match="properties"):
        _parse(tmp_path, data)


def test_damaged_files_fail_cleanly(tmp_path: Path) -> None:
    """Random damage anywhere in the file: a document or one of our errors, nothing else."""
    good = msg_bytes(_engine_notes())
    rng = random.Random(15)
    outcomes = {"parsed": 0, "refused": 0}
    for i in range(120):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if i % 4 == 0:
            data = data[: rng.randrange(512, len(data))]
        try:
            _parse(tmp_path, bytes(data), f"d{i}.msg")
            outcomes["parsed"] += 1
        except PercolateError:
            outcomes["refused"] += 1
    assert outcomes["parsed"]
    assert outcomes["refused"]


@pytest.mark.skipif(not CORPUS_MSG.exists(), reason="the shared corpus is not next to this checkout")
def test_corpus_message(tmp_path: Path) -> None:
    doc = parse_file(CORPUS_MSG, OPTS, None)
    assert doc.blocks[0].text == "Fake email with attachment"
    assert _headers(doc)["From"] == '"Mallori Harrell" <mallori@unstructured.io>'
    assert "Here's the attachments!" in doc.text()
    assert [c.source_name for c in doc.children] == ["fake-attachment.txt"]
