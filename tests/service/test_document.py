"""ParsedDocument crosses from the sandbox child by pickle: every field must survive."""

from __future__ import annotations

import pickle

from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table


def test_pickle_keeps_every_field() -> None:
    table = Table((("Region", "Q1"), ("North", "12")), header_rows=1, page=2, sheet="S", title="Sales")
    doc = ParsedDocument(
        source_name="r.pdf",
        doc_type=DocumentType.PDF,
        blocks=[
            Block(BlockKind.HEADING, text="Title", level=1, page=1),
            Block(BlockKind.LIST_ITEM, text="item", level=2, ordered=True, marker="3."),
            Block(BlockKind.TABLE, table=table, page=2),
            Block(BlockKind.TRANSCRIPT_SEGMENT, text="hello", start=0.5, end=1.25, speaker="A"),
            Block(BlockKind.PAGE_BREAK, page=3, sheet=None),
        ],
        metadata={"page_count": 3},
        timings={"parse_s": 0.1},
        warnings=["page 3 skipped"],
    )
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        back = pickle.loads(pickle.dumps(doc, protocol=protocol))
        assert back == doc
        assert back.blocks[2].table == table
        assert back.blocks[1].marker == "3."
        assert back.blocks[3].speaker == "A"
        assert type(back.blocks[0].kind) is BlockKind
