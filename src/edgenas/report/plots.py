"""Report figures as PNG bytes (matplotlib, Agg): same data -> same bytes on a given machine.

matplotlib is imported lazily, figures are drawn on their own Agg canvas (no pyplot) inside ``rc_context``
with an explicit style, so nothing here depends on (or changes) the user's matplotlib settings.
Labels may be Chinese: the font list falls back to a CJK font when one is installed (Debian
``fonts-noto-cjk``, or ``fonts-wqy-microhei``); without one, CJK glyphs render as boxes and a single
warning is logged instead of one per glyph.
"""

from __future__ import annotations

import io
import logging
import math
import re
import warnings
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

DPI = 120
FIGSIZE = (8.0, 4.5)  # inches -> 960 x 540 px: sharp on screen, fits an A4 page width when printed
BASE_FONTS = ("DejaVu Sans",)
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK JP",
    "Microsoft YaHei",
    "PingFang SC",
)
# Colour-blind-safe (Okabe-Ito) colours, then markers and dashes so series stay apart in grey print.
COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
ACCENT = "#D55E00"
BAR_COLOR = "#0072B2"
# PNG text chunks matplotlib would otherwise write ("Software": its version); none -> reproducible bytes.
PNG_METADATA: dict[str, Any] = {"Software": None}

_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_warned_no_cjk = False


def _mpl() -> Any:
    # Figures are drawn on their own Agg canvas, never through pyplot: no global backend switch, no figure
    # registry to leak, and the caller's backend (a notebook, a GUI) is left alone.
    import matplotlib

    return matplotlib


@lru_cache(maxsize=1)
def font_families() -> tuple[str, ...]:
    """The sans-serif fonts the plots ask for: DejaVu Sans first, then the installed CJK fallbacks."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return BASE_FONTS + tuple(f for f in CJK_FONTS if f in installed)


def has_cjk_font() -> bool:
    """True when a CJK fallback font is installed, so Chinese labels render as text, not boxes."""
    return len(font_families()) > len(BASE_FONTS)


def _rc() -> dict[str, Any]:
    return {
        # The explicit list, not "sans-serif": matplotlib falls back glyph by glyph only across font.family.
        "font.family": list(font_families()),
        "font.size": 10,
        "axes.titlesize": 12,
        "axes.labelsize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#dddddd",
        "grid.linewidth": 0.6,
        "axes.axisbelow": True,
        "legend.fontsize": 9,
        "legend.frameon": False,
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "path.simplify": False,
        "axes.unicode_minus": False,
    }


def _check_text(*texts: Any) -> None:
    global _warned_no_cjk
    if _warned_no_cjk or has_cjk_font():
        return
    if any(_CJK.search(str(t)) for t in texts if t is not None):
        _warned_no_cjk = True
        log.warning("no CJK font installed (e.g. Debian fonts-noto-cjk): Chinese plot labels render as boxes")


def _new_figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    _mpl()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata=PNG_METADATA, facecolor="white")
    return buf.getvalue()


def _draw(figsize: tuple[float, float], texts: Sequence[Any], draw: Any) -> bytes:
    """Run ``draw(fig, ax)`` under our style and return the PNG; missing-glyph warnings are logged once."""
    mpl = _mpl()
    _check_text(*texts)
    with mpl.rc_context(_rc()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        fig, ax = _new_figure(figsize)
        draw(fig, ax)
        return _png(fig)


def _values(seq: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in seq]


def line_plot(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    log_y: bool = False,
    marker_points: Sequence[tuple[str, int, str]] | None = None,
) -> bytes:
    """One line per series over categorical x (e.g. resolutions); None is a gap (a failed compile).

    ``marker_points``: (series name, x index, label) to ring and annotate, e.g. an FPS cliff.
    """
    x_labels = [str(x) for x in x_labels]
    for name, ys in series.items():
        if len(ys) != len(x_labels):
            raise ValueError(f"series {name!r} has {len(ys)} values for {len(x_labels)} x labels")
    marks = list(marker_points or ())
    for name, i, _ in marks:
        if name not in series or not 0 <= i < len(x_labels):
            raise ValueError(f"marker point ({name!r}, {i}) is not on the plot")

    def draw(fig: Any, ax: Any) -> None:
        xs = list(range(len(x_labels)))
        for k, (name, ys) in enumerate(series.items()):
            ax.plot(
                xs,
                _values(ys),
                label=name,
                color=COLORS[k % len(COLORS)],
                marker=MARKERS[k % len(MARKERS)],
                linestyle=LINESTYLES[(k // len(COLORS)) % len(LINESTYLES)],
                linewidth=1.6,
                markersize=5,
            )
        for name, i, label in marks:
            y = _values(series[name])[i]
            if math.isnan(y):
                continue
            ax.plot(
                [i],
                [y],
                marker="o",
                markersize=14,
                markerfacecolor="none",
                markeredgecolor=ACCENT,
                markeredgewidth=2,
                linestyle="none",
                zorder=5,
            )
            if label:
                ax.annotate(
                    label,
                    (i, y),
                    xytext=(12, 12),
                    textcoords="offset points",
                    color=ACCENT,
                    fontsize=9,
                    arrowprops={"arrowstyle": "-", "color": ACCENT, "linewidth": 1},
                )
        ax.set_xticks(xs, x_labels, rotation=30 if max(map(len, x_labels), default=0) > 8 else 0)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))

    return _draw(FIGSIZE, [title, xlabel, ylabel, *x_labels, *series, *(m[2] for m in marks)], draw)


def bar_plot(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    xlabel: str,
    *,
    value_format: str = "{:,.1f}",
    highlight: Collection[str] = (),
    reference: float | None = None,
    reference_label: str = "",
) -> bytes:
    """Horizontal bars, first label on top, each bar labelled with its value (e.g. FPS per choice, % cycles).

    ``highlight``: labels drawn in the accent colour; ``reference``: a vertical dashed line (e.g. baseline).
    """
    labels = [str(x) for x in labels]
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} values for {len(labels)} labels")

    def draw(fig: Any, ax: Any) -> None:
        ys = list(range(len(labels)))
        vals = [float(v) for v in values]
        colors = [ACCENT if lab in highlight else BAR_COLOR for lab in labels]
        bars = ax.barh(ys, vals, color=colors, height=0.65)
        ax.bar_label(bars, labels=[value_format.format(v) for v in vals], padding=3, fontsize=9)
        ax.set_yticks(ys, labels)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.12)
        if reference is not None:
            ax.axvline(reference, color="#444444", linestyle="--", linewidth=1, label=reference_label or None)
            if reference_label:
                ax.legend(loc="lower right")
        ax.set_title(title)
        ax.set_xlabel(xlabel)

    return _draw(_bar_size(len(labels)), [title, xlabel, reference_label, *labels], draw)


def stacked_bar_plot(
    labels: Sequence[str],
    parts: Mapping[str, Sequence[float]],
    title: str,
    xlabel: str,
    *,
    percent: bool = False,
    min_label_share: float = 0.06,
) -> bytes:
    """Horizontal stacked bars: one bar per label (e.g. a design), one segment per part (backbone, heads...).

    ``percent``: scale each bar to 100% (shares of cycles). Segments at least ``min_label_share`` of their
    bar are labelled with their value.
    """
    labels = [str(x) for x in labels]
    for name, vs in parts.items():
        if len(vs) != len(labels):
            raise ValueError(f"part {name!r} has {len(vs)} values for {len(labels)} labels")

    def draw(fig: Any, ax: Any) -> None:
        ys = list(range(len(labels)))
        data = {name: [float(v) for v in vs] for name, vs in parts.items()}
        totals = [sum(col) for col in zip(*data.values())] if data else [0.0] * len(labels)
        if percent:
            data = {n: [100 * v / t if t else 0.0 for v, t in zip(vs, totals)] for n, vs in data.items()}
        left = [0.0] * len(labels)
        bar_total = [100.0 if t else 0.0 for t in totals] if percent else totals
        for k, (name, vs) in enumerate(data.items()):
            bars = ax.barh(
                ys,
                vs,
                left=left,
                height=0.65,
                label=name,
                color=COLORS[k % len(COLORS)],
                edgecolor="white",
                linewidth=0.5,
            )
            texts = [
                (f"{v:.0f}%" if percent else f"{v:,.3g}") if t and v / t >= min_label_share else ""
                for v, t in zip(vs, bar_total)
            ]
            dark = COLORS[k % len(COLORS)] in ("#0072B2", "#009E73", "#D55E00", "#CC79A7", "#000000")
            ax.bar_label(bars, labels=texts, label_type="center", fontsize=8, color="white" if dark else "black")
            left = [a + b for a, b in zip(left, vs)]
        ax.set_yticks(ys, labels)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        if percent:
            ax.set_xlim(0, 100)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))

    return _draw(_bar_size(len(labels), extra=0.6), [title, xlabel, *labels, *parts], draw)


def scatter_plot(
    points: Sequence[tuple[str, float, float]],
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    front: Sequence[str] = (),
) -> bytes:
    """Labelled points (label, x, y), e.g. error against FPS; ``front``: labels of a Pareto front, drawn in
    the accent colour and joined in the given order."""
    labels = [str(p[0]) for p in points]
    missing = [f for f in front if f not in labels]
    if missing:
        raise ValueError(f"front point(s) {missing} are not among the points")

    def draw(fig: Any, ax: Any) -> None:
        on = set(front)
        for label, x, y in points:
            ax.plot([x], [y], marker="o", markersize=6, linestyle="none",
                    color=ACCENT if label in on else BAR_COLOR, zorder=3)
            ax.annotate(str(label), (x, y), xytext=(5, 4), textcoords="offset points", fontsize=8)
        if len(front) > 1:
            at = {str(p[0]): (p[1], p[2]) for p in points}
            ax.plot([at[f][0] for f in front], [at[f][1] for f in front], color=ACCENT, linewidth=1.2,
                    linestyle="--", zorder=2)
        ax.margins(x=0.15, y=0.12)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)

    return _draw(FIGSIZE, [title, xlabel, ylabel, *labels], draw)


def _bar_size(n: int, extra: float = 0.0) -> tuple[float, float]:
    return (FIGSIZE[0], min(9.0, max(2.4, 1.2 + 0.38 * n + extra)))
