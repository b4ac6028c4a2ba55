"""Issue 19, the rare segfault in the page tests: a closed qasync loop's Qt timer object, freed by the
cyclic GC on another thread, left its timers with the GUI thread's dispatcher; the next one due hit
freed memory inside a later test's event loop. The qloop fixture now closes loops with close_qloop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

# A loop with timers still registered (a cancelled timeout), closed, then collected on a thread that is
# not the GUI thread (as the sandbox server's or a worker's allocations trigger it), then a new loop runs
# past the moment the timer was due. With a bare loop.close() this segfaults.
SCRIPT = textwrap.dedent("""
    import asyncio, gc, threading
    import qasync
    from PySide6.QtWidgets import QApplication
    from tests.ui.conftest import close_qloop

    app = QApplication([])
    gc.disable()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    async def main():
        for delay in (0.2, 0.3, 60):
            loop.call_later(delay, print, "never").cancel()
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    close_qloop(loop)
    asyncio.set_event_loop(None)
    del loop
    collector = threading.Thread(target=gc.collect, name="not-the-gui")
    collector.start()
    collector.join()
    after = qasync.QEventLoop(app)
    asyncio.set_event_loop(after)
    after.run_until_complete(asyncio.sleep(0.5))
    close_qloop(after)
    print("survived")
""")


def test_a_closed_loop_collected_on_another_thread_leaves_no_timer_behind():
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", SCRIPT], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "survived" in done.stdout, done.stderr[-3000:]
    assert "Timers cannot be stopped from another thread" not in done.stderr
    assert "never" not in done.stdout


def test_close_qloop_deletes_its_qt_objects_on_the_gui_thread(qapp):
    """The loop itself stays in a cycle (qasync's selector and the loop refer to each other) for the
    cyclic GC to free on any thread: by then no Qt object may hang on it."""
    import asyncio

    import qasync
    import shiboken6

    from tests.ui.conftest import close_qloop

    loop = qasync.QEventLoop(qapp)
    loop.call_later(60, print).cancel()  # a Qt timer registered until it would have fired
    timer, signaller = loop._timer, loop._QEventLoop__call_soon_signaller
    close_qloop(loop)
    asyncio.set_event_loop(None)
    assert loop.is_closed() and not shiboken6.isValid(timer) and not shiboken6.isValid(signaller)
    assert not timer._SimpleTimer__callbacks  # the handles (and their callbacks' references) are gone
