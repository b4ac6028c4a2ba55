"""Fine-tuning page, part 1: build a training file from curated teacher trajectories, or validate
one, and show the validation worded for the chosen backend."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTextBrowser,
)

from cascade_studio.core.tiers import Tier, teacher_of
from cascade_studio.store.datasets import DatasetRepository

if TYPE_CHECKING:
    from cascade_studio.ui.finetune_host import FineTuneHost


def fill_tier_combo(combo: QComboBox, tiers: list[Tier], *, offer_new: bool = False) -> None:
    """The workspace's tiers (and, with `offer_new`, tiers 1-3 not defined yet); keeps the choice,
    else picks the teacher (or, with `offer_new`, the lowest tier)."""
    top = teacher_of(tiers)
    current = combo.currentData()
    combo.clear()
    by_no = {t.tier: t for t in tiers}
    numbers = sorted({1, 2, 3} | set(by_no)) if offer_new else sorted(by_no)
    for no in numbers:  # a fine-tuned model may also go into a tier not defined yet
        combo.addItem(f"Tier {no} — {by_no[no].model}" if no in by_no else f"Tier {no} (new)", no)
    default = current if current is not None else (top.tier if top and not offer_new else
                                                   min((t.tier for t in tiers), default=None))
    combo.setCurrentIndex(max(0, combo.findData(default)))


class DatasetPanel(QGroupBox):
    def __init__(self, page: FineTuneHost) -> None:
        super().__init__("1. Dataset")
        self.page = page
        self.report: tuple[Path, Any] | None = None  # (file, ValidationReport) of the last validation
        # the chosen backend's verdict on it: (backend, objective, errors shown, refusal or None)
        self.verdict: tuple[str, str, list[dict], str | None] | None = None
        self._judged: tuple | None = None  # what the verdict was judged for (backend, method, model, split)
        self.ds_tier = QComboBox(objectName="dsTier")
        self.ds_category = QComboBox(objectName="dsCategory")
        self.ds_accepted = QCheckBox("Accepted only", objectName="dsAccepted")
        self.ds_min_conf = QDoubleSpinBox(objectName="dsMinConf", minimum=0, maximum=1, singleStep=0.05)
        self.ds_min_conf.setSpecialValueText("any")
        self.ds_strategy = QComboBox(objectName="dsStrategy")
        self.ds_strategy.addItem("Final answer / tool calls only", "final")
        self.ds_strategy.addItem("Keep the teacher's reasoning", "reasoning")
        self.ds_last_turn = QCheckBox("Agent episodes: last turn only", objectName="dsLastTurn")
        self.ds_last_turn.setToolTip("An episode becomes one multi-turn example. Ticked: only its last assistant turn "
                                     "is trained (the earlier ones are context, weight 0); unticked: every turn.")
        self.ds_system = QLineEdit(objectName="dsSystem")
        self.ds_system.setPlaceholderText("keep each task's system prompt")
        self.ds_share = QDoubleSpinBox(objectName="dsShare", minimum=0, maximum=0.5, singleStep=0.05, value=0.1)
        self.ds_format = QComboBox(objectName="dsFormat")
        self.ds_format.addItem("OpenAI chat JSONL", "openai")
        self.ds_format.addItem("ShareGPT (Unsloth, Axolotl, LLaMA-Factory)", "sharegpt")
        self.ds_format.addItem("Preference pairs (DPO): the tier against the lowest other tier, where they disagree",
                               "preference")
        self.build_button = QPushButton("Build dataset…", objectName="buildDataset")
        self.build_button.clicked.connect(self.build_dialog)
        self.validate_button = QPushButton("Validate a file…", objectName="validateDataset")
        self.validate_button.clicked.connect(self.validate_dialog)
        self.recorded = QComboBox(objectName="dsRecorded")
        self.recorded.setToolTip("A dataset built earlier in this workspace (its files and validation split), "
                                 "e.g. after a restart")
        self.recorded.activated.connect(lambda *_: self.choose_recorded(self.recorded.currentData()))
        self.ds_report = QTextBrowser(objectName="dsReport")
        self.ds_report.setMaximumHeight(150)
        form = QFormLayout(self)
        for label, widget in (("From tier", self.ds_tier), ("Category", self.ds_category),
                              ("Curation", self.ds_accepted), ("Confidence at least", self.ds_min_conf),
                              ("Assistant message", self.ds_strategy), ("Episodes", self.ds_last_turn),
                              ("System prompt", self.ds_system),
                              ("Validation share", self.ds_share), ("Format", self.ds_format)):
            form.addRow(label, widget)
        row = QHBoxLayout()
        row.addWidget(self.build_button)
        row.addWidget(self.validate_button)
        form.addRow(row)
        form.addRow("Or one built before", self.recorded)
        form.addRow(self.ds_report)

    def reload_choices(self) -> None:
        fill_tier_combo(self.ds_tier, self.page.tiers())
        self.page.fill(self.ds_category, self.page.category_items())
        self.reload_recorded()

    def reload_recorded(self) -> None:
        """The datasets the workspace recorded, newest first (the chosen one stays chosen)."""
        rows = DatasetRepository(self.page.ws).list() if self.page.ws else []
        items = [("choose a dataset built before…" if rows else "none built in this workspace yet", None)]
        items += [(f"Dataset {r['id']}: {Path(r['path']).name} ({r['examples']} + {r['validation_examples']} "
                   f"validation examples, {r['created_at'][:10]})", r["id"]) for r in rows]
        self.page.fill(self.recorded, items)
        self.recorded.setCurrentIndex(max(0, self.recorded.findData(self.page.dataset_id)))  # the one in use
        self.recorded.setEnabled(bool(rows))

    def choose_recorded(self, dataset_id: int | None) -> None:
        """Use a dataset the workspace recorded: its training file, its own validation split, its lineage."""
        page = self.page
        row = next((r for r in DatasetRepository(page.ws).list() if r["id"] == dataset_id), None) if page.ws else None
        if row is None:
            return
        path = Path(row["path"])
        if not path.is_file():
            page.say(f"Dataset {dataset_id}'s file {path} is gone (moved or deleted): build the dataset again or "
                     "validate the file where it is now.", error=True)
            return
        page.dataset_path, page.dataset_id = path, row["id"]
        page.validation_path = Path(row["validation_path"]) if row["validation_path"] else None
        page.say(f"Dataset {row['id']} chosen: {path.name}, {row['examples']} training and "
                 f"{row['validation_examples']} validation examples.")
        if row["format"] in ("openai", "preference"):
            self.validate(path)
        else:  # ShareGPT: for other tools; the last validation was of another file
            self.report = self.verdict = None
            self.ds_report.clear()
            page.dataset_checked()

    # -- build ---------------------------------------------------------------------------------
    def build_dialog(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Write the training file", "train.jsonl", "JSONL (*.jsonl)")
        if name:
            self.build(Path(name))

    def build(self, path: Path) -> None:
        from cascade_studio.services import datasets as dsvc

        page = self.page
        if page.ws is None:
            return
        tier = page.tier(self.ds_tier.currentData())
        f = dsvc.DatasetFilters(
            tier=self.ds_tier.currentData(), accepted_only=self.ds_accepted.isChecked(),
            category=self.ds_category.currentData(), min_confidence=self.ds_min_conf.value() or None,
            confidence_method=tier.confidence_method.value if tier else "mean_token_prob",
            strategy=self.ds_strategy.currentData(), system_prompt=self.ds_system.text().strip() or None,
            validation_share=self.ds_share.value(), last_turn_only=self.ds_last_turn.isChecked())
        try:
            built = dsvc.build_dataset(page.ws, path, f, self.ds_format.currentData())
        except (ValueError, OSError) as exc:
            page.say(f"No dataset written: {exc}", error=True)
            return
        page.dataset_path, page.validation_path, page.dataset_id = built.path, built.validation_path, built.id
        self.reload_recorded()
        page.say(f"Dataset {built.id}: {built.examples} training and {built.validation_examples} validation examples "
                 f"from {len(built.trajectory_ids)} trajectories" +
                 (f" ({built.duplicates_dropped} duplicates dropped)" if built.duplicates_dropped else "") + "." +
                 (f" The teacher's logprobs are beside it ({built.teacher_logprobs.name}) for the local trainer's "
                  "soft labels." if built.teacher_logprobs else "") +
                 (f" Preference pairs against tier {built.preference['student_tier']}: {built.preference['pairs']} "
                  f"disagreements kept, {built.preference['agreed_dropped']} agreements dropped; train them with DPO "
                  "(`finetune start --backend local --method dpo`)." if built.preference else ""))
        if self.ds_format.currentData() in ("openai", "preference"):
            self.validate(built.path)

    # -- validate ------------------------------------------------------------------------------
    def validate_dialog(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Validate a training file", "", "JSONL (*.jsonl)")
        if name:
            page = self.page
            page.dataset_path = Path(name)
            found = DatasetRepository(page.ws).find_by_path(page.dataset_path) if page.ws else None
            page.dataset_id = found[0] if found else None  # a file built earlier keeps its lineage
            # its own validation split, never the one of a dataset built before
            page.validation_path = Path(found[1]) if found and found[1] else None
            self.reload_recorded()
            self.validate(Path(name))

    def validate(self, path: Path) -> None:
        from cascade_studio.services import datasets as dsvc

        page = self.page
        try:
            r = dsvc.validate_file(path, page.base_model_name(), page.ws.path if page.ws else None)
        except ValueError as exc:
            page.say(str(exc), error=True)
            return
        self.report, self.verdict = (path, r), None
        self.show_report()
        page.dataset_checked()

    def judge(self) -> tuple[str, str, list[dict], str | None] | None:
        """The last validated file judged by the chosen backend's rules, with the functions `finetune
        start` uses before it uploads or starts anything: (backend, objective, errors, refusal)."""
        from cascade_studio.core.together_format import TogetherRun, limit_problems
        from cascade_studio.services.finetune import tracker
        from cascade_studio.services.finetune.backend import JobSpec

        if self.report is None:
            return None
        page = self.page
        path, r = self.report
        backend, objective = page.backend_name(), page.objective()
        spec = JobSpec(page.base_model_name(), path, page.validation_path, options={"objective": objective})
        refusal = None
        errors = [e for e in r.errors if backend == "openai" or e["kind"] != "too_few_examples"]
        try:
            if backend == "together":
                report = tracker.check_together_dataset(spec)["training"]
                errors = []  # Together's rules, not OpenAI's (the file is converted on upload)
                # the method against the file, as before an upload; the model's own limits are asked at Start
                unknown = {"lora_training": {}, "full_training": {}}  # limits left out are not checked
                refusal = "; ".join(limit_problems(unknown, TogetherRun(method=objective), report)) or None
            else:
                tracker.check_dataset(spec, backend, page.ws.path if page.ws else None)
        except tracker.DatasetRefused as exc:
            refusal = str(exc)
        except ValueError as exc:
            refusal = str(exc)
        return backend, objective, errors, refusal

    def show_report(self) -> None:
        """The last validation, judged and worded for the chosen backend (its rules, its method)."""
        page = self.page
        if self.report is None:
            return
        key = (page.backend_name(), page.objective(), page.base_model_name(), page.validation_path)
        if self.verdict is None or self._judged != key:  # the file is read again only for another backend
            self.verdict, self._judged = self.judge(), key
        if self.report is None or self.verdict is None:
            return
        path, r = self.report
        backend, _, errors, refusal = self.verdict
        parts = [f"<b>{html.escape(path.name)}</b>: {r.examples} examples, "
                 f"<span style='color:{'#a4262c' if errors else '#0b5a08'}'>{len(errors)} errors</span>, "
                 f"{len(r.warnings)} warnings."]
        for e in errors[:12]:
            where = f"line {e['line']}: " if e.get("line") else "file: "  # line 0: about the whole file
            parts.append(f"<br>{where}{html.escape(e['kind'])} {html.escape(e.get('detail', ''))}")
        for w in r.warnings:
            parts.append(f"<br>warning: {html.escape(w['kind'])} ({w.get('examples', '')})")
        t = r.tokens_per_example
        if t:
            parts.append(f"<br>Tokens per example: {t['min']}–{t['max']} (mean {t['mean']:.0f}); "
                         f"{r.over_limit} over {r.token_limit:,}.")
        label = {"together": "Together", "local": "the local trainer"}.get(backend, "OpenAI")
        parts.append(f"<br><span style='color:#a4262c'>Not for {label}: {html.escape(refusal)}</span>" if refusal
                     else f"<br><span style='color:#0b5a08'>Fits {label}'s rules.</span>")
        if backend == "together":
            parts.append("<br>Together: converted on upload if needed (no rebuild); the price is quoted by Together "
                         "(estimate-price) before the job starts, and you confirm it.")
        elif backend == "local":
            parts.append(f"<br>{r.n_epochs} epochs by default → {r.billed_tokens:,} tokens to train on this machine "
                         "(no per-token price).")
        else:
            cost = "" if r.estimated_cost_usd is None else f", about <b>${r.estimated_cost_usd:,.2f}</b>"
            parts.append(f"<br>{r.n_epochs} epochs by default → {r.billed_tokens:,} billed tokens{cost}.")
        self.ds_report.setHtml("".join(parts))

    def ok(self) -> bool:
        """No validation yet, or one the chosen backend takes."""
        return self.report is None or self.verdict is None or self.verdict[3] is None
