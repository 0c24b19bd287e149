"""Render a Document as one self-contained HTML file: CSS inline, figures embedded as data: URIs.

The file must read the same offline, in a mail attachment or on a shared drive, so it references nothing
outside itself. All text is escaped by jinja2's autoescape; inline ``**bold**`` / ```code``` is the only
markup turned into tags. Every table cell is a ``<td data-col="column name">`` so tests (and people) can
read the numbers back.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgenas.report.document import (
    BulletList,
    CodeBlock,
    Document,
    Figure,
    Note,
    Paragraph,
    Section,
    Table,
    parse_inline,
)

TEMPLATE = "report.html.j2"
LABELS = {
    "en": {"contents": "Contents"},
    "zh": {"contents": "目录"},
}


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2  # lazy: only the HTML report needs it

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["inline"] = _inline_html
    env.filters["breakable"] = _breakable
    return env


def _breakable(text: str) -> Any:
    """Escape a cell and let long identifiers (layer names, paths) wrap after '/' and '_' (``<wbr>``).

    ``<wbr>`` adds no text, so ``textContent`` still equals the cell string.
    """
    from markupsafe import Markup, escape

    return Markup(re.sub(r"([/_])(?=.)", r"\1<wbr>", str(escape(text))))


def _inline_html(text: str) -> Any:
    from markupsafe import Markup, escape

    out = []
    for kind, s in parse_inline(text):
        if kind == "bold":
            out.append(Markup("<strong>%s</strong>") % s)
        elif kind == "code":
            out.append(Markup("<code>%s</code>") % s)
        else:
            out.append(escape(s))
    return Markup("").join(out)


def _block_view(b: Any, anchors: dict[int, str], depth: int, counter: dict[str, int]) -> dict[str, Any]:
    if isinstance(b, Paragraph):
        return {"kind": "paragraph", "text": b.text}
    if isinstance(b, BulletList):
        return {"kind": "list", "items": b.items}
    if isinstance(b, Note):
        return {"kind": "note", "text": b.text}
    if isinstance(b, CodeBlock):
        return {"kind": "code", "text": b.text}
    if isinstance(b, Figure):
        counter["figure"] += 1
        w, h = b.size
        return {
            "kind": "figure",
            "index": counter["figure"],
            "src": "data:image/png;base64," + base64.b64encode(b.png).decode("ascii"),
            "width": w,
            "height": h,
            "alt": b.alt,
            "caption": b.caption,
            "filename": b.filename,
        }
    if isinstance(b, Table):
        counter["table"] += 1
        align = b.alignments()
        return {
            "kind": "table",
            "index": counter["table"],
            "caption": b.caption,
            "columns": [{"name": c, "align": a} for c, a in zip(b.columns, align)],
            "rows": [
                {"tags": tags, "cells": [{"col": c, "align": a, "text": v} for c, a, v in zip(b.columns, align, row)]}
                for row, tags in zip(b.rows, b.row_tags())
            ],
        }
    if isinstance(b, Section):
        return {
            "kind": "section",
            "title": b.title,
            "anchor": anchors[id(b)],
            "level": depth + 1,
            "blocks": [_block_view(x, anchors, depth + 1, counter) for x in b.blocks],
        }
    raise TypeError(f"not a block: {b!r}")


def render_html(doc: Document) -> str:
    """The complete HTML page for ``doc`` (UTF-8 text; write it with ``encoding="utf-8"``)."""
    anchors = {id(s): a for s, a, _ in doc.walk_sections()}
    counter = {"figure": 0, "table": 0}
    sections = [_block_view(s, anchors, 1, counter) for s in doc.sections]
    toc = [
        {
            "title": s.title,
            "anchor": anchors[id(s)],
            "children": [{"title": c.title, "anchor": anchors[id(c)]} for c in s.blocks if isinstance(c, Section)],
        }
        for s in doc.sections
    ]
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(title=doc.title, lang=doc.lang, sections=sections, toc=toc, labels=LABELS[doc.lang])
    )
