"""The main window: workspace menus, page navigation, status bar, About."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from cascade_studio import APP_NAME
from cascade_studio.core.prices import PriceCatalog
from cascade_studio.services import catalog as catalog_svc
from cascade_studio.services import tier_service
from cascade_studio.services.paths import log_file
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.datasets import DatasetRepository
from cascade_studio.store.jobs import JobStore
from cascade_studio.store.workspace import Workspace, WorkspaceError
from cascade_studio.ui.background import run_in_thread
from cascade_studio.ui.errors import show_error
from cascade_studio.ui.tiers_page import TiersPage
from cascade_studio.ui.workspace_upgrade import upgrade_in_background

log = logging.getLogger(__name__)
# The pages built the first time they are shown or used: key -> (module in ui/, class, takes the secrets)
LAZY_PAGES = {
    "tasks": ("tasks_page", "TasksPage", True),
    "trajectories": ("trajectories_page", "TrajectoriesPage", True),
    "finetune": ("finetune_page", "FineTunePage", True),
    "evaluation": ("evaluation_page", "EvaluationPage", True),
    "tradeoffs": ("tradeoffs_page", "TradeoffsPage", True),
    "production": ("production_page", "ProductionPage", True),
}


def _lazy_page(key: str) -> property:
    return property(lambda self: self._build(key), doc=f"The {key} page, built on first use.")


class MainWindow(QMainWindow):
    def __init__(self, secrets: SecretStore, settings: AppSettings, today: dt.date | None = None) -> None:
        super().__init__()
        self.secrets = secrets
        self.settings = settings
        self.ws: Workspace | None = None
        self.catalog: PriceCatalog = catalog_svc.load_bundled()
        self.setWindowTitle(APP_NAME)
        self.resize(1360, 820)
        self.setMinimumSize(QSize(900, 560))

        self.nav = QListWidget(objectName="navigation")
        self.nav.setFixedWidth(190)
        self.nav.setSpacing(2)
        self.nav.setStyleSheet(
            "QListWidget#navigation { border: none; background: palette(window); font-size: 11pt; }"
            "QListWidget#navigation::item { padding: 8px 10px; border-radius: 4px; }"
            "QListWidget#navigation::item:selected { background: palette(highlight); color: palette(highlighted-text); }"
        )
        self.pages = QStackedWidget()
        self.tiers_page = TiersPage(secrets)
        if today:
            self.tiers_page.today = today
        self.tiers_page.dirty_changed.connect(self._update_title)
        self.tiers_page.saved.connect(lambda: self.statusBar().showMessage("Tiers saved", 3000))
        self.add_page("Tiers", self.tiers_page)
        self._lazy: dict[str, QWidget | None] = {}
        from cascade_studio.ui.workspace_events import Followers, WorkspaceEvents

        self.events = WorkspaceEvents(self)  # what the services changed, on the GUI thread
        self.followers = Followers()
        self.events.changed.connect(self._workspace_changed)
        self.add_lazy_page("Tasks", "tasks")
        # Heavier pages are built the first time they are shown (or used), not at startup.
        self.add_lazy_page("Trajectories", "trajectories")
        self.add_lazy_page("Fine-tuning", "finetune")
        self.add_lazy_page("Evaluation", "evaluation")
        self.add_lazy_page("Trade-offs", "tradeoffs")
        self.add_lazy_page("Production", "production")
        self.tiers_page.saved.connect(lambda: self._each_built("reload_choices"))
        self.nav.currentRowChanged.connect(self._navigate)
        self.nav.setCurrentRow(0)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.nav)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self.workspace_label = QLabel(objectName="workspacePath")
        self.workspace_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.keyring_label = QLabel(objectName="keyringStatus")
        self.statusBar().addWidget(self.workspace_label, 1)
        self.statusBar().addPermanentWidget(self.keyring_label)
        self.keyring_label.setText("Keyring: checking…")
        self.keyring_message = "The keyring has not been checked yet."
        # The keyring check imports backends and may wait on D-Bus: run it off the GUI thread, and
        # only once the window has been painted, so it never delays the first frame.
        self._keyring_timer = QTimer(self, singleShot=True, interval=300)
        self._keyring_timer.timeout.connect(
            lambda: run_in_thread(secrets.info, self._keyring_checked, owner=self.keyring_label))
        self._build_menus()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self.keyring_label.text() == "Keyring: checking…" and not self._keyring_timer.isActive():
            self._keyring_timer.start()
            QTimer.singleShot(1500, self._warm_up)

    def _warm_up(self) -> None:
        """Import the openai SDK and its HTTP stack while the user is still reading the screen, so
        the first connection test or run does not pay for it."""
        def load() -> None:
            from cascade_studio.services.clients import warm_up

            warm_up()

        run_in_thread(load, lambda *_: None, owner=self)

    def _integrity_checked(self, problem, error) -> None:
        if problem:
            log.error("Integrity check failed: %s", problem)
            show_error("Workspace damaged", f"{problem}\n\nStop working in this workspace until it is restored.", self)
        elif error is None:
            self.statusBar().showMessage("Workspace integrity check: ok", 5000)

    def _keyring_checked(self, info, error) -> None:
        if info is None:
            self.keyring_label.setText("Keyring: error")
            self.keyring_message = f"The keyring could not be queried: {error}"
        else:
            secure = info.usable and info.secure
            self.keyring_label.setText("Keyring: OS keyring" if secure else "Keyring: unavailable")
            self.keyring_message = info.message
        self.keyring_label.setToolTip(self.keyring_message)

    # -- pages ---------------------------------------------------------------------------
    def add_page(self, title: str, widget: QWidget) -> None:
        item = QListWidgetItem(title)
        item.setSizeHint(QSize(170, 36))
        self.nav.addItem(item)
        self.pages.addWidget(widget)

    def add_lazy_page(self, title: str, key: str) -> None:
        self._lazy[key] = None
        placeholder = QWidget()
        placeholder.setProperty("lazy_key", key)
        self.add_page(title, placeholder)

    def _build(self, key: str) -> QWidget:
        page = self._lazy.get(key)
        if page is not None:
            return page
        import importlib

        module, name, with_secrets = LAZY_PAGES[key]
        page_class = getattr(importlib.import_module(f"cascade_studio.ui.{module}"), name)
        page = page_class(self.secrets) if with_secrets else page_class()
        if key == "tasks":
            page.imported.connect(lambda: self._each_built("reload_choices", skip=page))
        self._lazy[key] = page
        index = next(i for i in range(self.pages.count()) if self.pages.widget(i).property("lazy_key") == key)
        old = self.pages.widget(index)
        self.pages.insertWidget(index, page)
        self.pages.removeWidget(old)
        old.deleteLater()
        page.set_workspace(self.ws)
        return page

    def _each_built(self, method: str, *args, skip: QWidget | None = None) -> None:
        for page in self._lazy.values():
            if page is not None and page is not skip and hasattr(page, method):
                getattr(page, method)(*args)

    def _navigate(self, row: int) -> None:
        widget = self.pages.widget(row)
        key = widget.property("lazy_key") if widget is not None else None
        if key:
            self._build(key)
        self.pages.setCurrentIndex(row)
        self.followers.shown(self.pages.currentWidget())  # changes made while it was not on screen

    def _workspace_changed(self, kind: str, folder: str) -> None:
        """A service changed the open workspace: the pages that show that kind of data follow it."""
        if self.ws is None or Path(folder) != Path(self.ws.path).resolve():
            return
        pages = [self.tiers_page, *(p for p in self._lazy.values() if p is not None)]
        self.followers.changed(kind, pages, self.pages.currentWidget())

    tasks_page = _lazy_page("tasks")
    trajectories_page = _lazy_page("trajectories")
    finetune_page = _lazy_page("finetune")
    evaluation_page = _lazy_page("evaluation")
    tradeoffs_page = _lazy_page("tradeoffs")
    production_page = _lazy_page("production")

    # -- menus ---------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.new_action = QAction("&New Workspace…", self, shortcut=QKeySequence.StandardKey.New,
                                  triggered=self.new_workspace_dialog)
        self.open_action = QAction("&Open Workspace…", self, shortcut=QKeySequence.StandardKey.Open,
                                   triggered=self.open_workspace_dialog)
        file_menu.addAction(self.new_action)
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(QAction("Import Price &Catalog…", self, triggered=self.import_catalog_dialog))
        file_menu.addSeparator()
        file_menu.addAction(QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close))

        from cascade_studio.ui.tier_undo import TierUndo

        self.tier_undo = TierUndo(self, self.menuBar().addMenu("&Edit"))

        tasks_menu = self.menuBar().addMenu("Tas&ks")
        tasks_menu.addAction(QAction("&Import Tasks…", self, triggered=self._import_tasks))

        traj_menu = self.menuBar().addMenu("T&rajectories")
        traj_menu.addAction(QAction("&Start / Resume Run", self, shortcut=QKeySequence("Ctrl+R"),
                                    triggered=lambda: (self.nav.setCurrentRow(2), self.trajectories_page.start_run())))
        traj_menu.addAction(QAction("&Import Trajectories…", self,
                                    triggered=lambda: (self.nav.setCurrentRow(2), self.trajectories_page.import_dialog())))
        traj_menu.addAction(QAction("&Export Trajectories…", self, shortcut=QKeySequence("Ctrl+E"),
                                    triggered=lambda: (self.nav.setCurrentRow(2), self.trajectories_page.export_dialog())))

        tiers_menu = self.menuBar().addMenu("&Tiers")
        tiers_menu.addAction(QAction("&Save Tiers", self, triggered=self.tiers_page.save))
        tiers_menu.addAction(QAction("&Export Tiers…", self, triggered=self.export_tiers_dialog))
        tiers_menu.addAction(QAction("&Import Tiers…", self, triggered=lambda: self.import_tiers_dialog()))

        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(QAction("Open &Log Folder", self, triggered=self._open_log_folder))
        help_menu.addAction(QAction("&About Cascade Studio", self, shortcut=QKeySequence("F1"),
                                    triggered=self.show_about))

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recents = self.settings.recent_workspaces
        if not recents:
            action = self.recent_menu.addAction("No recent workspaces")
            action.setEnabled(False)
        for path in recents:
            self.recent_menu.addAction(path, lambda p=path: self.open_workspace(Path(p), create=False))

    # -- workspace -----------------------------------------------------------------------
    def open_workspace(self, folder: Path, *, create: bool = True) -> bool:
        if not self._confirm_discard():
            return False
        problem = upgrade_in_background(folder, self)  # a big one behind this schema: on a thread
        if problem:
            log.warning("Cannot upgrade workspace %s: %s", folder, problem)
            show_error("Cannot open workspace", problem, self)
            return False
        try:
            ws = Workspace.open(folder, create=create, check="defer")
        except WorkspaceError as exc:
            log.warning("Cannot open workspace %s: %s", folder, exc)
            show_error("Cannot open workspace", str(exc), self)
            if not create:
                self.settings.remove_recent(folder)
            return False
        try:
            catalog = catalog_svc.load_for_workspace(ws.path)
        except catalog_svc.CatalogError as exc:
            show_error("Price catalog unreadable", f"{exc}\nUsing the bundled catalog instead.", self)
            catalog = catalog_svc.load_bundled()
        if self.ws is not None:
            self.ws.close()
        self.ws = ws
        self.catalog = catalog
        if DatasetRepository(ws).pending_files():  # a dataset build killed while putting its files in place
            from cascade_studio.services.datasets import finish_on_open

            if (finished := finish_on_open(ws)) is not None:
                self.statusBar().showMessage(finished, 10000)
        self.followers.pending.clear()  # every page reloads the new workspace below
        self.settings.add_recent(ws.path)
        self.tiers_page.set_workspace(ws, catalog)
        self._each_built("set_workspace", ws)
        if JobStore(ws).count_unfinished():  # resume tracking fine-tune jobs by itself, even before the page is opened
            QTimer.singleShot(0, lambda: self._build("finetune"))
        self.workspace_label.setText(f"Workspace: {ws.path}")
        self._update_title()
        if ws.deferred_check:  # a big workspace: check it fully without making the user wait
            self.statusBar().showMessage("Checking the workspace's integrity in the background…", 10000)
            run_in_thread(lambda path=ws.path: Workspace.check_integrity(path), self._integrity_checked,
                          owner=self.workspace_label)
        log.info("Opened workspace %s", ws.path)
        return True

    def new_workspace_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose or create an empty folder for the new workspace")
        if folder:
            path = Path(folder)
            if (path / "workspace.sqlite").exists():
                show_error("Folder already holds a workspace",
                           f"{path} already contains a workspace; it was opened instead.", self)
            self.open_workspace(path, create=True)

    def open_workspace_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a workspace folder")
        if folder:
            self.open_workspace(Path(folder), create=False)

    def import_catalog_dialog(self) -> None:
        if self.ws is None:
            return
        name, _ = QFileDialog.getOpenFileName(self, "Import LiteLLM price catalog", "", "JSON (*.json)")
        if not name:
            return
        try:
            self.catalog = catalog_svc.import_litellm_file(Path(name), self.ws.path)
        except catalog_svc.CatalogError as exc:
            show_error("Price catalog not imported", str(exc), self)
            return
        self.tiers_page.editor.set_catalog(self.catalog)
        self.statusBar().showMessage(f"Imported {len(self.catalog)} model prices", 5000)

    def export_tiers_dialog(self) -> None:
        if self.ws is None:
            return
        name, _ = QFileDialog.getSaveFileName(self, "Export tiers", "tiers.json", "JSON (*.json)")
        if name:
            try:
                count = tier_service.export_tiers(self.ws, Path(name))
            except tier_service.TierServiceError as exc:
                show_error("Export failed", str(exc), self)
                return
            self.statusBar().showMessage(f"Exported {count} tiers (no API keys) to {name}", 5000)

    def import_tiers_dialog(self, path: str | None = None) -> None:
        if self.ws is None or not self._confirm_discard():
            return
        name = path or QFileDialog.getOpenFileName(self, "Import tiers", "", "JSON (*.json)")[0]
        if not name:
            return
        try:
            parsed = tier_service.parse_tier_file(Path(name))
            asked = tier_service.key_settings_of(parsed)
        except tier_service.TierServiceError as exc:
            show_error("Import failed", f"{exc}\nThe current tiers are unchanged.", self)
            return
        trust = self.confirm_key_settings(asked) if asked else False
        if trust is None:
            return
        moved = tier_service.origin_changes(self.ws, parsed)
        allow = self.confirm_new_origins(moved) if moved else False
        if allow is None:
            return
        try:
            report = tier_service.import_tiers(self.ws, Path(name), trust_key_settings=trust,
                                               allow_new_origin=allow, secrets=self.secrets)
        except tier_service.TierServiceError as exc:
            show_error("Import failed", f"{exc}\nThe current tiers are unchanged.", self)
            return
        self.tiers_page.set_workspace(self.ws, self.catalog)
        lines = report.summary(Path(name))
        if len(lines) > 1:
            QMessageBox.information(self, "Tiers imported", "\n\n".join(lines))
        self.statusBar().showMessage(lines[0], 5000)

    def confirm_new_origins(self, moved: list[tier_service.OriginChange]) -> bool | None:
        """Send (True) or withhold (False, the default) the moved tiers' key variables, or cancel (None)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Tiers move to other hosts",
                          "This file points tiers at other hosts:\n\n"
                          + "\n".join(f"• tier {c.tier}: {c.old or '(new here)'} → {c.new}" for c in moved)
                          + "\n\nThe keys these tiers read from environment variables would go to the new hosts. "
                          "Send them only if you trust every host named. Withholding them imports the tiers; "
                          "keys you stored for a host are not affected.", parent=self)
        send = box.addButton("Send keys to the new hosts", QMessageBox.ButtonRole.AcceptRole)
        withhold = box.addButton("Withhold keys", QMessageBox.ButtonRole.RejectRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(withhold)
        box.setObjectName("confirmNewOrigins")
        box.exec()
        if box.clickedButton() not in (send, withhold):
            return None
        return box.clickedButton() is send

    def confirm_key_settings(self, asked: list[tier_service.KeySetting]) -> bool | None:
        """Keep (True), drop (False) or cancel (None) a tier file's key variables and http permissions."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Key settings in the tier file",
                          "This file asks to decide where API keys come from and how they travel:\n\n"
                          + "\n".join(f"• {s.describe()}" for s in asked)
                          + "\n\nKeep these only if you trust the file and every host it names. "
                          "Dropping them imports the tiers without them; you can set keys yourself.",
                          parent=self)
        keep = box.addButton("Keep key settings", QMessageBox.ButtonRole.AcceptRole)
        drop = box.addButton("Drop them", QMessageBox.ButtonRole.RejectRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(drop)
        box.exec()
        if box.clickedButton() not in (keep, drop):
            return None
        return box.clickedButton() is keep

    def _import_tasks(self) -> None:
        self.nav.setCurrentRow(1)
        self.tasks_page.import_dialog()

    # -- misc ----------------------------------------------------------------------------
    def _update_title(self, *_: object) -> None:
        name = self.ws.path.name if self.ws else "no workspace"
        # Qt shows "*" at the placeholder while the window is modified (unsaved tier edits).
        self.setWindowTitle(f"{name}[*] — {APP_NAME}")
        self.setWindowModified(self.tiers_page.dirty)

    def show_about(self) -> None:
        from cascade_studio.ui.about import AboutDialog

        AboutDialog(self.keyring_message, self).exec()

    def _open_log_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_file().parent)))

    def _confirm_discard(self) -> bool:
        if not self.tiers_page.dirty:
            return True
        answer = QMessageBox.question(
            self, "Unsaved tier changes", "Save your changes to the tiers first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.tiers_page.save()
        return answer == QMessageBox.StandardButton.Discard

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self._confirm_discard():
            event.ignore()
            return
        page = self._lazy.get("trajectories")
        if page is not None and page.runner is not None:
            answer = QMessageBox.question(
                self, "A run is in progress",
                "Stop the collection run and quit? Finished trajectories are saved; Start resumes the run next time.")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            page.run_finished.connect(lambda *_: self.close())  # close once the workers have stopped
            page.cancel_run()
            event.ignore()
            return
        self.events.close()  # no more change events for a window on its way out (they come from any thread)
        if self.ws is not None:
            self.tiers_page.ws = None
            self._each_built("set_workspace", None)
            self.ws.close()
            self.ws = None
        event.accept()
