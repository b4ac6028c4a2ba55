"""Upgrading a big workspace's schema without freezing the window: the upgrade (Workspace.open on a
connection of its own) runs on a thread while a dialog says what is happening and for how long.
An index over a million rows takes seconds; a storage step over a 10 GB workspace, minutes. Each
step is one transaction: an interrupted upgrade leaves the workspace at the step before."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtWidgets import QProgressDialog, QWidget

from cascade_studio.store.migrations import SCHEMA_VERSION
from cascade_studio.store.workspace import Workspace, WorkspaceError

IN_BACKGROUND_BYTES = 64 * 1024 * 1024  # smaller workspaces upgrade in well under a second, inline


def upgrade_in_background(folder: Path, parent: QWidget | None) -> str | None:
    """Upgrade the workspace in `folder` on a thread when it is big and behind this version's schema,
    showing a dialog meanwhile. Returns the problem (a sentence) when the upgrade failed, else None."""
    pending = Workspace.pending_upgrade(folder)
    if pending is None or pending[1] <= IN_BACKGROUND_BYTES:
        return None
    version, size = pending
    outcome: dict[str, str] = {}

    def work() -> None:
        try:
            Workspace.open(folder, create=False, check="defer").close()
        except WorkspaceError as exc:
            outcome["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported in the window
            outcome["error"] = f"Upgrading {folder} failed: {exc}. The workspace was left as it was."

    text = (f"Upgrading the workspace {folder} ({size / 1e9:.1f} GB) from schema {version} to {SCHEMA_VERSION}.\n"
            "This runs once. If it is interrupted, the workspace stays as it was and upgrades next time.")
    dialog = QProgressDialog(text, "", 0, 0, parent)
    dialog.setWindowTitle("Upgrading the workspace")
    dialog.setCancelButton(None)  # a step is one transaction: stopping it half-way gains nothing
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(0)
    thread = threading.Thread(target=work, name="workspace-upgrade", daemon=True)
    started = time.monotonic()
    loop = QEventLoop()

    def poll() -> None:
        if not thread.is_alive():
            loop.quit()
            return
        elapsed = int(time.monotonic() - started)
        dialog.setLabelText(f"{text}\nElapsed {elapsed // 60}:{elapsed % 60:02d}")

    timer = QTimer(interval=200)
    timer.timeout.connect(poll)
    thread.start()
    dialog.show()
    timer.start()
    if thread.is_alive():
        loop.exec()
    timer.stop()
    thread.join()
    dialog.close()
    dialog.deleteLater()
    return outcome.get("error")
