"""Agent episodes of the sandbox's simulated models on the travel desk: success rate per model.

Each episode gets a fresh travel desk (an in-process MCP connection through the official SDK's
Client, the same tool calls as over stdio), shows the model the desk's tools without the judge,
runs call -> execute -> append `tool` messages until the model answers or max_steps, then asks
`check_state` and the expected answer text. A big model should usually succeed, nano models less.

    python bench/travel_desk_episodes.py [--models gpt-4.1 gpt-4o-mini gpt-4.1-nano] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from mcp import Client

from cascade_studio.sandbox.simulator import generate_chat
from cascade_studio.sandbox.travel_desk import CHECK_TOOL, build_server, openai_tool

TASKS = Path(__file__).resolve().parents[1] / "cascade_studio" / "resources" / "demo" / "travel_desk_tasks.jsonl"
MODELS = ["gpt-4.1", "gpt-4o", "gpt-4.1-mini", "gpt-4o-mini", "gpt-4.1-nano", "gpt-5-nano"]


def load_tasks(path: Path = TASKS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def result_text(result: Any) -> str:
    """A tool result as the `tool` message's content: its text blocks (errors as they came)."""
    text = "".join(getattr(block, "text", "") for block in result.content or [])
    return text if text or not result.is_error else "Error: the tool failed without a message"


async def run_episode(task: dict[str, Any], model: str, seed: int = 0, client: Any = None) -> dict[str, Any]:
    """One episode on a fresh desk (or on `client`, an open mcp Client): messages, answer, verdict."""
    if client is None:
        async with Client(build_server()) as fresh:
            return await run_episode(task, model, seed, fresh)
    listed = await client.list_tools()
    tools = [openai_tool(t) for t in listed.tools if t.name != CHECK_TOOL]
    messages = [dict(m) for m in task["messages"]]
    answer, steps = None, 0
    while steps < task.get("max_steps", 6):
        gen = generate_chat({"model": model, "messages": messages, "tools": tools}, seed=seed)
        steps += 1
        if not gen.tool_calls:
            answer = gen.content
            messages.append({"role": "assistant", "content": gen.content})
            break
        messages.append({"role": "assistant", "content": gen.content, "tool_calls": gen.tool_calls})
        for call in gen.tool_calls:
            try:
                arguments = json.loads(call["function"]["arguments"])
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                content = "Error: the arguments are not a JSON object"
            else:
                content = result_text(await client.call_tool(call["function"]["name"], arguments))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    expected = task.get("expected") or {}
    check = expected.get("check")
    verdict = {"passed": True, "reason": "no check"}
    if check:
        verdict = json.loads(result_text(await client.call_tool(check["tool"], check.get("arguments") or {})))
    want = expected.get("final_answer")
    answer_ok = not want or (answer is not None and want.lower() in answer.lower())
    return {"task": task["id"], "model": model, "seed": seed, "steps": steps, "answer": answer,
            "state_passed": bool(verdict.get("passed")), "reason": verdict.get("reason", ""),
            "answer_ok": answer_ok, "success": bool(verdict.get("passed")) and answer_ok, "messages": messages}


async def success_rates(models: list[str], seeds: list[int], tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for model in models:
        runs = [await run_episode(t, model, s) for s in seeds for t in tasks]
        out[model] = {"success": sum(r["success"] for r in runs) / len(runs),
                      "state": sum(r["state_passed"] for r in runs) / len(runs),
                      "steps": sum(r["steps"] for r in runs) / len(runs),
                      "failed": sorted({r["task"] for r in runs if not r["success"]})}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--show", help="print one episode: TASK_ID:MODEL[:SEED]")
    args = parser.parse_args()
    tasks = load_tasks()
    if args.show:
        task_id, model, *seed = args.show.split(":")
        run = asyncio.run(run_episode(next(t for t in tasks if t["id"] == task_id), model, int(seed[0]) if seed else 0))
        for m in run["messages"]:
            print(json.dumps({k: v for k, v in m.items() if k != "tool_call_id"})[:400])
        print({k: v for k, v in run.items() if k != "messages"})
        return
    rates = asyncio.run(success_rates(args.models, args.seeds, tasks))
    print(f"{len(tasks)} tasks x {len(args.seeds)} seeds")
    for model, r in rates.items():
        print(f"{model:14s} success={r['success']:.0%} state={r['state']:.0%} steps={r['steps']:.1f} "
              f"failed={','.join(t.removeprefix('travel-') for t in r['failed'])}")


if __name__ == "__main__":
    main()
