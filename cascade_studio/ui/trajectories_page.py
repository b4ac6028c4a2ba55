"""Trajectories page: run a tier over tasks (progress, pause, cancel, resume), then inspect,
filter and curate what came back (accept / reject / tag, with undo)."""

from __future__ import annotations

import logging
from decimal import Decimal

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.tiers import generation_keys, teacher_of
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.episodes import EpisodeRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.trajectory_query import TrajectoryFilter, distinct_values
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.curation import CurationCommand
from cascade_studio.ui.errors import ask_yes_no
from cascade_studio.ui.page import Page, confidence_method_of, fill_confidence_methods
from cascade_studio.ui.style import INFO_STYLE, show_run_bar
from cascade_studio.ui.trajectory_detail import detail_html, episode_filter_items
from cascade_studio.ui.trajectory_live import LiveRefresh
from cascade_studio.ui.trajectory_model import TrajectoryTableModel

log = logging.getLogger(__name__)
VERSION_POLL_MS = 3000


class TrajectoriesPage(Page):
    run_finished = Signal(object)

    def __init__(self, secrets: SecretStore, parent: QWidget | None = None) -> None:
        super().__init__("runStatus", parent)
        self.run_status = self.status
        self.secrets = secrets
        self.runner = None  # the RunThread under way
        self.undo_stack = QUndoStack(self)
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_run_box())
        for row in self._build_filters():
            layout.addLayout(row)
        layout.addWidget(self._build_table(), 1)
        self._connect()
        self._set_running(False)
        self.say("Start runs the selected tier over the tasks; a stopped run resumes where it left off.")

    def _build_run_box(self) -> QGroupBox:
        self.run_tier = QComboBox(objectName="runTier")
        self.run_category = QComboBox(objectName="runCategory")
        self.run_limit = QSpinBox(objectName="runLimit", minimum=0, maximum=10_000_000, singleStep=50)
        self.run_limit.setSpecialValueText("all tasks")
        self.run_concurrency = QSpinBox(objectName="runConcurrency", minimum=0, maximum=1024)
        self.run_concurrency.setSpecialValueText("tier default")
        self.run_trials = QSpinBox(objectName="runTrials", minimum=1, maximum=100)
        self.run_trials.setToolTip("Run every task this many times (trial 0, 1, ...), as `collect --trials N`: "
                                   "agent benchmarks' pass^k needs several. Trials already collected are skipped.")
        self.run_batch = QCheckBox("Batch API", objectName="runBatch")
        self.run_batch.setToolTip("Send the run through the OpenAI Batch API: half the price, results within 24 h. "
                                  "A restart goes back to the same batch.")
        self.run_again = QCheckBox("Collect again", objectName="runAgain")
        self.run_again.setToolTip("Also send tasks that already have an answer of this tier's current model and "
                                  "settings (paid again; asks first). Without it they are skipped.")
        self.start_button = QPushButton("Start", objectName="startRun")
        self.start_button.setToolTip("Run the tier over the tasks; resumes an unfinished run of the same tasks (Ctrl+R)")
        self.pause_button = QPushButton("Pause", objectName="pauseRun")
        self.cancel_button = QPushButton("Cancel", objectName="cancelRun")
        self.progress_bar = QProgressBar(objectName="runProgress")
        self.progress_bar.setFormat("%v / %m")
        self.start_button.clicked.connect(self.start_run)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button.clicked.connect(self.cancel_run)
        run_box = QGroupBox("Collection run")
        rl = QVBoxLayout(run_box)
        row = QHBoxLayout()  # two rows: one is wider than a 1024-pixel window
        for label, widget in (("Tier", self.run_tier), ("Category", self.run_category), ("Limit", self.run_limit)):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
        row.addStretch(1)
        rl.addLayout(row)
        row = QHBoxLayout()
        for label, widget in (("Trials", self.run_trials), ("Concurrency", self.run_concurrency)):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
        row.addWidget(self.run_batch)
        row.addWidget(self.run_again)
        row.addStretch(1)
        row.addWidget(self.start_button)
        row.addWidget(self.pause_button)
        row.addWidget(self.cancel_button)
        rl.addLayout(row)
        prow = QHBoxLayout()
        prow.addWidget(self.progress_bar, 1)
        prow.addWidget(self.run_status, 2)
        rl.addLayout(prow)
        from cascade_studio.ui.unfinished_runs import UnfinishedRunBar

        self.unfinished = UnfinishedRunBar()  # "tier 1: unfinished run 7, 12 to go" [Resume], after a restart too
        self.unfinished.resume.connect(self.resume_unfinished)
        rl.addWidget(self.unfinished)
        return run_box

    def _build_filters(self) -> tuple[QHBoxLayout, QHBoxLayout]:
        self.f_category = QComboBox(objectName="filterCategory")
        self.f_tier = QComboBox(objectName="filterTier")
        self.f_status = QComboBox(objectName="filterStatus")
        self.f_tool = QComboBox(objectName="filterTool")
        self.f_curation = QComboBox(objectName="filterCuration")
        for text, value in (("Any curation", None), ("Accepted", "accepted"), ("Rejected", "rejected"),
                            ("Not curated", "none")):
            self.f_curation.addItem(text, value)
        self.f_method = QComboBox(objectName="confidenceMethod")
        fill_confidence_methods(self.f_method)
        self.f_tier.currentIndexChanged.connect(self._tier_filter_changed)
        self.f_conf_min = QDoubleSpinBox(objectName="confMin", minimum=0, maximum=1, singleStep=0.05, decimals=2)
        self.f_conf_max = QDoubleSpinBox(objectName="confMax", minimum=0, maximum=1, singleStep=0.05, decimals=2,
                                         value=1.0)
        self.f_cost_max = QDoubleSpinBox(objectName="costMax", minimum=0, maximum=1000, decimals=4, singleStep=0.001)
        self.f_cost_max.setSpecialValueText("any cost")
        self.f_generation = QComboBox(objectName="filterGeneration")
        self.f_generation.addItem("Current models", "current")
        self.f_generation.addItem("All models (history)", None)
        self.f_generation.setToolTip("Current: each tier's answers from its current model and settings (what "
                                     "evaluation, datasets and trade-offs use). All: older generations too.")
        self.f_steps = QComboBox(objectName="filterSteps")
        for text, value in episode_filter_items():
            self.f_steps.addItem(text, value)
        self.f_steps.setToolTip("Single requests, or agent episodes (by how they ended)")
        self.f_search = QLineEdit(objectName="trajSearch")
        self.f_search.setPlaceholderText("Search task, tool, text, tags…")
        self.f_search.setClearButtonEnabled(True)
        frow = QHBoxLayout()
        frow.addWidget(QLabel("Filter"))
        for w in (self.f_category, self.f_tier, self.f_status, self.f_tool, self.f_curation, self.f_steps):
            w.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            w.setMinimumContentsLength(10)
            frow.addWidget(w)
        frow.addWidget(self.f_search, 1)
        frow2 = QHBoxLayout()
        frow2.addWidget(QLabel("Confidence"))
        frow2.addWidget(self.f_method)
        frow2.addWidget(QLabel("from"))
        frow2.addWidget(self.f_conf_min)
        frow2.addWidget(QLabel("to"))
        frow2.addWidget(self.f_conf_max)
        frow2.addSpacing(16)
        frow2.addWidget(QLabel("Cost at most $"))
        frow2.addWidget(self.f_cost_max)
        frow2.addWidget(self.f_generation)
        frow2.addStretch(1)
        return frow, frow2

    def _build_table(self) -> QSplitter:
        """The trajectories, the curation buttons under them, and the selected one's detail."""
        self.model = TrajectoryTableModel(self)
        self.model.sorter = self._sort_in_thread  # a sort never freezes the window (seconds on a cold disk at 1M)
        self.table = QTableView(objectName="trajectoryTable")
        self.table.setModel(self.model)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        for col, width in enumerate((120, 90, 34, 90, 45, 44, 78, 150, 75, 72, 80, 55, 70)):
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self.show_current())
        self.detail = QTextBrowser(objectName="trajectoryDetail")
        self.detail.setOpenLinks(False)
        self.detail.anchorClicked.connect(self._detail_link)
        self._shown = None
        self._expanded: set[tuple[int, int]] = set()
        self.detail.setPlaceholderText("Select a trajectory to see the conversation, tool calls and token heat map.")
        self.count_label = QLabel(objectName="trajCount")
        self.count_label.setStyleSheet(INFO_STYLE)

        self.accept_button = QPushButton("Accept", objectName="accept")
        self.accept_button.setToolTip("Accept the selected trajectories (A)")
        self.reject_button = QPushButton("Reject", objectName="reject")
        self.reject_button.setToolTip("Reject the selected trajectories (R)")
        self.clear_button = QPushButton("Clear", objectName="clearCuration")
        self.rate_button = QPushButton("Rate…", objectName="rate")
        self.rate_button.setToolTip("Your rating of the selected trajectories (good, bad or a score): the labels "
                                    "a judge is calibrated against")
        rate_menu = QMenu(self.rate_button)
        for text, value in (("Good", "good"), ("Bad", "bad")):
            rate_menu.addAction(text, lambda v=value: self.rate(v))
        rate_menu.addAction("Score…", self.score_dialog)
        rate_menu.addAction("Clear rating", lambda: self.rate(None))
        self.rate_button.setMenu(rate_menu)
        self.tag_button = QPushButton("Tag…", objectName="tag")
        self.tag_button.setToolTip("Add a tag to the selected trajectories (T)")
        self.undo_button = QPushButton("Undo", objectName="undo")
        self.undo_button.setToolTip("Undo the last curation (Ctrl+Z)")
        self.accept_button.clicked.connect(lambda: self.curate("accepted"))
        self.reject_button.clicked.connect(lambda: self.curate("rejected"))
        self.clear_button.clicked.connect(lambda: self.curate(None))
        self.tag_button.clicked.connect(self.tag_dialog)
        self.undo_button.clicked.connect(self.undo_stack.undo)
        self.undo_stack.canUndoChanged.connect(self.undo_button.setEnabled)
        self.undo_button.setEnabled(False)
        crow = QHBoxLayout()
        crow.addWidget(self.count_label, 1)
        for b in (self.accept_button, self.reject_button, self.clear_button, self.rate_button, self.tag_button,
                  self.undo_button):
            crow.addWidget(b)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.table, 1)
        ll.addLayout(crow)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.detail)
        splitter.setSizes([900, 340])
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        return splitter

    def _connect(self) -> None:
        """Debounced filtering, live refresh during a run, keyboard shortcuts."""
        self._filter_timer = QTimer(self, singleShot=True, interval=200)
        self._filter_timer.timeout.connect(self.apply_filter)
        for combo in (self.f_category, self.f_tier, self.f_status, self.f_tool, self.f_curation, self.f_method,
                      self.f_generation, self.f_steps):
            combo.currentIndexChanged.connect(lambda _=None: self._filter_timer.start())
        for spin in (self.f_conf_min, self.f_conf_max, self.f_cost_max):
            spin.valueChanged.connect(lambda _=None: self._filter_timer.start())
        self.f_search.textChanged.connect(lambda _=None: self._filter_timer.start())
        self.live = LiveRefresh(self, self)  # while a run writes rows: the view follows, read off the GUI thread
        # Writes from elsewhere (the CLI, another window) publish no event here: SQLite's data_version
        # says another connection committed; looked at every few seconds while the page is on screen.
        self._data_version: int | None = None
        self._version_timer = QTimer(self, interval=VERSION_POLL_MS)
        self._version_timer.timeout.connect(self._check_data_version)
        QShortcut(QKeySequence("F5"), self, self.refresh_view)

        for key, slot in (("A", lambda: self.curate("accepted")), ("R", lambda: self.curate("rejected")),
                          ("T", self.tag_dialog)):
            sc = QShortcut(QKeySequence(key), self.table if len(key) == 1 else self, slot)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        QShortcut(QKeySequence.StandardKey.Undo, self, self.undo_stack.undo)
        QShortcut(QKeySequence.StandardKey.Redo, self, self.undo_stack.redo)

    # -- workspace -----------------------------------------------------------------------------
    def set_workspace(self, ws: Workspace | None) -> None:
        if self.runner is not None:
            self.cancel_run()
        self.ws = ws
        self.undo_stack.clear()
        self.reload_choices()
        self._tier_filter_changed()
        if ws is not None:  # read once, with the filter the choices just set (not again when the debounce fires)
            self.model.filter = self.current_filter()
        self._filter_timer.stop()
        self.model.set_workspace(ws)
        self._update_count()

    def reload_choices(self) -> None:
        """Tier and category lists (after tiers are saved or tasks imported)."""
        tiers = self.tiers()
        top = teacher_of(tiers).tier if tiers else None
        unfinished = self.unfinished.refresh(self.ws) if self.runner is None else []
        self.fill(self.run_tier, [(f"Tier {t.tier}{' (teacher)' if t.tier == top else ''} — {t.model}", t.tier)
                                   for t in tiers], default=unfinished[0].tier if unfinished else top)
        self.fill(self.run_category, self.category_items())
        self._fill_filters()

    def _fill_filters(self) -> None:
        if self.ws is None:
            return
        for combo, column, label in ((self.f_category, "category", "Any category"), (self.f_tier, "tier", "Any tier"),
                                     (self.f_status, "status", "Any status"), (self.f_tool, "tool_name", "Any tool")):
            values = distinct_values(self.ws, column)
            self.fill(combo, [(label, None)] + [(f"tier {v}" if column == "tier" else str(v), v) for v in values])

    def _tier_filter_changed(self, *_: object) -> None:
        """Confidence as the shown tier measures it (the students' shared method, or core's default)."""
        if self.ws is not None:
            method = confidence_method_of(self.tiers(), self.f_tier.currentData())
            self.f_method.setCurrentIndex(max(0, self.f_method.findData(method)))

    # -- following the workspace -----------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._version_timer.start()
        self.refresh_view()  # what changed while another page was shown

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().hideEvent(event)
        self._version_timer.stop()

    def refresh_view(self) -> None:
        """Read the rows and both counts again (F5, the page shown, a change made elsewhere), off the GUI
        thread, keeping the selection; during the page's own run the live refresh does this."""
        if self.ws is None or self.runner is not None:
            return
        self._data_version = self._read_data_version()
        self._fill_filters()
        self.live.tick(keep_selection=True)

    def _read_data_version(self) -> int | None:
        try:
            return TrajectoryRepository(self.ws).data_version() if self.ws is not None else None
        except Exception:  # noqa: BLE001 - a closed or busy connection: look again at the next tick
            return None

    def _check_data_version(self) -> None:
        if self.ws is None or self.runner is not None:
            return
        version = self._read_data_version()
        if version is not None and version != self._data_version:
            self.refresh_view()

    # -- filtering -----------------------------------------------------------------------------
    def current_filter(self) -> TrajectoryFilter:
        cost_max = self.f_cost_max.value()
        return TrajectoryFilter(
            category=self.f_category.currentData(), tier=self.f_tier.currentData(), status=self.f_status.currentData(),
            tool=self.f_tool.currentData(), curation=self.f_curation.currentData(),
            conf_min=self.f_conf_min.value() or None,
            conf_max=None if self.f_conf_max.value() >= 1.0 else self.f_conf_max.value(),
            cost_max_micro=int(Decimal(str(cost_max)) * 1_000_000) if cost_max > 0 else None,
            search=self.f_search.text().strip(), confidence=self.f_method.currentData(),
            episode=self.f_steps.currentData(),
            sort=self.model.filter.sort, descending=self.model.filter.descending,
            generations=None if self.f_generation.currentData() is None or self.ws is None else
            {t.tier: generation_keys(t) for t in TierRepository(self.ws).list()})

    def _sort_in_thread(self, flt: TrajectoryFilter, stamp: int) -> None:
        from cascade_studio.ui.trajectory_live import visible_blocks
        from cascade_studio.ui.trajectory_model import read_view

        ws, blocks = self.ws, visible_blocks(self.table)
        if ws is None:
            return
        self.count_label.setText(f"Sorting {self.model.total:,} trajectories…")

        def read():
            reader = ws.reader()
            try:
                return read_view(reader, flt, blocks)
            finally:
                reader.close()

        def show(view) -> None:
            if self.ws is ws and self.model.show_sorted(view, stamp):
                self._update_count()

        def failed(exc: BaseException) -> None:
            if self.ws is ws and self.model.sorting == stamp:
                self.model.sorting = 0
                self.count_label.setText(f"Cannot sort: {exc}")

        self.calls.start_in_thread("sort", read, show, on_error=failed)

    def apply_filter(self) -> None:
        self.model.set_filter(self.current_filter())
        self._update_count()
        self.detail.clear()

    def _update_count(self) -> None:
        self.show_count(TrajectoryRepository(self.ws).count() if self.ws else 0)

    def show_count(self, stored: int) -> None:
        self.count_label.setText(f"{self.model.total:,} of {stored:,} trajectories")

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [i for i in (self.model.trajectory_id(r) for r in rows) if i is not None]

    def show_current(self) -> None:
        index = self.table.currentIndex()
        traj_id = self.model.trajectory_id(index.row()) if index.isValid() else None
        if traj_id is None or self.ws is None:
            self.detail.clear()
            return
        found = TrajectoryRepository(self.ws).get(traj_id)
        if found is None:
            self.detail.clear()
            return
        episode = EpisodeRepository(self.ws).of_trajectory(traj_id)
        if self._shown is None or self._shown[0] != traj_id:
            self._expanded = set()
        self._shown = (traj_id, found, episode)
        self._render_detail()

    def _render_detail(self) -> None:
        if self._shown is None:
            return
        _, (t, meta), episode = self._shown
        bar = self.detail.verticalScrollBar()
        at = bar.value()
        self.detail.setHtml(detail_html(t, meta, episode, self._expanded))
        bar.setValue(at)

    def _detail_link(self, url) -> None:
        """A tool result's "show the whole result" / "fold" link in an episode's timeline."""
        if url.scheme() == "expand":
            step, n = (int(x) for x in url.path().split(":"))
            self._expanded ^= {(step, n)}
            self._render_detail()

    # -- curation ------------------------------------------------------------------------------
    def curate(self, value: str | None) -> None:
        ids = self.selected_ids()
        if ids and self.ws is not None:
            self.undo_stack.push(CurationCommand(self, ids, "curation", value))

    def rate(self, value: str | None) -> None:
        ids = self.selected_ids()
        if ids and self.ws is not None:
            self.undo_stack.push(CurationCommand(self, ids, "rating", value))

    def score_dialog(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        score, ok = QInputDialog.getText(self, "Rate trajectories", f"Score for {len(ids)} selected trajectories "
                                         "(a number, or a value of a judge's scale):")
        if ok and score.strip():
            self.rate(score.strip().lower())

    def tag_dialog(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        tag, ok = QInputDialog.getText(self, "Tag trajectories", f"Tag for {len(ids)} selected trajectories:")
        if ok and tag.strip():
            self.tag(tag.strip().replace(",", " "))

    def tag(self, tag: str) -> None:
        ids = self.selected_ids()
        if ids and self.ws is not None:
            self.undo_stack.push(CurationCommand(self, ids, "tag", tag))

    def select_rows(self, rows: list[int]) -> None:
        sel = self.table.selectionModel()
        sel.clearSelection()
        for r in rows:
            sel.select(self.model.index(r, 0), QItemSelectionModel.SelectionFlag.Select
                       | QItemSelectionModel.SelectionFlag.Rows)
        if rows:
            sel.setCurrentIndex(self.model.index(rows[0], 0), QItemSelectionModel.SelectionFlag.NoUpdate)

    # -- import / export ----------------------------------------------------------------------
    def _selected_tier(self):
        return self.tier(self.run_tier.currentData())

    def import_dialog(self) -> None:
        from cascade_studio.ui.trajectory_files import import_dialog

        import_dialog(self)

    def export_dialog(self) -> None:
        from cascade_studio.ui.trajectory_files import export_dialog

        export_dialog(self)

    # -- runs ----------------------------------------------------------------------------------
    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        for w in (self.run_tier, self.run_category, self.run_limit, self.run_trials, self.run_concurrency,
                  self.run_batch, self.run_again):
            w.setEnabled(not running)
        if running:
            self.live.start()
        else:
            self.live.stop()

    def start_run(self) -> None:
        from cascade_studio.services.collector import select_task_ids, start_or_resume
        from cascade_studio.services.run_plan import plan_run

        if self.ws is None or self.runner is not None:
            return
        tier = self._selected_tier()
        if tier is None:
            self.say("Define a tier first (Tiers page).", error=True)
            return
        task_ids = select_task_ids(self.ws, self.run_category.currentData(), self.run_limit.value() or None)
        if not task_ids:
            self.say("No tasks to run: import tasks on the Tasks page (Ctrl+I).", error=True)
            return
        batch = self.run_batch.isChecked()
        again = self.run_again.isChecked()
        trials = self.run_trials.value()
        if batch and trials > 1:  # the CLI's refusal, in the same words
            self.say("Trials run tasks several times one by one; the Batch API takes one answer per task.", error=True)
            return
        if batch:
            from cascade_studio.services.run_plan import batch_problem

            problem = batch_problem(self.ws, task_ids)
            if problem:
                self.say(problem, error=True)
                return
        plan = plan_run(self.ws, tier, task_ids, again=again, batch=batch, trials=trials)
        if plan.requests == 0:
            each = f" ({trials} trials each)" if trials > 1 else ""
            self.say(f"All {plan.tasks} tasks{each} already have answers of tier {tier.tier}'s current model and "
                     "settings; nothing to send. Tick 'Collect again' to pay for them again.")
            return
        if again and not self.confirm_again(plan):
            return
        run, resumed = start_or_resume(self.ws, tier, task_ids, {"category": self.run_category.currentData(),
                                                                   "limit": self.run_limit.value() or None,
                                                                   "batch": batch}, batch=batch, again=again,
                                      trials=trials)
        self._launch(tier, run, ("Resuming" if resumed else "Starting") + f" run {run.id}: {plan.sentence()}…")

    def resume_unfinished(self, unfinished) -> None:
        """Resume a run that stopped (named by the unfinished-run note), whatever the run box shows now."""
        tier = self.tier(unfinished.tier)
        if self.ws is None or self.runner is not None or tier is None:
            return
        self.run_tier.setCurrentIndex(max(0, self.run_tier.findData(tier.tier)))
        self._launch(tier, unfinished.run, f"Resuming run {unfinished.run.id} of tier {tier.tier}: "
                                           f"{unfinished.to_go:,} tasks to go…")

    def _launch(self, tier, run, sentence: str) -> None:
        from cascade_studio.ui.run_thread import RunThread

        batch = bool(run.params.get("batch"))
        self.runner = RunThread(self.ws.path, tier, self.secrets, run, concurrency=self.run_concurrency.value() or None,
                                batch=batch, parent=self)
        self.runner.progress.connect(self._progress)
        self.runner.finished.connect(self._run_done)
        self.progress_bar.setMaximum(len(run.task_ids) * max(1, int(run.params.get("trials") or 1)))  # tasks x trials
        self.unfinished.hide()
        self.say(sentence)
        self._set_running(True)
        self.pause_button.setEnabled(not batch)  # a batch runs on the provider's side
        self.runner.start()

    def confirm_again(self, plan) -> bool:
        return ask_yes_no(self, "Collect again?", f"Send {plan.sentence()} again? Earlier answers stay.")

    def toggle_pause(self) -> None:
        if self.runner is None:
            return
        if self.runner.paused:
            self.runner.resume()
            self.pause_button.setText("Pause")
        else:
            self.runner.pause()
            self.pause_button.setText("Resume")
        if self.runner.last is not None:  # say so now (no ETA while paused), not at the next progress
            self._progress(self.runner.last)

    def cancel_run(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def _progress(self, p) -> None:
        self._show_bar(p)
        status = p.status
        if self.runner is not None and status in ("running", "paused"):  # the button is ahead of the worker
            status = "paused" if self.runner.paused else "running"
        eta = "" if p.eta_s is None or status != "running" else (
            f" · ETA {int(p.eta_s) // 60}:{int(p.eta_s) % 60:02d}")
        failed = f" · {p.failed} failed" if p.failed else ""
        retries = f" · {p.retries} retries" if p.retries else ""
        state = "" if status == "running" else f" · {status}"
        if p.message and p.message.startswith("Batch ") and status == "running":
            state += f" · {p.message}"
        all_failed = p.failed > 0 and p.done == 0 and p.failed >= p.total
        self.say(f"{p.done:,}/{p.total:,} done · {p.rate:.1f}/s{eta} · {p.tokens:,} tokens · "
                 f"{p.cost_words()}{failed}{retries}{state}",
                 error=bool(p.failed and (status == "failed" or all_failed)))

    def _show_bar(self, p) -> None:
        show_run_bar(self.progress_bar, p)

    def _run_done(self, p, error) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            runner.wait(5)
        self._set_running(False)
        self.pause_button.setText("Pause")
        if error:
            self.say(f"The run stopped: {error}", error=True)
        elif p is not None:
            self._progress(p)
            if p.status == "cancelled":
                self.say(self.run_status.text() + " — Cancelled; Start resumes the run.")
            elif p.message:
                self.say(self.run_status.text() + f" — {p.message}", error=p.status == "failed")
        self._fill_filters()
        self.unfinished.refresh(self.ws)
        self.model.refresh()
        self._update_count()
        self.run_finished.emit(p)
