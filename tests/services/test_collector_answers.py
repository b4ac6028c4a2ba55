"""What a server answers decides what is stored: a 200 that is not a chat completion is a recorded
failure in words (never "ok", never dropped), and a server that fails when asked for logprobs is
learned from (issue 14's silent success, issue 21's logprobs setting)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from cascade_studio.core.tiers import LogprobsMode, Provider, Tier, WithoutLogprobs
from cascade_studio.services.collector import CollectionRun, select_task_ids, start_or_resume
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from tests.services.test_collector import synthetic_tasks
from tests.services.witness import WitnessServer, completion


def tier_for(url: str, **kw) -> Tier:
    base = dict(tier=1, model="m", base_url=url, provider=Provider.COMPATIBLE, no_key=True, max_concurrency=4,
                input_price=Decimal("1"), output_price=Decimal("2"), timeout_s=5)
    base.update(kw)
    return Tier(**base)


async def collect(tmp_path, respond, n=6, **tier_kw):
    ws = Workspace.open(tmp_path / "ws")
    synthetic_tasks(ws, n)
    with WitnessServer(respond=respond) as server:
        tier = tier_for(server.base_url, **tier_kw)
        TierRepository(ws).replace_all([tier])
        run, _ = start_or_resume(ws, tier, select_task_ids(ws), {})
        result = await CollectionRun(ws, tier, SecretStore(environ={}), run, max_attempts=2,
                                     backoff_base=0.001).run()
    return ws, result, server


def ok(body):
    return 200, completion(body["model"])


@pytest.mark.parametrize("answer, words", [
    (b"<html><body>Welcome to nginx</body></html>", "not JSON"),
    (b"Internal gateway message", "not JSON"),
    (b"[1, 2, 3]", "JSON list"),
    (b"{}", "no choices"),
    (json.dumps({"choices": [1]}).encode(), "choices[0]"),
    (json.dumps({**completion("m"), "usage": None}).encode(), "no usage"),
    (json.dumps({k: v for k, v in completion("m").items() if k != "usage"}).encode(), "no usage"),
    (json.dumps({**completion("m"), "usage": {"prompt_tokens": "abc", "completion_tokens": 1}}).encode(),
     "prompt_tokens"),
    (json.dumps({**completion("m"), "usage": {"prompt_tokens": 2**70, "completion_tokens": 1}}).encode(),
     "prompt_tokens"),
    (json.dumps({**completion("m"), "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}}]}
                ).encode(), "neither content nor tool calls"),
    (json.dumps({**completion("m"), "choices": [{"index": 0, "message": {
        "role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": 5}}]}}]}
                ).encode(), "tool_calls"),
])
async def test_a_200_that_is_not_a_chat_completion_is_a_failure_in_words(tmp_path, answer, words):
    ws, result, _ = await collect(tmp_path, lambda body: (200, answer))
    assert result.status == "failed" and result.done == 0 and result.failed == 6
    assert result.done + result.failed == result.total
    rows = ws.conn.execute("SELECT status, error FROM trajectories").fetchall()
    assert len(rows) == 6 and {r[0] for r in rows} == {"error"}
    assert all("not a chat completion" in r[1] and words in r[1] for r in rows), rows[0]
    ws.close()


async def test_more_cached_than_prompt_tokens_is_clamped_and_noted(tmp_path):
    def answer(body):
        data = completion(body["model"])
        data["usage"] = {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11,
                         "prompt_tokens_details": {"cached_tokens": 5000}}
        return 200, data

    ws, result, _ = await collect(tmp_path, answer, n=2)
    assert result.status == "done"
    cost, error = ws.conn.execute("SELECT cost_micro, error FROM trajectories LIMIT 1").fetchone()
    assert cost == 10 * 1 + 1 * 2  # 10 prompt tokens at $1/1M (at most all cached) + 1 output at $2/1M
    assert "usage anomaly" in error
    ws.close()


def fails_with_logprobs(status=500, message="Internal Server Error"):
    def answer(body):
        if body.get("logprobs"):
            return status, {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        return ok(body)
    return answer


@pytest.mark.parametrize("status, message", [
    (500, "Internal Server Error"),  # a mock server that crashes building logprobs for tool calls
    (400, "logprobs is not supported by this model"),
    (422, "Extra inputs are not permitted"),
])
async def test_auto_logprobs_retries_once_without_and_remembers(tmp_path, status, message):
    ws, result, server = await collect(tmp_path, fails_with_logprobs(status, message), n=20)
    assert result.status == "done" and result.done == 20 and result.failed == 0, result.message
    assert "fails when asked for logprobs" in result.message and "always escalates" in result.message
    assert TierRepository(ws).get(1).logprobs_unsupported
    with_lp = [b for b in server.bodies if b.get("logprobs")]
    assert len(with_lp) <= 4  # at most one per worker in flight before the verdict, then never again
    rows = ws.conn.execute("SELECT status, conf_mean FROM trajectories").fetchall()
    assert {r[0] for r in rows} == {"ok"} and {r[1] for r in rows} == {None}
    # the next run asks without logprobs from the start
    tier = TierRepository(ws).get(1)
    from cascade_studio.core.trajectory import build_request

    assert "logprobs" not in build_request(tier, [{"role": "user", "content": "x"}], [])
    ws.close()


async def test_a_broken_server_is_not_mistaken_for_a_logprobs_problem(tmp_path):
    def always_500(body):
        return 500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}

    ws, result, server = await collect(tmp_path, always_500, n=6)
    assert result.status == "failed" and result.failed == 6
    assert not TierRepository(ws).get(1).logprobs_unsupported
    assert len([b for b in server.bodies if not b.get("logprobs")]) <= 4  # probes stop once disproved
    ws.close()


async def test_logprobs_off_and_on_and_top_k(tmp_path):
    ws, result, server = await collect(tmp_path, ok, n=2, logprobs=LogprobsMode.OFF)
    assert result.status == "done" and not any("logprobs" in b for b in server.bodies)
    ws.close()
    ws, result, server = await collect(tmp_path / "2", ok, n=2, top_logprobs=20)
    assert {b["top_logprobs"] for b in server.bodies} == {20}
    ws.close()
    # "on": a failure is a failure, nothing is learned
    ws, result, server = await collect(tmp_path / "3", fails_with_logprobs(), n=2, logprobs=LogprobsMode.ON,
                                       without_logprobs=WithoutLogprobs.ANSWER)
    assert result.status == "failed" and not TierRepository(ws).get(1).logprobs_unsupported
    ws.close()


def test_no_key_needed_only_on_this_machine():
    from cascade_studio.core.tiers import validate_tier

    local = tier_for("http://localhost:11434/v1")
    assert SecretStore(environ={}).resolve(local).source == "not needed"
    remote = tier_for("https://gpu.example/v1")
    assert any(i.field == "no_key" for i in validate_tier(remote))
    assert not SecretStore(environ={}).resolve(remote).found
    assert any(i.field == "top_logprobs" for i in validate_tier(tier_for("http://localhost:1/v1", top_logprobs=21)))
