"""The Trajectories page's file dialogs: import (native JSONL or Batch API output) and export."""

from __future__ import annotations

from pathlib import Path

from cascade_studio.core.errors import UserError
from cascade_studio.ui.errors import show_error


def import_dialog(page) -> None:
    """Import trajectory JSONL or Batch API output into the tier chosen under Collection run."""
    from PySide6.QtWidgets import QFileDialog

    from cascade_studio.services import trajectory_io as tio

    tier = page._selected_tier()
    if page.ws is None or tier is None:
        page.say("Define a tier first; imported trajectories belong to the tier chosen under Collection run.",
                 error=True)
        return
    name, _ = QFileDialog.getOpenFileName(
        page, f"Import trajectories into tier {tier.tier} ({tier.model})", "",
        "Trajectory JSONL or Batch API output (*.jsonl *.json);;All files (*)")
    if not name:
        return
    path = Path(name)
    try:
        count, batch = tio.import_any(page.ws, path, tier)
    except (UserError, OSError) as exc:
        show_error("Trajectories not imported", f"{exc}.\n\nNothing was imported.", page)
        return
    page.say(f"Imported {count} trajectories into tier {tier.tier} from {path.name}"
             + (" (Batch API output, batch price)" if batch else ""))
    page._fill_filters()
    page.model.refresh()
    page._update_count()

def export_dialog(page) -> None:
    """Export trajectories (JSONL, CSV summary) or a Batch API input file of the tasks."""
    from PySide6.QtWidgets import QFileDialog

    if page.ws is None:
        return
    filters = {"Trajectory JSONL (*.jsonl)": "native", "CSV summary (*.csv)": "csv",
               "Batch API input for the chosen tier (*.jsonl)": "batch"}
    name, chosen = QFileDialog.getSaveFileName(page, "Export trajectories", "trajectories.jsonl", ";;".join(filters))
    if not name:
        return
    fmt = filters.get(chosen, "native")
    export_to(page, Path(name), fmt)


def export_to(page, path: Path, fmt: str) -> int | None:
    """Write what the page says: the trajectories its filter shows, read again now, so the file and the
    "N of M" line (brought up to date at the same time) name the same rows."""
    from cascade_studio.services import trajectory_io as tio
    from cascade_studio.services.collector import select_task_ids

    try:
        if fmt == "batch":
            tier = page._selected_tier()
            if tier is None:
                return None
            count = tio.export_batch_input(page.ws, path, tier, select_task_ids(page.ws))
        else:
            page.model.refresh()
            page._update_count()
            ids = page.model.ids.tolist()
            count = (tio.export_csv if fmt == "csv" else tio.export_native)(page.ws, path, ids=ids)
    except OSError as exc:
        show_error("Export failed", f"Cannot write {path}: {exc.strerror}. Choose another folder or free disk "
                                    "space.", page)
        return None
    page.say(f"Exported {count} requests to {path}" if fmt == "batch" else
             f"Exported {count} trajectories, what the filter shows ({page.count_label.text()}), to {path}")
    return count
