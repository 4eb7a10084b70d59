"""The HTML report as a person sees it: opened in headless Chromium (Debian's chromium via Playwright)."""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from castoff.catalog.db import Catalog
from castoff.reports import html
from reports.kit import XSS, Cli, big_job, peak_memory, reports, write

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield ctx
        finally:
            ctx.close()


@pytest.fixture
def failed_job_report(tmp_path: Path, card: Path, cli: Cli, state: Path) -> Path:
    gone = tmp_path / "unplugged" / "drive"
    r = cli("copy", str(card), "--to", str(tmp_path / "ssd"), "--to", str(gone))
    assert r.returncode == 1, r.stderr
    page = reports(state, ".html")[0]
    assert f"html report: {page}" in r.stderr
    return page


def test_report_renders_summary_failures_first_and_names_as_text(
    failed_job_report: Path, browser_context: object, tmp_path: Path
) -> None:
    ctx = browser_context
    page = ctx.new_page()  # type: ignore[attr-defined]
    dialogs: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda req: requests.append(req.url))
    url = failed_job_report.as_uri()
    page.goto(url)
    page.wait_for_load_state("load")

    summary = page.locator("#summary")
    assert summary.is_visible()
    text = summary.inner_text()
    assert str(tmp_path / "ssd") in text and "unplugged" in text
    assert "THROUGHPUT" in text.upper()
    assert "did not reach every destination" in page.locator("#verdict").inner_text()
    # Failures come before the full list.
    order = page.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
    assert order.index("problems") < order.index("files")
    assert page.locator("#problems tbody.file").count() == 5
    # The hostile name is text, in the problems and in the full list; it made no element.
    shown = page.evaluate(
        "name => [...document.querySelectorAll('td.path')]"
        ".filter(td => td.textContent.trim().endsWith(name)).length",
        XSS,
    )
    assert shown == 2
    assert page.locator("img").count() == 0
    assert page.evaluate("document.scripts.length") == 0

    png = page.screenshot(full_page=False)
    shot = tmp_path / "report.png"
    shot.write_bytes(png)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    colors = img.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 50, "the screenshot is (nearly) blank"
    background = max(colors)[1]
    ink = sum(n for n, c in colors if c != background)
    assert ink > img.width * img.height // 50

    assert dialogs == []
    assert requests == [url], f"the page asked for more than itself: {requests}"
    page.close()


def test_names_a_page_would_show_as_others_are_marked_so_no_two_look_the_same(
    tmp_path: Path, cli: Cli, state: Path, browser_context: object
) -> None:
    """Before: ``new\\nline.jpg`` showed as "new line.jpg", a trailing space or a tab as nothing or
    a space, and a right-to-left override turned the rest of its name round."""
    card = tmp_path / "CARD"
    names = ["new\nline.jpg", "new line.jpg", "trail.jpg ", "trail.jpg", "tab\there.jpg", "tab here.jpg"]
    names += ["a  b.jpg", "a b.jpg", "\u202egpj.exe", "exe.jpg", "zw\u200b.jpg", "zw.jpg", "\\n.jpg"]
    for i, name in enumerate(names):
        write(card / name, bytes([i]))
    r = cli("copy", str(card), "--to", str(tmp_path / "ssd"))
    assert r.returncode == 0, r.stderr
    page = browser_context.new_page()  # type: ignore[attr-defined]
    page.goto(reports(state, ".html")[0].as_uri())
    shown = page.evaluate("[...document.querySelectorAll('#files td.path')].map(td => td.innerText)")
    targets = page.evaluate("[...document.querySelectorAll('#files td.target code')].map(c => c.innerText)")
    marks = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#files td.path')]"
        ".map(td => [td.innerText, td.querySelectorAll('.esc').length]))"
    )
    page.close()
    for seen in (shown, targets):
        assert len(seen) == len(names) and len(set(seen)) == len(names), seen
    assert "CARD/new\\nline.jpg" in shown and "CARD/tab\\there.jpg" in shown
    assert "CARD/trail.jpg\\x20" in shown and "CARD/a \\x20b.jpg" in shown
    assert "CARD/\\u202egpj.exe" in shown and "CARD/zw\\u200b.jpg" in shown
    assert not any("\u202e" in s or "\u200b" in s for s in shown + targets)
    # a real backslash and n: the same text as an escape, but not marked as one
    assert marks["CARD/\\n.jpg"] == 0 and marks["CARD/new\\nline.jpg"] == 1


def test_report_has_no_external_reference(failed_job_report: Path) -> None:
    text = failed_job_report.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href|url)\s*[=(]\s*["']?\s*(?:https?:|//)""", text, re.IGNORECASE)
    assert "<script" not in text.lower()
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in text


@pytest.mark.slow
def test_large_job_streams_to_disk(tmp_path: Path) -> None:
    """The page is written as it renders: four times the files, not four times the memory."""
    cat = Catalog(tmp_path / "catalog.sqlite")
    big_job(cat, "20260101-000000-aaaa", 2000)
    big_job(cat, "20260101-000000-bbbb", 8000)
    html.write(cat, "20260101-000000-aaaa", tmp_path / "warm")  # compiles the template once
    small, _ = peak_memory(lambda: html.write(cat, "20260101-000000-aaaa", tmp_path / "reports"))
    big, out = peak_memory(lambda: html.write(cat, "20260101-000000-bbbb", tmp_path / "reports"))
    body = out.read_text(encoding="utf-8")
    assert body.count('<tbody class="file">') == 8000
    assert f"{7999:064x}" in body
    assert big < small * 1.5 + (1 << 20), f"peak {small} bytes for 2,000 files, {big} for 8,000"
    assert big < out.stat().st_size / 2
    shutil.rmtree(tmp_path / "reports")
