"""Plots that read well: tick labels without float noise, a minimum visible range, and legends off
the data (a row of coloured symbols under the plot, never drawn over the points).

pyqtgraph is imported by the caller (pages load it when first shown), so this module takes `pg`."""

from __future__ import annotations

import html
from math import ceil, log10
from typing import Any

from PySide6.QtWidgets import QLabel

MAX_PLACES = 6


def tick_strings(values: list[float], scale: float, spacing: float) -> list[str]:
    """pyqtgraph's tick labels, but with as many places as the spacing needs and no more (its own
    take the places from a spacing that can be 1e-16 when every point sits at one value:
    "0.4000000000000001"), and very small or large values in short scientific form."""
    step = abs(spacing * scale)
    places = 2 if step <= 0 else max(0, min(MAX_PLACES, ceil(-log10(step) - 1e-9)))
    out = []
    for v in values:
        vs = v * scale
        if abs(vs) < step * 1e-6:
            vs = 0.0  # a tick at zero computed as -1e-17
        if vs != 0 and (abs(vs) >= 1e5 or round(abs(vs), places) == 0):
            text = f"{vs:.3g}"
        else:
            text = f"{vs:.{places}f}"
            if float(text) == 0:
                text = text.lstrip("-")  # no "-0.00"
        out.append(text)
    return out


def clean_axes(pg: Any) -> dict[str, Any]:
    """`axisItems` for a PlotWidget whose left and bottom axes label ticks without float noise."""

    class CleanAxis(pg.AxisItem):
        def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
            if self.logMode:
                return super().tickStrings(values, scale, spacing)
            return tick_strings(values, scale, spacing)

    axes = {side: CleanAxis(side) for side in ("left", "bottom")}
    for axis in axes.values():
        axis.enableAutoSIPrefix(False)  # "(x0.001)" beside a dollar axis reads as a different unit
    return axes


def legend_label(entries: list[tuple[str, str, str]], object_name: str = "") -> QLabel:
    """A legend under a plot: (symbol, colour, text) per entry, e.g. ("★", "#d13438", "operating point").
    Off the data by construction, and it wraps in a narrow window."""
    label = QLabel(objectName=object_name)
    label.setWordWrap(True)
    set_legend(label, entries)
    return label


def set_legend(label: QLabel, entries: list[tuple[str, str, str]]) -> None:
    label.setText("&nbsp;&nbsp; ".join(f"<span style='color:{color}'>{symbol}</span>&nbsp;{html.escape(text)}"
                                       for symbol, color, text in entries))
