"""Elements -> `structured.html`: a plain, semantic HTML rendering (headings, lists, tables
with their spans, figures with captions, code), for people and for HTML-first pipelines."""

from __future__ import annotations

import html
from typing import Any

from percolate_reading.parse.document import ParsedDocument


def to_html(doc: ParsedDocument, elements: list[dict[str, Any]]) -> str:
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(doc.source_name)}</title></head><body>",
    ]
    open_lists: list[str] = []

    def close_lists(depth: int) -> None:
        while len(open_lists) > depth:
            out.append(f"</{open_lists.pop()}>")

    for e in elements:
        kind = e["type"]
        if kind != "list_item":
            close_lists(0)
        text = esc(e["text"]).replace("\n", "<br>")
        if kind == "title":
            out.append(f"<h1>{text}</h1>")
        elif kind == "heading":
            out.append(f"<h{e['level']}>{text}</h{e['level']}>")
        elif kind == "list_item":
            depth = e["depth"] + 1
            close_lists(depth)
            while len(open_lists) < depth:
                tag = "ol" if e["ordered"] else "ul"
                open_lists.append(tag)
                out.append(f"<{tag}>")
            out.append(f"<li>{text}</li>")
        elif kind == "table":
            out.append(e["table"]["html"])
        elif kind == "figure":
            caption = f"<figcaption>{esc(e['caption'])}</figcaption>" if e.get("caption") else ""
            out.append(f"<figure><p>{text}</p>{caption}</figure>")
        elif kind == "code":
            lang = f' class="language-{esc(e["language"])}"' if e.get("language") else ""
            out.append(f"<pre><code{lang}>{esc(e['text'])}</code></pre>")
        elif kind == "formula":
            out.append(f'<p class="formula">{text}</p>')
        elif kind in ("page_header", "page_footer"):
            out.append(f'<aside class="{kind}">{text}</aside>')
        elif kind == "email_header":
            out.append(f"<p><strong>{esc(e['name'] or '')}:</strong> {esc(e['value'])}</p>")
        else:
            out.append(f"<p>{text}</p>")
    close_lists(0)
    out.append("</body></html>")
    return "\n".join(out) + "\n"
