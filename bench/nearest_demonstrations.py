"""How long a "nearest" prompt-distilled student takes to choose its demonstrations per request (the
gateway and the collector do it for every request), against the lean baseline: a sparse dot product
with every demonstration in a Python loop. Pools of 200 and 2000 BFCL tasks; interleaved rounds,
medians; prints ratios (no timing assertions anywhere)."""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

from cascade_studio.core.agreement import sparse_offline_embedding
from cascade_studio.core.demonstrations import NEAREST, PromptProgram, demonstration_from, query_text

BFCL = Path(__file__).resolve().parents[1] / "resources" / "bfcl"


def tasks() -> list[dict]:
    rows = []
    for name in ("BFCL_v4_simple_python.json", "BFCL_v4_multiple.json", "BFCL_v4_irrelevance.json"):
        for line in (BFCL / name).read_text().splitlines():
            item = json.loads(line)
            rows.append({"id": item["id"], "messages": item["question"][0]})
    return rows


def baseline(program: PromptProgram, vectors: list[dict[int, float]], messages: list[dict]) -> list[str]:
    q = sparse_offline_embedding(query_text(messages))
    scored = [(-round(math.fsum(x * v[i] for i, x in q.items() if i in v), 9), d) for d, v in enumerate(vectors)]
    return sorted(program.demonstrations[d].task_id for _, d in sorted(scored)[: program.k])


def main() -> None:
    rows = tasks()
    queries = [r["messages"] for r in rows[:100]]
    for size in (200, 2000):
        pool = [rows[i % len(rows)] for i in range(size)]
        demos = tuple(demonstration_from(f"{r['id']}#{i}", "c", r["messages"], [{"name": "f", "arguments": {}}],
                                         None, reasoning=False, index=i) for i, r in enumerate(pool))
        program = PromptProgram(NEAREST, 4, demos)
        vectors = [sparse_offline_embedding(d.query_text()) for d in demos]
        program.select(queries[0])
        ours, lean = [], []
        for _ in range(5):  # interleaved rounds
            t0 = time.perf_counter()
            for q in queries:
                program.select(q)
            ours.append((time.perf_counter() - t0) / len(queries))
            t0 = time.perf_counter()
            for q in queries:
                baseline(program, vectors, q)
            lean.append((time.perf_counter() - t0) / len(queries))
        a, b = statistics.median(ours), statistics.median(lean)
        same = all(sorted(d.task_id for d in program.select(q)) == baseline(program, vectors, q) for q in queries)
        print(f"pool {size}: {a * 1000:.2f} ms per request (lean loop {b * 1000:.2f} ms): {b / a:.1f}x; "
              f"same choice on every query: {same}")


if __name__ == "__main__":
    main()
