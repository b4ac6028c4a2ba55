"""The trainer's data step: the JSONL datasets encoded with the student's tokenizer, and the choice
between the teacher's soft labels and hard labels only (told to the user in words)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_studio.core.distillation import SHARED_TOKENIZER_MIN
from cascade_studio.trainer.data import (
    DataError,
    Encoded,
    TeacherTokens,
    attach_soft_labels,
    attach_turns,
    encode_example,
    read_jsonl,
)
from cascade_studio.trainer.progress import Progress


@dataclass
class TrainingData:
    """The encoded examples and how they are learnt (soft labels or hard labels only)."""

    train: list[Encoded]
    valid: list[Encoded]
    soft: bool
    alpha: float
    temperature: float


def encode_file(path: str | None, logprobs_path: str | None, tok: Any, spec: dict[str, Any], max_length: int,
                 progress: Progress) -> tuple[list[Encoded], dict[str, int]]:
    """A JSONL dataset's examples encoded for training, with the teacher's soft labels attached
    where its logprobs file matches line for line; and counts of what happened on the way."""
    if not path:
        return [], {}
    rows = read_jsonl(Path(path))
    teacher_rows = None
    if logprobs_path and Path(logprobs_path).exists():
        teacher_rows = read_jsonl(Path(logprobs_path))
        if len(teacher_rows) != len(rows):
            progress.event(f"{Path(logprobs_path).name} has {len(teacher_rows)} lines for {len(rows)} examples; "
                           "ignoring it (hard labels only).", level="warn")
            teacher_rows = None
    out, stats = [], {"skipped": 0, "truncated": 0, "placed": 0, "teacher_tokens": 0, "with_logprobs": 0}
    mapper = TeacherTokens(tok)
    for n, row in enumerate(rows, 1):
        try:
            enc = encode_example(tok, row, max_length)
        except DataError as exc:
            raise DataError(f"{path}:{n}: {exc}") from None
        except Exception as exc:  # the chat template refused the example
            raise DataError(f"{path}:{n}: the chat template cannot render this example ({exc})") from None
        if enc is None:
            stats["skipped"] += 1
            continue
        stats["truncated"] += enc.truncated
        if teacher_rows is not None and spec.get("soft_labels", "auto") != "off":
            row = teacher_rows[n - 1] if isinstance(teacher_rows[n - 1], dict) else {}
            content, turns = row.get("content"), row.get("turns")  # turns: an episode, one list per assistant turn
            if content or (isinstance(turns, list) and any(turns)):
                stats["with_logprobs"] += 1
                placed, total = (attach_turns(enc, turns, mapper) if isinstance(turns, list)
                                 else attach_soft_labels(enc, content, mapper))
                stats["placed"] += placed
                stats["teacher_tokens"] += total
        out.append(enc)
    return out, stats


def build_data(spec: dict[str, Any], tok: Any, progress: Progress) -> TrainingData:
    max_length = int(spec.get("max_length") or 2048)
    train_set, tstats = encode_file(spec["training_file"], spec.get("teacher_logprobs"), tok, spec, max_length,
                                     progress)
    valid_set, _ = encode_file(spec.get("validation_file"), spec.get("validation_teacher_logprobs"), tok, spec,
                                max_length, progress)
    if not train_set:
        raise DataError("no example in the training file has an assistant message to train on")
    if tstats["skipped"]:
        progress.event(f"{tstats['skipped']} examples have nothing to train on with this chat template; skipped.",
                       level="warn")
    if tstats["truncated"]:
        progress.event(f"{tstats['truncated']} examples are longer than {max_length} tokens and were truncated.",
                       level="warn")
    alpha, T = float(spec.get("alpha", 0.5)), float(spec.get("temperature", 2.0))
    soft = use_soft_labels(spec, tstats, alpha, T, progress)
    if not soft:
        for e in (*train_set, *valid_set):
            e.drop_soft()
    return TrainingData(train_set, valid_set, soft, alpha, T)


def use_soft_labels(spec: dict[str, Any], tstats: dict[str, int], alpha: float, T: float,
                     progress: Progress) -> bool:
    """Soft labels only where the teacher's tokens fall on the student's; says which and why."""
    share = tstats["placed"] / tstats["teacher_tokens"] if tstats["teacher_tokens"] else 0.0
    soft = share >= SHARED_TOKENIZER_MIN
    if spec.get("soft_labels", "auto") == "off":
        progress.event("Soft labels are off in the settings: training on hard labels (cross-entropy) only.")
    elif not spec.get("teacher_logprobs") or not tstats["with_logprobs"]:
        progress.event("No teacher logprobs for this dataset: training on hard labels (cross-entropy) only; "
                       "a and T are not used. Collect the teacher with logprobs and rebuild the dataset for "
                       "soft labels.")
    elif not soft:
        progress.event(f"Teacher and student do not share a tokenizer: only {share:.0%} of the teacher's "
                       f"{tstats['teacher_tokens']:,} recorded tokens fall on the student's tokens in order (soft "
                       f"labels need {SHARED_TOKENIZER_MIN:.0%}). Training on hard labels (cross-entropy) only.",
                       level="warn")
    else:
        progress.event(f"Soft labels from the teacher's top_logprobs on {share:.1%} of its "
                       f"{tstats['teacher_tokens']:,} tokens: loss = {alpha:g}·CE + {1 - alpha:g}·T²·KL with "
                       f"T = {T:g} (remaining mass: {spec.get('mass', 'drop')}).")
    return soft
