"""Prompt distillation: a student tier's generation may carry demonstrations taken from the
teacher's trajectories, placed as few-shot turns before the task.

Modes: "fixed" (the same k demonstrations before every task) and "nearest" (per request, the k
demonstrations whose task is most similar to the request, by the app's offline embedding,
`core.agreement.sparse_offline_embedding`, over an index built when the program is made and carried
in the exported policy).

`apply_demonstrations` is the one home of how a request's messages change: `core.trajectory.build_request`
calls it, so collection, evaluation, batch files and the gateway send the same messages.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cascade_studio.core.agreement import sparse_offline_embedding

FORMAT = "cascade-studio/demonstrations@1"
FIXED, NEAREST = "fixed", "nearest"
MODES = (FIXED, NEAREST)
MAX_K = 32
EMBEDDING_DIMS = 512  # core.agreement.offline_embedding's default
# the content of the tool results after a demonstration's calls: the API wants every call answered,
# and the teacher's demonstration is its decision, not what the tool returned
TOOL_RESULT_NOTE = "(example only: the result of this call is not part of the demonstration)"


class DemonstrationsError(ValueError):
    """A demonstrations document that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Demonstration:
    """One teacher trajectory as few-shot turns: the task's turns (system messages left out), the
    teacher's answer as an assistant message, and a placeholder result for each tool call."""

    task_id: str
    category: str
    turns: tuple[dict[str, Any], ...]
    answer: dict[str, Any]  # {"role": "assistant", "content": ..., "tool_calls": [...]} as the API takes it

    def messages(self) -> list[dict[str, Any]]:
        out = [dict(m) for m in self.turns]
        out.append(dict(self.answer))
        for call in self.answer.get("tool_calls") or []:
            out.append({"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT_NOTE})
        return out

    def query_text(self) -> str:
        return query_text(list(self.turns))

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "category": self.category, "turns": list(self.turns), "answer": self.answer}


def query_text(messages: list[dict[str, Any]]) -> str:
    """The text a request is matched by: its user turns' text, in order."""
    parts: list[str] = []
    for m in messages:
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, list):
            parts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
        elif content is not None:
            parts.append(str(content))
    return "\n".join(parts)


def demonstration_from(task_id: str, category: str, task_messages: list[dict[str, Any]],
                       tool_calls: list[dict[str, Any]], content: str | None, *, reasoning: bool,
                       index: int) -> Demonstration:
    """A teacher's answer as a demonstration. `tool_calls` as trajectories store them
    ({"id", "name", "arguments": parsed}); their ids are replaced by stable ones (the same program
    always sends the same bytes). The teacher's text before a call is kept only with `reasoning`."""
    turns = tuple(dict(m) for m in task_messages if m.get("role") not in ("system", "developer"))
    answer: dict[str, Any] = {"role": "assistant"}
    if tool_calls:
        answer["content"] = content if reasoning and content else None
        answer["tool_calls"] = [
            {"id": f"call_demo_{index}_{j}", "type": "function",
             "function": {"name": c.get("name") or "",
                          "arguments": json.dumps(c.get("arguments") or {}, ensure_ascii=False)}}
            for j, c in enumerate(tool_calls)]
    else:
        answer["content"] = content or ""
    return Demonstration(task_id, category, turns, answer)


@dataclass(frozen=True)
class PromptProgram:
    """What a prompt-distilled generation adds to a student's requests. `demonstrations` are the k
    chosen ("fixed") or the pool the nearest are drawn from ("nearest"). `made` says how it was
    made (dataset, tasks excluded, requests and their cost); it is not part of the generation."""

    mode: str
    k: int
    demonstrations: tuple[Demonstration, ...]
    instruction: str = ""
    made: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DemonstrationsError(f"mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if not 1 <= self.k <= MAX_K:
            raise DemonstrationsError(f"k: {self.k} must be 1-{MAX_K}")

    # -- identity ------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """12 hex digits of what decides the requests (mode, k, instruction, demonstrations): part of
        the tier's generation (core.tiers.generation_params)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            blob = json.dumps([self.mode, self.k, self.instruction, [d.to_json() for d in self.demonstrations]],
                              sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            cached = hashlib.sha256(blob.encode()).hexdigest()[:12]
            object.__setattr__(self, "_fingerprint", cached)
        return cached

    # -- choosing ------------------------------------------------------------------------------
    def _index(self) -> list[dict[int, float]]:
        index = self.__dict__.get("_vectors")
        if index is None:
            index = [sparse_offline_embedding(d.query_text()) for d in self.demonstrations]
            object.__setattr__(self, "_vectors", index)
        return index

    def _matrix(self) -> Any:
        """The index as a dense (demonstrations x slots) numpy array, built once."""
        import numpy as np  # here: core.tiers imports this module, and most commands never need numpy

        matrix = self.__dict__.get("_matrix_cache")
        if matrix is None:
            matrix = np.zeros((len(self.demonstrations), EMBEDDING_DIMS))
            for d, vector in enumerate(self._index()):
                matrix[d, list(vector)] = list(vector.values())
            object.__setattr__(self, "_matrix_cache", matrix)
        return matrix

    def select(self, messages: list[dict[str, Any]]) -> list[Demonstration]:
        """The demonstrations placed before this request: all of them ("fixed"), or the k most
        similar to its user text by cosine ("nearest"), in pool order. Scores are rounded to 9
        decimals before ranking and ties go to the earlier in the pool, so the choice does not hang on
        the last bits of a float sum (the gateway and the collector may run on other machines)."""
        if self.mode == FIXED:
            return list(self.demonstrations)
        query = sparse_offline_embedding(query_text(messages))
        if not query:
            return list(self.demonstrations[: self.k])
        import numpy as np

        slots = list(query)
        scores = np.round((self._matrix()[:, slots] * np.array(list(query.values()))).sum(axis=1), 9)
        chosen = np.argsort(-scores, kind="stable")[: self.k]
        return [self.demonstrations[i] for i in sorted(chosen.tolist())]

    # -- documents -----------------------------------------------------------------------------
    def to_json(self, *, index: bool = False) -> dict[str, Any]:
        """The portable form. With `index` (exports of a "nearest" program), each demonstration
        carries its vector ([slot, value] pairs), so the gateway loads the index as it was built."""
        demos = []
        for d, v in zip(self.demonstrations, self._index() if index and self.mode == NEAREST else
                        [None] * len(self.demonstrations), strict=True):
            entry = d.to_json()
            if v is not None:
                entry["vector"] = [[i, x] for i, x in v.items()]
            demos.append(entry)
        return {"format": FORMAT, "mode": self.mode, "k": self.k, "instruction": self.instruction,
                "fingerprint": self.fingerprint(), "made": self.made, "demonstrations": demos}

    @classmethod
    def from_json(cls, doc: Any) -> PromptProgram:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise DemonstrationsError(f"demonstrations: not a {FORMAT} document")
        entries = doc.get("demonstrations")
        if not isinstance(entries, list) or not entries:
            raise DemonstrationsError("demonstrations: missing or empty")
        demos, vectors = [], []
        for i, e in enumerate(entries):
            if not (isinstance(e, dict) and isinstance(e.get("turns"), list) and isinstance(e.get("answer"), dict)):
                raise DemonstrationsError(f"demonstrations[{i}]: needs turns (a list) and answer (an object)")
            demos.append(Demonstration(str(e.get("task_id", "")), str(e.get("category", "")),
                                       tuple(e["turns"]), e["answer"]))
            vec = e.get("vector")
            vectors.append(None if vec is None else {int(s): float(x) for s, x in vec})
        try:
            k = int(doc.get("k"))
        except (TypeError, ValueError):
            raise DemonstrationsError("k: missing or not a whole number") from None
        program = cls(str(doc.get("mode")), k, tuple(demos), str(doc.get("instruction") or ""),
                      dict(doc.get("made") or {}))
        if all(v is not None for v in vectors):
            object.__setattr__(program, "_vectors", vectors)  # the index as built at export
        stated = doc.get("fingerprint")
        if stated is not None and stated != program.fingerprint():
            raise DemonstrationsError(f"fingerprint: {stated!r} does not match the demonstrations "
                                      f"({program.fingerprint()}); the document was changed after export")
        return program

    def summary(self) -> str:
        pool = len(self.demonstrations)
        what = (f"{pool} fixed demonstrations" if self.mode == FIXED
                else f"the {self.k} nearest of {pool} demonstrations")
        return what + (" and an instruction" if self.instruction else "")


def apply_demonstrations(program: PromptProgram | None, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request's messages with the program's instruction and demonstrations placed after its
    leading system/developer messages and before the task. Pure; `messages` is not changed."""
    if program is None:
        return list(messages)
    head = 0
    while head < len(messages) and messages[head].get("role") in ("system", "developer"):
        head += 1
    added: list[dict[str, Any]] = []
    if program.instruction:
        added.append({"role": "system", "content": program.instruction})
    for demo in program.select(messages[head:]):
        added += demo.messages()
    return [*messages[:head], *added, *messages[head:]]


def choose_fixed(candidates: list[tuple[str, str, bool]], k: int, seed: int = 0) -> list[str]:
    """k task ids for a "fixed" program from (task id, category, the student disagreed): stratified
    by category (round-robin over the categories, largest first), within a category the tasks the
    student disagreed on first, then in a stable pseudo-random order of `seed`."""
    by_category: dict[str, list[tuple[bool, str, str]]] = {}
    for task_id, category, disagreed in candidates:
        rank = hashlib.sha256(f"{seed}|{task_id}".encode()).hexdigest()
        by_category.setdefault(category, []).append((not disagreed, rank, task_id))
    queues = [sorted(v) for _, v in sorted(by_category.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    chosen: list[str] = []
    depth = 0
    while len(chosen) < k and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(chosen) < k:
                chosen.append(q[depth][2])
        depth += 1
    return chosen


INSTRUCTION_SYSTEM = (
    "You write instructions for a smaller model that answers the same tasks as you. Below are tasks where its "
    "answer differed from yours. Write one short instruction (at most 10 bullet points, no preamble) that would "
    "make it answer as you did: which tool to choose when, how to fill arguments, when to call no tool. Do not "
    "mention these particular tasks.")


def answer_text(tool_calls: list[dict[str, Any]], text: str | None) -> str:
    """A recorded answer in one line: its calls (name and arguments) or its text."""
    if tool_calls:
        return "; ".join(f"{c.get('name')}({json.dumps(c.get('arguments') or {}, ensure_ascii=False)})"
                         for c in tool_calls)
    return (text or "").strip() or "(no answer)"


def instruction_request(cases: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """The messages of the one request asking the teacher for an instruction, from (task text,
    teacher's answer, student's answer) of tasks the student answered otherwise."""
    body = "\n\n".join(f"Task {i + 1}: {task}\nYour answer: {teacher}\nThe smaller model's answer: {student}"
                       for i, (task, teacher, student) in enumerate(cases))
    return [{"role": "system", "content": INSTRUCTION_SYSTEM}, {"role": "user", "content": body}]
