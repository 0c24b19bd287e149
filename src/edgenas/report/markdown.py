"""Render a Document as GitHub-flavoured markdown plus the PNG files its image links point to."""

from __future__ import annotations

import re

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

CONTENTS = {"en": "Contents", "zh": "目录"}

# Characters that could start markup anywhere in a line; '_' only matters at word edges (GitHub ignores
# intraword underscores, so snake_case names stay readable in the raw file).
_SPECIAL = re.compile(r"([\\`*\[\]<|])")
_EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What would turn the start of a line into a heading, list, quote or rule.
_LINE_START = re.compile(r"^(\s*)([#>+\-=]|\d+[.)])", re.MULTILINE)


def _escape_text(text: str) -> str:
    text = _SPECIAL.sub(r"\\\1", text)
    text = _EDGE_UNDERSCORE.sub(r"\\_", text)
    return text


def _code_span(code: str) -> str:
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", code)), default=0) + 1)
    pad = " " if code.startswith("`") or code.endswith("`") else ""
    return f"{ticks}{pad}{code}{pad}{ticks}"


def _inline(text: str) -> str:
    parts = []
    for kind, s in parse_inline(" ".join(text.split("\n"))):
        if kind == "bold":
            parts.append(f"**{_escape_text(s)}**")
        elif kind == "code":
            parts.append(_code_span(s))
        else:
            parts.append(_escape_text(s))
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), "".join(parts), count=1)


def _cell(text: str, bold: bool) -> str:
    s = _escape_text(" ".join(text.split()))
    return f"**{s}**" if bold and s else s


def _table(t: Table) -> list[str]:
    sep = {"left": ":---", "right": "---:", "center": ":---:"}
    lines = []
    if t.caption:
        lines += [f"*{_escape_text(t.caption)}*", ""]
    lines.append("| " + " | ".join(_cell(c, False) for c in t.columns) + " |")
    lines.append("|" + "|".join(sep[a] for a in t.alignments()) + "|")
    for row, tags in zip(t.rows, t.row_tags()):
        lines.append("| " + " | ".join(_cell(c, bool(tags)) for c in row) + " |")
    return lines


def _figure(f: Figure) -> list[str]:
    alt = f.alt.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    lines = [f"![{' '.join(alt.split())}]({f.filename})"]
    if f.caption:
        lines += ["", f"*{_escape_text(f.caption)}*"]
    return lines


def _code_block(text: str) -> list[str]:
    fence = "`" * max(3, max((len(r) for r in re.findall(r"^`+", text, re.MULTILINE)), default=0) + 1)
    return [fence, text.rstrip("\n"), fence]


def _blocks(section: Section, anchor_of: dict[int, str], depth: int) -> list[str]:
    lines = [f'<a id="{anchor_of[id(section)]}"></a>', "", f"{'#' * (depth + 1)} {_inline(section.title)}", ""]
    for b in section.blocks:
        if isinstance(b, Paragraph):
            lines += [_inline(b.text)]
        elif isinstance(b, BulletList):
            lines += [f"- {_inline(item)}" for item in b.items]
        elif isinstance(b, Table):
            lines += _table(b)
        elif isinstance(b, Figure):
            lines += _figure(b)
        elif isinstance(b, CodeBlock):
            lines += _code_block(b.text)
        elif isinstance(b, Note):
            lines += [f"> {_inline(b.text)}"]
        elif isinstance(b, Section):
            lines += _blocks(b, anchor_of, depth + 1)
            continue
        lines.append("")
    return lines


def render_markdown(doc: Document) -> tuple[str, dict[str, bytes]]:
    """The markdown text and the files it links to ({filename: png bytes}), to be written side by side."""
    anchor_of = {id(s): a for s, a, _ in doc.walk_sections()}
    lines = [f"# {_inline(doc.title)}", ""]
    if len(doc.sections) > 1:
        lines += [f"**{CONTENTS[doc.lang]}**", ""]
        for s, anchor, depth in doc.walk_sections():
            if depth <= 2:
                lines.append(f"{'  ' * (depth - 1)}- [{_inline(s.title)}](#{anchor})")
        lines.append("")
    for s in doc.sections:
        lines += _blocks(s, anchor_of, 1)
    text = "\n".join(lines).rstrip("\n") + "\n"
    return text, {f.filename: f.png for f in doc.figures()}
