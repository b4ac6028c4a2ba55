"""Workspace change events: the services say what they changed, the views that show it follow.

A service that writes calls `publish(KIND, ws)`; a view subscribes once (the GUI: one relay,
ui/workspace_events.py, that re-emits on the GUI thread and lets each page follow the kinds it shows)
instead of every page remembering to reload after every other page's action. Plain Python: no Qt,
callable from any thread; a failing subscriber is logged, never raised into the service.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TIERS, TASKS, TRAJECTORIES, JOBS, EVALUATIONS, ENVIRONMENTS, TRAFFIC = (
    "tiers", "tasks", "trajectories", "jobs", "evaluations", "environments", "traffic")
KINDS = (TIERS, TASKS, TRAJECTORIES, JOBS, EVALUATIONS, ENVIRONMENTS, TRAFFIC)

Subscriber = Callable[[str, Path], None]
_subscribers: list[Subscriber] = []
_lock = threading.Lock()


def subscribe(fn: Subscriber) -> Callable[[], None]:
    """Call `fn(kind, workspace folder)` after every change; returns the unsubscribe function."""
    with _lock:
        _subscribers.append(fn)

    def unsubscribe() -> None:
        with _lock:
            if fn in _subscribers:
                _subscribers.remove(fn)

    return unsubscribe


def publish(kind: str, ws: Any) -> None:
    """`ws`: a Workspace (its folder is used) or a folder."""
    if kind not in KINDS:
        raise ValueError(f"unknown change kind {kind!r}")
    folder = Path(getattr(ws, "path", ws)).resolve()
    with _lock:
        subscribers = list(_subscribers)
    for fn in subscribers:
        try:
            fn(kind, folder)
        except Exception:  # noqa: BLE001 - a view's failure must not fail the service that changed data
            log.exception("A subscriber to %s changes failed", kind)
