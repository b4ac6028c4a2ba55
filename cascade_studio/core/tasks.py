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

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array"}


@dataclass
class Task:
    id: str
    category: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    expected: Any = None
    source: str = ""

    def content_hash(self) -> str:
        blob = json.dumps([self.category, self.messages, self.tools, self.expected], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()

    @property
    def prompt(self) -> str:
        for m in reversed(self.messages):
            if m.get("role") == "user":
                content = m.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        return ""

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("function", {}).get("name", "")) for t in self.tools]

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "category": self.category, "messages": self.messages, "tools": self.tools}
        if self.expected is not None:
            out["expected"] = self.expected
        return out


class TaskImportError(ValueError):
    def __init__(self, file: str, line: int | None, field_name: str | None, message: str) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field_name + ': ' if field_name else ''}{message}")
        self.file, self.line, self.field, self.message = file, line, field_name, message


# -- helpers ------------------------------------------------------------------------------------
def _jsonl(text: str, file: str):
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskImportError(file, number, None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise TaskImportError(file, number, None, "each line must be a JSON object")
        yield number, row


def _check_messages(messages: Any, file: str, line: int) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise TaskImportError(file, line, "messages", "must be a non-empty list of chat messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise TaskImportError(file, line, f"messages[{i}].role",
                                  "must be one of system, developer, user, assistant, tool")
        if "content" not in m and not m.get("tool_calls"):
            raise TaskImportError(file, line, f"messages[{i}].content", "is missing")
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
        tasks.append(Task(id=str(row["id"]), category=row["category"].strip(),
                          messages=_check_messages(row["messages"], file, line),
                          tools=_check_tools(row["tools"], file, line), expected=row.get("expected"), source=file))
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


def parse_bfcl(text: str, file: str, answers: dict[str, Any] | None = None, *,
               irrelevance: bool = False) -> list[Task]:
    tasks = []
    for line, row in _jsonl(text, file):
        for key in ("id", "question", "function"):
            if key not in row:
                raise TaskImportError(file, line, key, "is missing (a BFCL line has id, question, function)")
        question = row["question"]
        if not isinstance(question, list) or not question:
            raise TaskImportError(file, line, "question", "must be a non-empty list of turns")
        turn = question[0] if isinstance(question[0], list) else question
        messages = _check_messages(turn, file, line)
        functions = row["function"]
        if not isinstance(functions, list):
            raise TaskImportError(file, line, "function", "must be a list of function definitions")
        tools = []
        for i, fn in enumerate(functions):
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise TaskImportError(file, line, f"function[{i}].name", "is missing")
            params = bfcl_schema(fn.get("parameters") or {"type": "object", "properties": {}})
            tools.append({"type": "function", "function": {
                "name": bfcl_tool_name(fn["name"]), "description": str(fn.get("description", "")),
                "parameters": params}})
        task_id = str(row["id"])
        category = task_id.rsplit("_", 1)[0] if "_" in task_id else "bfcl"
        expected: Any = None
        if answers is not None and task_id in answers:
            expected = [{bfcl_tool_name(name): args for name, args in call.items()} for call in answers[task_id]]
        elif irrelevance:
            expected = []  # BFCL irrelevance: the right answer is to call no function
        tasks.append(Task(task_id, category, messages, _check_tools(tools, file, line), expected, file))
    return _unique(tasks, file)


def parse_bfcl_answers(text: str, file: str) -> dict[str, Any]:
    answers = {}
    for line, row in _jsonl(text, file):
        if "id" not in row or "ground_truth" not in row:
            raise TaskImportError(file, line, "ground_truth", "is missing (an answer line has id, ground_truth)")
        if not isinstance(row["ground_truth"], list):
            raise TaskImportError(file, line, "ground_truth", "must be a list of calls")
        answers[str(row["id"])] = row["ground_truth"]
    return answers


# -- CSV -----------------------------------------------------------------------------------------
def parse_csv(text: str, file: str) -> list[Task]:
    reader = csv.DictReader(io.StringIO(text))
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
        row = json.loads(first)
    except json.JSONDecodeError:
        raise TaskImportError(file, 1, None, "cannot tell the format: the first line is not JSON and the file "
                                             "is not a .csv; use --format native|bfcl|csv") from None
    if isinstance(row, dict) and "question" in row and "function" in row:
        return "bfcl"
    return "native"
