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
    loop.close()  # joins qasync's executor threads; a live QThread at exit aborts the process
    asyncio.set_event_loop(None)


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
