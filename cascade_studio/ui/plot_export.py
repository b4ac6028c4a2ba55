"""Writing the Trade-offs page's plot (PNG, SVG) and sweep (CSV) to files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtWidgets import QWidget


def export_png(plot_item: Any, path: str, width: int = 1600) -> None:
    from pyqtgraph.exporters import ImageExporter

    exporter = ImageExporter(plot_item)
    exporter.parameters()["width"] = width
    exporter.export(path)


def export_svg(widget: QWidget, path: str, title: str) -> None:
    """Qt's own SVG generator (pyqtgraph's SVG exporter cannot parse the paths Qt 6.12 writes)."""
    from PySide6.QtCore import QRect, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    size = widget.size()
    generator = QSvgGenerator()
    generator.setFileName(path)
    generator.setSize(QSize(size.width(), size.height()))
    generator.setViewBox(QRect(0, 0, size.width(), size.height()))
    generator.setTitle(title)
    painter = QPainter(generator)
    try:
        widget.render(painter)
    finally:
        painter.end()
    if not Path(path).exists():
        raise OSError(f"{path} was not written")


def write_sweep_csv(sw: Any, path: str) -> None:
    """One row per grid point of the threshold sweep: thresholds, cost, quality, latency, escalation."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        two = sw.cost.ndim == 1
        w.writerow(["threshold_1"] + ([] if two else ["threshold_2"])
                   + ["cost_per_request_usd", "quality", "latency_mean_ms", "escalation_rate_tier1"])
        for idx in np.ndindex(sw.cost.shape):
            w.writerow([f"{sw.grid[i]:.4f}" for i in idx]
                       + [sw.cost[idx], sw.quality[idx], sw.latency[idx], sw.escalation[idx]])


def export_plot_dialog(parent, plot, kind: str, path: str | None = None) -> Path | None:
    """Ask where (unless `path`), write the plot as PNG or SVG; None when cancelled or it failed."""
    from PySide6.QtWidgets import QFileDialog

    from cascade_studio.ui.errors import show_error

    if path is None:
        path, _ = QFileDialog.getSaveFileName(parent, "Export the trade-off plot", f"tradeoffs.{kind}",
                                              "PNG (*.png)" if kind == "png" else "SVG (*.svg)")
    if not path:
        return None
    try:
        if kind == "png":
            export_png(plot.plotItem, path)
        else:
            export_svg(plot, path, "Cascade Studio: cost-quality trade-off")
    except OSError as exc:
        show_error("Export failed", f"Cannot write {path}: {exc}", parent)
        return None
    _saved(parent, f"The plot ({kind.upper()}) was saved to {path}.")
    return Path(path)


def export_csv_dialog(parent, sw, path: str | None = None) -> Path | None:
    """Ask where (unless `path`), write the sweep's points as CSV; None when cancelled or it failed."""
    from PySide6.QtWidgets import QFileDialog

    from cascade_studio.ui.errors import show_error

    if path is None:
        path, _ = QFileDialog.getSaveFileName(parent, "Export the sweep data", "tradeoffs.csv", "CSV (*.csv)")
    if not path:
        return None
    try:
        write_sweep_csv(sw, path)
    except OSError as exc:
        show_error("Export failed", f"Cannot write {path}: {exc.strerror}", parent)
        return None
    _saved(parent, f"The sweep's data (CSV) was saved to {path}.")
    return Path(path)


def _saved(parent, text: str) -> None:
    """Say where the file went: on the page's status line (a Page), else the window's status bar."""
    if hasattr(parent, "say"):
        parent.say(text)
    window = parent.window() if parent is not None else None
    if window is not None and hasattr(window, "statusBar"):
        window.statusBar().showMessage(text, 10000)
