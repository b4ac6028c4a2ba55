"""The exported `_apply.py` snippet computes the app's confidences (its functions are the app's own,
copied in) and sends each tier's system prompt, temperature and logprobs. The old snippet found the
tool name anywhere in the text, the reasoning included, and disagreed with the app."""

from __future__ import annotations

import json
import math

import openai

from cascade_studio.core.trajectory import build_request, trajectory_from_response
from cascade_studio.services.demo import prepare_demo
from cascade_studio.services.policy import export_policy
from cascade_studio.store.tasks import TaskRepository
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace

METHODS = ("mean_token_prob", "min_token_prob", "tool_name_prob")


def old_snippet_tool_name_prob(choice) -> float | None:
    """The exported snippet's tool_name_prob before issue 18: the first occurrence of the name in
    the whole text, so a reasoning sentence naming the tool counted instead of the call."""
    tokens = (choice.logprobs and choice.logprobs.content) or []
    calls = choice.message.tool_calls or []
    if not tokens:
        return None
    if not calls:
        return math.exp(tokens[0].logprob)
    text = "".join(t.token for t in tokens)
    at = text.find(calls[0].function.name)
    if at < 0:
        return None
    spans, pos = [], 0
    for t in tokens:
        spans.append((pos, pos + len(t.token), t.logprob))
        pos += len(t.token)
    end = at + len(calls[0].function.name)
    return math.exp(sum(lp for s, e, lp in spans if e > at and s < end))


def test_snippet_confidences_equal_the_apps_on_40_sandbox_answers(tmp_path, sandbox_thread):
    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    with Workspace.open(tmp_path / "ws") as ws:
        tiers = TierRepository(ws).list()
        tasks = TaskRepository(ws).list(limit=40)
        tiers[0] = tiers[0].replace(system_prompt="Answer with a tool call when one fits.", temperature=0.3)
        snippet = export_policy(tiers, tmp_path / "policy.json")
    namespace: dict = {"__file__": str(snippet), "__name__": "policy_apply"}
    exec(compile(snippet.read_text(), str(snippet), "exec"), namespace)
    policy_tier = namespace["policy"]["tiers"][0]
    client = openai.OpenAI(base_url=sandbox_thread.base_url, api_key="k")
    differs = 0
    for task in tasks:
        request = namespace["request_for"](policy_tier, task.messages, task.tools)
        assert request == build_request(tiers[0], task.messages, task.tools)  # prompt, temperature, logprobs
        response = client.chat.completions.create(**request)
        app = trajectory_from_response(task.id, tiers[0], request, response.model_dump(exclude_none=True), 1.0)
        choice = response.choices[0]
        for method in METHODS:
            assert namespace["confidence"](choice, method) == app.confidence(method), (task.id, method)
        if old_snippet_tool_name_prob(choice) != app.confidence("tool_name_prob"):
            differs += 1
    assert len(tasks) == 40 and differs > 0  # the old snippet's bug, on the same answers


def test_policy_carries_what_decides_an_answer(tmp_path, sandbox_thread):
    prepare_demo(tmp_path / "ws", sandbox_thread.base_url)
    with Workspace.open(tmp_path / "ws") as ws:
        tiers = TierRepository(ws).list()
    tiers[0] = tiers[0].replace(system_prompt="Be brief.", temperature=0.2, top_logprobs=7)
    export_policy(tiers, tmp_path / "policy.json")
    t1, *_, teacher = json.loads((tmp_path / "policy.json").read_text())["tiers"]
    assert (t1["system_prompt"], t1["temperature"], t1["top_logprobs"], t1["logprobs"]) == ("Be brief.", 0.2, 7, True)
    assert t1["threshold"] == tiers[0].threshold and teacher["threshold"] is None
    assert t1["input_price"] == str(tiers[0].input_price) and "api_key_env" not in t1
