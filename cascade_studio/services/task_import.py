"""Read task files (native JSONL, BFCL, CSV) and store them, all or nothing."""

from __future__ import annotations

from pathlib import Path

from cascade_studio.core.tasks import (
    TaskImportError,
    detect_format,
    parse_bfcl,
    parse_bfcl_answers,
    parse_csv,
    parse_native,
)
from cascade_studio.services import events
from cascade_studio.services.input_files import read_text
from cascade_studio.services.token_estimate import calibrate
from cascade_studio.store.tasks import ImportResult, TaskRepository
from cascade_studio.store.workspace import Workspace

FORMATS = ("native", "bfcl", "csv")


def _read(path: Path) -> str:
    """A regular file's UTF-8 text (a folder or FIFO is refused before anything is read)."""
    return read_text(path, lambda problem, line: TaskImportError(str(path), line, None, problem))


def find_bfcl_answers(path: Path) -> Path | None:
    """BFCL keeps answers in possible_answer/<same name>; the bundled sample uses <stem>.possible_answer.json."""
    for candidate in (path.parent / "possible_answer" / path.name,
                      path.with_name(f"{path.stem}.possible_answer{path.suffix}")):
        if candidate.exists():
            return candidate
    return None


def load_tasks(path: Path, fmt: str | None = None, answers: Path | None = None):
    path = Path(path)
    text = _read(path)
    fmt = fmt or detect_format(text, path.name)
    if fmt not in FORMATS:
        raise TaskImportError(str(path), None, "format", f"unknown format {fmt!r}; use native, bfcl or csv")
    if fmt == "native":
        return parse_native(text, path.name)
    if fmt == "csv":
        return parse_csv(text, path.name)
    answers = answers or find_bfcl_answers(path)
    answer_map = parse_bfcl_answers(_read(answers), answers.name) if answers else None
    return parse_bfcl(text, path.name, answer_map, irrelevance="irrelevance" in path.name)


def import_tasks(ws: Workspace, path: Path, fmt: str | None = None, answers: Path | None = None, *,
                 environment: str | None = None, max_steps: int | None = None) -> ImportResult:
    """Import a task file; `environment` (and `max_steps`) make every task of it an agent episode."""
    tasks = load_tasks(path, fmt, answers)
    if environment is not None or max_steps is not None:
        from cascade_studio.core.episode import environment_name_problem
        from cascade_studio.core.tasks import MAX_STEPS_LIMIT

        problem = environment_name_problem(environment) if environment else None
        if problem:
            raise TaskImportError(str(path), None, "--env", problem)
        if max_steps is not None and not 1 <= max_steps <= MAX_STEPS_LIMIT:
            raise TaskImportError(str(path), None, "--max-steps", f"must be from 1 to {MAX_STEPS_LIMIT}")
        for t in tasks:
            if environment:
                t.environment = environment
            if max_steps is not None:
                t.max_steps = max_steps
    result = TaskRepository(ws).upsert(tasks)
    if result.added or result.updated:  # tokens per byte, so a run's estimate needs no tokenizer (token_estimate)
        calibrate(ws, tasks)  # (a re-import that changes nothing, as each demo start, counts nothing)
    events.publish(events.TASKS, ws)
    return result
