"""During a run the Trajectories view follows new rows from a pool thread over a second
connection (the GUI thread never counts a million rows), and drops a read the user overtook."""

import threading

import pytest

from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.settings import AppSettings
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.main_window import MainWindow


def add_rows(ws, start, n):
    ws.conn.executemany(
        "INSERT INTO trajectories (run_id, task_id, tier, model, status, category, tool_name, cost_micro, conf_mean) "
        "VALUES (1, ?, 1, 'm', 'ok', ?, 'tool', ?, 0.5)",
        [(f"t{i:04d}", "a" if i % 2 else "b", i) for i in range(start, start + n)])


@pytest.fixture
def page(qtbot, tmp_path):
    with Workspace.open(tmp_path) as ws:
        ws.conn.execute("INSERT INTO runs (id, tier, model, status, task_ids, params, created_at, updated_at) "
                        "VALUES (1, 1, 'm', 'done', '[]', '{}', '', '')")
        add_rows(ws, 0, 300)
    window = MainWindow(SecretStore(), AppSettings())
    qtbot.addWidget(window)
    window.open_workspace(tmp_path)
    window.show()
    return window.trajectories_page


def test_live_refresh_reads_off_the_gui_thread(qtbot, page, monkeypatch):
    import cascade_studio.ui.trajectory_model as tm

    page.f_category.setCurrentIndex(page.f_category.findData("a"))
    page.apply_filter()
    assert page.model.rowCount() == 150
    with Workspace.open(page.ws.path) as writer:  # the run's own connection
        add_rows(writer, 300, 100)
    threads = []
    real = tm.read_view
    monkeypatch.setattr("cascade_studio.ui.trajectory_live.read_view",
                        lambda *a: (threads.append(threading.current_thread()), real(*a))[1])
    page.live.tick()
    qtbot.waitUntil(lambda: page.model.rowCount() == 200, timeout=5000)
    assert threads and threads[0] is not threading.main_thread()
    assert "200 of 400 trajectories" in page.count_label.text()
    assert page.model.index(199, 0).data() == "t0399"  # the prefetched block and the rest read as before
    assert page.model.index(0, 0).data() == "t0001"


def test_a_read_overtaken_by_a_new_filter_is_dropped(qtbot, page, monkeypatch):
    started, release = threading.Event(), threading.Event()
    import cascade_studio.ui.trajectory_live as live

    real = live.read_view

    def slow(*args):
        started.set()
        release.wait(5)
        return real(*args)

    monkeypatch.setattr(live, "read_view", slow)
    page.live.tick()
    assert started.wait(5)
    page.live.tick()  # skipped: the previous read still runs
    page.f_category.setCurrentIndex(page.f_category.findData("b"))
    page.apply_filter()  # the user's own refresh, on the GUI thread, while the live read waits
    assert page.model.rowCount() == 150
    release.set()
    qtbot.waitUntil(lambda: not page.calls.running(live.CALL), timeout=5000)
    assert page.model.rowCount() == 150 and page.model.filter.category == "b"
