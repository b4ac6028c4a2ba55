"""Curation on the Trajectories page as undoable commands."""

from __future__ import annotations

from typing import Any, Protocol

from PySide6.QtGui import QUndoCommand

from cascade_studio.store.judges import RatingRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.trajectory_model import TrajectoryTableModel


class CuratedView(Protocol):
    """What a curation needs of the page it happens on (the Trajectories page), and no more: this
    module does not import that page."""

    ws: Workspace | None
    model: TrajectoryTableModel

    def show_current(self) -> None: ...


class CurationCommand(QUndoCommand):
    """Accept / reject / clear / tag a set of trajectories; undo restores what each had."""

    def __init__(self, page: CuratedView, ids: list[int], action: str, value: str | None) -> None:
        label = {"curation": f"{value or 'clear'} {len(ids)} trajectories", "tag": f"tag {len(ids)} as {value}",
                 "rating": f"rate {len(ids)} trajectories {value or 'clear'}"}
        super().__init__(label[action])
        self.page, self.ids, self.action, self.value = page, ids, action, value
        self.previous: dict[int, Any] = {}

    def redo(self) -> None:
        repo = TrajectoryRepository(self.page.ws)
        if self.action == "curation":
            self.previous = repo.set_curation(self.ids, self.value)
        elif self.action == "rating":  # a person's label that judges are calibrated against (issue 30)
            ratings = RatingRepository(self.page.ws)
            self.previous = ratings.ratings_of(self.ids)
            ratings.rate(self.ids, self.value)
        else:
            self.previous = repo.add_tag(self.ids, self.value or "")
        self.page.model.reload_rows()
        self.page.show_current()

    def undo(self) -> None:
        repo = TrajectoryRepository(self.page.ws)
        if self.action == "curation":
            repo.restore_curation(self.previous)
        elif self.action == "rating":
            RatingRepository(self.page.ws).restore(self.previous)
        else:
            repo.restore_tags(self.previous)
        self.page.model.reload_rows()
        self.page.show_current()
