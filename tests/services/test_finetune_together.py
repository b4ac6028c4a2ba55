"""Together AI as a fine-tune backend, against the sandbox's Together route group over real HTTP:
a whole job (limits, upload of an OpenAI-format file converted on the way, price, create, poll,
events, loss curve, checkpoints, cancel, use as tier, a chat request to the new tier) and a DPO job
from the SFT job's checkpoint; every request the backend sends, and every answer, validates against
Together's published spec. Refusals happen before anything is uploaded or billed."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from cascade_studio.services.finetune import tracker
from cascade_studio.services.finetune.backend import JobSpec
from cascade_studio.services.finetune.together_backend import (
    TogetherError,
    TogetherFineTuneBackend,
    serving_note,
)
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace
from tests import together_spec_check as spec_check

pytestmark = pytest.mark.skipif(not spec_check.available(), reason="Together's spec is not at ../shared")
MODEL = "meta-llama/Llama-3.2-1B-Instruct"
KEY = "tk-together-test-0123456789"


def openai_dataset(path, n=24, start=0):
    """Lines as `dataset build --format openai` writes them: tools, parallel_tool_calls, a tool-call turn
    with null content, a developer message."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    rows = []
    for i in range(start, start + n):
        call = {"id": f"call_{i}", "type": "function", "function": {"name": "get_weather",
                                                                    "arguments": json.dumps({"city": f"c{i}"})}}
        rows.append({"messages": [{"role": "developer", "content": "Use the tools."},
                                  {"role": "user", "content": f"Weather in c{i}?"},
                                  {"role": "assistant", "content": None, "tool_calls": [call]}],
                     "tools": tools, "parallel_tool_calls": False})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def preference_dataset(path, n=12):
    rows = [{"input": {"messages": [{"role": "user", "content": f"q{i}"}]},
             "preferred_output": [{"role": "assistant", "content": f"teacher {i}"}],
             "non_preferred_output": [{"role": "assistant", "content": f"student {i}"}]} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def secrets(sandbox):
    store = SecretStore(environ={})
    store.set_key(sandbox.base_url, KEY)
    return store


@pytest.fixture
def recorder(monkeypatch):
    return spec_check.Recorder().install(monkeypatch)


def together_paths(recorder) -> list[str]:
    return [f"{req.method} {req.url.path}" for req, _ in recorder.exchanges
            if "/fine-tunes" in req.url.path or req.url.path.endswith("/files/upload")]


async def test_whole_job_end_to_end(sandbox, tmp_path, secrets, recorder):
    sandbox.config.job_seconds = 1.0
    ws = Workspace.open(tmp_path / "ws")
    spec = JobSpec(MODEL, openai_dataset(tmp_path / "train.jsonl"),
                   validation_file=openai_dataset(tmp_path / "valid.jsonl", n=6, start=100), n_epochs=2, suffix="gui",
                   options={"training_type": "lora", "lora_rank": 8, "n_checkpoints": 2})
    quotes = []
    state, warning = await tracker.start_job(ws, spec, None, secrets, backend_name="together",
                                             base_url=sandbox.base_url, on_estimate=quotes.append,
                                             max_price=Decimal("5"))
    assert warning is None and state.id.startswith("ft-") and state.status == "queued"
    assert quotes[0].price is not None and quotes[0].allowed and quotes[0].train_tokens > 0
    job = tracker.JobStore(ws).get(state.id)
    assert job["backend"] == "together" and job["base_url"] == sandbox.base_url
    assert job["hyperparameters"]["training_type"] == "lora" and job["hyperparameters"]["estimated_price_usd"]
    # the uploaded file is Together's format: no parallel_tool_calls, no developer role, no null content
    uploaded = [f for f in sandbox.sandbox.files.values() if f.filename == "train.jsonl"][0]
    first = json.loads(uploaded.content.splitlines()[0])
    assert set(first) == {"messages", "tools"} and first["messages"][0]["role"] == "system"
    assert first["messages"][-1]["content"] == ""

    seen = []
    final = await tracker.watch(ws, state.id, secrets, on_event=seen.append, poll_s=0.05, max_poll_s=0.1)
    assert final.status == "succeeded" and final.fine_tuned_model.startswith("sandbox-user/Llama-3.2-1B-Instruct-gui-")
    store = tracker.JobStore(ws)
    metrics = store.metrics(state.id)
    assert metrics and all("step" in m for m in metrics)
    assert any("train_loss" in m for m in metrics) and any("valid_loss" in m for m in metrics)
    assert any("completed" in e.message for e in seen)
    assert len(store.events(state.id)) == len(seen)  # each stored once, none repeated by later polls
    again = await tracker.refresh(ws, state.id, secrets)
    assert again[1] == []

    backend = TogetherFineTuneBackend(sandbox.base_url, secrets)
    try:
        checkpoints = await backend.checkpoints(state.id)
        listed = await backend.list_jobs()
    finally:
        await backend.close()
    assert checkpoints and checkpoints[-1]["checkpoint_type"] == "Final Adapter"
    assert [j.id for j in listed] == [state.id]

    # use as tier: Together's OpenAI-compatible endpoint, the output model name, the base model's price
    tier = tracker.use_as_tier(ws, state.id, 1)
    assert tier.model == final.fine_tuned_model and tier.base_url == sandbox.base_url and tier.input_price > 0
    assert "LoRA adapter" in serving_note(tracker.JobStore(ws).get(state.id))
    from cascade_studio.services.clients import make_async_client

    client = make_async_client(tier, secrets)
    answer = await client.chat.completions.create(model=tier.model, messages=[{"role": "user", "content": "hi"}])
    await client.close()
    assert answer.choices[0].message is not None

    # DPO from the SFT job's final checkpoint
    dpo = JobSpec(MODEL, preference_dataset(tmp_path / "pref.jsonl"),
                  options={"training_method": "dpo", "from_checkpoint": state.id, "dpo_beta": 0.2})
    dpo_state, _ = await tracker.start_job(ws, dpo, None, secrets, backend_name="together", base_url=sandbox.base_url)
    assert dpo_state.hyperparameters["training_method"] == "dpo"
    assert dpo_state.hyperparameters["from_checkpoint"] == state.id

    # cancel: cancel_requested is "cancelling" until Together says cancelled
    cancelled = await tracker.control(ws, dpo_state.id, "cancel", secrets)
    assert cancelled.status == "cancelling"
    after, _ = await tracker.refresh(ws, dpo_state.id, secrets)
    assert after.status == "cancelled" and tracker.JobStore(ws).unfinished() == []
    with pytest.raises(TogetherError, match="cannot pause"):
        await tracker.control(ws, state.id, "pause", secrets)

    labels = [spec_check.validate_exchange(req, resp) for req, resp in recorder.exchanges
              if "/fine-tunes" in req.url.path or req.url.path.endswith("/files/upload")]
    paths = {label.split(" -> ")[0].rsplit("/", 1)[-1] for label in labels}
    assert {"limits", "upload", "estimate-price", "fine-tunes", "events", "metrics", "checkpoints",
            "cancel"} <= paths, paths
    ws.close()


async def test_tracking_survives_a_restart(sandbox, tmp_path, secrets):
    """Only the workspace is kept between runs: a new process finds the job and goes on polling it."""
    sandbox.config.job_seconds = 0.6
    ws = Workspace.open(tmp_path / "ws")
    spec = JobSpec(MODEL, openai_dataset(tmp_path / "t.jsonl"))
    state, _ = await tracker.start_job(ws, spec, None, secrets, backend_name="together", base_url=sandbox.base_url)
    ws.close()
    ws = Workspace.open(tmp_path / "ws")
    assert [j["id"] for j in tracker.JobStore(ws).unfinished()] == [state.id]
    final = await tracker.watch(ws, state.id, secrets, poll_s=0.05, max_poll_s=0.1)
    assert final.status == "succeeded"
    ws.close()


async def test_refusals_before_anything_is_uploaded(sandbox, tmp_path, secrets, recorder):
    ws = Workspace.open(tmp_path / "ws")

    async def start(spec, **kw):
        return await tracker.start_job(ws, spec, None, secrets, backend_name="together", base_url=sandbox.base_url,
                                       **kw)

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}))
    with pytest.raises(tracker.DatasetRefused, match="two user messages in a row"):
        await start(JobSpec(MODEL, bad))
    assert recorder.exchanges == []  # checked here, before any request
    with pytest.raises(TogetherError, match="not a model Together fine-tunes.*meta-llama"):
        await start(JobSpec("gpt-4o-mini", openai_dataset(tmp_path / "t.jsonl")))
    with pytest.raises(tracker.DatasetRefused, match="not fine-tuned with tools"):
        await start(JobSpec("Qwen/Qwen2.5-7B-Instruct", openai_dataset(tmp_path / "t.jsonl")))
    with pytest.raises(tracker.DatasetRefused, match="no full fine-tuning"):
        await start(JobSpec("meta-llama/Llama-3.3-70B-Instruct-Reference", openai_dataset(tmp_path / "t.jsonl"),
                            options={"training_type": "full"}))
    with pytest.raises(tracker.DatasetRefused, match="epochs 50 is above"):
        await start(JobSpec(MODEL, openai_dataset(tmp_path / "t.jsonl"), n_epochs=50))
    with pytest.raises(tracker.DatasetRefused, match="--method dpo trains on preference"):
        await start(JobSpec(MODEL, openai_dataset(tmp_path / "t.jsonl"), options={"training_method": "dpo"}))
    assert not any(p.endswith(("/files/upload", "/fine-tunes")) for p in together_paths(recorder))
    # over the price the user allows: uploaded and quoted, never created
    with pytest.raises(tracker.OverPrice, match="above your limit"):
        await start(JobSpec(MODEL, openai_dataset(tmp_path / "t.jsonl")), max_price=Decimal("0"))
    assert "POST /v1/fine-tunes" not in together_paths(recorder)
    assert tracker.JobStore(ws).list() == []
    for req, resp in recorder.exchanges:
        spec_check.validate_exchange(req, resp)
    ws.close()


def test_the_spec_check_is_not_vacuous():
    """A body Together's spec refuses (a training type it does not name, a missing model) fails the
    check the whole job passes."""
    import httpx2

    def exchange(body):
        request = httpx2.Request("POST", "https://api.together.ai/v1/fine-tunes", json=body,
                                 headers={"Authorization": "Bearer tk"})
        response = httpx2.Response(200, json={"id": "ft-1", "status": "pending", "created_at": "2026-12-07T00:00:00Z",
                                              "updated_at": "2026-12-07T00:00:00Z"}, request=request)
        return request, response

    assert spec_check.validate_exchange(*exchange({"model": MODEL, "training_file": "file-1"}))
    for bad in ({"training_file": "file-1"},
                {"model": MODEL, "training_file": "file-1", "training_type": {"type": "lora"}},
                {"model": MODEL, "training_file": "file-1", "training_method": {"method": "sft"}}):
        with pytest.raises(AssertionError, match="request POST"):
            spec_check.validate_exchange(*exchange(bad))


def test_serving_note_says_when_a_dedicated_endpoint_comes_first():
    def note(**hp):
        return serving_note({"fine_tuned_model": "me/m-x", "hyperparameters": hp})

    assert "a full fine-tune" in note(training_type="full") and "dedicated endpoint. Create one first" in note(
        training_type="full")
    assert "merged into its base" in note(training_type="lora", merged_lora=True)
    assert "serverless" in note(training_type="lora") and "Create one first" not in note(training_type="lora")
