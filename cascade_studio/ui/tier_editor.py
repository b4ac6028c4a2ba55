"""The form for one tier. Pure view over a `Tier`: `set_tier` fills it, `read` parses it back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.money import format_price
from cascade_studio.core.prices import PriceCatalog
from cascade_studio.core.tiers import (
    ENDPOINT_PRESETS,
    FIELD_LABELS,
    MAX_TOP_LOGPROBS,
    ConfidenceMethod,
    LogprobsMode,
    Provider,
    Tier,
    ValidationIssue,
    WithoutLogprobs,
    default_env_var,
    field_label,
    is_openai_url,
    key_destination,
    transport_problem,
    validate_tier,
)
from cascade_studio.ui.style import BAD_FIELD, ERROR_STYLE, INFO_STYLE, INSECURE_STYLE, WARN_STYLE


class TierEditor(QWidget):
    changed = Signal()
    fill_from_catalog_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._catalog: PriceCatalog | None = None
        self._tier_no = 1
        self._loading = False
        self._today = dt.date.today()

        # --- model ---------------------------------------------------------------
        self.name_edit = QLineEdit(objectName="name")
        self.name_edit.setPlaceholderText("e.g. Student (nano)")
        self.provider_combo = QComboBox(objectName="provider")
        for p in Provider:
            self.provider_combo.addItem(p.label, p.value)
        self.provider_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.provider_combo.setMinimumContentsLength(14)
        self.base_url_edit = QLineEdit(objectName="base_url")
        self.base_url_edit.setPlaceholderText("https://api.openai.com/v1")
        self.preset_combo = QComboBox(objectName="preset")
        self.preset_combo.addItem("Presets…", "")
        for label, url in ENDPOINT_PRESETS.items():
            self.preset_combo.addItem(label, url)
        self.preset_combo.setToolTip("Fill the base URL with a well-known server's default address")
        url_row = QHBoxLayout()
        url_row.addWidget(self.base_url_edit, 1)
        url_row.addWidget(self.preset_combo)
        # Shown only for plain http to another machine: the key would cross the network readable.
        self.insecure_check = QCheckBox(objectName="allow_insecure")
        self.insecure_check.setToolTip("Keys go over https, or over plain http only to this machine. Tick this "
                                       "only for a trusted network: anyone on the path can read the key.")
        self.insecure_check.hide()
        self.no_key_check = QCheckBox("No API key needed (a server on this machine, e.g. vLLM, llama.cpp, Ollama)",
                                      objectName="no_key")
        self.no_key_check.setToolTip("Sends a placeholder key instead of asking for one. Only for localhost.")
        self.model_edit = QLineEdit(objectName="model")
        self.model_edit.setPlaceholderText("model id, e.g. gpt-4o-mini")
        self._completer_model = QStringListModel(self)
        completer = QCompleter(self._completer_model, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.model_edit.setCompleter(completer)
        self.deprecation_label = QLabel(objectName="deprecation")
        self.deprecation_label.setWordWrap(True)
        self.deprecation_label.setStyleSheet(WARN_STYLE)
        self.deprecation_label.hide()
        self.simulated_label = QLabel("Simulated model served by the built-in sandbox: answers are synthetic.",
                                      objectName="simulated")
        self.simulated_label.setStyleSheet(WARN_STYLE)
        self.simulated_label.setWordWrap(True)
        self.simulated_label.hide()

        model_box = QGroupBox("Model")
        form = QFormLayout(model_box)
        form.addRow("Display name", self.name_edit)
        form.addRow("Provider", self.provider_combo)
        form.addRow("Base URL", url_row)
        form.addRow(self.insecure_check)
        form.addRow(self.no_key_check)
        form.addRow("Model id", self.model_edit)
        form.addRow(self.deprecation_label)
        form.addRow(self.simulated_label)

        # --- prices --------------------------------------------------------------
        self.input_price = self._price_edit("input_price")
        self.output_price = self._price_edit("output_price")
        self.cached_price = self._price_edit("cached_price")
        self.cached_price.setPlaceholderText("same as input")
        self.catalog_label = QLabel(objectName="catalogSource")
        self.catalog_label.setWordWrap(True)
        self.catalog_label.setStyleSheet(INFO_STYLE)
        self.fill_button = QPushButton("Fill from catalog", objectName="fillFromCatalog")
        self.fill_button.setToolTip("Replace the prices with the catalog's prices for this model id")
        self.fill_button.clicked.connect(self._fill_from_catalog)
        price_box = QGroupBox("Prices (USD per 1M tokens)")
        pform = QFormLayout(price_box)
        pform.addRow("Input", self.input_price)
        pform.addRow("Output", self.output_price)
        pform.addRow("Cached input", self.cached_price)
        pform.addRow(self.catalog_label)
        fill_row = QHBoxLayout()
        fill_row.addStretch(1)
        fill_row.addWidget(self.fill_button)
        pform.addRow(fill_row)

        # --- limits --------------------------------------------------------------
        self.timeout_spin = QDoubleSpinBox(objectName="timeout_s", minimum=0.0, maximum=3600.0, decimals=1,
                                           suffix=" s", singleStep=5.0)
        self.concurrency_spin = QSpinBox(objectName="max_concurrency", minimum=1, maximum=1024)
        self.rpm_spin = QSpinBox(objectName="rpm_limit", minimum=0, maximum=10_000_000, singleStep=100)
        self.rpm_spin.setSpecialValueText("unlimited")
        self.tpm_spin = QSpinBox(objectName="tpm_limit", minimum=0, maximum=2_000_000_000, singleStep=10_000)
        self.tpm_spin.setSpecialValueText("unlimited")
        limits_box = QGroupBox("Requests")
        lform = QFormLayout(limits_box)
        lform.addRow("Timeout", self.timeout_spin)
        lform.addRow("Max concurrency", self.concurrency_spin)
        lform.addRow("Requests / min", self.rpm_spin)
        lform.addRow("Tokens / min", self.tpm_spin)

        # --- behaviour -----------------------------------------------------------
        self.temperature_spin = QDoubleSpinBox(objectName="temperature", minimum=0.0, maximum=2.0, decimals=2,
                                               singleStep=0.1)
        self.system_prompt_edit = QPlainTextEdit(objectName="system_prompt")
        self.system_prompt_edit.setPlaceholderText("Optional system prompt sent with every request")
        self.system_prompt_edit.setFixedHeight(70)
        self.key_env_edit = QLineEdit(objectName="api_key_env")
        self.logprobs_combo = QComboBox(objectName="logprobs")
        for mode, label in ((LogprobsMode.AUTO, "Auto: ask, stop if the server fails"),
                            (LogprobsMode.ON, "Always ask"), (LogprobsMode.OFF, "Never ask")):
            self.logprobs_combo.addItem(label, mode.value)
        self.top_logprobs_spin = QSpinBox(objectName="top_logprobs", minimum=0, maximum=MAX_TOP_LOGPROBS)
        self.top_logprobs_spin.setToolTip("Alternatives recorded per token (0-20): the teacher's distribution "
                                          "that soft-label distillation learns from")
        self.logprobs_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.logprobs_combo.setMinimumContentsLength(12)
        self.learned_label = QLabel(objectName="logprobsLearned")
        self.learned_label.setWordWrap(True)
        self.learned_label.setStyleSheet(WARN_STYLE)
        self.learned_label.hide()
        self.ask_again_button = QPushButton("Ask again", objectName="logprobsAskAgain")
        self.ask_again_button.setToolTip("Forget that the server failed; the next run asks for logprobs again")
        self.ask_again_button.hide()
        self.ask_again_button.clicked.connect(self._ask_again)
        learned_row = QHBoxLayout()
        learned_row.addWidget(self.learned_label, 1)
        learned_row.addWidget(self.ask_again_button)
        self._logprobs_unsupported = False
        self._demonstrations = None  # a prompt-distilled generation's (distil prompt): kept through an edit
        self._pending_origin: str | None = None  # the base URL an import moved the tier to, unconfirmed
        self.origin_label = QLabel(objectName="originPending")
        self.origin_label.setWordWrap(False)
        self.origin_label.setStyleSheet(WARN_STYLE)
        self.origin_label.hide()
        self.confirm_origin_button = QPushButton("Send keys there", objectName="confirmOrigin")
        self.confirm_origin_button.setToolTip("Confirm this host: the tier's key variables may be sent to it")
        self.confirm_origin_button.hide()
        self.confirm_origin_button.clicked.connect(self._confirm_origin)
        origin_row = QHBoxLayout()
        origin_row.addWidget(self.origin_label, 1)
        origin_row.addWidget(self.confirm_origin_button)
        self._prices_auto = False  # the prices shown are the catalog's for the typed id (not typed by hand)
        behaviour_box = QGroupBox("Behaviour")
        bform = QFormLayout(behaviour_box)
        bform.addRow("Temperature", self.temperature_spin)
        bform.addRow("System prompt", self.system_prompt_edit)
        bform.addRow("Key variable", self.key_env_edit)
        bform.addRow(origin_row)
        bform.addRow("Logprobs", self.logprobs_combo)
        bform.addRow("Top alternatives", self.top_logprobs_spin)
        bform.addRow(learned_row)

        # --- escalation ----------------------------------------------------------
        self.method_combo = QComboBox(objectName="confidence_method")
        for m in ConfidenceMethod:
            self.method_combo.addItem(m.label, m.value)
        self.method_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.method_combo.setMinimumContentsLength(12)
        self.threshold_spin = QDoubleSpinBox(objectName="threshold", minimum=0.0, maximum=1.0, decimals=3,
                                             singleStep=0.05)
        self.escalation_note = QLabel(objectName="escalationNote")
        self.escalation_note.setWordWrap(True)
        self.escalation_note.setStyleSheet(INFO_STYLE)
        esc_box = QGroupBox("Escalation")
        eform = QFormLayout(esc_box)
        eform.addRow("Confidence method", self.method_combo)
        eform.addRow("Escalate below", self.threshold_spin)
        self.without_combo = QComboBox(objectName="without_logprobs")
        self.without_combo.addItem("Escalate every request", WithoutLogprobs.ESCALATE.value)
        self.without_combo.addItem("Keep every answer (never escalate)", WithoutLogprobs.ANSWER.value)
        self.without_combo.setToolTip("What this tier does when it has no confidence because the server "
                                      "returns no logprobs")
        eform.addRow("Without logprobs", self.without_combo)
        eform.addRow(self.escalation_note)

        self.issues_label = QLabel(objectName="issues")
        self.issues_label.setWordWrap(True)
        self.issues_label.setStyleSheet(ERROR_STYLE)
        self.issues_label.hide()

        self.columns = columns = QHBoxLayout()  # side by side, or stacked when narrow (tiers_page)
        left = QVBoxLayout()
        left.addWidget(model_box)
        left.addWidget(price_box)
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(limits_box)
        right.addWidget(behaviour_box)
        right.addWidget(esc_box)
        right.addStretch(1)
        columns.addLayout(left, 3)
        columns.addLayout(right, 2)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.issues_label)
        outer.addLayout(columns)

        for w in (self.name_edit, self.base_url_edit, self.model_edit, self.input_price, self.output_price,
                  self.cached_price, self.key_env_edit):
            w.textEdited.connect(self._emit_changed)
        for s in (self.timeout_spin, self.concurrency_spin, self.rpm_spin, self.tpm_spin, self.temperature_spin,
                  self.threshold_spin):
            s.valueChanged.connect(self._emit_changed)
        for signal in (self.system_prompt_edit.textChanged, self.insecure_check.toggled, self.no_key_check.toggled,
                       self.logprobs_combo.currentIndexChanged, self.top_logprobs_spin.valueChanged,
                       self.without_combo.currentIndexChanged, self.method_combo.currentIndexChanged):
            signal.connect(self._emit_changed)
        self.provider_combo.currentIndexChanged.connect(self._provider_changed)
        self.base_url_edit.textChanged.connect(self._update_insecure)
        self.insecure_check.toggled.connect(self._update_insecure)
        self.logprobs_combo.currentIndexChanged.connect(lambda *_: self._update_learned())
        self.preset_combo.activated.connect(self._preset_chosen)
        self.model_edit.textChanged.connect(self._update_model_notes)
        self.model_edit.editingFinished.connect(self._model_committed)
        self.model_edit.textEdited.connect(self._model_typed)
        for w in (self.input_price, self.output_price, self.cached_price):
            w.textEdited.connect(self._price_typed)
        from cascade_studio.ui.wheel_guard import guard_wheel

        guard_wheel(self)  # scrolling the form never edits a field under the cursor

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _price_edit(name: str) -> QLineEdit:
        edit = QLineEdit(objectName=name)
        edit.setAlignment(Qt.AlignmentFlag.AlignRight)
        edit.setMaximumWidth(160)
        return edit

    def _emit_changed(self, *_: object) -> None:
        if not self._loading:
            self.changed.emit()

    def _provider_changed(self, *_: object) -> None:
        provider = Provider(self.provider_combo.currentData())
        if not self._loading and provider == Provider.OPENAI and not self.base_url_edit.text().strip():
            self.base_url_edit.setText(ENDPOINT_PRESETS["OpenAI"])
        self.simulated_label.setVisible(provider == Provider.SANDBOX)
        self._update_no_key()
        self._update_model_notes()
        self._emit_changed()

    def _preset_chosen(self, index: int) -> None:
        url = self.preset_combo.itemData(index)
        self.preset_combo.setCurrentIndex(0)
        if not url:
            return
        self.base_url_edit.setText(url)
        provider = Provider.OPENAI if is_openai_url(url) else Provider.COMPATIBLE
        self.provider_combo.setCurrentIndex(self.provider_combo.findData(provider.value))
        self._emit_changed()

    def _update_no_key(self) -> None:
        """'No key needed' is for OpenAI-compatible servers only (OpenAI needs a key; the sandbox takes any)."""
        compatible = Provider(self.provider_combo.currentData()) == Provider.COMPATIBLE
        self.no_key_check.setVisible(compatible or self.no_key_check.isChecked())

    def _ask_again(self) -> None:
        self._logprobs_unsupported = False
        self._update_learned()
        self._emit_changed()

    def _confirm_origin(self) -> None:
        self._pending_origin = None
        self._update_origin()
        self._emit_changed()

    def _update_origin(self) -> None:
        pending = self._pending_origin is not None
        self.origin_label.setText("Imported host: keys withheld" if pending else "")
        self.origin_label.setToolTip("A tier file import moved this tier to this host. Its key variables "
                                     "(CASCADE_STUDIO_TIER<N>_API_KEY, the key variable) are not sent to it until "
                                     "you confirm the host, then Save." if pending else "")
        self.origin_label.setVisible(pending)
        self.confirm_origin_button.setVisible(pending)

    def _update_learned(self) -> None:
        learned = self._logprobs_unsupported and self.logprobs_combo.currentData() == LogprobsMode.AUTO.value
        self.learned_label.setText("This server failed when asked for logprobs, so this tier collects without "
                                   "them (no confidence: see 'Without logprobs')." if learned else "")
        self.learned_label.setVisible(learned)
        self.ask_again_button.setVisible(learned)

    def _update_insecure(self, *_: object) -> None:
        url = self.base_url_edit.text().strip()
        needs = bool(url) and transport_problem(url, False) is not None and url.lower().startswith("http://")
        checked = self.insecure_check.isChecked()
        self.insecure_check.setVisible(needs or checked)
        # a short text (the destination is in the URL field above and in the tooltip): a check box does not
        # wrap, and a long one widened the editor past its scroll area at 1024 px
        host = key_destination(url).split("://", 1)[-1]
        self.insecure_check.setText(f"Send the key to {host} over plain http (INSECURE)" if needs
                                    else "Allow plain http to another machine (INSECURE)")
        self.insecure_check.setToolTip(
            (f"The key would go to {key_destination(url)} over plain http, readable by anyone on the network. "
             if needs else "") + "Keys go over https, or over plain http only to this machine. Tick this only for "
            "a trusted network: anyone on the path can read the key.")
        self.insecure_check.setStyleSheet(INSECURE_STYLE if checked else "")

    def _prices_unset(self) -> bool:
        """Blank or zero prices: nothing chosen yet (a new tier starts at 0)."""
        for edit in (self.input_price, self.output_price):
            text = edit.text().strip()
            if not text:
                continue
            try:
                if Decimal(text) != 0:
                    return False
            except InvalidOperation:
                return False
        return True

    def _price_typed(self, *_: object) -> None:
        self._prices_auto = False  # a price typed by hand is never overwritten from the catalog

    def _model_typed(self, text: str) -> None:
        """Typing a catalog model id fills unset prices, and they follow the id while they are the catalog's."""
        if self._catalog is None or self._loading or not (self._prices_auto or self._prices_unset()):
            return
        price = self._catalog.lookup(text.strip()) if text.strip() else None
        if price is not None:
            self._fill_from_catalog()
            self._prices_auto = True
        elif self._prices_auto:  # the id no longer names the model whose prices were filled
            for edit in (self.input_price, self.output_price, self.cached_price):
                edit.setText("")
            self._prices_auto = False

    def _model_committed(self) -> None:
        """When a catalog model is typed and no price was set yet, pre-fill prices."""
        if self._catalog is None or self._loading:
            return
        if not self.input_price.text().strip() and not self.output_price.text().strip():
            self._fill_from_catalog()

    def _fill_from_catalog(self) -> None:
        if self._catalog is None:
            return
        price = self._catalog.lookup(self.model_edit.text())
        if price is None:
            self.catalog_label.setText(f"{self.model_edit.text().strip() or 'This model'} is not in the catalog "
                                       f"({self._catalog.source}); enter prices by hand.")
            return
        self.input_price.setText(format_price(price.input_per_m))
        self.output_price.setText(format_price(price.output_per_m))
        self.cached_price.setText("" if price.cached_input_per_m is None else format_price(price.cached_input_per_m))
        self._update_model_notes()
        self._emit_changed()

    def _update_model_notes(self, *_: object) -> None:
        model = self.model_edit.text().strip()
        price = self._catalog.lookup(model) if (self._catalog and model) else None
        notice = price.deprecation_notice(self._today) if price else None
        sandbox_note = ""
        if notice and Provider(self.provider_combo.currentData()) == Provider.SANDBOX:
            # The sandbox serves every model it simulates: OpenAI's retirement is a fact about the real
            # service, not a warning that this tier's requests will fail.
            sandbox_note = (f"\nOn OpenAI this model {'was retired' if price.deprecation_date <= self._today else 'retires'}"
                            f" on {price.deprecation_date.isoformat()}; the sandbox still simulates it.")
            notice = None
        self.deprecation_label.setText(f"⚠ {notice}" if notice else "")
        self.deprecation_label.setVisible(bool(notice))
        if self._catalog is None:
            self.catalog_label.setText("")
        elif price is None:
            self.catalog_label.setText(f"Not in the price catalog ({self._catalog.source}, {self._catalog.date}).")
        else:
            self.catalog_label.setText(
                f"Catalog price: ${format_price(price.input_per_m)} in / ${format_price(price.output_per_m)} out "
                f"per 1M tokens.\nSource: {self._catalog.source}, {self._catalog.date}.{sandbox_note}"
            )

    # -- public --------------------------------------------------------------------------
    def set_catalog(self, catalog: PriceCatalog, today: dt.date | None = None) -> None:
        self._catalog = catalog
        if today:
            self._today = today
        self._completer_model.setStringList(catalog.model_ids({"chat", "responses", "completion"}))
        self._update_model_notes()

    def set_tier(self, tier: Tier, *, is_teacher: bool) -> None:
        self._loading = True
        try:
            self._tier_no = tier.tier
            self.name_edit.setText(tier.name)
            self.provider_combo.setCurrentIndex(self.provider_combo.findData(tier.provider.value))
            self.base_url_edit.setText(tier.base_url)
            self.model_edit.setText(tier.model)
            self.input_price.setText(format_price(tier.input_price))
            self.output_price.setText(format_price(tier.output_price))
            self.cached_price.setText("" if tier.cached_price is None else format_price(tier.cached_price))
            self.timeout_spin.setValue(tier.timeout_s)
            self.concurrency_spin.setValue(tier.max_concurrency)
            self.rpm_spin.setValue(tier.rpm_limit or 0)
            self.tpm_spin.setValue(tier.tpm_limit or 0)
            self.temperature_spin.setValue(tier.temperature)
            self.system_prompt_edit.setPlainText(tier.system_prompt)
            self.key_env_edit.setText(tier.api_key_env)
            self.insecure_check.setChecked(tier.allow_insecure)
            self._update_insecure()
            self.no_key_check.setChecked(tier.no_key)
            self._update_no_key()
            self.logprobs_combo.setCurrentIndex(self.logprobs_combo.findData(tier.logprobs.value))
            self.top_logprobs_spin.setValue(tier.top_logprobs)
            self.without_combo.setCurrentIndex(self.without_combo.findData(tier.without_logprobs.value))
            self.without_combo.setEnabled(not is_teacher)
            self._logprobs_unsupported = tier.logprobs_unsupported
            self._demonstrations = tier.demonstrations
            self._pending_origin = tier.base_url.strip() if tier.key_origin_pending else None
            self._update_origin()
            self._prices_auto = False
            self._update_learned()
            self.key_env_edit.setPlaceholderText(f"default: {default_env_var(tier.tier)}")
            self.method_combo.setCurrentIndex(self.method_combo.findData(tier.confidence_method.value))
            self.threshold_spin.setValue(tier.threshold)
            self.simulated_label.setVisible(tier.simulated)
            self.method_combo.setEnabled(not is_teacher)
            self.threshold_spin.setEnabled(not is_teacher)
            self.escalation_note.setText(
                "The teacher is the last tier: it never escalates." if is_teacher
                else "Requests whose confidence is below this threshold go to the next tier."
            )
            self._update_model_notes()
            self.show_issues([])
        finally:
            self._loading = False

    def read(self) -> tuple[Tier, list[ValidationIssue]]:
        """The tier as typed, and every problem (parse errors first, then validation)."""
        issues: list[ValidationIssue] = []

        def price(edit: QLineEdit, optional: bool = False) -> Decimal | None:
            text = edit.text().strip().replace(",", "").lstrip("$")
            if not text:
                if optional:
                    return None
                issues.append(ValidationIssue(edit.objectName(), "is empty; enter USD per 1M tokens (0 if free)"))
                return Decimal(0)
            try:
                value = Decimal(text)
                if not value.is_finite():
                    raise InvalidOperation
                return value
            except InvalidOperation:
                issues.append(ValidationIssue(edit.objectName(), f"{text!r} is not a number; e.g. 2.50"))
                return Decimal(0)

        tier = Tier(
            tier=self._tier_no,
            name=self.name_edit.text().strip(),
            provider=Provider(self.provider_combo.currentData()),
            base_url=self.base_url_edit.text().strip(),
            model=self.model_edit.text().strip(),
            input_price=price(self.input_price) or Decimal(0),
            output_price=price(self.output_price) or Decimal(0),
            cached_price=price(self.cached_price, optional=True),
            timeout_s=self.timeout_spin.value(),
            max_concurrency=self.concurrency_spin.value(),
            rpm_limit=self.rpm_spin.value() or None,
            tpm_limit=self.tpm_spin.value() or None,
            temperature=self.temperature_spin.value(),
            system_prompt=self.system_prompt_edit.toPlainText(),
            confidence_method=ConfidenceMethod(self.method_combo.currentData()),
            threshold=self.threshold_spin.value(),
            api_key_env=self.key_env_edit.text().strip(),
            allow_insecure=self.insecure_check.isChecked(),
            no_key=self.no_key_check.isChecked(),
            logprobs=LogprobsMode(self.logprobs_combo.currentData()),
            top_logprobs=self.top_logprobs_spin.value(),
            logprobs_unsupported=self._logprobs_unsupported,
            demonstrations=self._demonstrations,
            without_logprobs=WithoutLogprobs(self.without_combo.currentData()),
            # an address the user typed here is confirmed; the imported one stays unconfirmed
            key_origin_pending=self._pending_origin is not None
            and self.base_url_edit.text().strip() == self._pending_origin,
        )
        parsed_fields = {i.field for i in issues}
        issues += [i for i in validate_tier(tier) if i.field not in parsed_fields]
        transport = transport_problem(tier.base_url, tier.allow_insecure) if tier.base_url else None
        if transport and "base_url" not in {i.field for i in issues}:
            issues.append(ValidationIssue("base_url", transport))
        return tier, issues

    def show_issues(self, issues: list[ValidationIssue]) -> None:
        fields = {i.field for i in issues}
        for w in self.findChildren(QWidget):
            name = w.objectName()
            if name in FIELD_LABELS or name == "name":
                w.setStyleSheet(BAD_FIELD if name in fields else "")
        if issues:
            self.issues_label.setText("Fix before saving:\n" + "\n".join(f"• {field_label(i.field)} {i.message}"
                                                                         for i in issues))
        self.issues_label.setVisible(bool(issues))
