import asyncio

import pytest


@pytest.fixture
def qloop(qapp):
    """A qasync loop driving Qt, so @asyncSlot handlers run as they do in the app."""
    import qasync

    qapp.setQuitOnLastWindowClosed(False)  # closing a test window must not stop the loop under test
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    close_qloop(loop)  # pytest-qt has closed and deleted the test's windows by now
    asyncio.set_event_loop(None)


def close_qloop(loop) -> None:
    """Close a qasync loop and delete its Qt objects here, on the GUI thread (issue 19's segfault).

    qasync's close() only flags its timer object: every callback scheduled and not run yet keeps a
    Qt timer registered with the GUI thread's dispatcher (a cancelled timeout stays until it would
    have fired: hundreds after a test that made HTTP requests), and the object stays in a reference
    cycle (timer -> handle -> loop -> timer). The cyclic GC runs on whichever thread happens to
    allocate (the sandbox server, a worker); there Qt cannot unregister the timers ("QObject::~QObject:
    Timers cannot be stopped from another thread"), so the next one due delivers a QTimerEvent to freed
    memory: a segfault in the GUI thread's event loop, in some later test."""
    import shiboken6

    loop.close()  # joins qasync's executor threads; a live QThread at exit aborts the process
    timer = loop._timer
    timer._SimpleTimer__callbacks.clear()  # the handles (and through them the loop) go now, by refcount
    for qobject in (timer, getattr(loop, "_QEventLoop__call_soon_signaller", None)):
        if qobject is not None and shiboken6.isValid(qobject):
            shiboken6.delete(qobject)  # ~QObject on its own thread unregisters its timers


def run_until(loop, predicate, timeout=10.0):
    async def waiter():
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.02)

    loop.run_until_complete(waiter())


@pytest.fixture(autouse=True)
def no_blocking_questions(monkeypatch):
    """A modal question left open would hang an offscreen test run (e.g. "discard unsaved changes?"
    when pytest-qt closes a window): answer it the safe way unless a test answers it itself."""
    from PySide6.QtWidgets import QMessageBox

    def answer(parent, title, text, buttons=None, default=None):
        if buttons is not None and buttons & QMessageBox.StandardButton.Discard:
            return QMessageBox.StandardButton.Discard
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", answer)
    from cascade_studio.ui import confirm  # the three-way and typed questions: Cancel (issue 27)

    monkeypatch.setattr(confirm, "ask_choice", lambda *a, **k: confirm.CANCEL)
    monkeypatch.setattr(confirm, "confirm_typed", lambda *a, **k: False)
