"""Evaluation page: student vs teacher by category, drill-down side by side, threshold
calibration, policy export, and agreement over time (drift)."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.agreement import argument_diff
from cascade_studio.core.evaluation import outcome, threshold_for_quality, threshold_for_rate
from cascade_studio.core.tiers import ConfidenceMethod, teacher_of
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.errors import show_error
from cascade_studio.ui.evaluation_history import HistoryPanel
from cascade_studio.ui.judge_panel import JudgePanel
from cascade_studio.ui.judge_run import judged_sentence
from cascade_studio.ui.page import Page, confidence_method_of, fill_confidence_methods, scrolled, splitter
from cascade_studio.ui.trajectory_model import heat_color

log = logging.getLogger(__name__)


def agents_sentence(agents: dict | None) -> str:
    """Agent tasks: where the student diverges (teacher-forced steps) and how often it succeeds alone."""
    if not agents or not agents.get("episode_tasks"):
        return ""
    parts = []
    steps = agents.get("step_agreement")
    if steps and steps["overall"]["steps"]:
        first = steps["first_divergence"]
        where = (f"; it most often first diverges at step {first['most_common_step'] + 1}"
                 if first["most_common_step"] is not None else "")
        parts.append(f" Agent tasks: step agreement {_pct(steps['overall']['agreement'])} over "
                     f"{steps['overall']['steps']} teacher-forced steps{where}.")
    episodes = agents.get("episodes")
    if episodes and episodes["tasks"]:
        # the CLI's words (core.episode_eval.episode_lines): what judged each side, unknown costs said so
        from cascade_studio.core.episode_eval import episode_lines

        parts.append(" Episodes on its own: " + " ".join(line.strip() for line in episode_lines(episodes)))
    return "".join(parts) or " Agent tasks: tick 'Collect missing' to ask the student at every step."


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    return row


class EvaluationPage(Page):
    def __init__(self, secrets: SecretStore, parent: QWidget | None = None) -> None:
        super().__init__("evalStatus", parent)
        self.secrets = secrets
        self.report = None
        self.worker = None  # the EvaluationThread under way
        self._calibration = None
        categories, tasks, pair = self._build_tables()
        left = splitter(Qt.Orientation.Vertical, [tasks, pair], [200, 300])
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self._build_calibration())
        self.judge_panel = JudgePanel(secrets, self)  # issue 30: a judge's agreement with people
        rl.addWidget(self.judge_panel)
        self.history = HistoryPanel(self)
        rl.addWidget(self.history, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_top())
        layout.addWidget(self.status)
        # the categories across the whole width: every column readable at 1024 px (beside the calibration
        # column, half of them sat behind a scroll bar)
        body = splitter(Qt.Orientation.Horizontal, [left, scrolled(right)], [760, 420])
        layout.addWidget(splitter(Qt.Orientation.Vertical, [categories, body], [150, 450]), 1)
        self.student_combo.currentIndexChanged.connect(self._student_changed)

    def _build_top(self) -> QVBoxLayout:
        self.teacher_combo = QComboBox(objectName="evalTeacher")
        self.student_combo = QComboBox(objectName="evalStudent")
        self.category_combo = QComboBox(objectName="evalCategory")
        self.limit_spin = QSpinBox(objectName="evalLimit", minimum=0, maximum=1_000_000, singleStep=50)
        self.limit_spin.setSpecialValueText("all tasks")
        self.collect_check = QCheckBox("Collect missing trajectories", objectName="evalCollect")
        self.collect_check.setChecked(True)
        self.judge_combo = QComboBox(objectName="evalJudge")  # issue 30: Evaluate is `evaluate --judge NAME`
        self.judge_combo.setToolTip("Judge text answers (and episodes nothing else judges) with this judge; "
                                    "Evaluate shows the estimated cost and asks first")
        self.run_button = QPushButton("Evaluate", objectName="evaluate")
        self.run_button.clicked.connect(lambda: self.run_evaluation())
        top = QVBoxLayout()  # two rows: one is wider than a 1024-pixel window
        rows = (QHBoxLayout(), QHBoxLayout())
        for row, pairs in zip(rows, ((("Teacher", self.teacher_combo), ("Student", self.student_combo),
                                      ("Category", self.category_combo)), (("Limit", self.limit_spin), ("Judge", self.judge_combo))), strict=True):
            for label, w in pairs:
                row.addWidget(QLabel(label))
                row.addWidget(w)
            top.addLayout(row)
        rows[0].addStretch(1)
        rows[1].addWidget(self.collect_check)
        rows[1].addStretch(1)
        rows[1].addWidget(self.run_button)
        return top

    def _build_tables(self) -> list[QWidget]:
        """Categories, the tasks of the chosen one, and the chosen task's pair side by side."""
        self.category_table = QTableWidget(0, 8, objectName="categoryTable")
        self.category_table.setHorizontalHeaderLabels(["Category", "Tasks", "Agreement", "Tool", "Args", "Answer",
                                                       "Accuracy T / S", "KL"])
        self.task_table = QTableWidget(0, 5, objectName="evalTaskTable")
        self.task_table.setHorizontalHeaderLabels(["Task", "Agrees", "Teacher tool", "Student tool", "Confidence"])
        for table in (self.category_table, self.task_table):
            table.verticalHeader().hide()
            table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.category_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(60)
        self.category_table.setMinimumHeight(110)
        self.category_table.currentCellChanged.connect(lambda *_: self._show_tasks())
        tasks_header = self.task_table.horizontalHeader()
        tasks_header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for col in (1, 4):  # "NO" and "0.756" need little; the task and tool names get the rest
            tasks_header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.task_table.currentCellChanged.connect(lambda *_: self._show_pair())
        self.pair_view = QTextBrowser(objectName="pairView")
        self.pair_view.setPlaceholderText("Pick a task to see teacher and student side by side.")
        return [self.category_table, self.task_table, self.pair_view]

    def _build_calibration(self) -> QGroupBox:
        self.method_combo = QComboBox(objectName="calMethod")
        fill_confidence_methods(self.method_combo)
        self.rate_spin = QDoubleSpinBox(objectName="targetRate", minimum=0, maximum=1, singleStep=0.05, value=0.3)
        self.quality_spin = QDoubleSpinBox(objectName="targetQuality", minimum=0, maximum=1, singleStep=0.01,
                                           value=0.95)
        self.by_rate = QPushButton("From escalation rate", objectName="calByRate")
        self.by_quality = QPushButton("From target quality", objectName="calByQuality")
        self.cal_result = QLabel(objectName="calResult")
        self.cal_result.setWordWrap(True)
        self.apply_button = QPushButton("Apply to student tier", objectName="applyThreshold")
        self.export_button = QPushButton("Export policy…", objectName="exportPolicy")
        self.by_rate.clicked.connect(lambda: self.calibrate("rate"))
        self.by_quality.clicked.connect(lambda: self.calibrate("quality"))
        self.apply_button.clicked.connect(self.apply_threshold)
        self.export_button.clicked.connect(self.export_policy_dialog)
        self.apply_button.setEnabled(False)
        box = QGroupBox("Escalation threshold")
        cl = QVBoxLayout(box)
        method_row = _row(QLabel("Method"))
        method_row.addWidget(self.method_combo, 1)
        cl.addLayout(method_row)
        cl.addLayout(_row(QLabel("Escalate"), self.rate_spin, self.by_rate))
        cl.addLayout(_row(QLabel("Quality ≥"), self.quality_spin, self.by_quality))
        cl.addWidget(self.cal_result)
        cl.addLayout(_row(self.apply_button, self.export_button))
        return box

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self.history.plot is None:
            self.history.ensure_plot()
            self.history.refresh()

    # the history panel's parts, by the names the page has always offered
    plot = property(lambda self: self.history.plot)
    _curves = property(lambda self: self.history._curves)
    alert_spin = property(lambda self: self.history.alert_spin)
    drift_warning = property(lambda self: self.history.drift_warning)

    def refresh_drift(self) -> None:
        self.history.refresh()

    # -- workspace -----------------------------------------------------------------------------
    def set_workspace(self, ws: Workspace | None) -> None:
        if self.worker is not None and ws is not self.ws:
            self.worker.cancel()  # its result would belong to the previous workspace
            self.worker = None
            self.run_button.setEnabled(True)
        if ws is not self.ws:
            self.history.cancel()
        self.ws = ws
        self.report = None
        self.category_table.setRowCount(0)
        self.task_table.setRowCount(0)
        self.pair_view.clear()
        self.reload_choices()
        self.refresh_drift()
        self.judge_panel.set_workspace(ws)
        self.say("Pick a student tier and press Evaluate. Missing trajectories are collected first.")

    def reload_choices(self) -> None:
        tiers = self.tiers()
        top = teacher_of(tiers)
        for combo, default in ((self.teacher_combo, top.tier if top else None),
                               (self.student_combo, min((t.tier for t in tiers if t is not top), default=None))):
            current = combo.currentData() or default
            combo.clear()
            if combo is self.student_combo and len(tiers) > 2:
                combo.addItem("All student tiers", -1)
            for t in tiers:
                if combo is self.student_combo and t is top:
                    continue  # the teacher is never its own student
                combo.addItem(f"Tier {t.tier} — {t.model}", t.tier)
            combo.setCurrentIndex(max(0, combo.findData(current)))
        self._student_changed()
        from cascade_studio.services.datasets import validation_task_ids

        split = validation_task_ids(self.ws) if self.ws else None
        items = self.category_items()
        if split:  # the default subset: the newest dataset's validation split
            items.insert(0, (f"Validation split of dataset {split[0]} ({len(split[1])})", f"@dataset:{split[0]}"))
        self.fill(self.category_combo, items, default=items[0][1])
        from cascade_studio.store.judges import JudgeRepository

        judges = [(f"{j.name} ({j.model})", j.name) for j in JudgeRepository(self.ws).list()] if self.ws else []
        self.fill(self.judge_combo, [("No judge", ""), *judges], default="")

    def _student_changed(self, *_: object) -> None:
        """Calibrate with the student's own confidence method (one rule with Tiers and Trajectories)."""
        method = confidence_method_of(self.tiers(), self.student_combo.currentData())
        self.method_combo.setCurrentIndex(max(0, self.method_combo.findData(method)))

    # -- evaluation ----------------------------------------------------------------------------
    def run_evaluation(self, *, judged: bool = False) -> None:
        """Evaluate; with a judge chosen, first its dry run (the cost estimate) and the question
        (`judged` is the run after the user said yes)."""
        from cascade_studio.ui.run_thread import EvaluationThread

        if self.ws is None or self.worker is not None:
            return
        teacher = self.tier(self.teacher_combo.currentData())
        if self.student_combo.currentData() == -1 and teacher is not None:
            students = [t for t in self.tiers() if t.tier != teacher.tier]
        else:
            students = [t for t in [self.tier(self.student_combo.currentData())] if t is not None]
        if teacher is None or not students or any(s.tier == teacher.tier for s in students):
            self.say("Choose two different tiers: a teacher and a student.", error=True)
            return
        student = students[0]
        task_ids, choice = self.chosen_task_ids(), self.chosen_subset()
        if not task_ids:
            self.say("No tasks: import a task set on the Tasks page.", error=True)
            return
        judge = None
        if self.judge_combo.currentData():
            from cascade_studio.store.judges import JudgeRepository

            judge = JudgeRepository(self.ws).get(self.judge_combo.currentData())
            if judge is None:
                self.say(f"No judge {self.judge_combo.currentData()!r} any more.", error=True)
                return
        estimate = judge is not None and not judged
        self.run_button.setEnabled(False)
        if estimate:
            self.say(f"Estimating what judging with {judge.name} would cost (nothing is sent)…")
        else:
            self.say(f"Evaluating tier {student.tier} against tier {teacher.tier} on {len(task_ids)} tasks"
                     + (" (collecting missing trajectories first)…" if self.collect_check.isChecked() else "…"))
        self.method_combo.setCurrentIndex(self.method_combo.findData(student.confidence_method.value))
        # on a thread of its own with its own connection: collecting is long work (ui/run_thread.py)
        self.worker = EvaluationThread(self.ws.path, teacher, students, task_ids, self.secrets,
                                       collect=self.collect_check.isChecked(), category=choice, judge=judge,
                                       dry_run=estimate, parent=self)
        self.worker.progress.connect(self._evaluating)
        self.worker.finished.connect(self._evaluated)
        self.worker.start()

    def chosen_task_ids(self) -> list[str]:
        """The tasks the choices above name: a dataset's validation split, or a category (or all), up to the limit."""
        from cascade_studio.services.collector import select_task_ids

        choice, limit = self.category_combo.currentData(), self.limit_spin.value() or None
        if isinstance(choice, str) and choice.startswith("@dataset:"):
            from cascade_studio.services.datasets import validation_task_ids

            split = validation_task_ids(self.ws, int(choice.split(":")[1]))
            return split[1][:limit] if split else []
        return select_task_ids(self.ws, choice, limit)

    def chosen_subset(self) -> str | None:
        """How the history names the chosen tasks (None: all tasks)."""
        choice = self.category_combo.currentData()
        if isinstance(choice, str) and choice.startswith("@dataset:"):
            return f"validation split of dataset {choice.split(':')[1]}"
        return choice

    def _evaluating(self, step) -> None:
        i, n, student = step
        if i:  # the first student's line is already there
            self.say(f"Evaluating tier {student.tier} against the teacher ({i + 1} of {n})…")

    def _evaluated(self, reports, error) -> None:
        if self.sender() is not self.worker:
            return  # cancelled when the workspace changed
        worker = self.worker
        worker.wait(5)
        self.worker = None
        self.run_button.setEnabled(True)
        if error:
            self.say(f"The evaluation failed: {error}", error=True)
            return
        if not reports:
            return  # cancelled
        if worker.dry_run:  # the judge's estimate: ask before paying (Cancel by default, Esc cancels)
            from cascade_studio.ui.judge_run import ask_to_judge, estimate_totals

            if not any(r.results for r in reports):  # the estimate reads recorded answers only (as --dry-run)
                self.say("No task has recorded answers of both tiers to estimate the judge's cost from: evaluate "
                         "once with 'No judge' (collecting them), then with the judge.", error=True)
                return
            if ask_to_judge(self, worker.judge.name, estimate_totals(reports), self.collect_check.isChecked()):
                self.run_evaluation(judged=True)
            else:
                self.say("Evaluation with the judge cancelled: nothing was sent.")
            return
        self.show_report(reports[0])
        if len(reports) > 1:
            summary = "; ".join(f"tier {r.student.tier} ({r.student.model}) {_pct(r.summary['overall']['agreement'])}"
                                for r in reports if r.results)
            self.say(f"Agreement with the teacher: {summary}. Showing tier {reports[0].student.tier}; pick one "
                     "student to drill into another.")

    def show_report(self, report) -> None:
        from cascade_studio.services.evaluation import latest_sides

        self.report = report
        ids = [r.task_id for r in report.results]
        self._sides = (latest_sides(self.ws, report.teacher, ids), latest_sides(self.ws, report.student, ids))
        if not report.results:
            self.say(f"No task has trajectories of both tiers ({report.missing} missing). Tick 'Collect missing "
                     "trajectories' and evaluate again.", error=True)
            return
        o = report.summary["overall"]
        self.say(f"Tier {report.student.tier} ({report.student.model}) agrees with the teacher on "
                 f"{_pct(o['agreement'])} of {o['tasks']} tasks (tool {_pct(o['tool_agreement'])}, arguments "
                 f"{_pct(o['args_agreement'])}). Similarity: {report.similarity_method}."
                 + (f" {report.missing} tasks lacked a trajectory." if report.missing else "")
                 + agents_sentence(report.agents) + judged_sentence(report))
        rows = [("All categories", o), *report.summary["categories"].items()]
        self.category_table.setRowCount(len(rows))
        for r, (name, b) in enumerate(rows):
            acc = b["accuracy"]
            values = [name, str(b["tasks"]), _pct(b["agreement"]), _pct(b["tool_agreement"]),
                      _pct(b["args_agreement"]), _pct(b["answer_agreement"]),
                      f"{_pct(acc['teacher'])} / {_pct(acc['student'])}" if acc else "—",
                      "—" if b["kl"] is None else f"{b['kl']:.3f}"]
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                item.setData(Qt.ItemDataRole.UserRole, None if r == 0 else name)
                if c == 2 and b["agreement"] is not None:
                    item.setBackground(heat_color(b["agreement"]))
                    item.setForeground(QColor("#1b1b1b"))
                self.category_table.setItem(r, c, item)
        self.category_table.blockSignals(True)  # the same row again fires no change: fill the tasks below anyway
        self.category_table.selectRow(1 if len(rows) > 1 else 0)
        self.category_table.blockSignals(False)
        self._show_tasks()
        self.calibrate("rate")
        self.refresh_drift()

    def _show_tasks(self) -> None:
        if self.report is None:
            return
        row = self.category_table.currentRow()
        item = self.category_table.item(row, 0)
        category = item.data(Qt.ItemDataRole.UserRole) if item else None
        results = [r for r in self.report.results if category is None or r.category == category]
        results.sort(key=lambda r: (r.agrees, r.task_id))  # divergences first
        method = self.method_combo.currentData()
        self.task_table.setRowCount(len(results))
        self._task_rows = results
        t_sides, s_sides = self._sides
        for i, r in enumerate(results):
            conf = r.student_confidence.get(method)
            t, s = t_sides.get(r.task_id), s_sides.get(r.task_id)
            values = [r.task_id, "yes" if r.agrees else "NO", (t.tool_name if t else None) or "—",
                      (s.tool_name if s else None) or "—", "—" if conf is None else f"{conf:.3f}"]
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                if c == 1 and not r.agrees:
                    item.setForeground(QColor("#a4262c"))
                self.task_table.setItem(i, c, item)
        if results:
            self.task_table.selectRow(0)
        self._show_pair()  # row 0 again fires no change: the drill-down must follow the new list anyway
        if not results:
            self.pair_view.clear()

    def _show_pair(self) -> None:
        row = self.task_table.currentRow()
        if self.report is None or not 0 <= row < len(getattr(self, "_task_rows", [])):
            return
        result = self._task_rows[row]
        t, s = (sides.get(result.task_id) for sides in self._sides)
        task = TaskRepository(self.ws).get(result.task_id)
        if t is None or s is None:
            return
        if task is not None and task.environment and self._show_episodes(task, t, s):
            return
        diffs = argument_diff(t.tool_calls, s.tool_calls)
        bad = {(d["tool"], d["argument"]) for d in diffs}

        def column(side, label: str) -> str:
            parts = [f"<h4>{html.escape(label)}</h4>"]
            if side.tool_calls:
                for call in side.tool_calls:
                    named_bad = any(k[0] == call["name"] and k[1] is None for k in bad)
                    style = ' style="background:#fde7e9"' if named_bad or not result.tool_agree else ""
                    parts.append(f"<p{style}><b>{html.escape(str(call['name']))}</b></p><table>")
                    for key, value in (call.get("arguments") or {}).items():
                        mark = ' style="background:#fde7e9"' if (call["name"], key) in bad else ""
                        parts.append(f"<tr{mark}><td>{html.escape(key)}</td><td>"
                                     f"{html.escape(json.dumps(value))}</td></tr>")
                    parts.append("</table>")
            else:
                parts.append(f"<p><i>no tool</i></p><p>{html.escape(side.answer or '')}</p>")
            return "".join(parts)

        prompt = html.escape(task.prompt) if task else ""
        expected = ""
        if task and isinstance(task.expected, list):
            ok = (f"teacher {'✔' if result.teacher_correct else '✖'}, student "
                  f"{'✔' if result.student_correct else '✖'}")
            expected = f"<p><b>Expected answer:</b> {ok}</p>"
        self.pair_view.setHtml(
            f"<p><b>{html.escape(result.task_id)}</b> · {html.escape(result.category)}</p><p>{prompt}</p>{expected}"
            f"<table width='100%' cellspacing='8'><tr><td valign='top' width='50%'>"
            f"{column(t, f'Teacher (tier {self.report.teacher.tier})')}</td><td valign='top'>"
            f"{column(s, f'Student (tier {self.report.student.tier})')}</td></tr></table>")

    def _show_episodes(self, task, t, s) -> bool:
        """An agent task: both episodes side by side, aligned by step (False: not both are episodes)."""
        from cascade_studio.store.episodes import EpisodeRepository
        from cascade_studio.ui.episode_pair import episode_pair_html

        repo = EpisodeRepository(self.ws)
        te, se = repo.of_trajectory(t.trajectory_id), repo.of_trajectory(s.trajectory_id)
        if te is None or se is None:
            return False
        self.pair_view.setHtml(episode_pair_html(task, te, se, (f"Teacher (tier {self.report.teacher.tier})",
                                                                f"Student (tier {self.report.student.tier})")))
        return True

    # -- calibration ---------------------------------------------------------------------------
    def calibrate(self, how: str) -> None:
        if self.report is None or not self.report.results:
            self.cal_result.setText("Evaluate first.")
            return
        method = self.method_combo.currentData()
        confs = [r.student_confidence.get(method) for r in self.report.results]
        student_ok = [r.agrees for r in self.report.results]
        teacher_ok = [True] * len(student_ok)
        if how == "rate":
            cal = threshold_for_rate(confs, student_ok, teacher_ok, self.rate_spin.value())
        elif how == "quality":
            cal = threshold_for_quality(confs, student_ok, teacher_ok, self.quality_spin.value())
        else:
            cal = outcome(confs, student_ok, teacher_ok, float(how))
        self._calibration = (method, cal)
        self.cal_result.setText(
            f"Threshold <b>{cal.threshold:.3f}</b> ({self.method_combo.currentText().lower()}): escalates "
            f"<b>{cal.escalation_rate:.0%}</b> of requests; expected quality (agreement with the teacher) "
            f"<b>{cal.expected_quality:.0%}</b>; the student answers {cal.answered_by_student} of {cal.tasks}.")
        self.apply_button.setEnabled(True)

    def apply_threshold(self) -> None:
        if self.ws is None or self.report is None or self._calibration is None:
            return
        method, cal = self._calibration
        repo = TierRepository(self.ws)
        tier = repo.get(self.report.student.tier)
        if tier is None:
            return
        from cascade_studio.services.tier_service import save_tiers

        changed = tier.replace(threshold=round(min(1.0, cal.threshold), 4), confidence_method=ConfidenceMethod(method))
        save_tiers(self.ws, [changed if t.tier == tier.tier else t for t in repo.list()])  # undoable, and said
        self.say(f"Tier {tier.tier} now escalates when {ConfidenceMethod(method).label.lower()} < "
                 f"{min(1.0, cal.threshold):.3f}.")

    def export_policy_dialog(self) -> None:
        from cascade_studio.services.policy import export_policy

        if self.ws is None:
            return
        calibration = {}
        if self._calibration and self.report:
            calibration[self.report.student.tier] = {"method": self._calibration[0], **self._calibration[1].to_json()}
        name, _ = QFileDialog.getSaveFileName(self, "Export cascade policy", "cascade-policy.json", "JSON (*.json)")
        if not name:
            return
        try:
            snippet = export_policy(TierRepository(self.ws).list(), Path(name), calibration)
        except OSError as exc:
            show_error("Policy not exported", f"Cannot write {name}: {exc.strerror}.", self)
            return
        self.say(f"Policy written to {name} (no keys) with a snippet that applies it: {snippet.name}")
