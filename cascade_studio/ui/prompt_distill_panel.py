"""The Fine-tuning page's third way to make a student: prompt distillation (no training). It gives a
student tier a new generation with the teacher's demonstrations (services.prompt_distill, what
`distil prompt` runs), never from the dataset's validation split; "Evaluate first" is the promotion
gate (both generations evaluated on that split, paid, the tier changed only when the new one agrees
at least as often)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
)

from cascade_studio.core.demonstrations import MAX_K


class PromptDistillPanel(QGroupBox):
    def __init__(self, page: Any) -> None:
        super().__init__("3. Prompt distillation", page)  # a short title: a group box is never narrower than it
        self.page = page
        self.worker = None
        self.student = QComboBox(objectName="pdStudent")
        self.k = QSpinBox(objectName="pdK", minimum=1, maximum=MAX_K, value=4)
        self.mode = QComboBox(objectName="pdMode")
        self.mode.addItem("Nearest: per request, the k most similar teacher answers", "nearest")
        self.mode.addItem("Fixed: the same k (by category, the student's misses first)", "fixed")
        self.evaluate_first = QCheckBox("Evaluate first (paid)",
                                        objectName="pdEvaluateFirst", checked=True)
        self.evaluate_first.setToolTip("Both generations are evaluated on the dataset's validation split; answers "
                                       "missing there are collected (paid requests). The tier changes only when the "
                                       "new generation agrees with the teacher at least as often.")
        # short labels: both fit beside each other in the column at 1024x700 (the tooltips say the rest)
        self.build_button = QPushButton("Build generation", objectName="pdBuild")
        self.build_button.setToolTip("Build a prompt-distilled generation of the student tier: its prompt with k "
                                     "teacher demonstrations")
        self.remove_button = QPushButton("Remove demonstrations", objectName="pdRemove")
        self.remove_button.setToolTip("The student tier's plain prompt again, without the demonstrations")
        self.note = QLabel(objectName="pdNote", wordWrap=True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.build_button)
        buttons.addWidget(self.remove_button)
        form = QFormLayout(self)
        about = QLabel("No training: the student's prompt carries the teacher's demonstrations.", wordWrap=True)
        form.addRow(about)
        form.addRow("Student tier", self.student)
        form.addRow("Demonstrations (k)", self.k)
        form.addRow("Mode", self.mode)
        form.addRow(self.evaluate_first)
        form.addRow(buttons)
        form.addRow(self.note)
        self.build_button.clicked.connect(self.build)
        self.remove_button.clicked.connect(self.remove)

    def reload_choices(self) -> None:
        from cascade_studio.core.tiers import teacher_of
        from cascade_studio.store.tiers import TierRepository

        tiers = TierRepository(self.page.ws).list() if self.page.ws is not None else []
        teacher = teacher_of(tiers)
        items = [(f"Tier {t.tier}: {t.model}" + (" (has demonstrations)" if t.demonstrations else ""), t.tier)
                 for t in tiers if teacher is not None and t.tier != teacher.tier]
        self.page.fill(self.student, items)
        self.build_button.setEnabled(bool(items))
        self.remove_button.setEnabled(bool(items))

    def build(self) -> None:
        from cascade_studio.services.prompt_distill import distil_prompt
        from cascade_studio.ui.run_thread import ServiceThread

        page = self.page
        tier_no = self.student.currentData()
        if page.ws is None or tier_no is None or self.worker is not None:
            return
        k, mode, first, secrets = self.k.value(), self.mode.currentData(), self.evaluate_first.isChecked(), page.secrets
        dataset_id = page.dataset_id
        if first:
            from cascade_studio.services.datasets import validation_task_ids
            from cascade_studio.ui.errors import ask_yes_no

            split = validation_task_ids(page.ws, dataset_id)
            if split and not ask_yes_no(self, "Evaluate the new generation?",
                                        f"Evaluate tier {tier_no} with and without the demonstrations against the "
                                        f"teacher on the {len(split[1])} validation tasks of dataset {split[0]}? "
                                        f"Answers not collected yet are requested (up to {len(split[1]) * 3} "
                                        "requests). The tier changes only if the new generation agrees at least "
                                        "as often."):
                return

        async def work(ws):
            return await distil_prompt(ws, tier_no, k, mode, secrets, dataset_id=dataset_id, evaluate_first=first)

        self.build_button.setEnabled(False)
        page.say(f"Building tier {tier_no}'s prompt-distilled generation" + (" and evaluating it…" if first else "…"))
        self.worker = ServiceThread(page.ws.path, "prompt-distillation", work, parent=self)
        self.worker.finished.connect(self._built)
        self.worker.start()

    def _built(self, result, error) -> None:
        if self.sender() is not self.worker:
            return
        self.worker.wait(5)
        self.worker = None
        self.build_button.setEnabled(True)
        if error:
            self.page.say(f"Prompt distillation failed: {str(error).rstrip('.')}.", error=True)
            return
        self.note.setText(result.sentence())
        self.page.say(result.sentence(), error=not result.applied)
        self.reload_choices()

    def remove(self) -> None:
        from cascade_studio.services.prompt_distill import remove_prompt

        tier_no = self.student.currentData()
        if self.page.ws is None or tier_no is None:
            return
        tier = remove_prompt(self.page.ws, tier_no)
        self.note.setText(f"Tier {tier.tier} ({tier.model}) answers without demonstrations again.")
        self.reload_choices()

    def wait_done(self, timeout: float = 60.0) -> bool:
        """Block until the build under way has been shown (tests)."""
        import time

        from PySide6.QtWidgets import QApplication

        end = time.monotonic() + timeout
        while self.worker is not None and time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.005)
        return self.worker is None
