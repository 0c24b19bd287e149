"""The accuracy section of the report on the planted study of tests/analysis/accuracy_tables.py: EN and ZH
carry the same numbers and structure, the verdict sentences follow the planted outcomes, the training budget
stands next to every EPE figure, and the EPE columns join the key-results and ranking tables."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))

from accuracy_tables import TRAINED, acc_rows, full_study

from edgenas.report.document import BulletList, Document, Note, Paragraph, Section, Table
from edgenas.report.html import render_html
from edgenas.report.markdown import render_markdown
from edgenas.report.study_doc import study_document

NUMBER = re.compile(r"[+\-]?\d(?:[\d,]*\d)?(?:\.\d+)?%?")
BUDGET = {"en": "6 epoch(s) x 640 synthetic training samples at 48x64", "zh": "用 640 个合成训练样本训练 6 轮"}


@pytest.fixture(scope="module")
def docs() -> dict[str, Document]:
    study = full_study(recommended={"head": ("h3", "hds", "h5")})
    return {lang: study_document(study, lang) for lang in ("en", "zh")}


def section(doc: Document, anchor: str) -> Section:
    (s,) = [s for s, _, _ in doc.walk_sections() if s.anchor == anchor]
    return s


def texts(blocks: Any) -> Iterator[str]:
    """Every string of a block tree, in order (table cells row by row)."""
    for b in blocks:
        if isinstance(b, Section):
            yield b.title
            yield from texts(b.blocks)
        elif isinstance(b, (Paragraph, Note)):
            yield b.text
        elif isinstance(b, BulletList):
            yield from b.items
        elif isinstance(b, Table):
            yield b.caption
            for r in b.rows:
                yield from r


def numbers(blocks: Any) -> list[list[str]]:
    """The numbers of each string in order, each string's own sorted (the languages order a sentence's words
    differently). Resolutions (48x64) and design labels hold digits too: the same in both languages."""
    return [sorted(NUMBER.findall(t)) for t in texts(blocks)]


def test_en_and_zh_accuracy_sections_have_the_same_numbers_and_structure(docs: dict[str, Document]) -> None:
    en, zh = section(docs["en"], "accuracy"), section(docs["zh"], "accuracy")
    shape = [lambda s: [type(b).__name__ for b in s.blocks], lambda s: [t.columns.__len__() for t in _tables(s)]]
    for f in shape:
        assert f(en) == f(zh)
    assert numbers(en.blocks) == numbers(zh.blocks) and sum(map(len, numbers(en.blocks))) > 150
    cells = [[[c if NUMBER.fullmatch(c) else None for c in r] for t in ts for r in t.rows]
             for ts in (_tables(en), _tables(zh))]
    assert cells[0] == cells[1]  # every numeric cell in the same place
    assert [s.anchor for s, _, _ in docs["en"].walk_sections()] == [s.anchor for s, _, _ in docs["zh"].walk_sections()]
    assert [len(t.rows) for t in docs["en"].tables()] == [len(t.rows) for t in docs["zh"].tables()]
    for doc in docs.values():
        _, images = render_markdown(doc)
        assert "accuracy_train.png" in images and "accuracy_deploy.png" in images
        assert 'id="accuracy"' in render_html(doc)


def _tables(s: Section) -> list[Table]:
    out: list[Table] = []
    for b in s.blocks:
        if isinstance(b, Table):
            out.append(b)
        elif isinstance(b, Section):
            out += _tables(b)
    return out


def test_the_table_carries_the_planted_figures(docs: dict[str, Document]) -> None:
    (t, *factor_tables) = _tables(section(docs["en"], "accuracy"))
    assert t.columns[:6] == ("design", "seeds", "EPE 48x64", "EPE 128x160", "spread 48x64", "spread 128x160")
    rows = {r[0]: r for r in t.rows}
    assert rows["h3 + 7 + bl"][1:6] == ("0,1", "1.010", "2.015", "0.020", "0.030")
    assert rows["h3 + 7 + hpc"][-2:] == ("no", "-")  # does not fit: on no front
    assert rows["h5 + 7 + bl"][-1] == "48x64, 128x160"
    assert len(t.rows) == len(TRAINED)
    kernel = next(ft for ft in factor_tables if ft.columns[0] == "kernel")
    assert [r[0] for r in kernel.rows] == ["7 (reference)", "3", "5"]
    assert kernel.rows[1][2:5] == ("+30.0%", "1.105", "+0.095") and kernel.rows[2][4] == "-0.015"


def test_verdict_sentences_follow_the_planted_outcomes(docs: dict[str, Document]) -> None:
    kernel = " ".join(texts(section(docs["en"], "accuracy-kernel").blocks))
    assert "**3** against `7`: FPS +30.0%; at 48x64 EPE +0.095 (noise 0.020), less accurate beyond the noise" in kernel
    assert ("**5** against `7`: FPS +15.0%; at 48x64 EPE -0.015 (noise 0.020), not less accurate beyond the noise: "
            "the saving costs no measurable accuracy") in kernel
    head = " ".join(texts(section(docs["en"], "accuracy-head").blocks))
    assert "**h5** against `h3`: FPS -30.0%; at 48x64 EPE -0.110 (noise 0.020), more accurate beyond the noise" in head
    assert "**hbig** against `h3`: FPS -40.0%; at 48x64 EPE +0.020 (noise 0.020), not more accurate" in head
    assert ("At 48x64, of the values the recommendation named in `report.recommended` keeps (h3, hds, h5), on this "
            "comparison's EPE/FPS front: hds, h5; not on it: h3. Values it drops that are on the front: none.") in head
    up = " ".join(texts(section(docs["en"], "accuracy-up").blocks))
    assert "not worth its cycles" in up and "It does not fit npu-2m at 128x160" in up
    zh = " ".join(texts(section(docs["zh"], "accuracy-kernel").blocks))
    assert "精度下降超过噪声：属于权衡" in zh and "节省周期没有可测的精度代价" in zh


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_budget_stands_next_to_every_epe_figure(docs: dict[str, Document], lang: str) -> None:
    doc = docs[lang]
    acc = section(doc, "accuracy")
    for t in _tables(acc):
        assert BUDGET[lang] in t.caption
    key = section(doc, "key-results")
    (kt,) = [b for b in key.blocks if isinstance(b, Table)]
    (note,) = [b for b in key.blocks if isinstance(b, Note)]
    assert BUDGET[lang] in note.text and "EPE" in note.text
    assert kt.columns[3:5] == ("EPE 48x64", "EPE 128x160")
    cells = {r[0]: r[3:5] for r in kt.rows}
    assert cells["h3 + 7 + bl"] == ("1.010", "2.015") and cells["hds + 3 + bl"] == ("-", "-")  # never trained
    ranking = [t for t in doc.tables() if t.columns[1] == "kernel" and "EPE 48x64" in t.columns]
    assert ranking, "the ranking of a choice carries the EPE columns too"
    said = " ".join(texts(acc.blocks))
    assert any(s in said for s in ("not a converged FlyingChairs model", "不是收敛的 FlyingChairs 模型"))


def test_the_all_zero_reference_and_a_task_not_learned() -> None:
    body = " ".join(texts(section(study_document(full_study(), "en"), "accuracy").blocks))
    assert ("an all-zero output (for optical flow: no motion at all) scores 1.200 at 48x64 and 2.050 at 128x160. "
            "Designs better than that by more than the seed noise: 7 of 7 at 48x64, 5 at 128x160.") in body
    assert "have not learned the task" not in body
    for lang, needle in (("en", "No design does better than the all-zero output at 128x160 by more than the noise"),
                         ("zh", "在 128x160 下没有设计比全零输出好且超过噪声")):
        doc = study_document(full_study(acc_rows(zero_epe_deploy="1.5")), lang)
        notes = [b.text for b in section(doc, "accuracy").blocks if isinstance(b, Note)]
        assert any(needle in n for n in notes) and not any("48x64" in n and ("No design" in n or "没有设计" in n)
                                                             for n in notes)


def test_one_seed_each_renders_no_verdict() -> None:
    one = {d: runs[:1] for d, runs in TRAINED.items()}
    study = full_study(acc_rows(one))
    for lang, needle in (("en", "seed noise unknown: no verdict"), ("zh", "种子噪声未知：不下结论")):
        body = " ".join(texts(section(study_document(study, lang), "accuracy").blocks))
        assert needle in body and "beyond the noise" not in body and "超过噪声" not in body


def test_no_trained_results_no_accuracy_section() -> None:
    doc = study_document(full_study([]), "en")
    assert "accuracy" not in [s.anchor for s, _, _ in doc.walk_sections()]
    assert all("EPE" not in " ".join(t.columns) for t in doc.tables())
