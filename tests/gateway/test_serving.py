"""Streaming, the log (privacy, rotation), shadow sampling, OpenTelemetry spans, the client key,
models/health, and the messages a bad policy file gets."""

from __future__ import annotations

import json
import random

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cascade_studio.cli import main
from cascade_studio.core.errors import UserError
from cascade_studio.gateway.app import GatewayConfig
from cascade_studio.gateway.server import GatewayServer
from cascade_studio.gateway.telemetry import Telemetry
from cascade_studio.services.policy import load_policy
from tests.gateway.helpers import ASK, WEATHER_TOOL, tiers_at, write


def _records(folder):
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]


async def test_stream_sends_the_decided_answer_as_server_sent_events(tmp_path, sandbox):
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url, sandbox.base_url, threshold=1.0))
    async with GatewayServer(GatewayConfig(policy, port=0)) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k")
        whole = await client.chat.completions.create(model="cascade", messages=ASK, tools=[WEATHER_TOOL])
        for tools in ([WEATHER_TOOL], None):
            stream = await client.chat.completions.create(
                model="cascade", messages=ASK, stream=True, stream_options={"include_usage": True},
                **({"tools": tools} if tools else {}))
            chunks = [c async for c in stream]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
            assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
            assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "tool_calls")
            if tools:
                assert text == (whole.choices[0].message.content or "")
                assert [(c.function.name, c.function.arguments) for c in calls] == \
                    [(c.function.name, c.function.arguments) for c in whole.choices[0].message.tool_calls]
            else:
                assert text.strip() and not calls
        await client.close()


@pytest.mark.parametrize("mode", ["none", "hash", "full"])
async def test_log_content_follows_the_privacy_setting(tmp_path, sandbox, mode):
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url))
    async with GatewayServer(GatewayConfig(policy, port=0, log_dir=str(tmp_path / "logs"), log_content=mode)) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k")
        await client.chat.completions.create(model="cascade", messages=ASK, tools=[WEATHER_TOOL],
                                             metadata={"category": "weather"})
        await client.close()
    (record,) = _records(tmp_path / "logs")
    text = (tmp_path / "logs").joinpath(next((tmp_path / "logs").glob("*.jsonl")).name).read_text()
    assert record["category"] == "weather" and record["attempts"][0]["prompt_tokens"] > 0
    answer = record["attempts"][-1]
    assert answer["kept"] and record["teacher_only_micro"] > 0 and record["cost_micro"] == sum(
        a["cost_micro"] for a in record["attempts"])
    if mode == "none":
        assert record["content"] is None and "Paris" not in text
    elif mode == "hash":
        assert set(record["content"]) == {"messages_sha256", "tools_sha256", "answer_sha256"} and "Paris" not in text
    else:
        assert record["content"]["messages"] == ASK and record["content"]["responses"]["1"]["choices"]


async def test_logs_rotate_and_never_interleave(tmp_path, sandbox):
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url))
    config = GatewayConfig(policy, port=0, log_dir=str(tmp_path / "logs"), max_log_bytes=2000)
    async with GatewayServer(config) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k")
        for i in range(6):
            await client.chat.completions.create(model="cascade", messages=[{"role": "user", "content": f"hi {i}"}])
        await client.close()
    files = sorted((tmp_path / "logs").glob("requests-*.jsonl"))
    assert len(files) >= 2 and len(_records(tmp_path / "logs")) == 6
    assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in files)


async def test_shadow_samples_measure_live_agreement_in_the_background(tmp_path, sandbox):
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url, threshold=0.0))
    config = GatewayConfig(policy, port=0, log_dir=str(tmp_path / "logs"), shadow_rate=1.0)
    async with GatewayServer(config, rng=random.Random(0)) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k")
        raw = await client.chat.completions.with_raw_response.create(model="cascade", messages=ASK,
                                                                     tools=[WEATHER_TOOL])
        assert raw.headers["x-cascade-tier"] == "1"  # threshold 0: tier 1 keeps every answer
        await gw.gateway.drain()
        await client.close()
    request, shadow = _records(tmp_path / "logs")
    assert request["kind"] == "request" and request["shadow"] is True
    assert shadow["kind"] == "shadow" and shadow["id"] == request["id"] and shadow["tier"] == 1
    assert shadow["teacher"]["tier"] == 2 and shadow["teacher"]["status"] == "ok" and shadow["agree"] in (True, False)


async def test_opentelemetry_genai_spans(tmp_path, sandbox):
    exporter = InMemorySpanExporter()
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url, threshold=1.0))
    async with GatewayServer(GatewayConfig(policy, port=0), telemetry=Telemetry(exporter=exporter)) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="k")
        await client.chat.completions.create(model="cascade", messages=ASK, tools=[WEATHER_TOOL])
        await client.close()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"chat cascade", "chat gpt-4.1-nano", "chat gpt-4o-mini"}
    tier1 = spans["chat gpt-4.1-nano"]
    assert tier1.parent.span_id == spans["chat cascade"].context.span_id
    assert tier1.attributes["gen_ai.operation.name"] == "chat" and tier1.attributes["gen_ai.usage.input_tokens"] > 0
    assert tier1.attributes["gen_ai.request.model"] == "gpt-4.1-nano" and tier1.attributes["cascade.kept"] is False
    assert spans["chat cascade"].attributes["cascade.answered_by"] == 2


async def test_client_key_models_and_health(tmp_path, sandbox, monkeypatch):
    monkeypatch.setenv("CASCADE_STUDIO_GATEWAY_KEY", "gw-secret")
    policy = write(tmp_path / "p.json", tiers_at(sandbox.base_url, sandbox.base_url))
    async with GatewayServer(GatewayConfig(policy, port=0)) as gw:
        wrong = openai.AsyncOpenAI(base_url=gw.base_url, api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            await wrong.chat.completions.create(model="cascade", messages=ASK)
        assert caught.value.body["code"] == "invalid_api_key"
        right = openai.AsyncOpenAI(base_url=gw.base_url, api_key="gw-secret")
        assert [m.id for m in (await right.models.list()).data] == ["cascade"]
        health = await right.get("/../healthz", cast_to=object)
        assert health["status"] == "ok" and [t["tier"] for t in health["tiers"]] == [1, 2]
        await wrong.close()
        await right.close()


def test_a_bad_policy_file_gets_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    for text, words in [("{not json", "not valid JSON"), ('{"format": "other"}', "export the policy again"),
                        (json.dumps({"format": "cascade-studio/policy@1", "tiers": []}), "at least one tier"),
                        (json.dumps({"format": "cascade-studio/policy@1", "tiers": [
                            {"tier": 1, "model": "m", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "X"}]}),
                         "never names a key"),
                        (json.dumps({"format": "cascade-studio/policy@1", "tiers": [
                            {"tier": 1, "model": "m", "base_url": "http://127.0.0.1:1/v1", "provider": "compatible"},
                            {"tier": 2, "model": "m", "base_url": "http://127.0.0.1:1/v1", "provider": "compatible"}]}),
                         "threshold missing"),
                        (json.dumps({"format": "cascade-studio/policy@1", "tiers": [
                            {"tier": 1, "model": "m", "base_url": "http://127.0.0.1:1/v1"}]}), "choose 'OpenAI-compatible'"),
                        (json.dumps({"format": "cascade-studio/policy@1", "mode": "routing", "tiers": []}), "routing")]:
        bad.write_text(text)
        with pytest.raises(UserError, match=words) as caught:
            load_policy(bad)
        assert str(bad) in str(caught.value)
    assert main(["serve", "--policy", str(tmp_path / "missing.json")]) == 1
    assert "missing.json: the file does not exist" in capsys.readouterr().err
    assert main(["serve", "--policy", str(bad), "--shadow-rate", "2"]) == 2
    assert "--shadow-rate 2" in capsys.readouterr().err


def test_serve_refuses_a_tier_without_a_key_before_listening(tmp_path, capsys):
    from cascade_studio.core.tiers import Provider

    tiers = [t.replace(provider=Provider.COMPATIBLE) for t in tiers_at("http://127.0.0.1:9/v1", "http://10.1.2.3/v1")]
    policy = write(tmp_path / "p.json", tiers)
    assert main(["serve", "--policy", policy, "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "tier 1" in err and "CASCADE_STUDIO_TIER1_API_KEY" in err and "clear text" in err
