"""What sending one model call gave: the raw answer (Sent) or why there is none (Failed). Shared by
the collection run and the agent loop it hosts (services.agent.episodes), so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Sent:
    request: dict[str, Any]
    raw: bytes
    t0: float
    attempt: int
    estimate: int


@dataclass
class Failed:
    request: dict[str, Any]
    message: str  # "" when the run was cancelled
    attempt: int
