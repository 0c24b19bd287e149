"""A small document model that the study report is written in, so one text renders to markdown and HTML alike.

The analysis produces numbers, the report text turns them into a ``Document``, and ``render_markdown`` /
``render_html`` only lay it out: renderers never format numbers, so both outputs show the same strings.

Inline markup in ``Paragraph``, ``BulletList`` items and ``Note`` is limited to ``**bold**`` and
```code``` on purpose: everything else is literal text, escaped by each renderer.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

LANGS = ("en", "zh")
ALIGNS = ("left", "right", "center")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SECTION_DEPTH = 3  # h2 .. h4; the document title is h1

_ANCHOR = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_TAG = re.compile(r"^[a-z][a-z0-9-]*$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.png$")
_INLINE = re.compile(r"\*\*(?P<bold>.+?)\*\*|`(?P<code>[^`]+)`", re.DOTALL)
# A cell that reads as a number: 1,234  -3.5  +66.0%  12.3 KiB is NOT numeric (units belong in the header).
_NUMERIC = re.compile(r"^[+\-\u2212]?(\d[\d,]*(\.\d+)?|\.\d+)(e[+-]?\d+)?\s*[%x\u00d7]?$", re.IGNORECASE)
_BLANK_CELLS = frozenset({"", "-", "\u2013", "\u2014", "n/a", "N/A", "NA", "nan"})


def _tuple(value: Sequence, name: str) -> tuple:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a sequence, not a single string")
    return tuple(value)


@dataclass(frozen=True)
class Paragraph:
    """Running text; inline ``**bold**`` and ```code``` only."""

    text: str


@dataclass(frozen=True)
class BulletList:
    """An unordered list; each item takes the same inline markup as a Paragraph."""

    items: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", _tuple(self.items, "BulletList.items"))


@dataclass(frozen=True)
class Table:
    """A table of already-formatted cells.

    ``align``: one of "left"/"right"/"center" per column, or None to right-align the columns whose cells
    all read as numbers. ``highlight``: one entry per row, None or a tag such as "fastest", "slowest",
    "baseline" (several tags separated by spaces); markdown shows a tagged row in bold, HTML gives it the
    CSS classes ``hl hl-<tag>``.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str
    align: tuple[str, ...] | None = None
    highlight: tuple[str | None, ...] | None = None

    def __post_init__(self) -> None:
        cols = _tuple(self.columns, "Table.columns")
        rows = tuple(_tuple(r, "Table row") for r in _tuple(self.rows, "Table.rows"))
        for i, r in enumerate(rows):
            if len(r) != len(cols):
                raise ValueError(f"table {self.caption!r}: row {i} has {len(r)} cells, expected {len(cols)}")
            for c in r:
                if not isinstance(c, str):
                    raise TypeError(f"table {self.caption!r}: row {i} has a non-string cell {c!r} (format it first)")
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "rows", rows)
        if self.align is not None:
            align = _tuple(self.align, "Table.align")
            if len(align) != len(cols) or any(a not in ALIGNS for a in align):
                raise ValueError(f"table {self.caption!r}: align must give one of {ALIGNS} per column")
            object.__setattr__(self, "align", align)
        if self.highlight is not None:
            hl = _tuple(self.highlight, "Table.highlight")
            if len(hl) != len(rows):
                raise ValueError(f"table {self.caption!r}: highlight must have one entry per row")
            for tag in hl:
                if tag is not None and not all(_TAG.match(t) for t in tag.split()):
                    raise ValueError(f"table {self.caption!r}: bad highlight tag {tag!r} (use e.g. 'fastest')")
            object.__setattr__(self, "highlight", tuple(t if t and t.split() else None for t in hl))

    def alignments(self) -> tuple[str, ...]:
        """The alignment of each column: the given one, else right for numeric columns, left otherwise."""
        if self.align is not None:
            return self.align
        out = []
        for j in range(len(self.columns)):
            cells = [r[j].strip() for r in self.rows if r[j].strip() not in _BLANK_CELLS]
            out.append("right" if cells and all(_NUMERIC.match(c) for c in cells) else "left")
        return tuple(out)

    def row_tags(self) -> tuple[tuple[str, ...], ...]:
        """The highlight tags of each row (empty tuple for a plain row)."""
        if self.highlight is None:
            return tuple(() for _ in self.rows)
        return tuple(tuple(t.split()) if t else () for t in self.highlight)


@dataclass(frozen=True)
class Figure:
    """A PNG image with its caption; ``filename`` is where markdown output writes it (a plain ``*.png`` name)."""

    png: bytes = field(repr=False)
    caption: str
    alt: str
    filename: str

    def __post_init__(self) -> None:
        if not isinstance(self.png, bytes) or not self.png.startswith(PNG_SIGNATURE):
            raise ValueError(f"figure {self.filename!r}: png is not PNG data")
        if not _FILENAME.match(self.filename):
            raise ValueError(f"figure {self.filename!r}: filename must be a plain name like 'fps.png'")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, from the PNG header."""
        return png_size(self.png)


@dataclass(frozen=True)
class CodeBlock:
    """Preformatted text shown verbatim (a config excerpt, compiler output)."""

    text: str


@dataclass(frozen=True)
class Note:
    """A call-out set apart from the running text (a caveat, an estimate warning); inline markup allowed."""

    text: str


Block: TypeAlias = "Paragraph | BulletList | Table | Figure | CodeBlock | Note | Section"


@dataclass(frozen=True)
class Section:
    """A titled part of the document. A Section among ``blocks`` is a subsection (up to 3 levels).

    ``anchor`` is the link target in the table of contents (ASCII: ``[A-Za-z][A-Za-z0-9_-]*``); None gives
    ``section-1``, ``section-1-2``, ... by position.
    """

    title: str
    blocks: tuple[Block, ...]
    anchor: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", _tuple(self.blocks, "Section.blocks"))
        for b in self.blocks:
            if not isinstance(b, (Paragraph, BulletList, Table, Figure, CodeBlock, Note, Section)):
                raise TypeError(f"section {self.title!r}: not a block: {b!r}")
        if self.anchor is not None and not _ANCHOR.match(self.anchor):
            raise ValueError(f"section {self.title!r}: bad anchor {self.anchor!r}")


@dataclass(frozen=True)
class Document:
    """The whole report: a title, the language of its text ("en" or "zh") and its sections."""

    title: str
    lang: str
    sections: tuple[Section, ...]

    def __post_init__(self) -> None:
        if self.lang not in LANGS:
            raise ValueError(f"lang must be one of {LANGS}, not {self.lang!r}")
        object.__setattr__(self, "sections", _tuple(self.sections, "Document.sections"))
        seen_anchor: set[str] = set()
        seen_file: dict[str, bytes] = {}
        for s, anchor, depth in self.walk_sections():
            if depth > MAX_SECTION_DEPTH:
                raise ValueError(f"section {s.title!r} is nested deeper than {MAX_SECTION_DEPTH} levels")
            if anchor in seen_anchor:
                raise ValueError(f"duplicate section anchor {anchor!r}")
            seen_anchor.add(anchor)
        for f in self.figures():
            if seen_file.setdefault(f.filename, f.png) != f.png:
                raise ValueError(f"two different figures share the filename {f.filename!r}")

    def walk_sections(self) -> Iterator[tuple[Section, str, int]]:
        """Every section, depth first, with its resolved anchor and depth (1 = top level)."""

        def walk(sections: Sequence[Section], prefix: str, depth: int) -> Iterator[tuple[Section, str, int]]:
            for i, s in enumerate(sections, 1):
                anchor = s.anchor or f"{prefix}-{i}"
                yield s, anchor, depth
                yield from walk([b for b in s.blocks if isinstance(b, Section)], anchor, depth + 1)

        yield from walk(self.sections, "section", 1)

    def figures(self) -> list[Figure]:
        """All figures in document order."""

        def collect(blocks: Sequence[Block]) -> Iterator[Figure]:
            for b in blocks:
                if isinstance(b, Figure):
                    yield b
                elif isinstance(b, Section):
                    yield from collect(b.blocks)

        return list(collect(self.sections))

    def tables(self) -> list[Table]:
        """All tables in document order (the order of ``<table>`` elements in the HTML)."""

        def collect(blocks: Sequence[Block]) -> Iterator[Table]:
            for b in blocks:
                if isinstance(b, Table):
                    yield b
                elif isinstance(b, Section):
                    yield from collect(b.blocks)

        return list(collect(self.sections))


InlineKind = Literal["text", "bold", "code"]


def parse_inline(text: str) -> list[tuple[InlineKind, str]]:
    """Split text into (kind, content) runs: ``**bold**``, ```code``` and plain text; nothing else is markup."""
    out: list[tuple[InlineKind, str]] = []
    pos = 0
    for m in _INLINE.finditer(text):
        if m.start() > pos:
            out.append(("text", text[pos : m.start()]))
        out.append(("bold", m.group("bold")) if m.group("bold") is not None else ("code", m.group("code")))
        pos = m.end()
    if pos < len(text):
        out.append(("text", text[pos:]))
    return out


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) of a PNG from its IHDR chunk."""
    if len(png) < 24 or not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    w, h = struct.unpack(">II", png[16:24])
    return int(w), int(h)
