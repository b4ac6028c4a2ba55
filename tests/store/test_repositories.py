"""The repositories that took the SQL out of services and ui: jobs, datasets, scenarios."""

from pathlib import Path

from cascade_studio.core.finetune import FINISHED_JOB_STATUSES, JobEvent, JobState, teacher_logprobs_path
from cascade_studio.store.datasets import DatasetRepository
from cascade_studio.store.jobs import JobStore
from cascade_studio.store.scenarios import ScenarioRepository
from cascade_studio.store.workspace import Workspace


def test_jobs_unfinished_follow_the_finished_statuses(tmp_path):
    with Workspace.open(tmp_path / "ws") as ws:
        store = JobStore(ws)
        statuses = ["running", "validating_files", *sorted(FINISHED_JOB_STATUSES)]
        for i, status in enumerate(statuses):
            store.save(JobState(f"job-{i}", status, "base", "train.jsonl"), backend="openai")
        assert {j["status"] for j in store.unfinished()} == {"running", "validating_files"}
        assert store.count_unfinished() == 2
        finished = store.get("job-2")
        assert finished["finished_at"] is not None and store.get("job-0")["finished_at"] is None
        store.add_events("job-0", [JobEvent("e2", 2, "info", "metrics", "m", {"step": 2}),
                                   JobEvent("e1", 1, "info", "metrics", "m", {"step": 1})])
        store.add_events("job-0", [JobEvent("e1", 1, "info", "metrics", "m", {"step": 1})])  # no duplicate
        assert store.event_ids("job-0") == {"e1", "e2"} and [m["step"] for m in store.metrics("job-0")] == [1, 2]


def test_datasets_record_find_and_split(tmp_path):
    with Workspace.open(tmp_path / "ws") as ws:
        repo = DatasetRepository(ws)
        assert repo.validation_task_ids() is None
        first = repo.add(tmp_path / "a.jsonl", tmp_path / "a.validation.jsonl", "openai", {"tier": None}, 9, 1, [1, 2],
                         ["t1"])
        second = repo.add(tmp_path / "b.jsonl", None, "openai", {}, 3, 0, [3], [])
        assert repo.find_by_path(tmp_path / "a.jsonl") == (first, str((tmp_path / "a.validation.jsonl").resolve()))
        assert repo.find_by_path(tmp_path / "missing.jsonl") is None
        assert repo.validation_task_ids() == (first, ["t1"])  # the newest dataset *with* a split
        assert repo.validation_task_ids(second) is None
        assert [d["id"] for d in repo.list()] == [second, first] and repo.list()[1]["filters"] == {"tier": None}
        rebuilt = repo.add(tmp_path / "a.jsonl", None, "openai", {}, 4, 0, [4], [])  # the same file built again
        assert repo.find_by_path(tmp_path / "a.jsonl") == (rebuilt, None)  # the record of what the file holds now


def test_scenarios_replace_by_name(tmp_path):
    with Workspace.open(tmp_path / "ws") as ws:
        repo = ScenarioRepository(ws)
        repo.save("a", {"mode": "cascade"}, {"cost": 1.5})
        repo.save("a", {"mode": "routing"}, {"cost": 2.0})
        repo.save("b", {}, {})
        assert [(s["name"], s["params"]) for s in repo.list()] == [("a", {"mode": "routing"}), ("b", {})]
        repo.delete("a")
        assert [s["name"] for s in repo.list()] == ["b"]


def test_teacher_logprobs_sit_beside_the_training_file():
    assert teacher_logprobs_path(Path("/d/train.jsonl")) == Path("/d/train.logprobs.jsonl")
