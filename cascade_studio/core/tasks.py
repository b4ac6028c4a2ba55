"""Tasks: one request an agent must answer (messages + tools), with an optional expected answer.

Parsers for the three import formats live here as pure functions over text; reading files is the
services layer's job. Every error names the file, the line and the field.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cascade_studio.core.episode import environment_name_problem
from cascade_studio.core.errors import UserError
from cascade_studio.core.jsonl import JsonProblem, iter_objects, split_lines
from cascade_studio.core.jsonl import loads as safe_loads
from cascade_studio.core.user_sim import user_spec_problem

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_STEPS_LIMIT = 100
_BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array"}


@dataclass
class Task:
    id: str
    category: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    expected: Any = None
    source: str = ""
    environment: str = ""  # the environment whose tools the task is run with (an episode); "" = one request
    max_steps: int | None = None  # an episode's step limit (None: the run's default)
    user: dict[str, Any] | None = None  # a conversational task's user (core.user_sim): scripted or simulated

    def content_hash(self) -> str:
        parts: list[Any] = [self.category, self.messages, self.tools, self.expected]
        if self.environment or self.max_steps is not None:  # tasks without them hash as before
            parts += [self.environment, self.max_steps]
        if self.user is not None:
            parts.append(self.user)
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()

    @property
    def is_episode(self) -> bool:
        return bool(self.environment)

    @property
    def prompt(self) -> str:
        for m in reversed(self.messages):
            if m.get("role") == "user":
                content = m.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        return ""

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("function", {}).get("name", "")) for t in self.tools]

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "category": self.category, "messages": self.messages, "tools": self.tools}
        if self.expected is not None:
            out["expected"] = self.expected
        if self.environment:
            out["environment"] = self.environment
        if self.max_steps is not None:
            out["max_steps"] = self.max_steps
        if self.user is not None:
            out["user"] = self.user
        return out


class TaskImportError(UserError, ValueError):
    def __init__(self, file: str, line: int | None, field_name: str | None, message: str) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field_name + ': ' if field_name else ''}{message}")
        self.file, self.line, self.field, self.message = file, line, field_name, message


# -- helpers ------------------------------------------------------------------------------------
def _jsonl(text: str, file: str):
    try:
        yield from iter_objects(split_lines(text))
    except JsonProblem as exc:
        raise TaskImportError(file, exc.line, None, exc.message) from None


def _check_messages(messages: Any, file: str, line: int) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise TaskImportError(file, line, "messages", "must be a non-empty list of chat messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise TaskImportError(file, line, f"messages[{i}].role",
                                  "must be one of system, developer, user, assistant, tool")
        if "content" not in m and not m.get("tool_calls"):
            raise TaskImportError(file, line, f"messages[{i}].content", "is missing")
        content = m.get("content")
        if content is not None and not isinstance(content, str) and not (
                isinstance(content, list) and all(isinstance(p, dict) and isinstance(p.get("type"), str)
                                                  for p in content)):
            raise TaskImportError(file, line, f"messages[{i}].content",
                                  "must be text or a list of content parts ({\"type\": ..., ...})")
        calls = m.get("tool_calls")
        if calls is not None and not (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)):
            raise TaskImportError(file, line, f"messages[{i}].tool_calls", "must be a list of tool call objects")
    return messages


def _check_tools(tools: Any, file: str, line: int) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise TaskImportError(file, line, "tools", "must be a list of OpenAI tool definitions (may be empty)")
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            raise TaskImportError(file, line, f"tools[{i}]", 'must look like {"type": "function", "function": {...}}')
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise TaskImportError(file, line, f"tools[{i}].function.name",
                                  f"{name!r} is not a valid tool name (letters, digits, _ and -, at most 64)")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise TaskImportError(file, line, f"tools[{i}].function.parameters", "must be a JSON Schema object")
    return tools


# -- native JSONL --------------------------------------------------------------------------------
def parse_native(text: str, file: str) -> list[Task]:
    tasks = []
    for line, row in _jsonl(text, file):
        for key in ("id", "category", "messages", "tools"):
            if key not in row:
                raise TaskImportError(file, line, key, "is missing (required: id, category, messages, tools)")
        if not isinstance(row["id"], str | int) or str(row["id"]).strip() == "":
            raise TaskImportError(file, line, "id", "must be a non-empty string")
        if not isinstance(row["category"], str) or not row["category"].strip():
            raise TaskImportError(file, line, "category", "must be a non-empty string")
        environment = row.get("environment") or ""
        problem = environment_name_problem(environment) if environment else None
        if problem:
            raise TaskImportError(file, line, "environment", problem)
        max_steps = row.get("max_steps")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)
                                      or not 1 <= max_steps <= MAX_STEPS_LIMIT):
            raise TaskImportError(file, line, "max_steps", f"must be a whole number from 1 to {MAX_STEPS_LIMIT}")
        problem = user_spec_problem(row.get("user"))
        if problem:
            raise TaskImportError(file, line, "user", problem)
        if row.get("user") is not None and not environment:
            raise TaskImportError(file, line, "user", "a conversation with a user is an agent episode: name its "
                                                      "environment too")
        tasks.append(Task(id=str(row["id"]), category=row["category"].strip(),
                          messages=_check_messages(row["messages"], file, line),
                          tools=_check_tools(row["tools"], file, line), expected=row.get("expected"), source=file,
                          environment=environment, max_steps=max_steps, user=row.get("user")))
    return _unique(tasks, file)


# -- BFCL ----------------------------------------------------------------------------------------
def bfcl_schema(schema: Any) -> Any:
    """Map BFCL's Python-flavoured types to JSON Schema: dict->object, float->number,
    tuple->array, any->(no type)."""
    if isinstance(schema, list):
        return [bfcl_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            if value == "any":
                continue
            out[key] = _BFCL_TYPES.get(value, value)
        elif key in ("properties",) and isinstance(value, dict):
            out[key] = {k: bfcl_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
            out[key] = bfcl_schema(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def bfcl_tool_name(name: str) -> str:
    """OpenAI tool names allow [A-Za-z0-9_-]; BFCL uses dots (math.factorial), as its own
    harness does for OpenAI models we replace them with underscores."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]


# The published layouts, v1 to v4 (all one JSON object a line):
# - gorilla_openfunctions_v1_test_<category>.json (Feb-Jun 2024): "question" is a string, "function"
#   one definition (or a list), the id is "id", "index" or absent; its possible_answer lines are the
#   answer itself, {name: {arg: [values]}} (several calls as "name_1"/"name 2" keys, or a list),
#   or {"id", "ground_truth": {...}}, and pair with the task on the same line when they have no id.
# - BFCL_v1_ / BFCL_v2_ files: "question" is a list of messages, ids like "v1_simple_0".
# - BFCL_v3_ / BFCL_v4_ files: "question" is a list of turns (lists of messages); the answer lines
#   are {"id", "ground_truth": [{name: {arg: [values]}}, ...]}.
_BFCL_CATEGORY_NAMES = {  # v1's names -> the ones used since
    "multiple_function": "multiple", "parallel_function": "parallel",
    "parallel_multiple_function": "parallel_multiple", "executable_simple": "exec_simple",
    "executable_multiple_function": "exec_multiple", "executable_parallel_function": "exec_parallel",
    "executable_parallel_multiple_function": "exec_parallel_multiple", "relevance": "irrelevance",
}
_NO_CALL_CATEGORIES = ("irrelevance", "live_irrelevance")  # the right answer is to call no function


def bfcl_category(task_id: str | None, file: str) -> str:
    """The BFCL test category: from the id ("live_simple_3-2-0" -> live_simple, "v1_simple_0" ->
    simple), else from the file name (gorilla_openfunctions_v1_test_parallel_function.json ->
    parallel); v1's names are mapped to today's."""
    if task_id and "_" in task_id:
        name = task_id.rsplit("_", 1)[0]
    else:
        stem = re.sub(r"\.jsonl?$", "", file.rsplit("/", 1)[-1])
        match = re.match(r"^(?:gorilla_openfunctions_v\d+_test_|BFCL_v\d+_)(.+)$", stem)
        name = match.group(1) if match else "bfcl"
    name = re.sub(r"^v\d+_", "", name)
    return _BFCL_CATEGORY_NAMES.get(name, name)


def _bfcl_messages(question: Any, file: str, line: int) -> list[dict[str, Any]]:
    if isinstance(question, str) and question.strip():  # v1: the user's request as text
        return [{"role": "user", "content": question}]
    if not isinstance(question, list) or not question:
        raise TaskImportError(file, line, "question", "must be a non-empty string, list of messages or list of turns")
    turn = question[0] if isinstance(question[0], list) else question  # v3+: turns; the first one is asked
    return _check_messages(turn, file, line)


def _bfcl_calls(truth: Any, function_names: list[str]) -> list[dict[str, Any]]:
    """A ground truth as a list of calls. v1 wrote one call as a dict, and several as one dict
    whose keys repeat the name with a suffix ("spotify.play_1", "calculate_bmi 2")."""
    if isinstance(truth, list):
        return truth
    calls = []
    for key, args in truth.items():
        name = key
        if key not in function_names:
            base = re.sub(r"[_ ]\d+$", "", key)
            name = base if base in function_names else key
        calls.append({name: args})
    return calls


def parse_bfcl(text: str, file: str, answers: dict[str, Any] | None = None, *,
               irrelevance: bool = False) -> list[Task]:
    """BFCL task lines in any published layout (see above). `answers` maps ids (or "#<n>", the
    n-th line, for answers without ids) to ground truths as parse_bfcl_answers reads them."""
    tasks = []
    for position, (line, row) in enumerate(_jsonl(text, file)):
        for key in ("question", "function"):
            if key not in row:
                raise TaskImportError(file, line, key, "is missing (a BFCL line has id, question, function)")
        raw_id = row.get("id", row.get("index"))
        if raw_id is not None and (not isinstance(raw_id, str | int) or str(raw_id).strip() == ""):
            raise TaskImportError(file, line, "id", "must be a non-empty string")
        category = bfcl_category(None if raw_id is None else str(raw_id), file)
        task_id = str(raw_id) if raw_id is not None else f"{category}_{position}"
        messages = _bfcl_messages(row["question"], file, line)
        functions = row["function"]
        if isinstance(functions, dict):  # v1: a single definition
            functions = [functions]
        if not isinstance(functions, list):
            raise TaskImportError(file, line, "function", "must be a function definition or a list of them")
        tools = []
        for i, fn in enumerate(functions):
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise TaskImportError(file, line, f"function[{i}].name", "is missing")
            params = bfcl_schema(fn.get("parameters") or {"type": "object", "properties": {}})
            tools.append({"type": "function", "function": {
                "name": bfcl_tool_name(fn["name"]), "description": str(fn.get("description", "")),
                "parameters": params}})
        expected: Any = None
        truth = None
        if answers is not None:
            truth = answers.get(task_id, answers.get(f"#{position}"))
        if truth is not None:
            names = [fn["name"] for fn in functions]
            expected = [{bfcl_tool_name(name): args for name, args in call.items()}
                        for call in _bfcl_calls(truth, names)]
        elif irrelevance or category in _NO_CALL_CATEGORIES:
            expected = []
        tasks.append(Task(task_id, category, messages, _check_tools(tools, file, line), expected, file))
    return _unique(tasks, file)


def _check_call(call: Any) -> bool:
    return (isinstance(call, dict) and len(call) >= 1
            and all(isinstance(k, str) and isinstance(v, dict) and all(isinstance(a, str) for a in v)
                    for k, v in call.items()))


def parse_bfcl_answers(text: str, file: str) -> dict[str, Any]:
    """Answer lines keyed by id; lines without one (v1) are keyed "#<n>", their position."""
    answers: dict[str, Any] = {}
    shape = "a list of calls [{name: {argument: [accepted values]}}] or one call {name: {...}}"
    for position, (line, row) in enumerate(_jsonl(text, file)):
        if "ground_truth" in row:
            if "id" not in row:
                raise TaskImportError(file, line, "id", "is missing (an answer line has id, ground_truth)")
            key, truth = str(row["id"]), row["ground_truth"]
        elif "id" in row:
            raise TaskImportError(file, line, "ground_truth", "is missing (an answer line has id, ground_truth)")
        else:  # v1 without ids: the line is the answer itself
            key, truth = f"#{position}", row
        if isinstance(truth, list):
            if not all(isinstance(c, dict) and len(c) == 1 and _check_call(c) for c in truth):
                raise TaskImportError(file, line, "ground_truth", f"must be {shape}")
        elif not _check_call(truth):
            raise TaskImportError(file, line, "ground_truth", f"must be {shape}")
        answers[key] = truth
    return answers


# -- CSV -----------------------------------------------------------------------------------------
CSV_FIELD_LIMIT = 16 * 1024 * 1024  # a prompt may be long; the csv module's default (128 KiB) is too small


def parse_csv(text: str, file: str) -> list[Task]:
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.DictReader(io.StringIO(text))
    try:
        return _parse_csv(reader, file)
    except csv.Error as exc:
        raise TaskImportError(file, reader.line_num or None, None, f"not readable as CSV ({exc})") from None
    finally:
        csv.field_size_limit(previous)


def _parse_csv(reader: csv.DictReader, file: str) -> list[Task]:
    if reader.fieldnames is None or "prompt" not in reader.fieldnames:
        raise TaskImportError(file, 1, "prompt", "column is missing (a CSV needs the columns prompt, category)")
    if "category" not in reader.fieldnames:
        raise TaskImportError(file, 1, "category", "column is missing (a CSV needs the columns prompt, category)")
    tasks = []
    for row in reader:
        line = reader.line_num
        prompt = (row.get("prompt") or "").strip()
        category = (row.get("category") or "").strip()
        if not prompt:
            raise TaskImportError(file, line, "prompt", "is empty")
        if not category:
            raise TaskImportError(file, line, "category", "is empty")
        task_id = (row.get("id") or "").strip() or "csv-" + hashlib.sha1(f"{category}\n{prompt}".encode()).hexdigest()[:12]
        tasks.append(Task(task_id, category, [{"role": "user", "content": prompt}], [], row.get("expected") or None, file))
    return _unique(tasks, file)


def _unique(tasks: list[Task], file: str) -> list[Task]:
    seen: dict[str, int] = {}
    for index, t in enumerate(tasks):
        if t.id in seen:
            raise TaskImportError(file, None, "id", f"{t.id!r} appears twice in the file (entries {seen[t.id] + 1} "
                                                    f"and {index + 1}); ids must be unique")
        seen[t.id] = index
    if not tasks:
        raise TaskImportError(file, None, None, "the file holds no tasks")
    return tasks


def detect_format(text: str, file: str) -> str:
    lower = file.lower()
    if lower.endswith(".csv"):
        return "csv"
    first = next((ln for ln in text.split("\n") if ln.strip()), "")
    try:
        row = safe_loads(first)
    except JsonProblem:
        raise TaskImportError(file, 1, None, "cannot tell the format: the first line is not JSON and the file "
                                             "is not a .csv; use --format native|bfcl|csv") from None
    if isinstance(row, dict) and "question" in row and "function" in row:
        return "bfcl"
    return "native"
