"""Files, fine-tuning jobs and batches held in memory. Job progress is a pure function of the
clock (plus pauses), so polling at any rate sees the same history."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import random
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade_studio.core.jsonl import JsonProblem, iter_objects, split_lines

ORG = "sandbox-org"
STATE_FILE = "sandbox-state.json"  # in the sandbox's data folder: what outlives a restart
STATE_FORMAT = "cascade-studio-sandbox-state/1"
log = logging.getLogger(__name__)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}" if prefix == "file" else f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed"}


def validate_training_file(content: bytes) -> tuple[int, int, str | None]:
    """(examples, tokens, error message) following OpenAI's checks for chat fine-tuning data."""
    from cascade_studio.sandbox.tokens import count_message_tokens

    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return 0, 0, "The file is not UTF-8 text. Save the JSONL file as UTF-8."
    examples = 0
    tokens = 0
    rows = iter_objects(split_lines(text))
    while True:
        try:
            number, row = next(rows)
        except StopIteration:
            break
        except JsonProblem as exc:
            if exc.message == "each line must be a JSON object":
                return examples, tokens, f"Line {exc.line}: each example must be an object with a 'messages' list."
            return examples, tokens, f"Line {exc.line} is not valid JSON ({exc.message}). Each line must be one JSON object."
        if not isinstance(row.get("messages"), list):
            return examples, tokens, f"Line {number}: each example must be an object with a 'messages' list."
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in row["messages"]):
            return examples, tokens, f"Line {number}: the example has no assistant message to learn from."
        examples += 1
        tokens += count_message_tokens(row["messages"], row.get("tools"))
    if examples < 10:
        return examples, tokens, f"The training file has {examples} examples; fine-tuning needs at least 10."
    return examples, tokens, None


@dataclass
class FineTuneJob:
    id: str
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    created_at: float
    job_seconds: float
    n_epochs: int
    batch_size: int
    lr_multiplier: float
    metadata: dict[str, str] | None
    method_type: str = "supervised"
    examples: int = 0
    tokens: int = 0
    validation_error: str | None = None
    cancelled_at: float | None = None
    paused_since: float | None = None
    paused_total: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    result_file: str | None = None
    fine_tuned_model: str | None = None
    finished_at: float | None = None
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    # phases as fractions of job_seconds
    VALIDATE, QUEUE = 0.1, 0.1

    @property
    def total_steps(self) -> int:
        return max(1, self.n_epochs * math.ceil(max(self.examples, 1) / self.batch_size))

    def active_elapsed(self, now: float) -> float:
        paused = self.paused_total + ((now - self.paused_since) if self.paused_since else 0.0)
        end = self.cancelled_at or now
        return max(0.0, end - self.created_at - paused)

    def status(self, now: float) -> str:
        if self.cancelled_at is not None:
            return "cancelled"
        return self.phase(now)

    def phase(self, now: float) -> str:
        """How far the job got (ignoring a cancel, which freezes the clock)."""
        t = self.active_elapsed(now) / self.job_seconds
        if t < self.VALIDATE:
            return "validating_files"
        if self.validation_error:
            return "failed"
        if t < self.VALIDATE + self.QUEUE:
            return "queued"
        if t < 1.0:
            return "running"
        return "succeeded"

    def step_at(self, now: float) -> int:
        t = self.active_elapsed(now) / self.job_seconds
        frac = (t - self.VALIDATE - self.QUEUE) / (1 - self.VALIDATE - self.QUEUE)
        return max(0, min(self.total_steps, int(frac * self.total_steps)))

    def time_of(self, frac: float) -> int:
        """Wall-clock time when active progress reaches `frac` (ignoring future pauses)."""
        return int(self.created_at + self.paused_total + frac * self.job_seconds)

    def metrics(self, step: int) -> dict[str, float]:
        rng = random.Random(hash((self.id, step)))
        progress = step / self.total_steps
        base = 0.25 + 1.9 * math.exp(-4.0 * progress / max(self.lr_multiplier, 0.2) ** 0.5)
        train = max(0.01, base + rng.gauss(0, 0.06))
        out = {"step": step, "train_loss": round(train, 5),
               "train_mean_token_accuracy": round(min(0.999, 0.55 + 0.42 * (1 - math.exp(-3.5 * progress)) + rng.gauss(0, 0.01)), 5),
               "total_steps": self.total_steps}
        if self.validation_file:
            out["valid_loss"] = round(max(0.01, base * 1.08 + rng.gauss(0, 0.05)), 5)
            out["valid_mean_token_accuracy"] = round(out["train_mean_token_accuracy"] - 0.02, 5)
        return out


@dataclass
class Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    created_at: float
    job_seconds: float
    metadata: dict[str, str] | None
    model: str | None = None
    total: int = 0
    cancelled_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    fail_reason: str | None = None
    finished: bool = False
    usage: dict[str, Any] | None = None


def metrics_csv(job: FineTuneJob) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    columns = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
    writer.writerow(columns)
    for step in range(1, job.total_steps + 1):
        m = job.metrics(step)
        writer.writerow([step, m["train_loss"], m["train_mean_token_accuracy"], m.get("valid_loss", ""),
                         m.get("valid_mean_token_accuracy", "")])
    return buf.getvalue().encode()


def now() -> float:
    return time.time()


# -- what outlives a restart ---------------------------------------------------------------------
# Fine-tuned models: a tier that uses one keeps answering after the sandbox restarts (the demo's
# sandbox starts with the app). Files, jobs and batches stay in memory: they are the work of one run.

def load_fine_tuned(data_dir: Path | None) -> dict[str, str]:
    """{fine-tuned model: base model} remembered in `data_dir` (none: nothing remembered). A file that
    cannot be read is reported and left as it is (the next save replaces it)."""
    if data_dir is None:
        return {}
    path = Path(data_dir) / STATE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("Sandbox state %s cannot be read (%s); starting without remembered fine-tuned models", path, exc)
        return {}
    models = doc.get("fine_tuned") if isinstance(doc, dict) and doc.get("format") == STATE_FORMAT else None
    if not isinstance(models, dict):
        log.warning("Sandbox state %s is not a %s file; starting without remembered fine-tuned models", path,
                    STATE_FORMAT)
        return {}
    return {m: b for m, b in models.items() if isinstance(m, str) and isinstance(b, str)}


def save_fine_tuned(data_dir: Path | None, models: dict[str, str]) -> None:
    """Remember `models` (with those another sandbox on the same folder remembered meanwhile), written
    whole or not at all (a temporary file renamed into place)."""
    if data_dir is None:
        return
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    merged = {**load_fine_tuned(folder), **models}
    fd, temp = tempfile.mkstemp(prefix=".sandbox-state-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"format": STATE_FORMAT, "fine_tuned": merged}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, folder / STATE_FILE)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise

