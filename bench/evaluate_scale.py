"""Evaluation and dataset build at real sizes: a workspace collected from the sandbox with logprobs
(~200 tasks x 3 tiers, each trajectory ~37 KB as a real one is), replicated in SQL to N tasks; then
`evaluate --no-embeddings --all-tasks` (tier 1 against the teacher) and `dataset build` run as
subprocesses, with their wall time and peak RSS (RUSAGE_CHILDREN), alternating between the code
given as --baseline (a checkout of an earlier commit) and this one, --repeat times; medians printed.

    python bench/evaluate_scale.py --work DIR [--sizes 10000 50000] [--baseline DIR] [--repeat 3]
                                   [--mem-cap-gb 8]

Targets (issue 22): evaluate of 100k pairs < 30 s, dataset build of 100k < 60 s, peak RSS < 500 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.scale import collect_template, payload_sizes, replicate  # noqa: E402 - the same template and replication


def measure(code: Path, args: list[str], cap_gb: float) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of `cascade_studio ARGS` run from `code`; the peak is the
    child's own VmHWM (bench.peak)."""
    from bench.peak import measured

    def limit() -> None:
        cap = int(cap_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "PYTHONPATH": str(code), "QT_QPA_PLATFORM": "offscreen"}
    with tempfile.TemporaryFile() as err:
        seconds, peak_mb, code_ = measured([sys.executable, "-m", "cascade_studio", *args], env=env, cwd=code,
                                           stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit)
        err.seek(0)
        problem = err.read().decode()
    if code_ not in (0, 3):
        print(f"  ({' '.join(args[2:4])} exited {code_}: {problem[-300:].strip()})", file=sys.stderr)
    return seconds, peak_mb, code_


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    p.add_argument("--baseline", help="a checkout of the earlier code (e.g. `git archive COMMIT | tar -x`)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--mem-cap-gb", type=float, default=8.0)
    p.add_argument("--only", choices=["evaluate", "dataset"])
    a = p.parse_args()
    work = Path(a.work)
    codes = {"this": ROOT, **({"baseline": Path(a.baseline)} if a.baseline else {})}
    template = work / "template"
    if not (template / "workspace.sqlite").exists():
        collect_template(template, codes.get("baseline", ROOT))
    n, size, lp = payload_sizes(template)
    print(f"template: {n} trajectories, {size / 1024:.1f} KB each on average ({lp / 1024:.1f} KB logprobs)")
    table = []
    for tasks in a.sizes:
        rounds: dict[str, dict[str, list[tuple[float, float, int]]]] = {k: {} for k in codes}
        for name in codes:
            folder = work / f"{name}-{tasks}"
            if not (folder / "workspace.sqlite").exists():
                t = time.perf_counter()
                replicate(template, folder, tasks)
                print(f"replicated {tasks} tasks for {name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        for r in range(a.repeat):
            for name, code in (codes.items() if r % 2 == 0 else reversed(codes.items())):
                ws = str(work / f"{name}-{tasks}")
                jobs = {"evaluate": ["--workspace", ws, "evaluate", "--student", "1", "--no-embeddings",
                                     "--all-tasks", "--json"],
                        "dataset": ["--workspace", ws, "dataset", "build", "--out", str(work / f"{name}-ds.jsonl"),
                                    "--no-dedupe", "--json"]}  # replicas share their prompts
                for job, args in jobs.items():
                    if a.only and job != a.only:
                        continue
                    result = measure(code, args, a.mem_cap_gb)
                    rounds[name].setdefault(job, []).append(result)
                    print(f"{tasks} {name} {job} round {r + 1}: {result[0]:.1f} s, {result[1]:.0f} MB, "
                          f"exit {result[2]}", file=sys.stderr)
        for name, jobs in rounds.items():
            for job, results in jobs.items():
                ok = [x for x in results if x[2] in (0, 3)]
                table.append((tasks, name, job, statistics.median(x[0] for x in results),
                              statistics.median(x[1] for x in results), len(ok), len(results)))
    print(f"{'tasks':>7} {'code':<9} {'job':<9} {'median s':>9} {'peak MB':>8}  ok")
    for tasks, name, job, s, mb, ok, total in table:
        print(f"{tasks:>7} {name:<9} {job:<9} {s:>9.1f} {mb:>8.0f}  {ok}/{total}")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
