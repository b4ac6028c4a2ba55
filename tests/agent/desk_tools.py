"""A small environment for the agent-loop tests (served by module_server, or by desk_server.py over MCP).

Tools that hang, fail or kill their process do so when a marker file beside this module says so,
so one test can change their behaviour between two runs."""

import json
import os
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_NOTES: list[str] = []


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    if (_HERE / "hang").exists():
        time.sleep(60)
    if (_HERE / "crash").exists():
        os._exit(7)
    return json.dumps({"city": city, "forecast": "sunny", "celsius": 21})


def add_note(text: str) -> str:
    """Add a note to the notebook and return how many notes it holds."""
    _NOTES.append(text)
    return f"{len(_NOTES)} note(s)"


def count_notes() -> int:
    """Count the notes in the notebook."""
    return len(_NOTES)


def divide_numbers(a: float, b: float) -> float:
    """Divide number a by number b."""
    return a / b


def transfer_to_human_agents(summary: str) -> str:
    """Transfer the user to a human agent, with a summary of the conversation."""
    return "Transfer successful"
