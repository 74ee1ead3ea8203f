"""The web UI in a real headless Chromium (Debian's, driven by Playwright) against a live
`serve`: enter the key, upload the samples (file picker and drag and drop), wait for the jobs,
open every preview and check what it shows, by keyboard too; at 1280x800 and phone size.
Screenshots go to out/test-artifacts/ui/.

Chromium missing: skipped on a developer's machine, a failure under CI=true (.ci/run
installs it)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.documents import REPO
from tests.service.live_serve import LiveServe, live_serve

pytestmark = pytest.mark.integration
_ = live_serve

SAMPLES = REPO / "service" / "percolate_reading" / "samples"
SCREENSHOTS = REPO / "out" / "test-artifacts" / "ui"
KEY_STORE = "percolate-reading.api-key"


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    message = "no Chromium on PATH: apt-get install chromium (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = p.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
        try:
            yield launched
        finally:
            launched.close()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def open_ui(browser: Any, serve: LiveServe, width: int, height: int, confirm: bool = True) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors
    page.goto(f"{serve.url}/ui")
    # By keyboard: the key field, type the key, Enter submits it.
    page.get_by_label("Key (kept in this tab only)").focus()
    page.keyboard.type(serve.api_key)
    page.keyboard.press("Enter")
    if confirm:
        page.get_by_text("Key set for this tab.").wait_for()
    return page


def assert_no_sideways_scroll(page: Any, width: int) -> None:
    wide = page.evaluate(
        """(width) => Array.from(document.querySelectorAll("body *"))
            .filter((e) => getComputedStyle(e).position !== "fixed")
            .filter((e) => e.getBoundingClientRect().right > width + 1)
            .map((e) => `${e.tagName}#${e.id}.${e.className}`)""",
        width,
    )
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width, wide


def expected_markdown(serve: LiveServe, job_id: str) -> str:
    headers = {"Authorization": f"Bearer {serve.api_key}"}
    r = httpx.get(f"{serve.url}/v1/jobs/{job_id}/artifacts/structured.md", headers=headers, timeout=30)
    r.raise_for_status()
    return r.text


def artifact(serve: LiveServe, job_id: str, path: str) -> str:
    headers = {"Authorization": f"Bearer {serve.api_key}"}
    r = httpx.get(f"{serve.url}/v1/jobs/{job_id}/artifacts/{path}", headers=headers, timeout=30)
    r.raise_for_status()
    return r.text


def job_view(serve: LiveServe, job_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {serve.api_key}"}
    r = httpx.get(f"{serve.url}/v1/jobs/{job_id}", headers=headers, timeout=30)
    r.raise_for_status()
    view: dict[str, Any] = r.json()
    return view


def check_elements_tab(page: Any, serve: LiveServe, job_id: str) -> list[dict[str, Any]]:
    """The Elements tab against the job's real elements.jsonl: one item per element, in
    reading order, with its type, type-specific facts, place and text; tables from their cells."""
    elements = [json.loads(line) for line in artifact(serve, job_id, "elements.jsonl").splitlines() if line]
    assert elements
    page.get_by_role("tab", name="Elements").click()
    # The panel says whose it is and when it is done: no reading the last job's list.
    page.locator(f'#panel[data-job="{job_id}"][aria-busy="false"]').wait_for()
    panel = page.locator("#panel")
    items = panel.locator("li.element")
    items.first.wait_for()
    assert panel.locator(".hint").first.inner_text().startswith(f"{len(elements)} elements")
    assert items.count() == len(elements)
    shown_ids = [items.nth(i).get_attribute("data-id") for i in range(len(elements))]
    assert shown_ids == [e["id"] for e in elements]  # reading order
    for element in elements:
        item = panel.locator(f'li.element[data-id="{element["id"]}"]')
        meta = item.locator(".meta").inner_text()
        assert meta.startswith(f"#{element['index']} · "), meta
        kind = f"heading {element['level']}" if element["type"] == "heading" else element["type"]
        assert kind in meta, (meta, element)
        if element["type"] == "list_item":
            assert ("numbered" if element["ordered"] else "bulleted") in meta
        places = [f"{n} {element[n]}" for n in ("slide", "page", "sheet") if element[n] is not None]
        place = places[0] if places else None
        if place is not None:
            assert meta.endswith(place), (meta, element)
        if element["type"] == "table":
            table = element["table"]
            rendered = item.locator("table.element-table tr")
            assert rendered.count() == table["n_rows"]
            cells = [rendered.nth(r).locator("th, td").all_inner_texts() for r in range(table["n_rows"])]
            assert cells == table["rows"]  # no merged cells in these documents
            assert item.locator("thead th").count() == table["header_rows"] * table["n_cols"]
            if table["title"]:
                assert item.locator("caption").inner_text() == table["title"]
        else:
            words = " ".join(element["text"].split())[:40]
            assert words in " ".join(item.inner_text().split()), (words, element)
    # The schema the lines follow is one link away.
    assert panel.get_by_role("link", name="Element schema").get_attribute("href") == "/schemas/elements.json"
    return elements


def make_deck(path: Path) -> Path:
    """A three-slide deck: slide shapes carry geometry, so its elements have boxes."""
    import pptx
    from pptx.util import Inches

    prs = pptx.Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[0])
    s1.shapes.title.text = "Launch plan"
    s1.placeholders[1].text = "Spring release"
    s2 = prs.slides.add_slide(prs.slide_layouts[1])
    s2.shapes.title.text = "Agenda"
    s2.placeholders[1].text_frame.text = "Hire two engineers"
    s3 = prs.slides.add_slide(prs.slide_layouts[5])
    s3.shapes.title.text = "Numbers"
    table = s3.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([["Metric", "Value"], ["Users", "1200"], ["Churn", "3%"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    prs.save(str(path))
    return path


def test_upload_wait_and_preview_every_sample(browser: Any, live_serve: LiveServe) -> None:
    page = open_ui(browser, live_serve, 1280, 800)
    # Options for this upload: a language hint.
    page.get_by_label("Language", exact=True).fill("en")
    with page.expect_file_chooser() as chooser:
        page.locator("#drop-zone").focus()
        page.keyboard.press("Enter")  # the drop zone opens the file picker from the keyboard
    chooser.value.set_files([str(SAMPLES / "sample-report.pdf"), str(SAMPLES / "scanned-note.png")])
    # Drag and drop: a real drop event carrying a File built in the page.
    data = list((SAMPLES / "sample-budget.xlsx").read_bytes())
    page.evaluate(
        """(bytes) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "sample-budget.xlsx"));
            const zone = document.querySelector("#drop-zone");
            zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        data,
    )
    names = ["sample-report.pdf", "scanned-note.png", "sample-budget.xlsx"]
    for name in names:
        page.locator("#uploads li", has_text=f"{name}: queued as").wait_for(timeout=60_000)
    shot(page, "1-uploaded")
    rows = {name: page.locator("#jobs tbody tr", has_text=name) for name in names}
    for name, row in rows.items():
        row.locator("td.status", has_text="succeeded").wait_for(timeout=300_000)
        assert row.locator("td").nth(2).inner_text() == "1", name  # attempts
        assert float(row.locator("td").nth(4).inner_text()) > 0, name  # seconds
    shot(page, "2-finished")

    # The PDF by keyboard: focus its Preview button, Enter.
    pdf_id = rows["sample-report.pdf"].get_attribute("data-job")
    assert pdf_id
    rows["sample-report.pdf"].get_by_role("button", name="Preview sample-report.pdf").focus()
    page.keyboard.press("Enter")
    panel = page.locator("#panel")
    page.locator("#preview-heading", has_text="sample-report.pdf").wait_for()
    panel.locator(".markdown").wait_for()
    markdown = expected_markdown(live_serve, pdf_id)
    first_heading = next(line.lstrip("# ").strip() for line in markdown.splitlines() if line.startswith("#"))
    assert first_heading in panel.inner_text()
    assert panel.locator(".markdown h3, .markdown h4, .markdown h5").count() >= 1
    shot(page, "3-pdf-markdown")
    # Arrow keys move between the tabs.
    page.get_by_role("tab", name="Markdown").focus()
    page.keyboard.press("ArrowRight")
    page.get_by_role("tab", name="Tables", selected=True).wait_for()
    page.get_by_role("tab", name="Chunks").click()
    page.locator("#panel .chunk").first.wait_for()
    chunks = int(panel.locator(".hint").inner_text().split()[0])
    assert chunks == panel.locator(".chunk").count() >= 1
    check_elements_tab(page, live_serve, pdf_id)
    shot(page, "4-pdf-elements")
    page.get_by_role("tab", name="Metadata").click()
    meta = json.loads(page.locator("#panel pre.json").inner_text())
    assert meta["doc_type"] == "pdf"
    shot(page, "4-pdf-metadata")
    tab_names = page.locator("#tabs [role=tab]").all_inner_texts()
    assert tab_names == ["Markdown", "Tables", "Chunks", "Elements", "Metadata"]
    downloads = page.locator("#downloads button")
    assert "structured.md" in downloads.all_inner_texts()
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download structured.md").click()
    assert Path(dl.value.path()).read_text("utf-8") == markdown

    # The workbook: its tables as HTML tables.
    rows["sample-budget.xlsx"].get_by_role("button", name="Preview sample-budget.xlsx").click()
    page.locator("#preview-heading", has_text="sample-budget.xlsx").wait_for()
    page.get_by_role("tab", name="Tables").click()
    table = panel.locator("table.csv").first
    table.wait_for()
    assert table.locator("tbody tr").count() >= 2
    assert table.locator("thead th").count() >= 2
    shot(page, "5-xlsx-tables")
    xlsx_id = rows["sample-budget.xlsx"].get_attribute("data-job")
    assert xlsx_id
    elements = check_elements_tab(page, live_serve, xlsx_id)
    assert {e["sheet"] for e in elements} == {"Budget", "Codes"}
    assert panel.locator(".element", has_text="sheet Budget").count() >= 2

    # The scan: OCR text in the Markdown, its metadata without the "OCR disabled" warning.
    rows["scanned-note.png"].get_by_role("button", name="Preview scanned-note.png").click()
    page.locator("#preview-heading", has_text="scanned-note.png").wait_for()
    panel.locator(".markdown").wait_for()
    png_id = rows["scanned-note.png"].get_attribute("data-job")
    assert png_id
    words = [w for w in expected_markdown(live_serve, png_id).split() if w.isalpha() and len(w) > 3]
    assert words, "the OCR found no words"
    assert words[0] in panel.inner_text()
    shot(page, "6-png-markdown")
    assert not page.errors, page.errors

    # The key is in this tab's sessionStorage only.
    storage = page.evaluate(
        "(name) => [sessionStorage.getItem(name), localStorage.length, document.cookie]", KEY_STORE
    )
    assert storage == [live_serve.api_key, 0, ""]
    page.context.close()


def upload(page: Any, *paths: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("#drop-zone").focus()
        page.keyboard.press("Enter")
    chooser.value.set_files([str(p) for p in paths])


def uploaded_job(page: Any, name: str) -> str:
    item = page.locator("#uploads li", has_text=f"{name}: queued as").first
    item.wait_for(timeout=60_000)
    job_id = item.get_attribute("data-job")
    assert job_id
    return str(job_id)


def wait_succeeded(page: Any, job_id: str) -> Any:
    row = page.locator(f'#jobs tbody tr[data-job="{job_id}"]')
    row.locator("td.status", has_text="succeeded").wait_for(timeout=300_000)
    return row


def test_every_api_option_has_a_labelled_input(browser: Any, live_serve: LiveServe) -> None:
    """The options form names its fields as POST /v1/parse does: one input per documented
    field (the OCR select covers the older ocr_enabled switch), each with a label."""
    spec = httpx.get(f"{live_serve.url}/openapi.json", timeout=30).json()
    body = spec["paths"]["/v1/parse"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    documented = set(body["properties"]) - {"file", "ocr_enabled"}
    page = open_ui(browser, live_serve, 1280, 800)
    controls = page.evaluate(
        """() => Array.from(document.querySelectorAll("#options [name]"))
            .map((c) => [c.name, c.labels.length > 0 && c.labels[0].innerText.trim() !== ""])"""
    )
    assert {name for name, _ in controls} == documented
    assert all(labelled for _, labelled in controls), controls
    # Every option is reached with the Tab key, in order, from the first output box.
    page.locator("#options input[name=outputs]").first.focus()
    reached = set()
    for _ in range(40):
        reached.add(page.evaluate("() => document.activeElement.name || document.activeElement.id"))
        page.keyboard.press("Tab")
    assert documented <= reached, documented - reached
    assert not page.errors, page.errors
    page.context.close()


def test_options_take_effect_and_slide_boxes_are_drawn(
    browser: Any, live_serve: LiveServe, tmp_path: Path
) -> None:
    page = open_ui(browser, live_serve, 1280, 800)
    options = page.locator("#options")
    # A subset of outputs and a page range, set from the keyboard where it matters.
    options.get_by_label("Chunks").uncheck()
    options.get_by_label("Tables (CSV)").uncheck()
    options.get_by_label("Plain text").focus()
    page.keyboard.press("Space")
    options.get_by_label("Pages").fill("2-3")
    options.get_by_label("OCR", exact=True).select_option("off")
    upload(page, SAMPLES / "sample-report.pdf")
    pdf_id = uploaded_job(page, "sample-report.pdf")
    item_text = page.locator(f'#uploads li[data-job="{pdf_id}"]').inner_text()
    assert "outputs=markdown,elements,text" in item_text
    assert "pages=2-3" in item_text
    # Options the server refuses are reported per file, and nothing is queued.
    options.get_by_label("Pages").fill("3-2")
    upload(page, SAMPLES / "sample-report.pdf")
    refused = page.locator("#uploads li.error", has_text="400 bad_request: pages:")
    refused.wait_for(timeout=60_000)
    # Rules the browser can check stop the upload before it starts.
    options.get_by_role("button", name="Reset options").click()
    options.get_by_label("Chunk size").fill("100")
    options.get_by_label("Chunk overlap").fill("100")
    uploads_before = page.locator("#uploads li").count()
    page.locator("#drop-zone").click()  # no file chooser opens: the options are invalid
    page.locator("#status", has_text="overlap must be smaller").wait_for()
    assert page.locator("#uploads li").count() == uploads_before
    options.get_by_role("button", name="Reset options").click()

    row = wait_succeeded(page, pdf_id)
    view = job_view(live_serve, pdf_id)
    assert sorted(view["artifacts"]) == ["elements.jsonl", "metadata.json", "plain.txt", "structured.md"]
    meta = json.loads(artifact(live_serve, pdf_id, "metadata.json"))
    assert meta["outputs"] == ["elements", "markdown", "text"]
    row.get_by_role("button", name="Preview sample-report.pdf").click()
    page.locator("#panel .markdown").wait_for()
    assert page.locator("#tabs [role=tab]").all_inner_texts() == ["Markdown", "Text", "Elements", "Metadata"]
    page.get_by_role("tab", name="Text").click()
    plain = page.locator("#panel pre.plain")
    plain.wait_for()
    assert plain.inner_text().strip() == artifact(live_serve, pdf_id, "plain.txt").strip()
    elements = check_elements_tab(page, live_serve, pdf_id)
    assert {e["page"] for e in elements} == {2, 3}  # the page range reached the parser
    shot(page, "9-options-pages-2-3")

    # A deck with the default options: its elements have boxes, drawn per slide.
    deck = make_deck(tmp_path / "deck.pptx")
    upload(page, deck)
    deck_id = uploaded_job(page, "deck.pptx")
    wait_succeeded(page, deck_id).get_by_role("button", name="Preview deck.pptx").click()
    page.locator("#preview-heading", has_text="deck.pptx").wait_for()
    elements = check_elements_tab(page, live_serve, deck_id)
    boxed = [e for e in elements if e["bbox"] is not None]
    assert {e["slide"] for e in boxed} == {1, 2, 3}
    for slide in (1, 2, 3):
        frame = page.locator(f'#panel figure.page[data-frame="Slide {slide}"]')
        on_slide = [e for e in boxed if e["slide"] == slide]
        label = frame.locator("svg").get_attribute("aria-label")
        assert label == f"Slide {slide}: {len(on_slide)} element boxes"
        for element in on_slide:
            rect = frame.locator(f'rect[data-element="{element["id"]}"]')
            x0, y0, x1, y1 = element["bbox"]
            assert float(rect.get_attribute("x")) == pytest.approx(x0)
            assert float(rect.get_attribute("y")) == pytest.approx(y0)
            assert float(rect.get_attribute("width")) == pytest.approx(x1 - x0)
            assert float(rect.get_attribute("height")) == pytest.approx(y1 - y0)
    title = next(e for e in elements if e["type"] == "title")
    assert page.locator(f'#panel li.element[data-id="{title["id"]}"] .meta').inner_text().endswith("slide 1")
    # The type filter shows one kind of element.
    page.get_by_label("Show").select_option("table")
    assert page.locator("#panel li.element:visible").count() == sum(e["type"] == "table" for e in elements)
    shot(page, "10-deck-elements")
    # The browser logs the refused upload's 400; nothing else went wrong.
    assert [e for e in page.errors if "status of 400" not in e] == [], page.errors
    page.context.close()


def test_a_slow_tab_never_paints_over_a_later_one(
    browser: Any, live_serve: LiveServe, tmp_path: Path
) -> None:
    """One job's preview on its Elements tab, then another job's preview whose Markdown is held
    back by the network: the old job's list is gone at once, and when the held Markdown finally
    arrives it does not replace the Elements tab that was asked for after it."""
    page = open_ui(browser, live_serve, 1280, 800)
    upload(page, SAMPLES / "sample-report.pdf", make_deck(tmp_path / "deck.pptx"))
    pdf_id = uploaded_job(page, "sample-report.pdf")
    deck_id = uploaded_job(page, "deck.pptx")
    wait_succeeded(page, pdf_id).get_by_role("button", name="Preview sample-report.pdf").click()
    pdf_elements = check_elements_tab(page, live_serve, pdf_id)

    held: list[Any] = []
    page.route(f"**/v1/jobs/{deck_id}/artifacts/structured.md", lambda route: held.append(route))
    wait_succeeded(page, deck_id).get_by_role("button", name="Preview deck.pptx").click()
    page.locator("#preview-heading", has_text="deck.pptx").wait_for()
    page.wait_for_function("() => document.querySelector('#panel').getAttribute('aria-busy') === 'true'")
    assert page.locator("#panel li.element").count() == 0  # not the PDF's list under the deck's name
    assert page.locator("#panel").get_attribute("data-job") is None
    page.get_by_role("tab", name="Elements").click()
    page.locator(f'#panel[data-job="{deck_id}"][aria-busy="false"]').wait_for()
    assert len(held) == 1
    with page.expect_response(f"**/v1/jobs/{deck_id}/artifacts/structured.md"):
        held[0].continue_()
    page.evaluate("() => new Promise((done) => setTimeout(done, 500))")  # let the Markdown render finish
    assert page.locator("#panel .markdown").count() == 0
    assert page.get_by_role("tab", name="Elements").get_attribute("aria-selected") == "true"
    deck_jsonl = artifact(live_serve, deck_id, "elements.jsonl")
    deck_elements = [json.loads(line) for line in deck_jsonl.splitlines() if line]
    shown = page.locator("#panel li.element")
    shown_ids = [shown.nth(i).get_attribute("data-id") for i in range(shown.count())]
    assert shown_ids == [e["id"] for e in deck_elements]
    assert not {e["id"] for e in pdf_elements} & {e["id"] for e in deck_elements}
    page.context.close()


def test_phone_size_and_no_horizontal_scroll(browser: Any, live_serve: LiveServe) -> None:
    page = open_ui(browser, live_serve, 390, 844)
    with page.expect_file_chooser() as chooser:
        page.locator("#drop-zone").click()
    chooser.value.set_files([str(SAMPLES / "sample-budget.xlsx")])
    page.locator("#uploads li", has_text="queued as").wait_for(timeout=60_000)
    job_id = page.locator("#uploads li").first.get_attribute("data-job")
    row = page.locator(f'#jobs tbody tr[data-job="{job_id}"]')
    row.locator("td.status", has_text="succeeded").wait_for(timeout=300_000)
    # Nothing wider than the screen: the page does not scroll sideways.
    assert_no_sideways_scroll(page, 390)
    row.get_by_role("button", name="Preview sample-budget.xlsx").click()
    page.locator("#panel .markdown").wait_for()
    page.get_by_role("tab", name="Tables").click()
    page.locator("#panel table.csv").first.wait_for()
    assert_no_sideways_scroll(page, 390)
    page.get_by_role("tab", name="Elements").click()
    page.locator("#panel .element-table").first.wait_for()
    assert_no_sideways_scroll(page, 390)
    shot(page, "7-phone")
    assert not page.errors, page.errors
    page.context.close()


def test_wrong_key_is_reported(browser: Any, live_serve: LiveServe) -> None:
    stranger = LiveServe(live_serve.url, "pr_wrong-key-0123456789", live_serve.data_dir, live_serve.proc)
    # No waiting for "Key set": the 401 replaces that message at once.
    page = open_ui(browser, stranger, 1280, 800, confirm=False)
    page.locator("#status", has_text="401 unauthorized").wait_for()
    page.context.close()


def test_ui_pages_are_served_with_a_strict_policy(live_serve: LiveServe) -> None:
    for path in ("/ui", "/ui/app.js", "/ui/app.css"):
        r = httpx.get(live_serve.url + path, timeout=30)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
    html = httpx.get(live_serve.url + "/ui", timeout=30).text
    import re

    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/ui/app.js" in sources
    assert all(not s.startswith(("http:", "https:", "//")) for s in sources), sources
    assert httpx.get(live_serve.url + "/ui/secret.py", timeout=30).status_code == 404


def test_swagger_authorize_then_try_a_call(browser: Any, live_serve: LiveServe) -> None:
    """/docs works offline and its Authorize button sends the key: a tried-out call is a 200."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_serve.url) else None)
    page.goto(f"{live_serve.url}/docs")
    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".modal-ux input").first.fill(live_serve.api_key)
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    operation = page.locator("#operations-jobs-list_jobs_v1_jobs_get")
    operation.locator(".opblock-summary").click()
    # tryItOutEnabled: the form is open already.
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=30_000)
    assert status.inner_text().strip() == "200", operation.locator(".live-responses-table").inner_text()
    shot(page, "8-swagger-authorized")
    assert not [u for u in outside if not u.startswith(("data:", "blob:"))], outside
    context.close()
