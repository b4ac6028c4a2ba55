"""Convert an agent benchmark's results file in tau2-bench's layout (`{"info", "tasks",
"simulations": [{"task_id", "trial", "messages", "reward_info": {"reward"}, "termination_reason",
"agent_cost", "user_cost", "duration"}]}`) to Cascade Studio's transcript format, one conversation a
line, with user turns, the benchmark's reward as the recorded outcome, and its costs, durations and
endings:

    python tools/tau2_to_transcripts.py results.json transcripts.jsonl
    cascade-studio trajectories import transcripts.jsonl --tier 3 --format transcripts

The domain policy (info.environment_info.policy) becomes the system message; the agent's tools
(info.environment_info.tool_defs, when they are OpenAI tool definitions) the line's tools. A user's
own tool calls (dual-control domains) are left out: they are not the agent's actions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    args = call.get("arguments")
    return {"id": str(call.get("id")), "type": "function",
            "function": {"name": call.get("name"), "arguments": args if isinstance(args, str) else json.dumps(args or {})}}


def _messages(policy: str | None, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": policy}] if policy else []
    for m in raw:
        role = m.get("role")
        if role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.get("content")}
            if m.get("tool_calls"):
                msg["tool_calls"] = [_tool_call(c) for c in m["tool_calls"]]
            if isinstance(m.get("usage"), dict):
                msg["usage"] = {k: m["usage"][k] for k in ("prompt_tokens", "completion_tokens") if k in m["usage"]}
            out.append(msg)
        elif role == "user":
            if m.get("content") is not None:
                out.append({"role": "user", "content": m["content"]})
        elif role == "tool" and m.get("requestor", "assistant") == "assistant":
            out.append({"role": "tool", "tool_call_id": str(m.get("id")), "content": m.get("content") or ""})
    return out


def convert(results: dict[str, Any]) -> list[dict[str, Any]]:
    info = results.get("info") or {}
    env = info.get("environment_info") or {}
    tools = [t for t in env.get("tool_defs") or [] if isinstance(t, dict) and t.get("type") == "function"] \
        if isinstance(env.get("tool_defs"), list) else []
    model = (info.get("agent_info") or {}).get("llm")
    lines = []
    for sim in results.get("simulations") or []:
        line: dict[str, Any] = {"task_id": str(sim["task_id"]), "trial": int(sim.get("trial") or 0),
                                "category": env.get("domain_name") or "benchmark",
                                "messages": _messages(env.get("policy"), sim.get("messages") or [])}
        if model:
            line["model"] = model
        if tools:
            line["tools"] = tools
        reward = (sim.get("reward_info") or {}).get("reward")
        if reward is not None:
            line["outcome"] = {"reward": reward}
        if sim.get("duration") is not None:
            line["latency_ms"] = round(float(sim["duration"]) * 1000, 3)
        if sim.get("agent_cost") is not None:
            line["cost_usd"] = sim["agent_cost"]
        if sim.get("user_cost") is not None:
            line["user_cost_usd"] = sim["user_cost"]
        if sim.get("termination_reason"):
            line["end_reason"] = str(sim["termination_reason"])
        lines.append(line)
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    lines = convert(json.loads(Path(argv[0]).read_text()))
    Path(argv[1]).write_text("".join(json.dumps(line) + "\n" for line in lines))
    print(f"Wrote {len(lines)} transcripts to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
