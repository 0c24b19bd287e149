"""A sample report Document (EN or ZH) shared by the renderer and browser tests, with its source numbers."""

from __future__ import annotations

from edgenas.report import plots
from edgenas.report.document import (
    BulletList,
    CodeBlock,
    Document,
    Figure,
    Note,
    Paragraph,
    Section,
    Table,
)

RESOLUTIONS = ("96x128", "128x160", "156x208", "192x256")
# design -> (FPS at 192x256, SRAM KiB): the numbers the table shows and the tests read back.
KEY = {
    "conv3x3": (21.4567, 1234.5),
    "dsconv3x3": (27.0, 1102.25),
    "MBConv_E4": (18.25, 1498.0),
    "Shuffle": (25.125, 2049.75),
    "a|b <odd> name": (3.5, 12.0),
}
FPS_SERIES = {
    "conv3x3": (50.0, 40.0, 30.0, 21.4567),
    "MBConv_E4": (45.0, 38.0, 12.0, 18.25),
    "Shuffle": (52.0, 41.0, None, 25.125),
}
BASELINE = "conv3x3"

TEXT = {
    "en": {
        "title": "Head upsampling study: Ethos-U55",
        "config": "Search configuration",
        "config_p": "The space searches the **Head1/Head2 upsampling** block; the backbone is fixed to `shufflenet`. "
        "Escaping check: <script>alert(1)</script> & a*b_c.",
        "items": ("resolutions: 4", "hardware: **Ethos-U55-128**, 512 KiB SRAM", "compiler: `vela 5.2.0`"),
        "note": "Compiler figures are estimates: no published error bound for them was found.",
        "results": "Key results at 192x256",
        "caption": "FPS and SRAM at 192x256 (fastest, slowest and baseline marked)",
        "cols": ("design", "FPS", "SRAM KiB", "FPS vs baseline %"),
        "fig1": ("FPS over resolution", "FPS of each design over input resolution", "Line plot of FPS"),
        "sub": "Where the cycles go",
        "fig2": ("Share of cycles by network part", "Share of cycles by part", "Stacked bars of cycle shares"),
        "parts": ("backbone", "Head1", "Head2", "Head3"),
        "axis": ("input resolution", "FPS", "% of cycles"),
        "cliff": "cliff",
    },
    "zh": {
        "title": "Head 上采样研究：Ethos-U55",
        "config": "搜索配置",
        "config_p": "搜索空间为 **Head1/Head2 上采样** 模块；主干固定为 `shufflenet`。"
        "转义检查：<script>alert(1)</script>。",
        "items": ("分辨率：4 种", "硬件：**Ethos-U55-128**，512 KiB SRAM", "编译器：`vela 5.2.0`"),
        "note": "编译器给出的数字是估计值：未找到公开的误差范围。",
        "results": "192x256 下的关键结果",
        "caption": "192x256 下的 FPS 与 SRAM（标出最快、最慢与基线）",
        "cols": ("设计", "FPS", "SRAM KiB", "相对基线 FPS %"),
        "fig1": ("FPS 随分辨率变化", "各设计的 FPS 随输入分辨率的变化", "FPS 折线图"),
        "sub": "周期花在哪里",
        "fig2": ("各网络部分的周期占比", "各部分的周期占比", "周期占比堆叠条形图"),
        "parts": ("主干", "Head1", "Head2", "Head3"),
        "axis": ("输入分辨率", "FPS", "周期占比 %"),
        "cliff": "性能悬崖",
    },
}


def key_table(lang: str) -> Table:
    t = TEXT[lang]
    base = KEY[BASELINE][0]
    fastest = max(KEY, key=lambda k: KEY[k][0])
    slowest = min(KEY, key=lambda k: KEY[k][0])
    rows, tags = [], []
    for name, (fps, sram) in KEY.items():
        rows.append((name, f"{fps:.2f}", f"{sram:,.1f}", f"{100 * (fps / base - 1):+.1f}%"))
        tag = " ".join(
            x
            for x, hit in (("fastest", name == fastest), ("slowest", name == slowest), ("baseline", name == BASELINE))
            if hit
        )
        tags.append(tag or None)
    return Table(t["cols"], rows, t["caption"], highlight=tags)


def layer_table() -> Table:
    """A wide per-layer table like the seed's excerpt: must scroll inside its box, not widen the page."""
    cols = (
        "op",
        "target",
        "name",
        "cycles",
        "% cycles",
        "SRAM AC",
        "DRAM AC",
        "OffFlash AC",
        "MACs",
        "util %",
        "output shape",
    )
    rows = [
        (
            "RESIZE_BILINEAR",
            "NPU",
            f"model/head{i}/upsample/resize_bilinear_{i}_very_long_tensor_name",
            f"{1234567 * i:,}",
            f"{4.5 * i:.1f}",
            f"{98765 * i:,}",
            "0",
            f"{45678 * i:,}",
            f"{9876543 * i:,}",
            f"{12.5 * i:.1f}",
            f"1x{39 * i}x{52 * i}x128",
        )
        for i in (1, 2, 3)
    ]
    return Table(cols, rows, "per-layer rows of the slowest design")


def sample_document(lang: str = "en") -> Document:
    """Two sections (one with a subsection) with a table of numbers and two figures, then a Chinese section."""
    t = TEXT[lang]
    fps_png = plots.line_plot(
        RESOLUTIONS, FPS_SERIES, t["fig1"][0], t["axis"][0], t["axis"][1], marker_points=[("MBConv_E4", 2, t["cliff"])]
    )
    share_png = plots.stacked_bar_plot(
        list(FPS_SERIES),
        dict(zip(t["parts"], ([13.0, 12.0, 9.0], [1.0, 4.0, 0.5], [1.0, 2.5, 0.5], [0.5, 1.5, 0.5]))),
        t["fig2"][0],
        t["axis"][2],
        percent=True,
    )
    return Document(
        title=t["title"],
        lang=lang,
        sections=(
            Section(
                t["config"],
                (
                    Paragraph(t["config_p"]),
                    BulletList(t["items"]),
                    CodeBlock("space: flow_head_upsample\nresolutions: [96x128, 192x256]\n"),
                    Note(t["note"]),
                ),
                anchor="configuration",
            ),
            Section(
                t["results"],
                (
                    key_table(lang),
                    Figure(fps_png, t["fig1"][1], t["fig1"][2], "fps_vs_resolution.png"),
                    Section(
                        t["sub"], (Figure(share_png, t["fig2"][1], t["fig2"][2], "cycle_share.png"), layer_table())
                    ),
                ),
                anchor="key-results",
            ),
            # Chinese text in either language: the EN report quotes it, the ZH report is all Chinese.
            Section(
                "中文小结",
                (
                    Paragraph("MBConv_E4 在 156x208 出现**性能悬崖**：FPS 低于 192x256 时的值。"),
                    Table(("部分", "周期占比 %"), (("主干", "87.0"), ("头部", "13.0")), "周期占比"),
                ),
                anchor="zh-summary",
            ),
        ),
    )
