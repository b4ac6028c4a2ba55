"""Agent episodes: a tier acting in a loop with an environment's tools.

A step is one model call (a Trajectory: request, response, usage, logprobs, confidence) and the
results of the tool calls it made. An episode is the steps of one task, ending when the model
answers without a tool call, reaches the step limit or the deadline, or fails. The conversation the
model saw at step k is the task's messages followed by each earlier step's assistant message and
its tool results: `conversation` rebuilds it, so a stored episode needs no copy of it per step.

Pure functions and data; running an episode is services.agent's job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from cascade_studio.core.trajectory import Trajectory, Usage
from cascade_studio.core.user_sim import input_message

ANSWERED, STEP_LIMIT, DEADLINE, ERROR = "answered", "step_limit", "deadline", "error"
HANDOFF, USER_STOP = "handoff", "user_stop"  # a hand-off tool was called; the user ended the conversation
END_REASONS = (ANSWERED, USER_STOP, HANDOFF, STEP_LIMIT, DEADLINE, ERROR)
END_LABELS = {ANSWERED: "answered", USER_STOP: "user stopped", HANDOFF: "hand-off", STEP_LIMIT: "step limit",
              DEADLINE: "deadline", ERROR: "error"}
UNKNOWABLE = ("usage", "cost", "latency")  # what a recorded episode may not say (Episode.unknown)
# a tool that hands the conversation to a person (transfer_to_human_agents, handoff, hand_off_to_agent)
_HANDOFF_TOOL = re.compile(r"transfer|hand_?off|escalate_to_human", re.IGNORECASE)
DEFAULT_MAX_STEPS = 8
DEFAULT_DEADLINE_S = 300.0
DEFAULT_TOOL_TIMEOUT_S = 30.0
MAX_RESULT_CHARS = 20_000  # what a tool result may put in the conversation (the rest is cut, and says so)

_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def environment_name_problem(name: str) -> str | None:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        return (f"{name!r} is not a valid environment name: use letters, digits, '.', '_' and '-' "
                "(at most 64, starting with a letter or digit)")
    return None


@dataclass
class ToolResult:
    """One executed tool call: what the model asked and what the environment returned."""
    call_id: str
    name: str
    arguments: Any
    content: str = ""  # the text the model reads in the tool message
    is_error: bool = False  # the tool reported an error (the model sees it; not a crash)
    duration_ms: float = 0.0
    error: str | None = None  # why the call did not complete (timeout, environment stopped), in words
    structured: Any = None  # the tool's structured result, when it gave one

    def to_json(self) -> dict[str, Any]:
        out = {"call_id": self.call_id, "name": self.name, "arguments": self.arguments, "content": self.content,
               "is_error": self.is_error, "duration_ms": round(self.duration_ms, 3), "error": self.error}
        if self.structured is not None:
            out["structured"] = self.structured
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ToolResult:
        return cls(str(d.get("call_id") or ""), str(d.get("name") or ""), d.get("arguments"),
                   str(d.get("content") or ""), bool(d.get("is_error")), float(d.get("duration_ms") or 0.0),
                   d.get("error"), d.get("structured"))


@dataclass
class Step:
    """One agent (assistant) turn: its model call, the results of its tool calls, and the user's
    turns that answered it (inputs of the next step, never targets: a user turn adds no step)."""
    index: int
    call: Trajectory  # the model call of this step
    results: list[ToolResult] = field(default_factory=list)
    user_turns: list[dict[str, Any]] = field(default_factory=list)  # {"role": "user", "content": ...}

    @property
    def answered(self) -> bool:
        return not self.call.tool_calls


@dataclass
class Episode:
    task_id: str
    tier: int
    model: str
    generation: str
    key: str
    steps: list[Step] = field(default_factory=list)
    end_reason: str | None = None
    error: str | None = None
    wall_ms: float = 0.0
    environment: str = ""
    check_passed: bool | None = None  # the task's state check (expected.check) after the episode
    check_detail: str | None = None
    trial: int = 0  # several episodes of one task and generation are told apart by their trial
    prompt: list[dict[str, Any]] | None = None  # the messages before the first step (None: the task's)
    outcome: dict[str, Any] | None = None  # recorded with the episode: {"success": bool, "reward": float|None}
    unknown: tuple[str, ...] = ()  # of UNKNOWABLE: figures the record did not give (not zero)
    user_usage: Usage | None = None  # a simulated user's tokens and cost: not what a cascade pays
    user_cost_micro: int | None = None
    end_detail: str | None = None  # how the record itself said it ended (free text)
    system_inserted: bool = False  # the tier added its system prompt before the prompt (core.trajectory.build_request)

    @property
    def tool_calls(self) -> int:
        return sum(len(s.results) for s in self.steps)

    @property
    def final_answer(self) -> str | None:
        if self.steps and self.steps[-1].answered:
            return self.steps[-1].call.content
        return None

    def usage(self) -> Usage:
        u = Usage()
        for s in self.steps:
            u.prompt_tokens += s.call.usage.prompt_tokens
            u.completion_tokens += s.call.usage.completion_tokens
            u.cached_tokens += s.call.usage.cached_tokens
            u.reasoning_tokens += s.call.usage.reasoning_tokens
        return u

    @property
    def cost_micro(self) -> int:
        return sum(s.call.cost_micro for s in self.steps)

    def summary(self) -> Trajectory:
        """The episode as one trajectory row: the first step's request, decision and confidence (what
        single-request metrics read), the last step's response, the final answer, and the whole
        episode's tokens, cost and wall time. `status` is ok unless the episode ended in an error (a
        recorded episode that ended in an error but has its recorded outcome is a judged trial: ok)."""
        first = self.steps[0].call if self.steps else None
        last = self.steps[-1].call if self.steps else None
        status = "error" if not self.steps or (self.end_reason == ERROR and self.outcome is None) else "ok"
        return Trajectory(
            task_id=self.task_id, tier=self.tier, model=(last.model if last else self.model), status=status,
            request=first.request if first else {}, response=last.response if last else None,
            content=self.final_answer if self.final_answer is not None else (first.content if first else None),
            tool_calls=first.tool_calls if first else [], final_answer=self.final_answer, usage=self.usage(),
            latency_ms=self.wall_ms, cost_micro=self.cost_micro, logprobs=first.logprobs if first else None,
            conf_mean=first.conf_mean if first else None, conf_min=first.conf_min if first else None,
            conf_tool=first.conf_tool if first else None,
            system_fingerprint=last.system_fingerprint if last else None,
            error=self.error, attempts=sum(s.call.attempts for s in self.steps) or 1,
            started_at=first.started_at if first else "", finished_at=last.finished_at if last else "",
            generation=self.generation)

    def known(self, what: str) -> bool:
        return what not in self.unknown

    def totals(self) -> dict[str, Any]:
        """The episode's figures; an unknown one is None (never zero)."""
        u = self.usage()
        usage = self.known("usage")
        out = {"steps": len(self.steps), "tool_calls": self.tool_calls,
               "prompt_tokens": u.prompt_tokens if usage else None,
               "completion_tokens": u.completion_tokens if usage else None,
               "cost_micro": self.cost_micro if self.known("cost") else None,
               "wall_ms": round(self.wall_ms, 1) if self.known("latency") else None,
               "end_reason": self.end_reason, "error": self.error,
               "check_passed": self.check_passed, "check_detail": self.check_detail, "trial": self.trial,
               "outcome": self.outcome, "user_turns": sum(len(s.user_turns) for s in self.steps)}
        if self.end_detail:
            out["end_detail"] = self.end_detail
        if self.user_usage is not None or self.user_cost_micro is not None:
            out["user"] = {"prompt_tokens": self.user_usage.prompt_tokens if self.user_usage else None,
                           "completion_tokens": self.user_usage.completion_tokens if self.user_usage else None,
                           "cost_micro": self.user_cost_micro}
        return out

    def info_json(self) -> dict[str, Any]:
        """What the episode's row keeps beside its columns (store: trajectories.episode_info)."""
        out: dict[str, Any] = {"v": 1}  # the prompt is the first step's request (no copy kept)
        if self.system_inserted:
            out["system_inserted"] = True
        if self.outcome is not None:
            out["outcome"] = self.outcome
        if self.unknown:
            out["unknown"] = list(self.unknown)
        if self.user_usage is not None:
            out["user_usage"] = [self.user_usage.prompt_tokens, self.user_usage.completion_tokens]
        if self.user_cost_micro is not None:
            out["user_cost_micro"] = self.user_cost_micro
        if self.end_detail:
            out["end_detail"] = self.end_detail
        return out

    def apply_info(self, info: dict[str, Any] | None) -> None:
        """The row's episode_info; an episode stored with it takes its prompt from its first step's
        request (what the model saw), without the system prompt its tier added."""
        info = info or {}
        self.prompt = info.get("prompt")
        self.system_inserted = bool(info.get("system_inserted"))
        if self.prompt is None and info and self.steps:
            messages = self.steps[0].call.request.get("messages")
            if isinstance(messages, list):
                self.prompt = messages[1:] if self.system_inserted else list(messages)
        self.outcome = info.get("outcome")
        self.unknown = tuple(info.get("unknown") or ())
        if info.get("user_usage"):
            self.user_usage = Usage(*info["user_usage"])
        self.user_cost_micro = info.get("user_cost_micro")
        self.end_detail = info.get("end_detail")

    def messages_before(self, task_messages: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """The prompt this episode began with: its own, else the task's."""
        return list(self.prompt if self.prompt is not None else (task_messages or []))


# -- the conversation ---------------------------------------------------------------------------
def assistant_message(call: Trajectory) -> dict[str, Any]:
    """The assistant turn exactly as the model gave it (tool call ids and argument strings kept),
    for the next request; reasoning text before tool calls is kept as content."""
    message: dict[str, Any] = {}
    if isinstance(call.response, dict):
        choices = call.response.get("choices") or []
        if choices and isinstance(choices[0], dict):
            message = choices[0].get("message") or {}
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content", call.content)}
    raw_calls = message.get("tool_calls")
    if raw_calls:
        out["tool_calls"] = [{"id": c.get("id"), "type": "function",
                              "function": {"name": (c.get("function") or {}).get("name"),
                                           "arguments": (c.get("function") or {}).get("arguments") or "{}"}}
                             for c in raw_calls]
    elif call.tool_calls:
        out["tool_calls"] = [{"id": c.get("id"), "type": "function",
                              "function": {"name": c.get("name"), "arguments": _argument_text(c.get("arguments"))}}
                             for c in call.tool_calls]
    return out


def _argument_text(arguments: Any) -> str:
    if isinstance(arguments, dict) and set(arguments) == {"__unparsed__"}:
        return str(arguments["__unparsed__"])
    return json.dumps(arguments if arguments is not None else {})


def tool_message(result: ToolResult) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": result.call_id, "content": tool_text(result)}


def tool_text(result: ToolResult) -> str:
    """What the model reads for a tool call: the result, the tool's error, or why the call failed."""
    if result.error:
        return f"Error: {result.error}"
    text = result.content
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[... {len(result.content) - MAX_RESULT_CHARS} more characters cut]"
    return text


def conversation(task_messages: list[dict[str, Any]], steps: list[Step], upto: int | None = None
                 ) -> list[dict[str, Any]]:
    """The messages the model saw before step `upto` (all steps: the whole episode): the prompt, then
    each step's assistant turn, its tool results and the user's turns that answered it."""
    messages = list(task_messages)
    for step in steps[: len(steps) if upto is None else upto]:
        messages.append(assistant_message(step.call))
        messages.extend(tool_message(r) for r in step.results)
        messages.extend(input_message(t) for t in step.user_turns)
    return messages


def is_handoff_tool(name: Any) -> bool:
    """A tool that hands the conversation to a person (its name says transfer or hand-off)."""
    return isinstance(name, str) and bool(_HANDOFF_TOOL.search(name))


def handed_off(steps: list[Step]) -> bool:
    """The episode's last tool-calling step called a hand-off tool (what came after is the farewell)."""
    for step in reversed(steps):
        if step.call.tool_calls:
            return any(is_handoff_tool(c.get("name")) for c in step.call.tool_calls)
    return False


_END_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (HANDOFF, ("transfer", "handoff", "hand-off", "hand_off", "human")),
    (USER_STOP, ("user_stop", "user stop", "user ended", "user_end", "user_quit", "user stopped")),
    (STEP_LIMIT, ("max_steps", "max_turns", "step", "turn limit", "too_many_turns", "length")),
    (DEADLINE, ("timeout", "time_limit", "deadline", "timed out", "time out")),
    (ERROR, ("error", "fail", "exception", "crash")),
    (ANSWERED, ("agent_stop", "answered", "stop", "done", "complete", "finish", "end", "success")),
)


def end_reason_from_text(text: Any) -> str | None:
    """A recorded ending in words (`user_stop`, `max_steps`, `too_many_errors`, `transfer`) as one of
    END_REASONS (None: not understood); hand-off stays its own reason."""
    if not isinstance(text, str) or not text.strip():
        return None
    low = text.strip().lower()
    if low in END_REASONS:
        return low
    for reason, words in _END_WORDS:
        if any(w in low for w in words):
            return reason
    return None


def episode_json(episode: Episode, task_messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole episode for `trajectories show --json` and exports: every step, tool results included."""
    steps = []
    for s in episode.steps:
        c = s.call
        steps.append({
            "step": s.index, "content": c.content, "tool_calls": c.tool_calls,
            "tool_results": [r.to_json() for r in s.results],
            "user_turns": [input_message(t) for t in s.user_turns],
            "usage": None if not episode.known("usage") else {"prompt_tokens": c.usage.prompt_tokens, "completion_tokens": c.usage.completion_tokens,
                      "cached_tokens": c.usage.cached_tokens, "reasoning_tokens": c.usage.reasoning_tokens},
            "latency_ms": round(c.latency_ms, 1) if episode.known("latency") else None,
            "cost_micro": c.cost_micro if episode.known("cost") else None,
            "confidence": {"mean_token_prob": c.conf_mean, "min_token_prob": c.conf_min,
                           "tool_name_prob": c.conf_tool},
            "attempts": c.attempts, "finished_at": c.finished_at,
        })
    out = {"episode": episode.key, "environment": episode.environment, **episode.totals(),
           "final_answer": episode.final_answer, "steps": steps}
    if task_messages is not None or episode.prompt is not None:
        out["messages"] = conversation(episode.messages_before(task_messages), episode.steps)
    return out


def check_call(expected: Any) -> tuple[str, dict[str, Any]] | None:
    """The state check a task names (expected.check: {"tool", "arguments"}), or None."""
    if isinstance(expected, dict) and isinstance(expected.get("check"), dict):
        check = expected["check"]
        if isinstance(check.get("tool"), str) and check["tool"]:
            args = check.get("arguments")
            return check["tool"], args if isinstance(args, dict) else {}
    return None


def check_verdict(result: ToolResult) -> tuple[bool, str]:
    """(passed, why) from a check tool's result: a JSON {"passed": bool, "reason": ...} (or a bare
    true/false, "pass"/"fail"); a tool error or a failed call is a failed check."""
    if result.error:
        return False, f"the check could not run: {result.error}"
    if result.is_error:
        return False, f"the check tool reported an error: {result.content[:300]}"
    data: Any = result.structured
    if not isinstance(data, dict | bool):
        try:
            data = json.loads(result.content)
        except (ValueError, TypeError):
            data = result.content.strip().lower()
    if isinstance(data, dict) and "result" in data and "passed" not in data:
        data = data["result"]
    if isinstance(data, dict) and "passed" in data:
        return bool(data["passed"]), str(data.get("reason") or "")
    if isinstance(data, bool):
        return data, ""
    if isinstance(data, str) and data in ("true", "pass", "passed", "ok", "false", "fail", "failed"):
        return data in ("true", "pass", "passed", "ok"), ""
    return False, f"the check's answer is not a verdict: {result.content[:200]}"


def check_tool_names(expected: Any) -> set[str]:
    """Tools a task names to judge its final state (expected.check.tool): hidden from the model."""
    if isinstance(expected, dict) and isinstance(expected.get("check"), dict):
        name = expected["check"].get("tool")
        if isinstance(name, str) and name:
            return {name}
    return set()


def tool_turn_problems(messages: list[Any]) -> list[tuple[str, str]]:
    """A multi-turn tool conversation's problems: every tool message answers, by id, a call of the
    assistant turn before it (once); every call of an assistant turn that the conversation goes on
    after is answered before the next turn; an assistant's `weight` is 0 or 1."""
    problems: list[tuple[str, str]] = []
    open_calls: dict[str, int] = {}  # call id -> index of the assistant message that made it
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if "weight" in m and (role != "assistant" or m["weight"] not in (0, 1) or isinstance(m["weight"], bool)):
            problems.append(("invalid_weight", f"message {i}: weight must be 0 or 1, on assistant messages"))
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                problems.append(("tool_message_missing_id", f"message {i}"))
            elif call_id not in open_calls:
                problems.append(("tool_message_without_call", f"message {i}: {call_id} answers no call of the "
                                                              "assistant turn before it"))
            else:
                del open_calls[call_id]
            continue
        if open_calls:
            problems.append(("tool_call_unanswered", f"before message {i}: {', '.join(sorted(open_calls))}"))
            open_calls = {}
        if role == "assistant" and isinstance(m.get("tool_calls"), list):
            for call in m["tool_calls"]:
                call_id = call.get("id") if isinstance(call, dict) else None
                if isinstance(call_id, str) and call_id:
                    if call_id in open_calls:
                        problems.append(("duplicate_tool_call_id", f"message {i}: {call_id}"))
                    open_calls[call_id] = i
    last = messages[-1] if messages else None
    if open_calls and not (isinstance(last, dict) and last.get("role") == "assistant"):
        problems.append(("tool_call_unanswered", f"at the end: {', '.join(sorted(open_calls))}"))
    return problems
