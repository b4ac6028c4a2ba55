"""Issue 27: the Trade-offs plots read well: tick labels without float noise ("0.4000000000000001") even
when every point sits at one value, legends off the data, and the router metrics at a sensible
precision with a note when they are unstable (two tiers a few tasks apart)."""

from __future__ import annotations

import re

from cascade_studio.core.tradeoffs import STABLE_GAP_TASKS, metrics_unstable
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.ui.main_window import MainWindow
from cascade_studio.ui.plot_axes import tick_strings
from tests.ui.test_tradeoffs_page import collected

CLEAN = re.compile(r"-?\d{1,6}(\.\d{1,6})?|-?\d(\.\d+)?e[-+]\d+")


def shown_ticks(plot) -> list[str]:
    """The tick labels each axis of `plot` draws now."""
    out = []
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        length = axis.size().width() if side == "bottom" else axis.size().height()
        for spacing, values in axis.tickValues(*axis.range, length):
            out += axis.tickStrings(values, axis.autoSIPrefixScale, spacing)
    return out


def test_tick_strings_have_no_float_noise():
    assert tick_strings([0.4000000000000001, 0.6000000000000001], 1.0, 0.2) == ["0.4", "0.6"]
    assert tick_strings([0.999999999999997, 1.000000000000001], 1.0, 1e-15) == ["1.000000", "1.000000"]
    assert tick_strings([0.0004, 0.0006], 1.0, 0.0002) == ["0.0004", "0.0006"]
    assert tick_strings([-1e-17, 250000.0], 1.0, 0.1) == ["0.0", "2.5e+05"]


def test_plots_read_well_and_metrics_say_when_unstable(qtbot, tmp_path, sandbox_thread):
    collected(tmp_path / "ws", sandbox_thread.base_url, limit=12)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path / "ws")
    window.resize(1024, 700)
    window.show()
    window.nav.setCurrentRow(5)
    page = window.tradeoffs_page
    assert page.wait_loaded()

    # every point at one value: the axes still label ticks as people write numbers
    page.cloud.setData([0.4000000000000001] * 3, [1.0, 1.0000000000000002, 1.0])
    for item in (page.front, page.random_line, page.tier_points, page.current):
        item.setData([0.4000000000000001], [1.0])
    for label in page.tier_labels:
        label.setPos(0.4000000000000001, 1.0)
    page.plot.getViewBox().setRange(xRange=(0.4000000000000001, 0.4000000000000002), yRange=(1.0, 1.0000000000000002),
                                    padding=0)
    qtbot.wait(50)
    for plot in (page.plot, *page.bar_plots):
        ticks = shown_ticks(plot)
        assert ticks and all(CLEAN.fullmatch(t) for t in ticks), ticks

    # legends: beside the data, never on it
    assert page.plot.getPlotItem().legend is None
    assert page.plot_legend.isVisible() and "operating point" in page.plot_legend.text()

    # the router metrics: two places, and why they are unstable when the tiers are a few tasks apart
    m = page.metrics
    text = page.metrics_label.text()
    assert re.search(r"APGR (\d\.\d\d|—) ", text) and not re.search(r"\d\.\d{3}", text), text
    gap_tasks = abs(m["quality_gap"]) * page.outcomes.n
    assert (gap_tasks < STABLE_GAP_TASKS) == bool(m["unstable"])
    if m["unstable"]:
        assert "Unstable" in text and m["unstable"] in text


def test_metrics_unstable_says_why():
    assert metrics_unstable(0.3, 100) is None  # 30 tasks apart
    assert "undefined" in metrics_unstable(0.0, 100)
    note = metrics_unstable(0.01, 100)  # one task apart
    assert "1 of 100 tasks" in note and "1.00" in note
