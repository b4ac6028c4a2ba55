"""Re-import reports the truth and streams; catalog import merges; dataset builds are all or nothing (issue 14)."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from cascade_studio.services import catalog
from cascade_studio.services import datasets as dsvc
from cascade_studio.services import trajectory_io as tio
from cascade_studio.store.datasets import DatasetRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from tests.test_importers_fuzz import RESPONSE, SEEDS, TIER


def line(task_id, content="x", **extra):
    response = {**RESPONSE, "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                         "logprobs": {"content": [{"token": content, "logprob": -0.1,
                                                                   "top_logprobs": []}]},
                                         "finish_reason": "stop"}]}
    return json.dumps({"task_id": task_id, "model": "m", "latency_ms": 5, "response": response,
                       "request": {"model": "m", "messages": [{"role": "user", "content": f"question {task_id}"}]},
                       "created_at": "2025-01-01T00:00:00", **extra})


@pytest.fixture
def ws(tmp_path):
    ws = Workspace.open(tmp_path / "w")
    TierRepository(ws).replace_all([TIER])
    yield ws
    ws.close()


def test_reimport_counts_match_the_store_and_apply_updates(ws, tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(line(f"t{i}") for i in range(3)))
    r = tio.import_native(ws, f, TIER)
    assert (r.added, r.updated, r.unchanged) == (3, 0, 0)
    f.write_text("\n".join([line("t0", "changed"), line("t1"), line("t2", curation="rejected", tags=["x"]),
                            line("t3")]))
    r = tio.import_native(ws, f, TIER)
    assert (r.added, r.updated, r.unchanged) == (1, 2, 1)
    rows = {row["task_id"]: row for row in tio.list_rows(ws)}
    assert len(rows) == 4 and rows["t2"]["curation"] == "rejected" and rows["t2"]["tags"] == ["x"]
    assert ws.conn.execute("SELECT content FROM trajectories WHERE task_id = 't0'").fetchone()[0] == "changed"


def test_export_import_keeps_curation_tags_and_category_without_tasks(ws, tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(line("t0", curation="accepted", tags=["gold", "v2"], category="maths"))
    tio.import_native(ws, f, TIER)
    out = tmp_path / "out.jsonl"
    tio.export_native(ws, out)
    other = Workspace.open(tmp_path / "other")
    tio.import_native(other, out, TIER)
    row = tio.list_rows(other)[0]
    assert (row["curation"], row["tags"], row["category"]) == ("accepted", ["gold", "v2"], "maths")
    other.close()


def test_a_long_file_over_few_trajectories_reports_the_truth_in_bounded_memory(ws, tmp_path):
    f = tmp_path / "big.jsonl"
    with open(f, "w") as fh:
        for i in range(20_000):
            fh.write(line(f"t{i % 30}", f"answer {i}") + "\n")
    tracemalloc.start()
    r = tio.import_native(ws, f, TIER)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (r.added, r.updated, r.unchanged, r.lines) == (30, 0, 0, 20_000)
    assert ws.conn.execute("SELECT count(*) FROM trajectories").fetchone()[0] == 30
    assert peak < 20 * 1024 * 1024  # the file is ~20 MB as objects; streamed, not held


def test_a_bad_row_refuses_the_whole_catalog_and_imports_merge(ws, tmp_path):
    good = json.loads(SEEDS["litellm.json"])
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({**good, "bad": {"mode": "chat", "input_cost_per_token": "abc"}}))
    with pytest.raises(catalog.CatalogError, match="bad: input_cost_per_token"):
        catalog.import_litellm_file(f, ws.path)
    assert not (ws.path / catalog.CATALOG_FILE).exists()
    f.write_text(json.dumps({**good, "gpt-4o": {"mode": "chat", "input_cost_per_token": 1e-6,
                                                "output_cost_per_token": 1e-6}}))
    catalog.import_litellm_file(f, ws.path)
    merged = catalog.load_for_workspace(ws.path)
    assert len(merged) == len(catalog.load_bundled()) + 2  # m1, m2 added; gpt-4o overridden, the rest kept
    assert str(merged.lookup("gpt-4o").input_per_m) == "1" and merged.lookup("gpt-4o-mini") is not None


def built_workspace(ws, tmp_path, n=40):
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(line(f"t{i}", f"answer {i}", category=f"c{i % 3}") for i in range(n)))
    tio.import_native(ws, f, TIER)


def assert_complete_set(out: Path, ws):
    complete = dsvc.complete_interrupted_build(ws)  # noqa: F841 - a build interrupted while renaming is finished
    names = sorted(p.name for p in out.parent.iterdir())
    assert not [n for n in names if "tmp" in n], names
    record = DatasetRepository(ws).list()
    train = out.read_text().splitlines()
    assert record and record[0]["examples"] == len(train)
    valid = out.with_name("train.validation.jsonl")
    assert record[0]["validation_examples"] == (len(valid.read_text().splitlines()) if valid.exists() else 0)
    lp = out.with_name("train.logprobs.jsonl")
    if lp.exists():
        assert len(lp.read_text().splitlines()) == len(train)
    vlp = out.with_name("train.validation.logprobs.jsonl")
    if vlp.exists():
        assert valid.exists() and len(vlp.read_text().splitlines()) == len(valid.read_text().splitlines())
    assert DatasetRepository(ws).pending_files() == []


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_a_failure_between_files_leaves_the_old_complete_set(ws, tmp_path, monkeypatch, fail_at):
    built_workspace(ws, tmp_path)
    out = tmp_path / "ds" / "train.jsonl"
    dsvc.build_dataset(ws, out, dsvc.DatasetFilters(validation_share=0.2))
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    real = dsvc._write_temp
    calls = []

    def failing(final, rows):
        calls.append(final)
        if len(calls) == fail_at:
            raise OSError(28, "No space left on device")
        return real(final, rows)

    monkeypatch.setattr(dsvc, "_write_temp", failing)
    with pytest.raises(OSError):
        dsvc.build_dataset(ws, out, dsvc.DatasetFilters(validation_share=0.5, seed=3))
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before
    assert len(DatasetRepository(ws).list()) == 1
    assert_complete_set(out, ws)


def test_a_kill_while_renaming_is_completed_and_old_logprobs_go(ws, tmp_path, monkeypatch):
    built_workspace(ws, tmp_path)
    out = tmp_path / "ds" / "train.jsonl"
    dsvc.build_dataset(ws, out, dsvc.DatasetFilters(validation_share=0.2))
    assert out.with_name("train.logprobs.jsonl").exists()

    def killed(pending):
        raise KeyboardInterrupt  # stands for SIGKILL after the record, before any rename

    monkeypatch.setattr(dsvc, "_put_in_place", killed)
    with pytest.raises(KeyboardInterrupt):
        dsvc.build_dataset(ws, out, dsvc.DatasetFilters(validation_share=0.2), fmt="sharegpt")
    monkeypatch.undo()
    assert len(DatasetRepository(ws).list()) == 2  # recorded: the next use completes it
    assert_complete_set(out, ws)
    # the new build's logprobs replaced the old ones: one line per example of the new (ShareGPT) file
    logprobs = out.with_name("train.logprobs.jsonl")
    assert len(logprobs.read_text().splitlines()) == len(out.read_text().splitlines())
    assert "conversations" in out.read_text()
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_sigkill_of_dataset_build_leaves_one_complete_set(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    wsdir = tmp_path / "w"
    ws = Workspace.open(wsdir)
    TierRepository(ws).replace_all([TIER])
    built_workspace(ws, tmp_path, n=3000)
    out = tmp_path / "ds" / "train.jsonl"
    dsvc.build_dataset(ws, out, dsvc.DatasetFilters(validation_share=0.2))
    for delay in (0.3, 0.6, 0.9, 1.2):
        proc = subprocess.Popen([sys.executable, "-m", "cascade_studio", "-w", str(wsdir), "dataset", "build",
                                 "--out", str(out), "--validation-share", "0.5", "--seed", str(int(delay * 10))],
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # the next build sweeps the dead build's temporary files; sweeping before completing an
        # interrupted rename must keep the temporary files its record still names
        dsvc._remove_stale_temps(out.parent, ws)
        assert_complete_set(out, ws)
    ws.close()


# A build (or the completion of an interrupted one) that SIGKILLs itself right after a named step,
# so every window is covered without depending on when a timer fires.
KILL_AT = r"""
import os, signal, sys
from pathlib import Path
from cascade_studio.services import datasets as dsvc
from cascade_studio.store.datasets import DatasetRepository
from cascade_studio.store.workspace import Workspace

wsdir, out, step, k = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
calls = [0]


def after(real):
    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapped


if step == "temp":
    dsvc._write_temp = after(dsvc._write_temp)
elif step == "record":
    DatasetRepository.add = after(DatasetRepository.add)
elif step == "rename":
    os.replace = after(os.replace)
elif step == "in_place":
    dsvc._put_in_place = after(dsvc._put_in_place)
ws = Workspace.open(wsdir)
if sys.argv[5] == "build":
    dsvc.build_dataset(ws, out, dsvc.DatasetFilters(validation_share=0.5, seed=7), fmt=sys.argv[6])
else:
    dsvc.complete_interrupted_build(ws)
"""


def run_killed(wsdir, out, step, k, what="build", fmt="openai"):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", KILL_AT, str(wsdir), str(out), step, str(k), what, fmt],
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                          capture_output=True, text=True, timeout=120)
    return proc.returncode


@pytest.fixture(scope="module")
def built_once(tmp_path_factory):
    """A workspace with one dataset built (2400 + 600 examples), copied for each kill."""
    root = tmp_path_factory.mktemp("built")
    ws = Workspace.open(root / "w")
    TierRepository(ws).replace_all([TIER])
    built_workspace(ws, root, n=3000)
    dsvc.build_dataset(ws, root / "ds" / "train.jsonl", dsvc.DatasetFilters(validation_share=0.2))
    ws.close()
    return root


STEPS = [("temp", 1), ("temp", 3), ("temp", 4), ("record", 1), ("rename", 1), ("rename", 2), ("rename", 3),
         ("rename", 4), ("in_place", 1)]


@pytest.mark.parametrize(("step", "k"), STEPS, ids=[f"{s}{k}" for s, k in STEPS])
def test_a_kill_after_each_step_leaves_one_complete_set(built_once, tmp_path, step, k):
    import shutil

    shutil.copytree(built_once, tmp_path / "c")
    wsdir, out = tmp_path / "c" / "w", tmp_path / "c" / "ds" / "train.jsonl"
    ws = Workspace.open(wsdir)
    before = len(DatasetRepository(ws).list())
    # sharegpt: the new build's files differ from the old ones at every size
    assert run_killed(wsdir, out, step, k, fmt="sharegpt") == -9
    recorded = len(DatasetRepository(ws).list()) > before
    assert recorded == (step != "temp")
    dsvc._remove_stale_temps(out.parent, ws)  # the next build's sweep, before anything completes the rename
    assert_complete_set(out, ws)
    assert ("conversations" in out.read_text()) == recorded  # the new build entirely, or the old one
    ws.close()


@pytest.mark.parametrize("k", [1, 2, 4])
def test_a_kill_while_completing_an_interrupted_build_is_completed_next_time(built_once, tmp_path, k):
    import shutil

    shutil.copytree(built_once, tmp_path / "c")
    wsdir, out = tmp_path / "c" / "w", tmp_path / "c" / "ds" / "train.jsonl"
    assert run_killed(wsdir, out, "record", 1, fmt="sharegpt") == -9  # recorded, nothing renamed
    assert run_killed(wsdir, out, "rename", k, what="complete") == -9  # its completion killed after rename k
    ws = Workspace.open(wsdir)
    assert len(DatasetRepository(ws).pending_files()) == 1
    dsvc._remove_stale_temps(out.parent, ws)
    assert_complete_set(out, ws)
    assert "conversations" in out.read_text()
    ws.close()


def test_a_build_recorded_while_another_was_pending_supersedes_it(built_once, tmp_path, monkeypatch):
    """Build A is recorded and killed after the build B had completed the interrupted builds it
    found: B's record takes A's place (A's files never go over B's) and A's temporary files go."""
    import shutil

    shutil.copytree(built_once, tmp_path / "c")
    wsdir, out = tmp_path / "c" / "w", tmp_path / "c" / "ds" / "train.jsonl"
    assert run_killed(wsdir, out, "record", 1, fmt="sharegpt") == -9  # A
    ws = Workspace.open(wsdir)
    monkeypatch.setattr(dsvc, "complete_interrupted_build", lambda ws: None)  # B began before A's record
    built = dsvc.build_dataset(ws, out, dsvc.DatasetFilters(validation_share=0.1))
    monkeypatch.undo()
    assert DatasetRepository(ws).list()[0]["id"] == built.id
    assert_complete_set(out, ws)
    assert "conversations" not in out.read_text() and built.examples == 2700
    ws.close()


def test_a_build_killed_while_renaming_is_finished_when_the_workspace_opens(ws, tmp_path, monkeypatch, capsys):
    """Issue 33: a kill -9 between the record and the last rename left 3 new files and 1 old until the
    next `dataset build`; now any command that opens the workspace finishes it."""
    from cascade_studio.cli import main

    built_workspace(ws, tmp_path)
    out = tmp_path / "ds" / "train.jsonl"
    dsvc.build_dataset(ws, out, dsvc.DatasetFilters(validation_share=0.2))
    real = dsvc._put_in_place

    def killed(pending):
        os.replace(*pending["renames"][0])  # one file in place, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(dsvc, "_put_in_place", killed)
    built_workspace(ws, tmp_path, n=55)
    with pytest.raises(KeyboardInterrupt):
        dsvc.build_dataset(ws, out, dsvc.DatasetFilters(validation_share=0.2))
    monkeypatch.setattr(dsvc, "_put_in_place", real)
    assert DatasetRepository(ws).pending_files()  # a mixed set on disk, the record says what belongs
    capsys.readouterr()
    assert main(["-w", str(ws.path), "tasks", "list", "--limit", "1"]) == 0
    assert "interrupted" in capsys.readouterr().err
    assert DatasetRepository(ws).pending_files() == []
    assert_complete_set(out, ws)
