"""Report plots: valid, deterministic PNGs; Chinese labels; no warning spam without a CJK font."""

from __future__ import annotations

import io
import logging
import warnings

import pytest

from edgenas.report import plots
from edgenas.report.document import PNG_SIGNATURE, png_size

pytest.importorskip("matplotlib")

X = ["96x128", "128x160", "156x208", "192x256"]
SERIES = {"conv3x3": [50.0, 40.0, 30.0, 20.0], "MBConv_E4": [45.0, 38.0, 12.0, None]}


def _all_plots(title: str = "FPS") -> list[bytes]:
    return [
        plots.line_plot(X, SERIES, title, "input", "FPS", marker_points=[("MBConv_E4", 2, "cliff")]),
        plots.line_plot(X, SERIES, title, "input", "cycles", log_y=True),
        plots.bar_plot(
            ["backbone", "Head1", "Head2"],
            [87.0, 8.0, 5.0],
            title,
            "% cycles",
            highlight={"backbone"},
            reference=50.0,
            reference_label="half",
        ),
        plots.stacked_bar_plot(["a", "b"], {"backbone": [3.0, 4.0], "heads": [1.0, 0.0]}, title, "%", percent=True),
        plots.stacked_bar_plot(["a", "b"], {"backbone": [3e6, 4e6], "heads": [1e6, 0.0]}, title, "cycles"),
    ]


def test_plots_are_valid_png() -> None:
    image = pytest.importorskip("matplotlib.image")
    for png in _all_plots():
        assert png.startswith(PNG_SIGNATURE)
        arr = image.imread(io.BytesIO(png), format="png")
        w, h = png_size(png)
        assert arr.shape[:2] == (h, w) and w == int(plots.FIGSIZE[0] * plots.DPI)
        assert arr.std() > 0.01  # something was drawn
        assert b"tEXt" not in png and b"iTXt" not in png and b"tIME" not in png  # no version, no timestamp


def test_plots_are_deterministic() -> None:
    assert _all_plots() == _all_plots()
    assert _all_plots("a")[0] != _all_plots("b")[0]


def test_plots_leave_global_matplotlib_state_alone() -> None:
    import matplotlib

    before = dict(matplotlib.rcParams)
    plots.line_plot(X, SERIES, "t", "x", "y")
    assert dict(matplotlib.rcParams) == before
    if "matplotlib.pyplot" in __import__("sys").modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="3 values for 4"):
        plots.line_plot(X, {"a": [1.0, 2.0, 3.0]}, "t", "x", "y")
    with pytest.raises(ValueError, match="not on the plot"):
        plots.line_plot(X, SERIES, "t", "x", "y", marker_points=[("conv3x3", 9, "")])
    with pytest.raises(ValueError, match="values for"):
        plots.bar_plot(["a", "b"], [1.0], "t", "x")


def test_chinese_labels_without_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        png = plots.line_plot(X, {"主干": [1.0, 2.0, 3.0, 4.0]}, "FPS 随分辨率变化", "输入分辨率", "帧率")
    assert png.startswith(PNG_SIGNATURE)
    assert [str(x.message) for x in w] == []
    if plots.has_cjk_font():
        assert not caplog.records


def test_missing_cjk_font_warns_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(plots, "font_families", lambda: plots.BASE_FONTS)
    monkeypatch.setattr(plots, "_warned_no_cjk", False)
    caplog.set_level(logging.WARNING, logger=plots.__name__)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(2):
            plots.bar_plot(["主干", "头部"], [1.0, 2.0], "周期", "占比")
    assert [str(x.message) for x in w] == []  # no per-glyph "Glyph ... missing" spam
    assert len([r for r in caplog.records if "CJK" in r.getMessage()]) == 1
    assert plots.has_cjk_font() is False
