"""How a simulated model plays the user of a conversational task (a request that begins with the
user simulator's instruction, core.user_sim.simulator_system): it says the instruction's lines in
order, one a turn, each once; when none is left it says the stop marker. Deterministic, like every
simulated model, so the demo's conversations and the tests repeat."""

from __future__ import annotations

from typing import Any

from cascade_studio.core.user_sim import SIMULATOR_HEADER, STOP_MARKER
from cascade_studio.sandbox import simulator as sim


def is_user_simulation(messages: list[dict[str, Any]]) -> bool:
    first = messages[0] if messages else {}
    return first.get("role") == "system" and str(first.get("content") or "").startswith(SIMULATOR_HEADER)


def user_turn(messages: list[dict[str, Any]], profile: sim.Profile) -> sim.Generation:
    system = str(messages[0].get("content") or "")
    stop = next((line.split(":", 1)[1].strip() for line in system.splitlines() if line.startswith("Stop marker:")),
                STOP_MARKER) or STOP_MARKER
    instruction = system.split("Instruction:", 1)[1] if "Instruction:" in system else ""
    lines = [line.strip() for line in instruction.splitlines() if line.strip()]
    said = {str(m.get("content") or "").strip() for m in messages[1:] if m.get("role") == "assistant"}
    text = next((line for line in lines if line not in said), f"Thank you, that is all. {stop}")
    return sim.Generation(text, [], [sim.Segment(text, "high")], 0, "stop")
