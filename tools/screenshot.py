"""Open the GUI (real xcb window under Xvfb) and save a screenshot of the whole screen.

    xvfb-run -s "-screen 0 1300x820x24" .venv/bin/python tools/screenshot.py WORKSPACE OUT.png [PAGE] [--demo]
        [--collect=N] [--size=WxH]
"""

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from cascade_studio.ui.app import create_main_window, make_app

args = [a for a in sys.argv[1:] if not a.startswith("--")]
workspace, out = Path(args[0]), args[1]
page = int(args[2]) if len(args) > 2 else 0
sandbox = None
if "--demo" in sys.argv:
    from cascade_studio.sandbox.server import SandboxThread
    from cascade_studio.services.demo import prepare_demo

    sandbox = SandboxThread()
    prepare_demo(workspace, sandbox.start())
    collect = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("--collect=")), 0)
    if collect:
        import asyncio

        from cascade_studio.sandbox.app import SandboxConfig  # noqa: F401
        from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
        from cascade_studio.services.secrets import SecretStore
        from cascade_studio.store.tiers import TierRepository
        from cascade_studio.store.workspace import Workspace

        sandbox.server.config.latency_scale = 0
        with Workspace.open(workspace) as ws:
            for tier in TierRepository(ws).list():
                run, _ = start_or_resume(ws, tier, select_task_ids(ws, limit=collect), {})
                asyncio.run(CollectionRun(ws, tier, SecretStore(), run).run())
if "--finetune" in sys.argv:
    import asyncio

    from cascade_studio.core.tiers import teacher_of
    from cascade_studio.services import datasets as dsvc
    from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
    from cascade_studio.services.finetune import tracker
    from cascade_studio.services.finetune.backend import JobSpec
    from cascade_studio.services.secrets import SecretStore
    from cascade_studio.store.tiers import TierRepository
    from cascade_studio.store.workspace import Workspace

    sandbox.server.config.latency_scale = 0
    sandbox.server.config.job_seconds = 2
    with Workspace.open(workspace) as ws:
        teacher = teacher_of(TierRepository(ws).list())
        run, _ = start_or_resume(ws, teacher, select_task_ids(ws, limit=60), {})
        asyncio.run(CollectionRun(ws, teacher, SecretStore(), run).run())
        built = dsvc.build_dataset(ws, Path("/tmp/ft_train.jsonl"), dsvc.DatasetFilters(validation_share=0.2))
        state, _ = asyncio.run(tracker.start_job(ws, JobSpec("gpt-4o-mini", built.path, built.validation_path,
                                                             suffix="demo"), None, SecretStore()))
        asyncio.run(tracker.watch(ws, state.id, SecretStore(), poll_s=0.2))
        local = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--local=")), None)
        if local:  # a local job on the same dataset, with a tiny model built on the spot
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            from tests.trainer.tiny import build_model

            if not (Path(local) / "config.json").exists():
                build_model(Path(local))
            state, _ = asyncio.run(tracker.start_job(
                ws, JobSpec(local, built.path, built.validation_path, n_epochs=3, suffix="demo",
                            options={"method": "full", "learning_rate": 3e-3}), None, SecretStore(),
                backend_name="local"))
            asyncio.run(tracker.watch(ws, state.id, SecretStore(), poll_s=0.2))
app = make_app()
window = create_main_window(workspace)
window.nav.setCurrentRow(page)
window.move(0, 0)
size = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--size=")), None)
if size:  # e.g. --size=1024x700, the smallest size supported
    window.resize(*(int(v) for v in size.split("x")))
window.show()
if "--finetune" in sys.argv:
    window.finetune_page.validate(Path("/tmp/ft_train.jsonl"))
    if any(a.startswith("--local=") for a in sys.argv):
        fp = window.finetune_page
        fp.backend.setCurrentIndex(fp.backend.findData("local"))
        fp.local_model.setText(next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--local=")))
if "--select" in sys.argv and page == 2:
    window.trajectories_page.table.selectRow(int(sys.argv[sys.argv.index("--select") + 1]))
if "--evaluate" in sys.argv and page == 4:
    import asyncio

    from cascade_studio.services.evaluation import evaluate
    from cascade_studio.store.tiers import TierRepository

    ep = window.evaluation_page
    tiers = {t.tier: t for t in TierRepository(window.ws).list()}
    ids = [r[0] for r in window.ws.conn.execute("SELECT id FROM tasks ORDER BY category, rowid")]
    for _ in range(2):
        report = asyncio.run(evaluate(window.ws, tiers[3], tiers[1], ids, ep.secrets))
    ep.show_report(report)
    ep.category_table.selectRow(1)
    ep.task_table.selectRow(0)


def shoot() -> None:
    QApplication.primaryScreen().grabWindow(0).save(out)
    app.quit()


QTimer.singleShot(1500, shoot)
app.exec()
if sandbox:
    sandbox.stop()
