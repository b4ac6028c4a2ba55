"""A tier that fails escalates (and the log says why); only when every tier failed does the client
get OpenAI's error envelope. Against real servers on 127.0.0.1 with the real openai SDK."""

from __future__ import annotations

import json

import openai
import pytest

from cascade_studio.gateway.app import GatewayConfig
from cascade_studio.gateway.server import GatewayServer
from cascade_studio.sandbox.app import SandboxConfig
from cascade_studio.sandbox.faults import parse_faults
from cascade_studio.sandbox.server import SandboxServer
from tests.gateway.helpers import ASK, WEATHER_TOOL, GarbageServer, tiers_at, write


def _records(folder):
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]


async def _ask(policy: str, logs, **kwargs):
    async with GatewayServer(GatewayConfig(policy, port=0, log_dir=str(logs))) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
        try:
            return await client.chat.completions.with_raw_response.create(
                model="cascade", messages=ASK, tools=[WEATHER_TOOL], **kwargs)
        finally:
            await client.close()


@pytest.mark.parametrize("faults", ["500=1", "503=1,retry_after=0", "429=1,retry_after=0.01", "drop=1"])
async def test_a_failing_tier_escalates_and_the_log_says_why(tmp_path, sandbox, faults):
    async with SandboxServer(SandboxConfig(latency_scale=0, faults=parse_faults(faults))) as broken:
        policy = write(tmp_path / "p.json", tiers_at(broken.base_url, sandbox.base_url))
        raw = await _ask(policy, tmp_path / "logs")
    assert raw.headers["x-cascade-tier"] == "2" and raw.headers["x-cascade-tiers-tried"] == "1,2"
    assert raw.parse().choices[0].message.tool_calls
    (record,) = _records(tmp_path / "logs")
    first, second = record["attempts"]
    assert first["status"] == "failed" and first["error"] and first["cost_micro"] == 0
    assert first["tries"] == 2  # retried once, then escalated
    assert second["status"] == "ok" and second["kept"] and record["answered_by"] == 2 and record["escalated"]


async def test_a_tier_that_times_out_escalates(tmp_path, sandbox):
    async with SandboxServer(SandboxConfig(latency_scale=0, faults=parse_faults("slow=1,slow_s=5"))) as slow:
        tiers = tiers_at(slow.base_url, sandbox.base_url)
        tiers[0] = tiers[0].replace(timeout_s=0.2)
        raw = await _ask(write(tmp_path / "p.json", tiers), tmp_path / "logs")
    assert raw.headers["x-cascade-tier"] == "2"
    first = _records(tmp_path / "logs")[0]["attempts"][0]
    assert first["status"] == "failed" and "Timed out" in first["error"]


async def test_a_tier_answering_garbage_escalates(tmp_path, sandbox):
    async with GarbageServer() as garbage:
        raw = await _ask(write(tmp_path / "p.json", tiers_at(garbage.base_url, sandbox.base_url)), tmp_path / "logs")
    assert raw.headers["x-cascade-tier"] == "2"
    first = _records(tmp_path / "logs")[0]["attempts"][0]
    assert first["status"] == "unusable" and "not a chat completion" in first["error"]


async def test_every_tier_failing_gives_openais_error_envelope(tmp_path):
    async with SandboxServer(SandboxConfig(latency_scale=0, faults=parse_faults("500=1"))) as broken, \
            GarbageServer() as garbage:
        policy = write(tmp_path / "p.json", tiers_at(broken.base_url, garbage.base_url))
        with pytest.raises(openai.APIStatusError) as caught:
            await _ask(policy, tmp_path / "logs")
    assert caught.value.status_code == 502
    error = caught.value.body
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "all_tiers_failed"
    assert "tier 1 (gpt-4.1-nano): 500 from" in error["message"] and "tier 2 (gpt-4o-mini)" in error["message"]
    (record,) = _records(tmp_path / "logs")
    assert record["answered_by"] is None and record["error"] == error["message"]


async def test_a_bad_client_request_is_refused_without_asking_a_tier(tmp_path, sandbox):
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url))
    async with GatewayServer(GatewayConfig(policy, port=0, log_dir=str(tmp_path / "logs"))) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="cascade", messages=[])
        await client.close()
    assert caught.value.body["param"] == "messages"
    assert not list((tmp_path / "logs").glob("*.jsonl"))  # nothing was asked, nothing logged


async def test_an_unsure_answer_beats_none_when_every_tier_above_failed(tmp_path, sandbox):
    async with SandboxServer(SandboxConfig(latency_scale=0, faults=parse_faults("500=1"))) as broken:
        policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, broken.base_url, threshold=1.0))
        raw = await _ask(policy, tmp_path / "logs")
    assert raw.headers["x-cascade-tier"] == "1" and raw.headers["x-cascade-fallback"]
    (record,) = _records(tmp_path / "logs")
    assert record["answered_by"] == 1 and record["attempts"][0]["fallback"] and record["attempts"][1]["status"] == "failed"


@pytest.mark.parametrize("rule", ["step", "rest"])
async def test_the_per_step_rule_of_agent_episodes(tmp_path, sandbox, rule):
    """Each request is a step of an episode. Policy "step": every step starts at tier 1; policy "rest":
    once a step went up, the episode's later steps start where it answered (the rule the episode
    what-if simulated), by the episode header or by the client echoing x-cascade-min-tier."""
    from cascade_studio.services.policy import policy_document

    tiers = tiers_at(sandbox.base_url, sandbox.base_url, threshold=1.0)  # the student (never sure) escalates
    path = tmp_path / "p.json"
    path.write_text(json.dumps(policy_document(tiers, episode_policy=rule)))
    async with GatewayServer(GatewayConfig(str(path), port=0, log_dir=str(tmp_path / "logs"))) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
        try:
            tried = []
            for _ in range(2):
                raw = await client.chat.completions.with_raw_response.create(
                    model="cascade", messages=ASK, tools=[WEATHER_TOOL], extra_headers={"x-cascade-episode": "ep-1"})
                tried.append(raw.headers["x-cascade-tiers-tried"])
            echoed = await client.chat.completions.with_raw_response.create(
                model="cascade", messages=ASK, tools=[WEATHER_TOOL],
                extra_headers={"x-cascade-min-tier": raw.headers.get("x-cascade-min-tier", "0")})
        finally:
            await client.close()
    if rule == "step":
        assert tried == ["1,2", "1,2"] and echoed.headers["x-cascade-tiers-tried"] == "1,2"
    else:
        assert tried == ["1,2", "2"] and echoed.headers["x-cascade-tiers-tried"] == "2"
