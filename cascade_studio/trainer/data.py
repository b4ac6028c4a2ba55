"""Chat examples -> token ids, which positions are trained on, and the teacher's soft labels."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cascade_studio.core.distillation import find_span, merge_top

# Used when the base model's tokenizer has no chat template of its own: ChatML with Hermes-style
# tool calls (what Qwen 2.5 and many open models use), so vLLM's "hermes" parser reads the output.
CHATML_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\nYou may call one or more functions. Function signatures:\\n<tools>' }}"
    "{%- for t in tools %}{{- '\\n' + (t | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each call, answer <tool_call>\\n{\"name\": <name>, \"arguments\": <arguments>}"
    "\\n</tool_call><|im_end|>\\n' }}"
    "{%- elif messages and messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'system' and loop.first %}"
    "{%- elif m.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{%- if m.content %}{{- m.content }}{%- endif %}"
    "{%- for c in (m.tool_calls or []) %}"
    "{%- if m.content or not loop.first %}{{- '\\n' }}{%- endif %}"
    "{{- '<tool_call>\\n{\"name\": \"' + c.function.name + '\", \"arguments\": ' + (c.function.arguments | tojson)"
    " + '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif m.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + m.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


class DataError(ValueError):
    pass


def read_jsonl(path: Path) -> list[Any]:
    out = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: not JSON ({exc.msg})") from None
    return out


def _messages(example: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAI chat messages with tool-call arguments as objects (what HF chat templates expect)."""
    out = []
    for m in example["messages"]:
        m = dict(m)
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c.get("function") or {})
                if isinstance(fn.get("arguments"), str):
                    try:
                        fn["arguments"] = json.loads(fn["arguments"])
                    except json.JSONDecodeError:
                        pass
                calls.append({**c, "function": fn})
            m["tool_calls"] = calls
        if m.get("content") is None:
            m["content"] = ""
        out.append(m)
    return out


@dataclass
class Encoded:
    """One example as compact arrays (a dataset of thousands stays small in memory)."""

    ids: np.ndarray                     # int32 token ids
    labels: np.ndarray                  # bool: position j is a target (predicted from the logits at j - 1)
    soft_pos: np.ndarray | None = None  # int32 [n]: target positions with the teacher's soft labels
    soft_ids: np.ndarray | None = None  # int32 [n, K]: student token ids of the teacher's top-k
    soft_lp: np.ndarray | None = None   # float32 [n, K]: the teacher's logprobs (-inf = padding)
    truncated: bool = False

    def drop_soft(self) -> None:
        self.soft_pos = self.soft_ids = self.soft_lp = None

    def soft_at(self, pos: int) -> list[tuple[int, float]] | None:
        if self.soft_pos is None or pos not in self.soft_pos:
            return None
        i = int(np.searchsorted(self.soft_pos, pos))
        return [(int(t), float(v)) for t, v in zip(self.soft_ids[i], self.soft_lp[i], strict=True) if np.isfinite(v)]


def encode_example(tok: Any, example: dict[str, Any], max_length: int) -> Encoded | None:
    """Render with the chat template; train on every assistant message (weight 0 skips one, as in
    OpenAI's format). None when the template does not render turn by turn (nothing to train on)."""
    if not isinstance(example, dict) or not isinstance(example.get("messages"), list):
        hint = " (ShareGPT? the local trainer reads OpenAI chat JSONL: build with --format openai)" \
            if isinstance(example, dict) and "conversations" in example else ""
        raise DataError(f"an example has no \"messages\" list{hint}")
    messages = _messages(example)
    tools = example.get("tools") or None

    def render(msgs: list[dict[str, Any]], gen: bool) -> str:
        return tok.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=gen)

    full = render(messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m.get("role") != "assistant" or m.get("weight", 1) == 0 or i == 0:
            continue
        prefix, through = render(messages[:i], True), render(messages[:i + 1], False)
        if through.startswith(prefix) and full.startswith(through):
            spans.append((len(prefix), len(through)))
    if not spans:
        return None
    enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    labels = [any(s <= a < e for s, e in spans) and b > a for a, b in offsets]
    truncated = len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    if not any(labels[1:]):
        return None
    labels[0] = False
    return Encoded(np.asarray(ids, dtype=np.int32), np.asarray(labels, dtype=bool), truncated=truncated)


class TeacherTokens:
    """Teacher token text -> student token id (None when it is not exactly one student token)."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok
        self.cache: dict[str, int | None] = {}

    def id_of(self, piece: str) -> int | None:
        if piece not in self.cache:
            ids = self.tok.encode(piece, add_special_tokens=False)
            self.cache[piece] = ids[0] if len(ids) == 1 else None
        return self.cache[piece]


def attach_soft_labels(enc: Encoded, content: list[dict[str, Any]] | None, teacher: TeacherTokens) -> tuple[int, int]:
    """Place the teacher's recorded tokens (OpenAI `logprobs.content`) on the student's target
    tokens. Returns (tokens placed, teacher tokens)."""
    return attach_turns(enc, [content], teacher)


def attach_turns(enc: Encoded, turns: list[list[dict[str, Any]] | None], teacher: TeacherTokens) -> tuple[int, int]:
    """The same for a multi-turn example (an agent episode): one recorded token list per assistant
    turn, in order, each placed after the one before. Returns (tokens placed, teacher tokens)."""
    target = enc.ids.tolist()
    start = int(np.argmax(enc.labels))
    positions: list[int] = []
    tops: list[list[tuple[int, float]]] = []
    total = 0
    for content in turns:
        if not content:
            continue
        ids = [teacher.id_of(e.get("token", "")) for e in content]
        total += len(ids)
        if any(i is None for i in ids):
            continue
        at = find_span(target, ids, start=start)  # type: ignore[arg-type]
        if at is None:
            continue
        for k, entry in enumerate(content):
            pos = at + k
            if pos >= len(target) or not enc.labels[pos]:
                continue
            pairs = [(teacher.id_of(a.get("token", "")), float(a["logprob"])) for a in entry.get("top_logprobs") or []]
            pairs = [(t, lp) for t, lp in pairs if t is not None]
            if ids[k] not in {t for t, _ in pairs}:
                pairs.append((ids[k], float(entry.get("logprob", 0.0))))
            positions.append(pos)
            tops.append(merge_top(pairs))  # type: ignore[arg-type]
        start = at + len(ids)
    placed = len(positions)
    if placed:
        K = max(len(t) for t in tops)
        enc.soft_pos = np.asarray(positions, dtype=np.int32)
        enc.soft_ids = np.zeros((placed, K), dtype=np.int32)
        enc.soft_lp = np.full((placed, K), -np.inf, dtype=np.float32)
        for n, top in enumerate(tops):
            enc.soft_ids[n, :len(top)] = [t for t, _ in top]
            enc.soft_lp[n, :len(top)] = [v for _, v in top]
    return placed, total
