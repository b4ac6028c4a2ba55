"""Fine-tuning page, part 2: where a job trains (a tier's fine-tuning API, Together AI's, or this
machine, with each one's settings), which backends start jobs today, and the Start button."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QWidget,
)

from cascade_studio.ui.finetune_dataset import fill_tier_combo
from cascade_studio.ui.style import WARN_STYLE, WrappingLabel, styled_label

if TYPE_CHECKING:
    from cascade_studio.ui.finetune_host import FineTuneHost

FINE_TUNABLE = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"]
# suggestions only: the model's limits are asked of Together before anything is uploaded
TOGETHER_MODELS = ["meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "meta-llama/Llama-3.2-1B-Instruct",
                   "Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.3-70B-Instruct-Reference"]


def _form(widget: QWidget, rows: list[tuple[str, Any]]) -> QFormLayout:
    form = QFormLayout(widget)
    form.setContentsMargins(0, 0, 0, 0)
    for label, field in rows:
        form.addRow(label, field)
    return form


class JobStartPanel(QGroupBox):
    def __init__(self, page: FineTuneHost) -> None:
        super().__init__("2. Job")
        from cascade_studio.services.finetune.tracker import backends

        self.page = page
        self.backend = QComboBox(objectName="ftBackend")
        self.backend_note = WrappingLabel(objectName="ftBackendNote")
        self.backend_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.backends = {b["name"]: b for b in backends()}
        for b in self.backends.values():
            self.backend.addItem(b["label"] + ("" if b["available"] else " — not installed"), b["name"])
            self.backend.setItemData(self.backend.count() - 1, b["message"], Qt.ItemDataRole.ToolTipRole)
        self.base_model = QComboBox(objectName="baseModel", editable=True)
        self.base_model.addItems(FINE_TUNABLE)
        self.endpoint_tier = QComboBox(objectName="endpointTier")
        self.epochs = QSpinBox(objectName="epochs", minimum=0, maximum=50)
        self.epochs.setSpecialValueText("auto")
        self.suffix = QLineEdit(objectName="suffix")
        self.suffix.setPlaceholderText("e.g. distilled-v1")
        self.start_button = QPushButton("Start fine-tune", objectName="startJob")
        self.start_button.clicked.connect(self.start_job)
        self.deprecation = styled_label("ftDeprecation", WARN_STYLE, hidden=True)
        self.backends_line = WrappingLabel(objectName="ftBackends")  # which backends start jobs today (the deadline)
        self.remote_box = QWidget(objectName="remoteBox")
        _form(self.remote_box, [("Base model", self.base_model), ("Endpoint of tier", self.endpoint_tier)])
        self.together_box = self._build_together_box()
        self.local_box = self._build_local_box()
        form = QFormLayout(self)
        form.addRow(self.backends_line)
        form.addRow("Backend", self.backend)
        form.addRow(self.backend_note)
        form.addRow(self.remote_box)
        form.addRow(self.together_box)
        form.addRow(self.local_box)
        form.addRow("Epochs", self.epochs)
        form.addRow("Suffix", self.suffix)
        form.addRow(self.deprecation)
        form.addRow(self.start_button)
        self.backend.currentIndexChanged.connect(lambda *_: self._backend_changed())
        self._backend_changed()
        self.endpoint_tier.currentIndexChanged.connect(lambda *_: self.update_deprecation())
        self.base_model.currentTextChanged.connect(lambda *_: self.update_deprecation())

    def _build_together_box(self) -> QWidget:
        """Together AI's settings: the model, the API root, LoRA or full, SFT or DPO."""
        from cascade_studio.core.tiers import TOGETHER_BASE_URL

        self.together_model = QComboBox(objectName="togetherModel", editable=True)
        self.together_model.addItems(TOGETHER_MODELS)
        self.together_url = QLineEdit(TOGETHER_BASE_URL, objectName="togetherUrl")
        self.together_url.setToolTip("Together's API root; the key for it: `cascade-studio keys set URL` or "
                                     "TOGETHER_API_KEY (sent to Together's https host only)")
        self.together_type = QComboBox(objectName="togetherType")
        self.together_type.addItem("LoRA adapter", "lora")
        self.together_type.addItem("Full fine-tuning (needs a dedicated endpoint to serve)", "full")
        self.together_method = QComboBox(objectName="togetherMethod")
        self.together_method.addItem("Supervised (SFT)", "sft")
        self.together_method.addItem("Preference (DPO; a preference file)", "dpo")
        self.together_method.currentIndexChanged.connect(lambda *_: self._method_changed())
        self.together_checkpoint = QLineEdit(objectName="togetherCheckpoint")
        self.together_checkpoint.setPlaceholderText("optional: a job id[:step] to continue from (DPO after SFT)")
        box = QWidget(objectName="togetherBox")
        _form(box, [("Base model", self.together_model), ("API root", self.together_url),
                    ("Training", self.together_type), ("Method", self.together_method),
                    ("From checkpoint", self.together_checkpoint)])
        return box

    def _build_local_box(self) -> QWidget:
        """The local trainer's settings."""
        self.local_model = QLineEdit(objectName="localModel")
        self.local_model.setPlaceholderText("a Hugging Face model folder (config.json, tokenizer, weights)")
        browse = QPushButton("Browse…", objectName="browseModel")
        browse.clicked.connect(self.choose_model_folder)
        model_row = QHBoxLayout()
        model_row.setContentsMargins(0, 0, 0, 0)
        model_row.addWidget(self.local_model, 1)
        model_row.addWidget(browse)
        self.method = QComboBox(objectName="localMethod")  # the values of `finetune start --method`
        self.method.addItem("Supervised, LoRA adapter (+ merged model)", "lora")
        self.method.addItem("Supervised, full fine-tuning", "full")
        self.method.addItem("Preference (DPO; a preference file), LoRA adapter", "dpo")
        self.method.addItem("Preference (DPO; a preference file), full fine-tuning", "dpo-full")
        self.method.currentIndexChanged.connect(lambda *_: self._method_changed())
        self.devices = QSpinBox(objectName="localDevices", minimum=1, maximum=64)
        self.devices.setToolTip("Train on N devices (GPUs; CPU processes with Device CPU) with torchrun, "
                                "data-parallel, as `finetune start --devices N`")
        self.alpha = QDoubleSpinBox(objectName="kdAlpha", minimum=0, maximum=1, singleStep=0.05, value=0.5)
        self.alpha.setToolTip("Weight of the hard-label cross-entropy; 1 - a goes to the teacher's soft labels "
                              "(used only when teacher and student share a tokenizer).")
        self.temperature = QDoubleSpinBox(objectName="kdTemperature", minimum=0.1, maximum=20, singleStep=0.5, value=2.0)
        self.temperature.setToolTip("Distillation temperature T: softens both distributions; the KL term is scaled by T².")
        self.mass = QComboBox(objectName="kdMass")
        self.mass.addItem("renormalise the teacher's top-k (drop the rest)", "drop")
        self.mass.addItem("spread the remaining mass over the vocabulary", "spread")
        self.device = QComboBox(objectName="localDevice")
        for label, value in (("auto (CUDA GPU when available)", "auto"), ("CPU", "cpu"), ("CUDA", "cuda")):
            self.device.addItem(label, value)
        self.more = QToolButton(objectName="localMore", text="More training options", checkable=True)
        self.more.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.more.setArrowType(Qt.ArrowType.RightArrow)
        self.more_box = self._build_more_box()
        self.more_box.setVisible(False)
        self.more.toggled.connect(self._toggle_more)
        box = QWidget(objectName="localBox")
        form = _form(box, [("Base model folder", model_row), ("Method", self.method),
                           ("KD weight a (CE share)", self.alpha), ("Temperature T", self.temperature),
                           ("Teacher mass", self.mass), ("Device", self.device), ("Devices", self.devices)])
        form.addRow(self.more)
        form.addRow(self.more_box)
        self._local_fields()
        return box

    def _build_more_box(self) -> QWidget:
        """The rest of `finetune start --backend local`'s options; each empty or 0 means the CLI's default
        (several machines, --nodes, are started from the command line on each one)."""
        self.lora_rank = QSpinBox(objectName="loraRank", minimum=1, maximum=1024, value=16)
        self.lora_rank.setToolTip("--lora-rank: the adapter's rank (LoRA methods)")
        self.learning_rate = QLineEdit(objectName="learningRate")
        self.learning_rate.setPlaceholderText("default: 2e-4 LoRA, 2e-5 full")
        self.learning_rate.setToolTip("--learning-rate: the absolute learning rate, e.g. 1e-4")
        self.max_length = QSpinBox(objectName="maxLength", minimum=16, maximum=1_048_576, value=2048, singleStep=256)
        self.max_length.setToolTip("--max-length: tokens per example; longer ones are cut")
        self.max_steps = QSpinBox(objectName="maxSteps", minimum=0, maximum=10_000_000)
        self.max_steps.setSpecialValueText("no limit")
        self.max_steps.setToolTip("--max-steps: stop after this many optimizer steps")
        self.dpo_beta = QDoubleSpinBox(objectName="dpoBeta", minimum=0, maximum=100, singleStep=0.05, decimals=3)
        self.dpo_beta.setSpecialValueText("default (0.1)")
        self.dpo_beta.setToolTip("--beta: DPO's beta, how far the student may move from the reference (DPO methods)")
        self.checkpoint_every = QSpinBox(objectName="checkpointEvery", minimum=0, maximum=10_000_000)
        self.checkpoint_every.setSpecialValueText("never")
        self.checkpoint_every.setToolTip("--checkpoint-every K: write a resumable checkpoint every K steps")
        self.resume_from = QLineEdit(objectName="resumeFrom")
        self.resume_from.setPlaceholderText("optional: a stopped local job's id, or a checkpoint folder")
        self.resume_from.setToolTip("--resume-from: go on from the last checkpoint of that job or folder")
        box = QWidget(objectName="localMoreBox")
        _form(box, [("LoRA rank", self.lora_rank), ("Learning rate", self.learning_rate),
                    ("Max length", self.max_length), ("Max steps", self.max_steps), ("DPO beta", self.dpo_beta),
                    ("Checkpoint every", self.checkpoint_every), ("Resume from", self.resume_from)])
        return box

    def _toggle_more(self, shown: bool) -> None:
        self.more.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.more_box.setVisible(shown)

    def reload_choices(self) -> None:
        fill_tier_combo(self.endpoint_tier, self.page.tiers())
        self.update_backends_line()
        self.update_deprecation()

    def update_backends_line(self) -> None:
        """Per backend, whether it starts a job today (the same rows as `finetune backends`)."""
        from cascade_studio.services.finetune.tracker import backends, backends_line

        rows = backends()
        self.backends = {b["name"]: b for b in rows}
        self.backends_line.setText(backends_line())
        self.backends_line.setToolTip("\n".join(f"{b['label']}: {b['message']}" for b in rows))
        closed = not self.backends["openai"]["starts_jobs_today"]
        self.backends_line.setStyleSheet(WARN_STYLE if closed else "")
        self._backend_changed()

    def is_local(self) -> bool:
        return self.backend.currentData() == "local"

    def is_together(self) -> bool:
        return self.backend.currentData() == "together"

    def objective(self) -> str:
        """sft or dpo: how the chosen backend's job trains (OpenAI: supervised only)."""
        if self.is_together():
            return self.together_method.currentData()
        return "dpo" if self.is_local() and self.method.currentData().startswith("dpo") else "sft"

    def local_options(self) -> dict[str, Any]:
        """The local trainer's options, built by the function `finetune start --backend local` uses."""
        from cascade_studio.services.finetune.tracker import local_options

        method = self.method.currentData()
        rate = self.learning_rate.text().strip()
        try:
            learning_rate = float(rate) if rate else None
        except ValueError:
            raise ValueError(f"The learning rate {rate!r} is not a number (e.g. 1e-4); leave it empty for the "
                             "default.") from None
        if learning_rate is not None and not learning_rate > 0:
            raise ValueError("The learning rate is above 0; leave it empty for the default.")
        return local_options("full" if method in ("full", "dpo-full") else "lora", self.objective(),
                             alpha=self.alpha.value(), temperature=self.temperature.value(),
                             mass=self.mass.currentData(), device=self.device.currentData(),
                             devices=self.devices.value(), lora_rank=self.lora_rank.value(),
                             max_length=self.max_length.value(), beta=self.dpo_beta.value() or None,
                             learning_rate=learning_rate, max_steps=self.max_steps.value() or None,
                             checkpoint_every=self.checkpoint_every.value() or None,
                             resume_from=self.resume_from.text().strip() or None)

    def _backend_changed(self) -> None:
        b = self.backends.get(self.backend.currentData(), {})
        local, together = self.is_local(), self.is_together()
        self.remote_box.setVisible(not local and not together)
        self.together_box.setVisible(together)
        self.local_box.setVisible(local)
        self.backend_note.setText(b.get("message", ""))
        self.backend_note.setStyleSheet("" if b.get("available", True) else WARN_STYLE)
        self.update_deprecation()
        self.page.backend_changed()  # the dataset's cost line differs between backends
        self.update_start()

    def _method_changed(self) -> None:
        self._local_fields()
        self.page.backend_changed()  # the file is judged again: DPO takes preference pairs only
        self.update_start()

    def _local_fields(self) -> None:
        """Fields that the chosen local method uses: the rank for LoRA, beta for DPO."""
        method = self.method.currentData() or ""
        self.lora_rank.setEnabled(method in ("lora", "dpo"))
        self.dpo_beta.setEnabled(method.startswith("dpo"))

    def choose_model_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Base model folder (Hugging Face format)",
                                                self.local_model.text() or str(Path.home()))
        if name:
            self.local_model.setText(name)
            if not (Path(name) / "config.json").is_file():
                self.page.say(f"{name} has no config.json: choose a Hugging Face model folder (config.json, "
                              "tokenizer files, weights).", error=True)

    def update_deprecation(self) -> None:
        from cascade_studio.services.finetune.backend import openai_deprecation

        if self.is_local() or self.is_together():
            self.deprecation.hide()
            return
        tier = self.page.tier(self.endpoint_tier.currentData())
        text = openai_deprecation(tier.base_url, self.base_model.currentText(), dt.date.today()) if tier else None
        self.deprecation.setText(f"⚠ {text}" if text else "")
        self.deprecation.setVisible(bool(text))

    def update_start(self) -> None:
        """Start needs a usable backend and a dataset without errors (when one was validated)."""
        available = self.backends.get(self.backend.currentData(), {}).get("available", True)
        self.start_button.setEnabled(available and self.page.dataset_ok())

    # -- start ---------------------------------------------------------------------------------
    def start_job(self) -> None:
        from cascade_studio.services.finetune import tracker
        from cascade_studio.services.finetune.backend import JobSpec

        page = self.page
        if page.ws is None or page.dataset_path is None or page.calls.running("start"):
            if page.dataset_path is None:
                page.say("Build a dataset, validate a file, or choose one built before (1. Dataset) first.", error=True)
            return
        if self.is_together():
            self._prepare_together()
            return
        local = self.is_local()
        options = {}
        if local:
            backend = self.backends["local"]
            if not backend["available"]:
                page.say(backend["message"], error=True)
                return
            if not self.local_model.text().strip():
                page.say("Choose the base model folder first (a Hugging Face model on this disk).", error=True)
                return
            try:
                options = self.local_options()
            except ValueError as exc:
                page.say(str(exc), error=True)
                return
        base = self.local_model.text().strip() if local else self.base_model.currentText().strip()
        spec = JobSpec(base, page.dataset_path, page.validation_path, n_epochs=self.epochs.value() or "auto",
                       suffix=self.suffix.text().strip() or None, options=options)
        page.say(f"Starting the local trainer on {page.dataset_path.name}…" if local else
                 f"Uploading {page.dataset_path.name} and starting the job…")
        self.start_button.setEnabled(False)
        started = tracker.start_job(page.ws, spec, self.endpoint_tier.currentData(), page.secrets,
                                    dataset_id=page.dataset_id, backend_name="local" if local else "openai")
        if not page.calls.start("start", started, self._started, self._not_started):
            self._not_started(RuntimeError("no event loop is running"))

    # -- Together: upload and quote, ask, then create ---------------------------------------------
    def together_spec(self) -> Any:
        from cascade_studio.services.finetune.backend import JobSpec

        page = self.page
        options: dict[str, Any] = {"training_type": self.together_type.currentData(),
                                   "training_method": self.together_method.currentData()}
        if self.together_checkpoint.text().strip():
            options["from_checkpoint"] = self.together_checkpoint.text().strip()
        return JobSpec(self.together_model.currentText().strip(), page.dataset_path, page.validation_path,
                       n_epochs=self.epochs.value() or "auto", suffix=self.suffix.text().strip() or None,
                       options=options)

    def _prepare_together(self) -> None:
        from cascade_studio.services.finetune import tracker

        page = self.page
        page.say(f"Checking {page.dataset_path.name} by Together's rules and the model's limits, uploading it and "
                 "asking Together for the price…")
        self.start_button.setEnabled(False)
        prepared = tracker.prepare_together(self.together_spec(), page.secrets, self.together_url.text().strip() or None,
                                            dataset_id=page.dataset_id)
        if not page.calls.start("start", prepared, self._quoted, self._not_started):
            self._not_started(RuntimeError("no event loop is running"))

    def confirm_price(self, prepared: Any) -> bool:
        from cascade_studio.ui.errors import ask_yes_no

        spec = prepared.spec
        return ask_yes_no(self, "Start the Together job?",
                          f"{prepared.estimate.sentence()}\n\nTrain {spec.base_model} "
                          f"({spec.options.get('training_type', 'lora')}, {spec.options.get('training_method', 'sft')}) "
                          f"on {Path(spec.training_file).name}? Together bills the job once it starts.")

    def _quoted(self, prepared: Any) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, lambda: self._ask_and_launch(prepared))  # the dialog from Qt's loop, not a task callback

    def _ask_and_launch(self, prepared: Any) -> None:
        from cascade_studio.services.finetune import tracker

        page = self.page
        if page.ws is None or not self.confirm_price(prepared):
            self.update_start()
            page.say(f"Not started. {prepared.estimate.sentence()} (The files are uploaded to Together; nothing is "
                     "billed.)")
            return
        launched = tracker.launch_together(page.ws, prepared, page.secrets)
        if not page.calls.start("start", launched, lambda state: self._started((state, None)), self._not_started):
            self._not_started(RuntimeError("no event loop is running"))

    def _started(self, result: Any) -> None:
        state, warning = result
        self.update_start()
        self.page.say(f"Started {state.id} on {state.base_model}." + (f" {warning}" if warning else ""))
        self.page.job_started(state.id)

    def _not_started(self, error: BaseException) -> None:
        from cascade_studio.services.clients import describe_error

        self.update_start()
        self.page.say(f"The job did not start: {describe_error(error)[1]}", error=True)
