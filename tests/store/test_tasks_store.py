import json
from pathlib import Path

import pytest

from cascade_studio.core.tasks import TaskImportError
from cascade_studio.services.task_import import import_tasks
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.workspace import Workspace

BFCL = Path(__file__).resolve().parents[2] / "resources" / "bfcl"


def test_bfcl_import_with_answers_is_idempotent(tmp_path):
    with Workspace.open(tmp_path) as ws:
        first = import_tasks(ws, BFCL / "BFCL_v4_simple_python.json")
        again = import_tasks(ws, BFCL / "BFCL_v4_simple_python.json")
        repo = TaskRepository(ws)
        assert (first.added, again.added, again.unchanged) == (100, 0, 100)
        assert repo.count() == 100 and repo.categories() == [("simple_python", 100)]
        assert repo.get("simple_python_0").expected[0]["calculate_triangle_area"]["base"] == [10]
        assert repo.count(search="triangle") >= 3
        assert len(repo.page(0, 10, "simple_python")) == 10



def test_get_many_reads_what_get_reads_in_chunks(tmp_path):
    with Workspace.open(tmp_path) as ws:
        import_tasks(ws, BFCL / "BFCL_v4_simple_python.json")
        repo = TaskRepository(ws)
        ids = repo.ids() * 6 + ["no-such-task"]  # past one chunk of 500, with repeats and a missing id
        many = repo.get_many(ids)
        assert set(many) == set(repo.ids()) and "no-such-task" not in many
        assert all(many[t] == repo.get(t) for t in repo.ids())
        assert repo.get_many([]) == {}

def test_changed_task_is_updated_not_duplicated(tmp_path):
    f = tmp_path / "t.jsonl"
    row = {"id": "a", "category": "c", "messages": [{"role": "user", "content": "v1"}], "tools": []}
    f.write_text(json.dumps(row))
    with Workspace.open(tmp_path / "ws") as ws:
        import_tasks(ws, f)
        row["messages"][0]["content"] = "v2"
        f.write_text(json.dumps(row))
        result = import_tasks(ws, f)
        assert result.updated == 1 and TaskRepository(ws).count() == 1
        assert TaskRepository(ws).get("a").prompt == "v2"


def test_bad_file_imports_nothing(tmp_path):
    good = json.dumps({"id": "a", "category": "c", "messages": [{"role": "user", "content": "x"}], "tools": []})
    f = tmp_path / "t.jsonl"
    f.write_text(good + "\n" + '{"id": "b"}\n')
    with Workspace.open(tmp_path / "ws") as ws:
        with pytest.raises(TaskImportError) as err:
            import_tasks(ws, f)
        assert "t.jsonl:2" in str(err.value)
        assert TaskRepository(ws).count() == 0
        with pytest.raises(TaskImportError):
            import_tasks(ws, tmp_path / "missing.jsonl")
        (tmp_path / "latin.csv").write_bytes("prompt,category\ncaf\xe9,x\n".encode("latin-1"))
        with pytest.raises(TaskImportError) as err:
            import_tasks(ws, tmp_path / "latin.csv")
        assert "UTF-8" in str(err.value)
