"""HTML, plain text, Markdown, CSV/TSV and RTF providers, on documents written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from percolate_reading.errors import DocumentTooLargeError
from percolate_reading.parse.document import BlockKind, DocumentType
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.html import HtmlProvider
from percolate_reading.parse.render.markdown import to_markdown

OPTS = ParseOptions(ocr_enabled=False)

PAGE = """<!DOCTYPE html>
<html lang="fr"><head><meta charset="{charset}"><title>Prix du café</title>
<style>body {{ color: red }}</style><script>var tracking = "SECRET-SCRIPT";</script></head>
<body>
<nav><a href="/">Accueil</a> <a href="/menu">NAVIGATION-LINK</a></nav>
<header><p>SITE-BANNER</p></header>
<main>
<h1>Prix du café</h1>
<p>Le café coûte <b>plus cher</b> cette année.</p>
<ul><li>Arabica<ul><li>Éthiopie</li></ul></li><li>Robusta</li></ul>
<table><thead><tr><th>Pays</th><th>Prix</th></tr></thead>
<tbody><tr><td>Brésil</td><td>4,10 €</td></tr><tr><td colspan="2">Total partiel</td></tr></tbody></table>
<pre><code class="language-python">print("naïve")</code></pre>
<figure><img src="chart.png" alt="Courbe des prix"><figcaption>Figure 1 : évolution</figcaption></figure>
</main>
<footer>FOOTER-COPYRIGHT</footer>
</body></html>
"""


@pytest.mark.parametrize(
    ("charset", "codec"), [("utf-8", "utf-8"), ("windows-1252", "cp1252"), ("utf-16", "utf-16")]
)
def test_html_structure_and_encodings(tmp_path: Path, charset: str, codec: str) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(PAGE.format(charset=charset).encode(codec))
    doc = parse_file(path, OPTS, None)
    assert doc.doc_type is DocumentType.HTML
    text = doc.text()
    for boilerplate in ("SECRET-SCRIPT", "NAVIGATION-LINK", "SITE-BANNER", "FOOTER-COPYRIGHT", "color: red"):
        assert boilerplate not in text
    assert [b.text for b in doc.blocks if b.kind is BlockKind.HEADING] == ["Prix du café"]
    assert "Le café coûte plus cher cette année." in text
    items = [(b.text, b.level) for b in doc.blocks if b.kind is BlockKind.LIST_ITEM]
    assert items == [("Arabica", 0), ("Éthiopie", 1), ("Robusta", 0)]
    table = doc.tables[0]
    assert table.rows == (("Pays", "Prix"), ("Brésil", "4,10 €"), ("Total partiel", "Total partiel"))
    assert table.header_rows == 1
    assert table.spans == ((2, 0, 1, 2),)
    code = next(b for b in doc.blocks if b.kind is BlockKind.CODE)
    assert code.text == 'print("naïve")'
    assert code.language == "python"
    figure = next(b for b in doc.blocks if b.kind is BlockKind.FIGURE)
    assert (figure.text, figure.caption) == ("Courbe des prix", "Figure 1 : évolution")
    assert "```python" in to_markdown(doc)


def test_html_layout_tables_are_read_as_containers(tmp_path: Path) -> None:
    html = (
        "<html><body><table><tr><td><h2>Section</h2><p>Body text.</p>"
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
        "</td></tr></table></body></html>"
    )
    path = tmp_path / "layout.html"
    path.write_text(html)
    doc = parse_file(path, OPTS, None)
    assert [b.text for b in doc.blocks if b.kind is BlockKind.HEADING] == ["Section"]
    assert [t.rows for t in doc.tables] == [(("a", "b"), ("1", "2"))]


def test_html_over_the_size_limit_is_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.html"
    path.write_bytes(b"<html><body>" + b"<p>lorem ipsum</p>" * 2000 + b"</body></html>")
    with pytest.raises(DocumentTooLargeError, match="byte limit"):
        HtmlProvider(max_bytes=10_000).parse(path, "big.html", OPTS)


def test_html_deep_nesting_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.html"
    path.write_text(
        "<html><body>" + "<div><span>" * 900 + "deep text" + "</span></div>" * 900 + "</body></html>"
    )
    doc = parse_file(path, OPTS, None)
    assert "deep text" in doc.text()  # past the walker's recursion cap, read as flat text
    path.write_text(
        "<html><body><p>top</p>" + "<div>" * 5000 + "too deep" + "</div>" * 5000 + "</body></html>"
    )
    doc = parse_file(path, OPTS, None)
    assert "top" in doc.text()
    assert any("2048 levels" in w for w in doc.warnings)


def test_text_paragraphs_and_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("Première ligne\nsuite\n\n\nDeuxième paragraphe \u2013 fin\n".encode("cp1252"))
    doc = parse_file(path, OPTS, None)
    assert doc.doc_type is DocumentType.TEXT
    assert [b.text for b in doc.blocks] == ["Première ligne\nsuite", "Deuxième paragraphe \u2013 fin"]
    assert doc.metadata["encoding"] == "cp1252"


def test_markdown_structure(tmp_path: Path) -> None:
    md = (
        "---\ntitle: Guide\n---\n# Guide\n\nIntro with [a link](https://example.com).\n\n"
        "1. First\n2. Second\n   - nested bullet\n\n"
        "| Name | Qty |\n|------|-----|\n| fig  | 3   |\n\n"
        "```bash\nmake test\n```\n\n![Diagram](d.png)\n"
    )
    path = tmp_path / "guide.md"
    path.write_text(md)
    doc = parse_file(path, OPTS, None)
    assert doc.doc_type is DocumentType.MARKDOWN
    assert [(b.text, b.level) for b in doc.blocks if b.kind is BlockKind.HEADING] == [("Guide", 1)]
    items = [(b.text, b.level, b.ordered) for b in doc.blocks if b.kind is BlockKind.LIST_ITEM]
    assert items == [("First", 0, True), ("Second", 0, True), ("nested bullet", 1, False)]
    assert doc.tables[0].rows == (("Name", "Qty"), ("fig", "3"))
    codes = [(b.text, b.language) for b in doc.blocks if b.kind is BlockKind.CODE]
    assert ("make test", "bash") in codes
    assert ("title: Guide", "yaml") in codes
    assert any(b.kind is BlockKind.FIGURE and b.text == "Diagram" for b in doc.blocks)
    assert "Intro with a link." in doc.text()


@pytest.mark.parametrize(
    ("name", "content", "delimiter"),
    [
        ("a.csv", 'name,city,count\nAda,"London, UK",3\nBob,Paris,4\n', "comma"),
        ("a.tsv", "name\tcity\tcount\nAda\tLondon, UK\t3\nBob\tParis\t4\n", "tab"),
        ("a.csv", "name;city;count\nAda;London, UK;3\nBob;Paris;4\n", "semicolon"),
    ],
)
def test_csv_delimiter_sniffed(tmp_path: Path, name: str, content: str, delimiter: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    doc = parse_file(path, OPTS, None)
    assert doc.doc_type is DocumentType.CSV
    assert doc.metadata["delimiter"] == delimiter
    table = doc.tables[0]
    assert table.rows == (("name", "city", "count"), ("Ada", "London, UK", "3"), ("Bob", "Paris", "4"))
    assert table.header_rows == 1


def test_csv_title_row(tmp_path: Path) -> None:
    path = tmp_path / "cups.tsv"
    path.write_text("Stanley Cups\t\t\nTeam\tLocation\tCups\nBlues\tSTL\t1\nFlyers\tPHI\t2\n")
    table = parse_file(path, OPTS, None).tables[0]
    assert table.title == "Stanley Cups"
    assert table.rows[0] == ("Team", "Location", "Cups")


RTF = rb"""{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Times;}}{\colortbl;\red0\green0\blue0;}
{\info{\title SECRET-INFO}}
{\pard\outlinelevel0\b\fs36 Annual summary\par}
{\pard Caf\'e9 revenue rose\~by 5\u8364?.\par}
{\*\generator HIDDEN-GENERATOR;}
{\trowd\cellx3000\cellx6000
\pard\intbl Region\cell Sales\cell\row
\pard\intbl North\cell 10\cell\row}
\pard Closing line\par
}"""


def test_rtf_structure(tmp_path: Path) -> None:
    path = tmp_path / "r.rtf"
    path.write_bytes(RTF)
    doc = parse_file(path, OPTS, None)
    assert doc.doc_type is DocumentType.RTF
    assert [(b.text, b.level) for b in doc.blocks if b.kind is BlockKind.HEADING] == [("Annual summary", 1)]
    text = doc.text()
    assert "Café revenue rose\u00a0by 5€." in text
    assert "SECRET-INFO" not in text
    assert "HIDDEN-GENERATOR" not in text
    assert "Times" not in text
    assert doc.tables[0].rows == (("Region", "Sales"), ("North", "10"))
    assert doc.blocks[-1].text == "Closing line"


def test_rtf_brace_bomb_is_linear(tmp_path: Path) -> None:
    path = tmp_path / "deep.rtf"
    path.write_bytes(b"{\\rtf1 " + b"{" * 200_000 + b"inner" + b"}" * 200_000 + b"}")
    doc = parse_file(path, OPTS, None)
    assert doc.text() == "inner"
