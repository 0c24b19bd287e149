"""The HTML report in a real browser (Debian's headless Chromium): images decode, numbers read back, CJK shows.

Skipped only where /usr/bin/chromium is missing; CI installs it (see browser.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser import Browser, page_eval, require_chromium, screenshot
from report_samples import KEY, sample_document

from edgenas.report.document import PNG_SIGNATURE, png_size
from edgenas.report.html import render_html

IMAGES_JS = """Array.from(document.images, i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
  data: i.currentSrc.startsWith('data:image/png;base64,'), shown: i.getBoundingClientRect().width}))"""
TABLES_JS = """Array.from(document.querySelectorAll('main table'), t => ({
  cols: Array.from(t.tHead.rows[0].cells, c => c.dataset.col),
  rows: Array.from(t.tBodies[0].rows, r => ({
    hl: r.dataset.highlight || null,
    weight: parseInt(getComputedStyle(r.cells[0]).fontWeight),
    cells: Array.from(r.cells, c => ({col: c.dataset.col, text: c.textContent,
                                     align: getComputedStyle(c).textAlign}))}))}))"""
PAGE_JS = """({lang: document.documentElement.lang, charset: document.characterSet, title: document.title,
  text: document.body.innerText, overflow: document.documentElement.scrollWidth - window.innerWidth,
  scripts: document.scripts.length,
  resources: performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('data:'))})"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    require_chromium()
    out = tmp_path_factory.mktemp("report-html")
    res = {}
    for lang in ("en", "zh"):
        doc = sample_document(lang)
        path = out / f"report_{lang}.html"
        path.write_text(render_html(doc), encoding="utf-8")
        res[lang] = (path, doc)
    return res


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_in_chromium(pages: dict, lang: str, tmp_path: Path) -> None:
    path, doc = pages[lang]
    with Browser() as b:
        b.open(path)
        images = b.evaluate(IMAGES_JS)
        tables = b.evaluate(TABLES_JS)
        page = b.evaluate(PAGE_JS)
        shot = tmp_path / f"report_{lang}.png"
        b.screenshot(shot)
    if os.environ.get("EDGENAS_SCREENSHOT_DIR"):  # to look at it: EDGENAS_SCREENSHOT_DIR=/tmp pytest ...
        Path(os.environ["EDGENAS_SCREENSHOT_DIR"], shot.name).write_bytes(shot.read_bytes())

    # every image decoded, one per figure, at the PNG's own size
    figures = doc.figures()
    assert len(images) == len(figures)
    for img, fig in zip(images, figures):
        assert img["complete"] and img["w"] > 0 and img["data"], img
        assert (img["w"], img["h"]) == fig.size
        assert 0 < img["shown"] <= img["w"]

    # the numbers read back from the cells equal the source values
    assert len(tables) == len(doc.tables())
    for got, t in zip(tables, doc.tables()):
        assert got["cols"] == list(t.columns)
        assert [[c["text"] for c in r["cells"]] for r in got["rows"]] == [list(r) for r in t.rows]
        assert all(c["col"] == col for r in got["rows"] for c, col in zip(r["cells"], t.columns))
        for r, tags in zip(got["rows"], t.row_tags()):
            assert (r["hl"] or "").split() == list(tags)
            assert (r["weight"] >= 600) == bool(tags)
    key = tables[0]
    for r in key["rows"]:
        cells = {c["col"]: c for c in r["cells"]}
        name = cells[doc.tables()[0].columns[0]]["text"]
        fps, sram = KEY[name]
        fps_cell, sram_cell = cells[doc.tables()[0].columns[1]], cells[doc.tables()[0].columns[2]]
        assert float(fps_cell["text"]) == pytest.approx(fps, abs=0.005 + 1e-9)  # half a unit of the last digit
        assert float(sram_cell["text"].replace(",", "")) == pytest.approx(sram, abs=0.05 + 1e-9)
        assert fps_cell["align"] == "right" and cells[doc.tables()[0].columns[0]]["align"] == "left"

    # the page itself: language, UTF-8 text (Chinese included), nothing fetched, no horizontal overflow
    assert page["lang"] == lang and page["charset"] == "UTF-8"
    assert page["title"] == doc.title
    assert "性能悬崖" in page["text"] and "<script>alert(1)</script>" in page["text"]
    assert page["scripts"] == 0 and page["resources"] == []
    assert page["overflow"] <= 0

    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    w, h = png_size(data)
    assert w == 1280 and h > 900  # the full page, longer than one screen


def test_page_eval_and_screenshot_helpers(pages: dict, tmp_path: Path) -> None:
    path, doc = pages["en"]
    assert page_eval(path, "document.images.length") == len(doc.figures())
    out = tmp_path / "viewport.png"
    screenshot(path, out, width=800, full_page=False)
    assert png_size(out.read_bytes()) == (800, 900)


def test_js_errors_are_reported(pages: dict) -> None:
    from browser import BrowserError

    with pytest.raises(BrowserError, match="JS error"):
        page_eval(pages["en"][0], "undefinedThing.x")


def test_print_layout_fits_a4_width(pages: dict) -> None:
    """Printed on A4 (about 680 CSS px between 15 mm margins) nothing runs off the page, wide tables included."""
    path, _ = pages["en"]
    with Browser(width=680) as b:
        b.open(path)
        b.call("Emulation.setEmulatedMedia", media="print")
        assert b.evaluate("document.documentElement.scrollWidth") <= 680
        assert b.evaluate("getComputedStyle(document.querySelector('nav.toc')).display") == "none"


def test_timeout_raises_and_browser_is_cleaned_up(pages: dict) -> None:
    from browser import BrowserError, _group_alive

    with pytest.raises(BrowserError, match="timed out"), Browser(timeout_s=1.0) as b:
        b.open(pages["en"][0])
        pid, profile = b._proc.pid, b._profile
        b.evaluate("new Promise(() => {})")  # never settles
    assert not _group_alive(pid)
    assert not os.path.exists(profile)
