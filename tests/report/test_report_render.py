"""Document model, markdown and HTML renderers (no browser: see test_report_browser.py)."""

from __future__ import annotations

import base64
import io
import re

import pytest
from report_samples import KEY, sample_document

from edgenas.report.document import (
    PNG_SIGNATURE,
    BulletList,
    Document,
    Figure,
    Paragraph,
    Section,
    Table,
    parse_inline,
)
from edgenas.report.html import render_html
from edgenas.report.markdown import render_markdown


@pytest.fixture(scope="module", params=["en", "zh"])
def doc(request: pytest.FixtureRequest) -> Document:
    return sample_document(request.param)


def tiny_png() -> bytes:
    from edgenas.report import plots

    return plots.bar_plot(["a"], [1.0], "t", "x")


# -- document model ------------------------------------------------------------------------------------------
def test_parse_inline_only_bold_and_code() -> None:
    assert parse_inline("a **b** `c*d` _e_ [f](g) **open") == [
        ("text", "a "),
        ("bold", "b"),
        ("text", " "),
        ("code", "c*d"),
        ("text", " _e_ [f](g) **open"),
    ]


def test_table_validation_and_alignment() -> None:
    t = Table(["name", "FPS", "delta", "note"], [["a", "1,234.5", "+66.0%", "x"], ["b", "-", "-3.1%", "12"]], "c")
    assert t.columns == ("name", "FPS", "delta", "note") and isinstance(t.rows[0], tuple)
    assert t.alignments() == ("left", "right", "right", "left")
    assert hash(t)  # frozen and hashable after list -> tuple conversion
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        Table(["a", "b"], [["x"]], "c")
    with pytest.raises(TypeError, match="non-string cell"):
        Table(["a"], [[1.5]], "c")
    with pytest.raises(ValueError, match="one entry per row"):
        Table(["a"], [["x"]], "c", highlight=[None, "fastest"])
    with pytest.raises(ValueError, match="bad highlight tag"):
        Table(["a"], [["x"]], "c", highlight=["Fastest!"])
    with pytest.raises(ValueError, match="align"):
        Table(["a"], [["x"]], "c", align=["middle"])


def test_document_validation() -> None:
    png = tiny_png()
    with pytest.raises(ValueError, match="lang"):
        Document("t", "fr", ())
    with pytest.raises(ValueError, match="not PNG"):
        Figure(b"GIF89a", "c", "a", "x.png")
    with pytest.raises(ValueError, match="plain name"):
        Figure(png, "c", "a", "../x.png")
    with pytest.raises(ValueError, match="duplicate section anchor"):
        Document("t", "en", (Section("a", (), anchor="x"), Section("b", (), anchor="x")))
    with pytest.raises(ValueError, match="share the filename"):
        Document("t", "en", (Section("a", (Figure(png, "c", "a", "f.png"), Figure(png + b"x", "c", "a", "f.png"))),))
    with pytest.raises(TypeError, match="not a block"):
        Section("a", ("just a string",))
    deep = Section("4", ())
    for i in range(3):
        deep = Section(str(i), (deep,))
    with pytest.raises(ValueError, match="nested deeper"):
        Document("t", "en", (deep,))


def test_default_anchors_and_figure_order(doc: Document) -> None:
    d = Document("t", "en", (Section("a", (Section("b", ()),)), Section("c", ())))
    assert [a for _, a, _ in d.walk_sections()] == ["section-1", "section-1-1", "section-2"]
    assert [f.filename for f in doc.figures()] == ["fps_vs_resolution.png", "cycle_share.png"]


# -- markdown ------------------------------------------------------------------------------------------------
def test_markdown_tables_images_and_files(doc: Document) -> None:
    md, files = render_markdown(doc)
    assert md.splitlines()[0] == f"# {doc.title}"
    assert set(files) == {"fps_vs_resolution.png", "cycle_share.png"}
    for f in doc.figures():
        assert f"![{f.alt}]({f.filename})" in md
        assert files[f.filename] == f.png and files[f.filename].startswith(PNG_SIGNATURE)
    table = doc.tables()[0]
    lines = md.splitlines()
    header = "| " + " | ".join(table.columns) + " |"
    i = lines.index(header)
    assert lines[i + 1] == "|:---|---:|---:|---:|"
    body = lines[i + 2 : i + 2 + len(table.rows)]
    assert len(body) == len(KEY)
    for line, row, tags in zip(body, table.rows, table.row_tags()):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        plain = [c.strip("*").replace("\\|", "|").replace("\\<", "<") for c in cells]
        assert plain == list(row)
        assert all(c.startswith("**") for c in cells) == bool(tags)
    assert "| **a\\|b \\<odd> name** |" in md  # "|" escaped so the row keeps its 4 cells; slowest row bold
    assert "| **主干** |" not in md and "| 主干 | 87.0 |" in md


def test_markdown_inline_and_blocks() -> None:
    png = tiny_png()
    d = Document(
        "T",
        "en",
        (
            Section(
                "S",
                (
                    Paragraph("**bold** and `co|de` with <tag>, a*b, _x_ and snake_case"),
                    Paragraph("# not a heading"),
                    BulletList(["one", "- two"]),
                    Figure(png, "cap", "alt [x]", "p.png"),
                ),
                anchor="s",
            ),
        ),
    )
    md, files = render_markdown(d)
    assert "**bold** and `co|de` with \\<tag>, a\\*b, \\_x\\_ and snake_case" in md
    assert "\\# not a heading" in md
    assert "- one\n- \\- two" in md
    assert "![alt \\[x\\]](p.png)" in md and list(files) == ["p.png"]
    assert '<a id="s"></a>' in md and "## S" in md
    assert "**Contents**" not in md  # a one-section document needs no table of contents


def test_markdown_code_block_fence_survives_backticks() -> None:
    from edgenas.report.document import CodeBlock

    md, _ = render_markdown(Document("T", "en", (Section("S", (CodeBlock("a\n```\nb"),)),)))
    assert "````\na\n```\nb\n````" in md


# -- HTML ----------------------------------------------------------------------------------------------------
def test_html_self_contained(doc: Document) -> None:
    html = render_html(doc)
    assert html.startswith("<!DOCTYPE html>")
    assert f'<html lang="{doc.lang}">' in html
    assert '<meta charset="utf-8">' in html
    assert not re.search(r"https?://", html), "no external references (CDN, fonts, images)"
    assert not re.search(r"<(link|script|iframe)\b", html, re.IGNORECASE)
    assert "@import" not in html and "url(" not in html
    srcs = re.findall(r'\bsrc="([^"]*)"', html)
    assert len(srcs) == len(doc.figures())
    for src, fig in zip(srcs, doc.figures()):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == fig.png
    assert "Noto Sans CJK SC" in html and "WenQuanYi Micro Hei" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # text is escaped, never markup
    assert "<strong>" in html and "<code>shufflenet</code>" in html


def test_html_table_cells_carry_columns(doc: Document) -> None:
    html = render_html(doc).replace("<wbr>", "")  # break hints in long names add no text
    for t in doc.tables():
        for row in t.rows:
            for col, cell in zip(t.columns, row):
                esc = cell.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                assert re.search(rf'<td class="\w+" data-col="{re.escape(col)}">{re.escape(esc)}</td>', html), cell
    assert html.count("<td ") == sum(len(t.rows) * len(t.columns) for t in doc.tables())
    assert 'class="hl hl-fastest"' in html and 'class="hl hl-baseline"' in html


def test_html_png_decodes() -> None:
    image = pytest.importorskip("matplotlib.image")
    for f in sample_document("en").figures():
        arr = image.imread(io.BytesIO(f.png), format="png")
        assert arr.shape[1] == f.size[0] and arr.shape[0] == f.size[1]
