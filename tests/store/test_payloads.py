"""Issue 22, storage shaped for the queries: request, response and logprobs live compressed in
`trajectory_payloads` (schema step 17), apart from the narrow `trajectories` row. A workspace in the
old layout (schema 16, the payloads in the middle of the row) migrates with every trajectory, export
and dataset file unchanged; a migration that dies half-way leaves the workspace as it was."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cascade_studio.core.trajectory import Trajectory, Usage
from cascade_studio.services import datasets as dsvc
from cascade_studio.services import trajectory_io as tio
from cascade_studio.store import migrations, payloads
from cascade_studio.store.trajectories import RunRepository, TrajectoryRepository
from cascade_studio.store.workspace import DB_NAME, Workspace, WorkspaceError
from tests.services.test_evaluation_streaming import collected

OLD = 16  # the last schema with the payloads inside `trajectories`


def legacy_copy(src: Path, dst: Path) -> None:
    """The workspace `src` (current schema) written in the old layout at schema 16, as a workspace
    from before step 17 holds it: the same rows, the payloads as plain JSON in `trajectories`."""
    dst.mkdir(parents=True)
    conn = sqlite3.connect(dst / DB_NAME, isolation_level=None)
    migrations.migrate(conn, OLD)
    conn.create_function("unpack", 1, payloads.unpack)
    conn.execute("ATTACH ? AS src", (str(src / DB_NAME),))
    conn.execute("BEGIN")
    for (name,) in conn.execute("SELECT name FROM src.sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                "'sqlite%' AND name != 'trajectory_payloads' AND name IN "
                                "(SELECT name FROM main.sqlite_master)").fetchall():  # not the tables later steps add
        if name == "trajectories":
            old = {r[1] for r in conn.execute("PRAGMA main.table_info(trajectories)")}
            cols = [r[1] for r in conn.execute("PRAGMA src.table_info(trajectories)") if r[1] in old]
            conn.execute(f"INSERT INTO main.trajectories ({', '.join(cols)}, request, response, logprobs) SELECT "
                         f"{', '.join('t.' + c for c in cols)}, unpack(p.request), unpack(p.response), "
                         "unpack(p.logprobs) FROM src.trajectories t JOIN src.trajectory_payloads p ON p.id = t.id")
        else:
            conn.execute(f"INSERT INTO main.{name} SELECT * FROM src.{name}")
    conn.execute("COMMIT")
    conn.execute("DETACH src")
    conn.close()


def everything(ws: Workspace, out: Path) -> dict[str, object]:
    """Every trajectory as `get` reads it, the decision tokens, an export and a dataset build's files."""
    repo = TrajectoryRepository(ws)
    ids = [r[0] for r in ws.conn.execute("SELECT id FROM trajectories ORDER BY id")]
    got = {i: (dataclasses.asdict(repo.get(i)[0]), repo.get(i)[1]) for i in ids}
    out.mkdir()
    tio.export_native(ws, out / "export.jsonl")
    dsvc.build_dataset(ws, out / "ds" / "train.jsonl", dsvc.DatasetFilters(validation_share=0.25, seed=3))
    files = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*") if p.is_file()}
    return {"get": got, "files": files, "decisions": repo.decision_tops(ids),
            "summary": repo.summary_rows(), "any_logprobs": repo.any_logprobs(ids)}


@pytest.fixture
def real(tmp_path, sandbox_thread):
    """A workspace of real rows (3 tiers x 12 tasks, with logprobs, from the sandbox), what it
    reads as, and the same workspace in the old layout."""
    ws = collected(tmp_path / "new", sandbox_thread.base_url, limit=12)
    expected = everything(ws, tmp_path / "out-new")
    ws.close()
    legacy_copy(tmp_path / "new", tmp_path / "old")
    return tmp_path / "old", expected


def test_an_old_layout_workspace_migrates_with_every_trajectory_unchanged(real, tmp_path):
    old, expected = real
    conn = sqlite3.connect(old / DB_NAME)
    assert conn.execute("SELECT count(*), sum(logprobs IS NOT NULL) FROM trajectories").fetchone() == (36, 36)
    conn.close()
    with Workspace.open(old) as ws:
        assert ws.schema_version == migrations.SCHEMA_VERSION >= 17
        columns = [r[1] for r in ws.conn.execute("PRAGMA table_info(trajectories)")]
        assert not {"request", "response", "logprobs"} & set(columns)
        indexes = {r[0] for r in ws.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                                 "tbl_name = 'trajectories'")}
        assert {"trajectories_run_task", "trajectories_tier_generation", "trajectories_conf"} <= indexes
        assert ws.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert ws.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        blob = ws.conn.execute("SELECT logprobs FROM trajectory_payloads LIMIT 1").fetchone()[0]
        assert isinstance(blob, bytes) and blob[0] == payloads.ZLIB
        assert everything(ws, tmp_path / "out-old") == expected
    assert (old / f"workspace.v{OLD}.bak.sqlite").is_file()


def test_a_migration_killed_half_way_leaves_the_old_workspace_and_runs_again(real, tmp_path):
    old, expected = real
    # a process that dies (no rollback, no close) in the middle of the payload step's third batch
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from cascade_studio.store import payloads
from cascade_studio.store.workspace import Workspace
payloads.MOVE_BATCH = 5
calls, pack = [0], payloads.pack
def dying(text):
    calls[0] += 1
    if calls[0] == 3 * 3 * 5 - 4:
        os._exit(9)
    return pack(text)
payloads.pack = dying
Workspace.open({str(old)!r})
"""
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    conn = sqlite3.connect(old / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == OLD
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'trajectory_payloads'").fetchone()[0] == 0
    assert conn.execute("SELECT count(*), sum(logprobs IS NOT NULL) FROM trajectories").fetchone() == (36, 36)
    conn.close()
    with Workspace.open(old) as ws:  # the next open migrates it all
        assert ws.schema_version == migrations.SCHEMA_VERSION
        assert everything(ws, tmp_path / "out-old") == expected
    backup = sqlite3.connect(old / f"workspace.v{OLD}.bak.sqlite")  # the copy made before the first try
    assert backup.execute("PRAGMA user_version").fetchone()[0] == OLD
    assert backup.execute("SELECT count(*), sum(logprobs IS NOT NULL) FROM trajectories").fetchone() == (36, 36)
    backup.close()


def test_a_failed_migration_rolls_back_and_the_workspace_stays_usable(real, tmp_path, monkeypatch):
    old, expected = real
    calls = [0]

    def failing(text):
        calls[0] += 1
        if calls[0] > 40:
            raise sqlite3.OperationalError("disk I/O error")  # as a full or failing disk would
        return payloads.zlib.compress(text if isinstance(text, bytes) else text.encode(), payloads.LEVEL)

    monkeypatch.setattr(payloads, "MOVE_BATCH", 7)
    monkeypatch.setattr(payloads, "pack", failing)
    with pytest.raises(WorkspaceError):
        Workspace.open(old)
    monkeypatch.undo()
    conn = sqlite3.connect(old / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == OLD
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'trajectory_payloads'").fetchone()[0] == 0
    conn.close()
    with Workspace.open(old) as ws:
        assert everything(ws, tmp_path / "out-old") == expected


def test_without_drop_column_the_wide_columns_stay_blank_and_everything_reads(real, tmp_path, monkeypatch):
    old, expected = real
    monkeypatch.setattr(payloads, "CAN_DROP_COLUMN", False)  # SQLite before 3.35
    with Workspace.open(old) as ws:
        assert ws.conn.execute("SELECT count(*) FROM trajectories WHERE request != '{}' OR response IS NOT NULL "
                               "OR logprobs IS NOT NULL").fetchone()[0] == 0
        assert everything(ws, tmp_path / "out-old") == expected
        repo = TrajectoryRepository(ws)
        run = RunRepository(ws).create(1, "m", ["x"], {})
        t = trajectory("x", logprobs=[{"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}])
        repo.save(run.id, t, "cat")
        assert repo.get(repo.count())[0] == t


def trajectory(task_id: str, **kw) -> Trajectory:
    logprobs = kw.pop("logprobs", None)
    response = {"id": "r", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hé"},
                                        "logprobs": None if logprobs is None else {"content": logprobs}}]}
    return Trajectory(task_id=task_id, tier=1, model="m", status="ok", content="hé",
                      request={"messages": [{"role": "user", "content": "ünïcode ✓"}], "tools": []},
                      response=response, logprobs=logprobs, usage=Usage(3, 4, 0, 0), **kw)


def test_round_trips_and_replacing_an_error_replaces_its_payloads(tmp_path):
    with Workspace.open(tmp_path) as ws:
        repo = TrajectoryRepository(ws)
        run = RunRepository(ws).create(1, "m", ["a", "b"], {})
        lp = [{"token": "x", "logprob": -0.25, "bytes": [120], "top_logprobs": [{"token": "x", "logprob": -0.25,
                                                                                 "bytes": [120]}]}]
        cases = [trajectory("a", logprobs=lp), trajectory("b"),
                 Trajectory(task_id="c", tier=1, model="m", status="error", error="timeout")]
        for t in cases:
            repo.save(run.id, t, "cat")
        for i, t in enumerate(cases, start=1):
            assert repo.get(i)[0] == t
        assert dict(repo.logprobs_texts([1, 2, 3])) == {1: orjson.dumps(lp).decode()}
        # a retry that succeeds replaces the error row in place, with its payloads
        fixed = trajectory("c", logprobs=lp)
        repo.save(run.id, fixed, "cat")
        assert repo.get(3)[0] == fixed and repo.count() == 3
        # an "ok" row is never replaced, nor are its payloads
        repo.save(run.id, trajectory("a"), "cat")
        assert repo.get(1)[0] == cases[0]
        assert ws.conn.execute("SELECT count(*) FROM trajectory_payloads").fetchone()[0] == 3
        # deleting a trajectory deletes its payloads
        ws.conn.execute("DELETE FROM trajectories WHERE id = 2")
        assert ws.conn.execute("SELECT count(*) FROM trajectory_payloads").fetchone()[0] == 2


def test_a_payload_stored_as_plain_json_still_reads():
    assert payloads.unpack(b'{"a": 1}') == '{"a": 1}' and payloads.unpack('[1]') == "[1]"
    assert payloads.unpack(payloads.pack('{"a": "é"}')) == '{"a": "é"}' and payloads.pack(None) is None


def test_a_row_without_payloads_reads_as_the_old_defaults(tmp_path):
    with Workspace.open(tmp_path) as ws:
        ws.conn.execute("INSERT INTO trajectories (task_id, tier, model, status) VALUES ('t', 1, 'm', 'ok')")
        t, _ = TrajectoryRepository(ws).get(1)
        assert (t.request, t.response, t.logprobs) == ({}, None, None)
        assert list(TrajectoryRepository(ws).by_ids([1], ("id", "request", "logprobs"))) == [(1, "{}", None)]
