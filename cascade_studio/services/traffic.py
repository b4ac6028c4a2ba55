"""Bring production home: `traffic import PATH` reads the gateway's request logs into the workspace.

- Every request becomes a row of `production_requests` (the Production page's figures).
- With `--log-content full`, a request becomes a task (category from the request's metadata, else
  "production"; the same messages and tools make the same task), and each tier's answer a trajectory
  of the generation that gave it, tagged `hard-case` when the cascade escalated. A shadow sample's
  teacher answer becomes a teacher trajectory, so the shadow pairs feed Evaluation's agreement too.
- Re-importing a file updates instead of duplicating. A bad line refuses its file, naming the line;
  a torn line (a record cut short by a full disk or a crash) is skipped with a note naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade_studio.core.errors import UserError
from cascade_studio.core.jsonl import JsonProblem, loads
from cascade_studio.core.production import production_report
from cascade_studio.core.tasks import Task
from cascade_studio.core.tiers import Tier, teacher_of
from cascade_studio.core.traffic import DEFAULT_CATEGORY, HARD_CASE_TAG, TrafficLineError, check_line, digest
from cascade_studio.core.trajectory import ResponseError, build_request, trajectory_from_response
from cascade_studio.services import events
from cascade_studio.services.bounded_http import stored_answer_problem
from cascade_studio.services.input_files import open_lines
from cascade_studio.services.token_estimate import calibrate
from cascade_studio.store.evaluations import history
from cascade_studio.store.production import ProductionRepository
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectory_import import TrajectoryImport
from cascade_studio.store.transactions import write_transaction
from cascade_studio.store.workspace import Workspace

SHADOW_TAG = "shadow"


class TrafficImportError(UserError, ValueError):
    pass


@dataclass
class TrafficImportResult:
    files: int = 0
    requests: int = 0
    new_requests: int = 0
    shadows: int = 0
    tasks: int = 0
    trajectories: int = 0
    hard_cases: int = 0  # tasks with an escalated request (what the Production page and `traffic report` count)
    escalated: int = 0  # requests escalated (a task asked twice counts twice)
    without_content: int = 0
    notes: list[str] = field(default_factory=list)
    hard_case_ids: set[str] = field(default_factory=set, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "hard_case_ids"}

    def __str__(self) -> str:
        text = (f"{self.requests} requests ({self.new_requests} new) and {self.shadows} shadow samples from "
                f"{self.files} file(s): {self.tasks} tasks, {self.trajectories} trajectories; {self.escalated} "
                f"requests escalated, on {self.hard_cases} tasks (hard cases)")
        if self.without_content:
            text += (f"; {self.without_content} requests were logged without content (--log-content none or hash), "
                     "so they count in the figures but make no tasks")
        return text


def log_files(path: Path | str) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
        if not files:
            raise TrafficImportError(f"{path}: no .jsonl request logs in this folder; point at the gateway's --log DIR")
        return files
    return [path]


def _task_of(content: dict[str, Any], category: str) -> Task | None:
    messages, tools = content.get("messages"), content.get("tools") or []
    if not isinstance(messages, list) or not messages or not isinstance(tools, list):
        return None
    return Task(id="prod-" + digest([messages, tools])[:16], category=category, messages=messages, tools=tools,
                source="production")


class _FileImport:
    def __init__(self, ws: Workspace, path: Path, tiers: dict[int, Tier]) -> None:
        self.ws, self.path, self.tiers = ws, path, tiers
        self.requests: list[dict[str, Any]] = []
        self.shadows: dict[str, bool | None] = {}
        self.tasks: dict[str, Task] = {}
        self.changed_tasks = 0  # tasks the import added or changed (their tokens are counted)
        self.trajs: dict[int, list[tuple[Any, str, str | None]]] = {}  # tier -> (trajectory, category, tags)
        self.torn: list[int] = []  # line numbers skipped as torn
        self.notes: list[str] = []

    def fail(self, line: int, problem: str) -> TrafficImportError:
        return TrafficImportError(f"{self.path.name}:{line}: {problem}")

    def read(self) -> None:
        with open_lines(self.path, lambda problem, line: TrafficImportError(
                f"{self.path.name}{f':{line}' if line else ''}: {problem}")) as lines:
            for number, text in enumerate(lines, start=1):
                if not text.strip():
                    continue
                for row in self._records(number, text):
                    try:
                        self.line(check_line(row))
                    except TrafficLineError as exc:
                        raise self.fail(number, str(exc)) from None
                    except ResponseError as exc:
                        raise self.fail(number, f"a logged response: {exc}") from None
        if self.torn and not (self.requests or self.shadows):
            raise self.fail(self.torn[0], "not a gateway request log: no line of it is a whole record")

    def _records(self, number: int, text: str) -> list[dict[str, Any]]:
        """The record of one line. A torn line (a record the disk took only part of, with the next
        record glued on by gateways before issue 33, or cut off by a crash) is skipped with a note, and a
        whole record glued onto its end is kept."""
        try:
            row = loads(text)
        except JsonProblem as exc:
            if not exc.syntax or not text.lstrip().startswith("{"):
                raise self.fail(number, exc.message) from None
            self.torn.append(number)
            glued = self._glued(text)
            kept = "; the whole record glued onto its end was imported" if glued else ""
            self.notes.append(f"{self.path.name}:{number}: skipped a torn line (a record cut short, e.g. by a full "
                              f"disk){kept}")
            return glued
        if not isinstance(row, dict):
            raise self.fail(number, "each line must be a JSON object")
        return [row]

    @staticmethod
    def _glued(text: str) -> list[dict[str, Any]]:
        start = text.find('{"format"', 1)
        while start > 0:
            try:
                row = loads(text[start:])
            except JsonProblem:
                start = text.find('{"format"', start + 1)
                continue
            return [row] if isinstance(row, dict) else []
        return []

    def line(self, row: dict[str, Any]) -> None:
        content = row.get("content") or {}
        category = str(row.get("category") or DEFAULT_CATEGORY)
        task = _task_of(content, category) if "messages" in content else None
        if task is not None:
            self.tasks[task.id] = task
        if row["kind"] == "shadow":
            self.shadows[row["id"]] = row.get("agree")
            if task is not None:
                self.answer(task, row["teacher"], content, row["time"], SHADOW_TAG)
            return
        attempts = row["attempts"]
        self.requests.append({
            "id": row["id"], "time": row["time"], "category": category, "task_id": task.id if task else None,
            "answered_by": row.get("answered_by"), "escalated": int(bool(row.get("escalated"))),
            "tiers_tried": len(attempts), "latency_ms": float(row["latency_ms"]), "cost_micro": int(row["cost_micro"]),
            "teacher_only_micro": row.get("teacher_only_micro"), "attempts": attempts,
            "shadow_agree": None, "source": self.path.name})
        if task is not None:
            tags = HARD_CASE_TAG if row.get("escalated") else None
            for attempt in attempts:
                self.answer(task, attempt, content, row["time"], tags)

    def answer(self, task: Task, attempt: dict[str, Any], content: dict[str, Any], time: str,
               tags: str | None) -> None:
        response = (content.get("responses") or {}).get(str(attempt["tier"]))
        if attempt["status"] != "ok" or not isinstance(response, dict):
            return
        tier = self.tiers.get(attempt["tier"])
        if tier is None:
            raise TrafficLineError(f"tier {attempt['tier']} answered in production but this workspace has no tier "
                                   f"{attempt['tier']}; define the policy's tiers first (`tiers set` or `tiers import`)")
        request = build_request(tier, task.messages, task.tools)
        traj = trajectory_from_response(task.id, tier, request, response, float(attempt.get("latency_ms") or 0),
                                        finished_at=time)
        if problem := stored_answer_problem(traj.content):
            raise TrafficLineError(problem)
        traj.model = str(attempt.get("model") or traj.model)
        traj.generation = str(attempt.get("generation") or traj.generation)  # the generation that answered
        traj.cost_micro = int(attempt.get("cost_micro", traj.cost_micro))  # as billed in production
        self.trajs.setdefault(tier.tier, []).append((traj, task.category, tags))

    def store(self, result: TrafficImportResult) -> None:
        """The file's tasks, trajectories and requests in one transaction: a kill leaves all or none."""
        with write_transaction(self.ws.conn):
            self._store(result)

    def _store(self, result: TrafficImportResult) -> None:
        production = ProductionRepository(self.ws)
        known = production.known_ids(r["id"] for r in self.requests)
        if self.tasks:
            stored = TaskRepository(self.ws).upsert(list(self.tasks.values()))
            self.changed_tasks = stored.added + stored.updated
        for tier_no, items in sorted(self.trajs.items()):
            tier = self.tiers[tier_no]
            with TrajectoryImport(self.ws, tier_no, tier.model, f"traffic:{self.path.name}") as store:
                for traj, category, tags in items:
                    store.put(traj, category, tags=tags)
            result.trajectories += len(items)
        shadows = {rid: agree for rid, agree in self.shadows.items()}
        for r in self.requests:  # a shadow line of the same file: set on the row before it is written
            if r["id"] in shadows:
                r["shadow_agree"] = None if shadows[r["id"]] is None else int(shadows.pop(r["id"]))
        production.put_all(self.requests, shadows)
        result.files += 1
        result.notes += self.notes
        result.requests += len(self.requests)
        result.new_requests += sum(1 for r in self.requests if r["id"] not in known)
        result.shadows += len(self.shadows)
        result.tasks += len(self.tasks)
        result.escalated += sum(1 for r in self.requests if r["escalated"])
        result.hard_case_ids.update(r["task_id"] for r in self.requests if r["escalated"] and r["task_id"])
        result.hard_cases = len(result.hard_case_ids)
        result.without_content += sum(1 for r in self.requests if r["task_id"] is None)


def import_traffic(ws: Workspace, path: Path | str,
                   progress: Callable[[int, int], None] | None = None) -> TrafficImportResult:
    """Import a gateway log file, or every .jsonl file of a log folder (each file all or nothing)."""
    files = log_files(path)
    tiers = {t.tier: t for t in TierRepository(ws).list()}
    result = TrafficImportResult()
    imported: list[Task] = []
    for i, file in enumerate(files):
        one = _FileImport(ws, file, tiers)
        one.read()
        one.store(result)
        if one.changed_tasks:
            imported += one.tasks.values()
        if progress:
            progress(i + 1, len(files))
    calibrate(ws, imported)  # tokens per byte for run estimates (services.token_estimate)
    for kind in (events.TRAFFIC, events.TASKS, events.TRAJECTORIES):
        events.publish(kind, ws)
    return result


def report(ws: Workspace, alert_level: float = 0.8, bucket: str = "hour") -> dict[str, Any]:
    """The Production page's figures (and `traffic report --json`)."""
    evaluated: dict[int, float] = {}
    for row in history(ws):
        if row["agreement"] is not None:
            evaluated[row["student_tier"]] = row["agreement"]  # the latest evaluation of each student
    out = production_report(ProductionRepository(ws).summary_rows(), alert_level=alert_level, evaluated=evaluated,
                            bucket=bucket)
    out["hard_cases"] = len(ProductionRepository(ws).hard_cases())
    out["hard_cases_without_content"] = ProductionRepository(ws).escalated_without_content()
    return out


def hard_case_ids(ws: Workspace) -> list[str]:
    return [h["task_id"] for h in ProductionRepository(ws).hard_cases()]


def teacher_tier(ws: Workspace) -> Tier:
    teacher = teacher_of(TierRepository(ws).list())
    if teacher is None:
        raise TrafficImportError("the workspace has no tiers; define the teacher first")
    return teacher
