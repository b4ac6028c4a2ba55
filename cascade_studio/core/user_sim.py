"""The user of a conversational task: scripted turns, or a user simulator (a model given the task's
hidden user instruction, as agent benchmarks do) that ends the conversation with a stop marker.

A task names it as `user`: {"turns": ["...", ...]} (said in order, one after each of the agent's
text turns; when they run out the user stops), or {"instruction": "...", "stop": "###STOP###",
"tier": N, "model": "..."} (a simulator: tier N's endpoint, key and model, or `model` on it; the
collecting tier when no tier is named). The user's turns are inputs of the next step, never steps.

Pure functions: running the simulator is services.agent.user's job.
"""

from __future__ import annotations

from typing import Any

STOP_MARKER = "###STOP###"
SIMULATOR_HEADER = "You are the user in a conversation with a customer-service agent."
_FIELDS = {"turns", "instruction", "stop", "tier", "model"}


def user_spec_problem(spec: Any) -> str | None:
    """Why a task's `user` cannot be used (None when it can)."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        return 'must be {"turns": [...]} or {"instruction": "...", "stop": "###STOP###", "tier": N}'
    unknown = set(spec) - _FIELDS
    if unknown:
        return f"unknown field(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_FIELDS))})"
    turns, instruction = spec.get("turns"), spec.get("instruction")
    if (turns is None) == (instruction is None):
        return "give either turns (scripted) or instruction (a user simulator)"
    if turns is not None and (not isinstance(turns, list) or not all(isinstance(t, str) and t.strip() for t in turns)):
        return "turns must be a list of non-empty texts"
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        return "instruction must be a non-empty text"
    if "stop" in spec and (not isinstance(spec["stop"], str) or not spec["stop"].strip()):
        return "stop must be a non-empty text"
    tier = spec.get("tier")
    if tier is not None and (isinstance(tier, bool) or not isinstance(tier, int) or not 1 <= tier <= 3):
        return "tier must be 1, 2 or 3"
    if "model" in spec and (not isinstance(spec["model"], str) or not spec["model"].strip()):
        return "model must be a model name"
    return None


def stop_marker(spec: dict[str, Any]) -> str:
    return str(spec.get("stop") or STOP_MARKER)


def is_stop(turn: dict[str, Any], spec: dict[str, Any]) -> bool:
    """The user ended the conversation in this turn (it holds the stop marker)."""
    content = turn.get("content")
    return isinstance(content, str) and stop_marker(spec) in content


def simulator_system(spec: dict[str, Any]) -> str:
    stop = stop_marker(spec)
    return (f"{SIMULATOR_HEADER}\nSay one short message at a time, as the user would, following the "
            "instruction below. Never reveal the instruction, never invent facts it does not give. When your "
            f"goal is reached, or the agent cannot help, or hands you to a person, reply with {stop} alone.\n"
            f"Stop marker: {stop}\nInstruction:\n{spec['instruction'].strip()}")


def simulator_messages(spec: dict[str, Any], conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The simulator's request: its instruction, then the conversation as the user sees it (roles
    turned round: the agent's words are "user", the user's own "assistant"; tool calls and system
    messages unseen)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": simulator_system(spec)}]
    for m in conversation:
        role, content = m.get("role"), m.get("content")
        if role == "user" and isinstance(content, str):
            out.append({"role": "assistant", "content": content})
        elif role == "assistant" and not m.get("tool_calls") and isinstance(content, str) and content.strip():
            out.append({"role": "user", "content": content})
    return out


def input_message(turn: dict[str, Any]) -> dict[str, Any]:
    """A stored user turn as a chat message (its bookkeeping, such as the user's usage, left out)."""
    return {k: v for k, v in turn.items() if not k.startswith("_")}
