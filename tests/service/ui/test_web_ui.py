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


def test_upload_wait_and_preview_every_sample(browser: Any, live_serve: LiveServe) -> None:
    page = open_ui(browser, live_serve, 1280, 800)
    # Options for this upload: a language hint.
    page.get_by_label("Language").fill("en")
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
    page.get_by_role("tab", name="Metadata").click()
    meta = json.loads(page.locator("#panel pre.json").inner_text())
    assert meta["doc_type"] == "pdf"
    shot(page, "4-pdf-metadata")
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


def test_phone_size_and_no_horizontal_scroll(browser: Any, live_serve: LiveServe) -> None:
    page = open_ui(browser, live_serve, 390, 844)
    with page.expect_file_chooser() as chooser:
        page.locator("#drop-zone").click()
    chooser.value.set_files([str(SAMPLES / "sample-budget.xlsx")])
    page.locator("#uploads li", has_text="queued as").wait_for(timeout=60_000)
    job_id = page.locator("#uploads li").first.inner_text().rsplit(" ", 1)[-1]
    row = page.locator(f'#jobs tbody tr[data-job="{job_id}"]')
    row.locator("td.status", has_text="succeeded").wait_for(timeout=300_000)
    # Nothing wider than the screen: the page does not scroll sideways.
    assert_no_sideways_scroll(page, 390)
    row.get_by_role("button", name="Preview sample-budget.xlsx").click()
    page.locator("#panel .markdown").wait_for()
    page.get_by_role("tab", name="Tables").click()
    page.locator("#panel table.csv").first.wait_for()
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
