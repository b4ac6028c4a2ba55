"""The GUI side of the workspace change events (services/events.py): one relay re-emits them on the
GUI thread, and the main window hands each to the built pages that show that kind of data (the
`FOLLOWS` kinds of a page, applied by its `follow_change`): at once for the page on screen, when
next shown for the others."""

from __future__ import annotations

from pathlib import Path

import shiboken6
from PySide6.QtCore import QObject, Signal

from cascade_studio.services import events


class WorkspaceEvents(QObject):
    changed = Signal(str, str)  # kind, workspace folder (queued to the GUI thread from any thread)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe = events.subscribe(self._relay)
        self.destroyed.connect(lambda *_: self._unsubscribe())

    def close(self) -> None:
        self._unsubscribe()

    def _relay(self, kind: str, folder: Path) -> None:
        if not shiboken6.isValid(self):  # the window is gone: nobody to tell
            self._unsubscribe()
            return
        try:
            self.changed.emit(kind, str(folder))
        except RuntimeError:
            self._unsubscribe()


# -- what each page shows, and how it follows a change ------------------------------------------------
def _trajectories(page, kind: str) -> None:
    if kind == events.TRAJECTORIES:
        # read on a pool thread (a million rows take a second to count), the selection kept; during its own
        # run the page refreshes itself now and then
        page.refresh_view()
    else:
        page.reload_choices()


def _finetune(page, kind: str) -> None:
    if kind == events.JOBS:
        page.jobs_panel.refresh_jobs()
    else:
        page.reload_choices()


def _evaluation(page, kind: str) -> None:
    if kind == events.EVALUATIONS:
        page.refresh_drift()
    else:
        page.reload_choices()


def _tradeoffs(page, kind: str) -> None:
    if kind == events.TASKS:
        page.reload_choices()
    page.refresh()


def _tasks(page, kind: str) -> None:
    if kind == events.ENVIRONMENTS:
        page.environments.refresh()
    else:
        page._fill_categories()
        page.refresh()


FOLLOWS = {  # page class -> (the kinds of change it shows, how it follows one)
    "TiersPage": ({events.TIERS}, lambda page, kind: page.follow_change(kind)),
    "TasksPage": ({events.TASKS, events.ENVIRONMENTS}, _tasks),
    "TrajectoriesPage": ({events.TIERS, events.TASKS, events.TRAJECTORIES}, _trajectories),
    "FineTunePage": ({events.TIERS, events.TRAJECTORIES, events.JOBS}, _finetune),
    "EvaluationPage": ({events.TIERS, events.TASKS, events.EVALUATIONS}, _evaluation),
    "TradeoffsPage": ({events.TIERS, events.TASKS, events.TRAJECTORIES}, _tradeoffs),
    "ProductionPage": ({events.TRAFFIC, events.TIERS}, lambda page, kind: page.refresh()),
}


class Followers:
    """Which pages still have to follow which changes (those not on screen when it happened)."""

    def __init__(self) -> None:
        self.pending: dict[int, set[str]] = {}

    def changed(self, kind: str, pages: list, current) -> None:
        for page in pages:
            kinds, follow = FOLLOWS.get(type(page).__name__, ((), None))
            if kind not in kinds:
                continue
            if page is current:
                follow(page, kind)
            else:
                self.pending.setdefault(id(page), set()).add(kind)

    def shown(self, page) -> None:
        kinds = self.pending.pop(id(page), ())
        if kinds:
            follow = FOLLOWS[type(page).__name__][1]
            for kind in sorted(kinds):
                follow(page, kind)
