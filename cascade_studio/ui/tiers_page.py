"""Tiers page: the list of tiers (1..3, top = teacher), the editor, keys and connection test."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QBoxLayout,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cascade_studio.core.prices import PriceCatalog
from cascade_studio.core.tiers import (
    MAX_TIERS,
    OPENAI_BASE_URL,
    Tier,
    key_destination,
    teacher_of,
    transport_problem,
    validate_tier_set,
)
from cascade_studio.services.secrets import SecretStore, SecretStoreError, endpoint_id, transport_label
from cascade_studio.services.tier_service import apply_catalog_prices
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.background import run_in_thread
from cascade_studio.ui.style import ERROR_STYLE, INFO_STYLE, OK_STYLE
from cascade_studio.ui.tier_editor import TierEditor

log = logging.getLogger(__name__)


class KeyDialog(QDialog):
    """Ask for an API key without ever echoing it; offers session-only storage."""

    def __init__(self, endpoint: str, keyring_ok: bool, keyring_message: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Set API key")
        self.key_edit = QLineEdit(objectName="keyEdit")
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("sk-…")
        self.session_only = QCheckBox("Keep for this session only (forget on exit)", objectName="sessionOnly")
        note = QLabel(keyring_message)
        note.setWordWrap(True)
        note.setStyleSheet(INFO_STYLE if keyring_ok else ERROR_STYLE)
        if not keyring_ok:
            self.session_only.setChecked(True)
            self.session_only.setEnabled(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"API key for <b>{endpoint}</b>"))
        layout.addWidget(self.key_edit)
        layout.addWidget(self.session_only)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(460, 0)


class TiersPage(QWidget):
    saved = Signal()
    dirty_changed = Signal(bool)

    def __init__(self, secrets: SecretStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.secrets = secrets
        self.ws: Workspace | None = None
        self.catalog: PriceCatalog | None = None
        self.tiers: list[Tier] = []  # working copy
        self._stored: dict[int, Tier] = {}  # as saved, by tier number: what "unsaved" is measured against
        self._current = -1
        self._dirty = False
        self.today = dt.date.today()

        self.list = QListWidget(objectName="tierList")
        self.list.setMinimumWidth(180)
        self.list.setMaximumWidth(260)
        self.list.setSpacing(2)
        self.list.currentRowChanged.connect(self._row_changed)
        self.add_button = QPushButton("Add tier", objectName="addTier")
        self.add_button.setToolTip("Add a new top tier; it becomes the teacher")
        self.add_button.clicked.connect(self.add_tier)
        self.remove_button = QPushButton("Remove top tier", objectName="removeTier")
        self.remove_button.clicked.connect(self.remove_top_tier)
        left = QVBoxLayout()
        hint = QLabel("Tier 1 answers first and escalates upward when unsure. The top tier is the teacher.")
        hint.setWordWrap(True)
        hint.setStyleSheet(INFO_STYLE)
        left.addWidget(hint)
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        left.addLayout(row)
        left_widget = QWidget()
        left_widget.setLayout(left)

        self.editor = TierEditor()
        self.editor.changed.connect(self._edited)
        scroll = _EditorScroll()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.editor)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.key_label = QLabel(objectName="keyStatus")
        self.key_label.setStyleSheet(INFO_STYLE)
        self.key_label.setWordWrap(True)  # beside the buttons at 1024 pixels: two lines, not a cut-off one
        self.set_key_button = QPushButton("Set API key…", objectName="setKey")
        self.set_key_button.clicked.connect(self.ask_for_key)
        self.test_button = QPushButton("Test connection", objectName="testConnection")
        self.test_button.setToolTip("List models and send a 1-token request (Ctrl+T)")
        self.test_button.clicked.connect(self.run_connection_test)
        self.test_result = QLabel(objectName="testResult")
        self.test_result.setWordWrap(True)
        self.test_result.hide()
        self.revert_button = QPushButton("Revert", objectName="revert")
        self.revert_button.setToolTip("Discard unsaved changes")
        self.revert_button.clicked.connect(self.revert)
        self.save_button = QPushButton("Save", objectName="save")
        self.save_button.setDefault(True)
        self.save_button.setToolTip("Save all tiers (Ctrl+S)")
        self.save_button.clicked.connect(self.save)

        actions = QHBoxLayout()  # the key's status on a line of its own: beside the buttons a refusal was ~150 px wide
        actions.addStretch(1)
        actions.addWidget(self.set_key_button)
        actions.addWidget(self.test_button)
        actions.addSpacing(24)
        actions.addWidget(self.revert_button)
        actions.addWidget(self.save_button)

        right = QVBoxLayout()
        right.addWidget(scroll, 1)
        right.addWidget(self.test_result)
        right.addWidget(self.key_label)
        right.addLayout(actions)
        right_widget = QWidget()
        right_widget.setLayout(right)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left_widget)
        splitter.addWidget(right_widget)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([220, 900])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        # Key lookups may go over D-Bus: debounce them (typing a URL) and run them off the GUI thread.
        self._key_timer = QTimer(self, singleShot=True, interval=300)
        self._key_timer.timeout.connect(self._lookup_key)
        self._key_lookup_serial = 0

        QShortcut(QKeySequence.StandardKey.Save, self, self.save)
        QShortcut(QKeySequence("Ctrl+T"), self, self.run_connection_test)
        self._set_dirty(False)

    # -- workspace -----------------------------------------------------------------------
    def follow_change(self, kind: str) -> None:
        """Tiers changed elsewhere (Use as tier, an import, a run that learned a server has no logprobs):
        show them, unless the user is editing (then the Revert button brings them in)."""
        if getattr(self, "_saving", False) or self.dirty or self.ws is None:
            return
        self.set_workspace(self.ws, self.catalog)

    def set_workspace(self, ws: Workspace | None, catalog: PriceCatalog) -> None:
        self.ws = ws
        self.catalog = catalog
        self.editor.set_catalog(catalog, self.today)
        self.tiers = TierRepository(ws).list() if ws else []
        self._stored = {t.tier: t for t in self.tiers}
        self._current = -1
        self._refresh_list(select=len(self.tiers) - 1 if self.tiers else -1)
        self._set_dirty(False)
        self.setEnabled(ws is not None)

    @property
    def dirty(self) -> bool:
        return self._dirty

    def _set_dirty(self, dirty: bool) -> None:
        self._dirty = dirty
        self.save_button.setEnabled(dirty)
        self.revert_button.setEnabled(dirty)
        self.dirty_changed.emit(dirty)

    # -- list ----------------------------------------------------------------------------
    def _refresh_list(self, select: int | None = None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for t in self.tiers:
            item = QListWidgetItem(self._item_text(t))
            item.setData(Qt.ItemDataRole.UserRole, t.tier)
            item.setSizeHint(item.sizeHint().expandedTo(self.list.sizeHintForIndex(self.list.model().index(0, 0))))
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._update_items()
        self.add_button.setEnabled(len(self.tiers) < MAX_TIERS)
        self.remove_button.setEnabled(len(self.tiers) > 1)
        if select is not None and self.tiers:
            row = max(0, min(select, len(self.tiers) - 1))
            self._current = -1
            self.list.setCurrentRow(row)
            self._show(row)
        elif not self.tiers:
            self.editor.setEnabled(False)

    def _item_text(self, t: Tier) -> str:
        role = "Teacher" if t.tier == max(x.tier for x in self.tiers) else "Student"
        sim = " · simulated" if t.simulated else ""
        unsaved = " • unsaved" if self._unsaved(t) else ""
        return f"Tier {t.tier} — {role}{unsaved}\n{t.model or 'no model'}{sim}"

    def _unsaved(self, t: Tier) -> bool:
        """The working copy differs from the stored tier (or the tier is new)."""
        return self._stored.get(t.tier) != t

    def _update_items(self) -> None:
        for row, t in enumerate(self.tiers):
            item = self.list.item(row)
            if item is not None:
                item.setText(self._item_text(t))
                item.setToolTip("Unsaved changes: Save (Ctrl+S) or Revert" if self._unsaved(t) else "")

    def _row_changed(self, row: int) -> None:
        if row == self._current or row < 0:
            return
        self._commit_form()
        self._show(row)

    def _show(self, row: int) -> None:
        self._current = row
        tier = self.tiers[row]
        self.editor.setEnabled(True)
        self.editor.set_tier(tier, is_teacher=tier is teacher_of(self.tiers))
        self.test_result.hide()
        self._update_key_label()

    def _commit_form(self) -> None:
        """Copy the form into the working copy (even if invalid; Save validates)."""
        if 0 <= self._current < len(self.tiers):
            tier, _ = self.editor.read()
            self.tiers[self._current] = tier

    def _edited(self) -> None:
        self._commit_form()
        self._set_dirty(True)
        self._update_items()
        if self.editor.issues_label.isVisible():  # the banner follows the fixes, not only the next Save
            _, form_issues = self.editor.read()
            self.editor.show_issues(form_issues)
        self._update_key_label()

    def current_tier(self) -> Tier | None:
        if 0 <= self._current < len(self.tiers):
            return self.editor.read()[0]
        return None

    def add_tier(self) -> None:
        if len(self.tiers) >= MAX_TIERS:
            return
        self._commit_form()
        number = len(self.tiers) + 1
        template = self.tiers[-1] if self.tiers else Tier(tier=1, model="gpt-4o-mini", base_url=OPENAI_BASE_URL)
        new = template.replace(tier=number, name="", model=template.model if not self.tiers else "")
        if self.catalog and new.model:
            new = apply_catalog_prices(new, self.catalog)
        if self.tiers:
            new = new.replace(input_price=Decimal(0), output_price=Decimal(0), cached_price=None)
        self.tiers.append(new)
        self._refresh_list(select=len(self.tiers) - 1)
        self._set_dirty(True)
        self.editor.model_edit.setFocus()

    def remove_top_tier(self) -> None:
        if len(self.tiers) <= 1:
            return
        self._commit_form()
        removed = self.tiers.pop()
        self._refresh_list(select=len(self.tiers) - 1)
        self._set_dirty(True)
        log.info("Removed tier %s (unsaved)", removed.tier)

    # -- save / revert -------------------------------------------------------------------
    def save(self) -> bool:
        if self.ws is None:
            return False
        self._commit_form()
        issues = validate_tier_set(self.tiers)
        _, form_issues = self.editor.read() if self._current >= 0 else (None, [])
        if form_issues or issues:
            self.editor.show_issues(form_issues or [i for i in issues])
            bad_tiers = sorted({int(i.field.split()[1]) for i in issues if i.field.startswith("tier ")
                                and i.field.split()[1].isdigit()})
            if not form_issues and bad_tiers:
                row = next(k for k, t in enumerate(self.tiers) if t.tier == bad_tiers[0])
                self.list.setCurrentRow(row)
                self.editor.show_issues([i for i in issues])
            self._update_key_label()  # a refusal the issues now name is said once, there
            return False
        try:
            from cascade_studio.services.tier_service import save_tiers

            self._saving = True  # our own change: the event that follows needs no reload here
            try:
                save_tiers(self.ws, self.tiers)
            finally:
                self._saving = False
        except Exception as exc:  # disk full, locked database ...
            log.exception("Saving tiers failed")
            QMessageBox.warning(self, "Could not save tiers",
                                f"The tiers were not saved: {exc}.\nYour edits are still here; fix the cause "
                                "(free disk space, close other programs using the workspace) and save again.")
            return False
        self.editor.show_issues([])
        self._stored = {t.tier: t for t in self.tiers}
        self._update_items()
        self._set_dirty(False)
        self.saved.emit()
        return True

    def revert(self) -> None:
        if self.ws is None:
            return
        row = self._current
        self.tiers = TierRepository(self.ws).list()
        self._stored = {t.tier: t for t in self.tiers}
        self._current = -1
        self._refresh_list(select=row)
        self._set_dirty(False)

    # -- keys & connection ---------------------------------------------------------------
    def _update_key_label(self) -> None:
        if self.current_tier() is None:
            self.key_label.setText("")
            return
        self._key_timer.start()

    def _lookup_key(self) -> None:
        tier = self.current_tier()
        if tier is None:
            return
        self._key_lookup_serial += 1
        serial = self._key_lookup_serial
        secrets = self.secrets

        def show(source, error) -> None:
            if serial != self._key_lookup_serial:
                return  # a newer lookup is under way
            if source is None:
                self.key_label.setText("API key: the keyring could not be read")
                return
            if source.source == "refused":
                self.key_label.setStyleSheet(ERROR_STYLE)
                problem = transport_problem(tier.base_url, tier.allow_insecure) or source.reason
                shown = self.editor.issues_label.isVisible() and problem in self.editor.issues_label.text()
                self.key_label.setText("Key withheld: see the base URL problem above" if shown  # said once
                                       else f"Key withheld: {source.reason}")
                return
            self.key_label.setStyleSheet(INFO_STYLE)
            where = {
                "keyring": "API key: in the OS keyring",
                "session": "API key: session only (forgotten on exit)",
                "sandbox": "API key: not needed (built-in sandbox)",
                "not needed": "API key: not needed (a server on this machine; a placeholder is sent)",
                "none": "No API key for this endpoint yet",
            }.get(source.source, f"API key: from ${source.source.removeprefix('env:')}")
            if source.found and source.source not in ("sandbox", "not needed"):
                where += f", sent only to {key_destination(tier.base_url)} over {transport_label(tier)}"
            self.key_label.setText(where)

        run_in_thread(lambda: secrets.resolve(tier), show, owner=self.key_label)

    def ask_for_key(self) -> None:
        tier = self.current_tier()
        if tier is None or not tier.base_url:
            return
        info = self.secrets.info()
        dialog = KeyDialog(endpoint_id(tier.base_url), info.usable and info.secure, info.message, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        try:
            where = self.secrets.set_key(tier.base_url, dialog.key_edit.text(),
                                         session_only=dialog.session_only.isChecked())
        except SecretStoreError as exc:
            QMessageBox.warning(self, "Key not stored", str(exc))
            return
        finally:
            dialog.key_edit.clear()
        log.info("API key stored (%s) for %s", where, endpoint_id(tier.base_url))
        self._update_key_label()

    def run_connection_test(self) -> None:
        """Start the test on the running (qasync) loop; the button stays disabled until it ends."""
        import asyncio  # imported on first use, not at startup

        tier = self.current_tier()
        if tier is None or not self.test_button.isEnabled():
            return
        self.test_button.setEnabled(False)
        self._connection_task = asyncio.ensure_future(self._connection_test(tier))

    async def _connection_test(self, tier: Tier) -> None:
        self.test_result.setStyleSheet(INFO_STYLE)
        self.test_result.setText(f"Testing {tier.base_url} with {tier.model}…")
        self.test_result.show()
        from cascade_studio.services.connection import test_connection  # openai SDK: imported on first use

        try:
            result = await test_connection(tier, self.secrets)
        finally:
            self.test_button.setEnabled(True)
        self.test_result.setStyleSheet(OK_STYLE if result.ok else ERROR_STYLE)
        self.test_result.setText(("✔ " if result.ok else "✖ ") + result.message)


class _EditorScroll(QScrollArea):
    """The tier editor's two columns side by side when the page is wide enough for both, else one
    above the other (the area scrolls vertically): never cut off at the right edge."""

    def resizeEvent(self, event) -> None:  # noqa: N802
        columns = self.widget().columns
        need = columns.spacing() + sum(columns.itemAt(i).layout().minimumSize().width() for i in range(2))
        bar = self.verticalScrollBar()
        width = event.size().width() - (bar.sizeHint().width() if bar.isVisible() else 0)
        wanted = QBoxLayout.Direction.LeftToRight if width >= need else QBoxLayout.Direction.TopToBottom
        if columns.direction() != wanted:
            columns.setDirection(wanted)
        super().resizeEvent(event)
