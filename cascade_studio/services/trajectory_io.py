"""Trajectory listings and exports (native JSONL, CSV summary), the same rows for GUI and CLI."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from cascade_studio.core.money import micro_to_usd
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.trajectories import TrajectoryRepository, restore_logprobs
from cascade_studio.store.workspace import Workspace


def list_rows(ws: Workspace, tier: int | None = None) -> list[dict[str, Any]]:
    """One object per trajectory: task_id, tier, model, status, tool, confidence (the tier's
    method), the three confidences, cost_usd, latency_ms, tokens, curation, tags."""
    methods = {t.tier: t.confidence_method.value for t in TierRepository(ws).list()}
    out = []
    for r in TrajectoryRepository(ws).summary_rows(tier):
        method = methods.get(r["tier"], "mean_token_prob")
        conf = {"mean_token_prob": r["conf_mean"], "min_token_prob": r["conf_min"],
                "tool_name_prob": r["conf_tool"]}
        out.append({
            "id": r["id"], "run_id": r["run_id"], "task_id": r["task_id"], "tier": r["tier"], "model": r["model"],
            "status": r["status"], "category": r["category"], "tool": r["tool_name"],
            "confidence": conf[method], "confidence_method": method, **conf,
            "cost_usd": str(micro_to_usd(r["cost_micro"])), "latency_ms": round(r["latency_ms"], 1),
            "prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"],
            "curation": r["curation"], "tags": [t for t in (r["tags"] or "").split(",") if t],
        })
    return out


def _atomic_write(target: Path, write) -> int:
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        count = write(fh)
    os.replace(tmp, target)
    return count


def export_native(ws: Workspace, target: Path, tier: int | None = None) -> int:
    """Native trajectory JSONL: task_id, tier, model, request, response (a chat.completion with
    usage), latency_ms, created_at, plus status, error, curation and tags."""
    where, args = ("WHERE tier = ?", [tier]) if tier is not None else ("", [])
    rows = ws.conn.execute(
        f"SELECT task_id, tier, model, status, request, response, latency_ms, finished_at, error, curation, tags, "
        f"category, logprobs FROM trajectories {where} ORDER BY id", args)

    def write(fh) -> int:
        n = 0
        for r in rows:
            fh.write(json.dumps({
                "task_id": r[0], "tier": r[1], "model": r[2], "status": r[3], "request": json.loads(r[4]),
                "response": None if r[5] is None else restore_logprobs(json.loads(r[5]), r[12]),
                "latency_ms": r[6], "created_at": r[7],
                "error": r[8], "curation": r[9], "tags": [t for t in (r[10] or "").split(",") if t],
                "category": r[11],
            }) + "\n")
            n += 1
        return n

    return _atomic_write(Path(target), write)


def export_csv(ws: Workspace, target: Path, tier: int | None = None) -> int:
    rows = list_rows(ws, tier)
    columns = ["task_id", "tier", "model", "status", "category", "tool", "confidence", "mean_token_prob",
               "min_token_prob", "tool_name_prob", "cost_usd", "latency_ms", "prompt_tokens", "completion_tokens",
               "curation"]

    def write(fh) -> int:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return len(rows)

    return _atomic_write(Path(target), write)
