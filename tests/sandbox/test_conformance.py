"""Every kind of response the sandbox returns (success and error), produced through the real
openai SDK over HTTP, validates against the official OpenAI spec; requests the SDK sent too."""

import json
import time

import openai
import pytest

from cascade_studio.sandbox.faults import parse_faults
from tests.spec_check import Recorder, validate_exchange

TOOLS = [{"type": "function", "function": {
    "name": "calculate_triangle_area", "description": "Calculate the area of a triangle given its base and height.",
    "parameters": {"type": "object", "properties": {"base": {"type": "integer"}, "height": {"type": "integer"}},
                   "required": ["base", "height"]}}},
    {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city.",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]}}}]


def training_jsonl(n: int) -> bytes:
    rows = [{"messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": f"q{i}"},
                          {"role": "assistant", "content": f"a{i}"}]} for i in range(n)]
    return "\n".join(json.dumps(r) for r in rows).encode()


def wait_for(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_every_endpoint_round_trips_and_validates(sandbox_thread):
    rec = Recorder()
    c = rec.client(sandbox_thread.base_url)
    # models
    assert "gpt-4o" in [m.id for m in c.models.list()]
    # chat: tools, logprobs, usage details, store/metadata, tool_choice
    r = c.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Find the area of a triangle with base 10 and height 5."}],
        tools=TOOLS, tool_choice="auto", parallel_tool_calls=True, logprobs=True, top_logprobs=5, store=True,
        metadata={"run": "conformance"}, n=1, temperature=0)
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "calculate_triangle_area"
    assert json.loads(call.function.arguments) == {"base": 10, "height": 5}
    assert r.usage.prompt_tokens_details.cached_tokens == 0 and r.usage.completion_tokens > 0
    assert len(r.choices[0].logprobs.content[0].top_logprobs) == 5
    c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "What is the weather in Paris? Also, find the area of a triangle with base 3 and height 4."}],
                              tools=TOOLS, tool_choice="required")
    c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather in Rome"}],
                              tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    c.chat.completions.create(model="gpt-5-nano", messages=[{"role": "user", "content": "Say hello"}])
    # embeddings (float and the SDK's default base64)
    e = c.embeddings.create(model="text-embedding-3-small", input=["hello world", "goodbye"], encoding_format="float")
    assert len(e.data) == 2 and len(e.data[0].embedding) == 1536
    e2 = c.embeddings.create(model="text-embedding-3-small", input="hello world", dimensions=64)
    assert len(e2.data[0].embedding) == 64
    # files
    f = c.files.create(file=("train.jsonl", training_jsonl(12)), purpose="fine-tune")
    assert c.files.retrieve(f.id).bytes == len(training_jsonl(12))
    assert c.files.content(f.id).content == training_jsonl(12)
    assert f.id in [x.id for x in c.files.list(purpose="fine-tune")]
    # fine-tuning: create with method + hyperparameters, follow to success
    job = c.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f.id, validation_file=f.id, suffix="conf",
                                    seed=7, metadata={"k": "v"},
                                    method={"type": "supervised", "supervised": {"hyperparameters": {
                                        "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}}})
    assert job.status == "validating_files"
    done = wait_for(lambda: (j := c.fine_tuning.jobs.retrieve(job.id)).status == "succeeded" and j)
    assert done.fine_tuned_model.startswith("ft:gpt-4o-mini:sandbox-org:conf:")
    assert done.result_files and done.trained_tokens > 0
    csv_text = c.files.content(done.result_files[0]).text
    assert csv_text.startswith("step,train_loss")
    events = list(c.fine_tuning.jobs.list_events(job.id, limit=3))  # auto-pagination across pages
    metrics = [ev for ev in events if ev.type == "metrics"]
    assert len(metrics) == 2 * 3  # 2 epochs x ceil(12/4) steps
    assert {"step", "train_loss", "valid_loss", "train_mean_token_accuracy"} <= set(metrics[0].data)
    assert [ev.message for ev in events][0] == "The job has successfully completed"
    checkpoints = c.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].step_number == 6
    ft = c.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])
    assert ft.model == done.fine_tuned_model
    # cancel, pause, resume
    slow = c.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f.id)
    wait_for(lambda: c.fine_tuning.jobs.retrieve(slow.id).status == "running", timeout=5)
    paused = c.fine_tuning.jobs.pause(slow.id)
    assert paused.estimated_finish is None
    c.fine_tuning.jobs.resume(slow.id)
    assert c.fine_tuning.jobs.cancel(slow.id).status == "cancelled"
    # job list with pagination
    page = c.fine_tuning.jobs.list(limit=1)
    assert len(page.data) == 1 and page.has_more
    assert {j.id for j in c.fine_tuning.jobs.list(limit=1)} >= {job.id, slow.id}  # auto-pagination
    # a bad training file fails the job with a code and message
    bad = c.files.create(file=("bad.jsonl", training_jsonl(3)), purpose="fine-tune")
    failed = c.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=bad.id)
    failed = wait_for(lambda: (j := c.fine_tuning.jobs.retrieve(failed.id)).status == "failed" and j)
    assert failed.error.code == "invalid_training_file" and "at least 10" in failed.error.message
    # batches
    lines = [json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                         "body": {"model": "gpt-4o-mini" if i < 3 else "no-such-model",
                                  "messages": [{"role": "user", "content": f"hello {i}"}]}}) for i in range(4)]
    bf = c.files.create(file=("batch.jsonl", "\n".join(lines).encode()), purpose="batch")
    batch = c.batches.create(input_file_id=bf.id, endpoint="/v1/chat/completions", completion_window="24h")
    batch = wait_for(lambda: (b := c.batches.retrieve(batch.id)).status == "completed" and b)
    assert batch.request_counts.completed == 3 and batch.request_counts.failed == 1
    out = [json.loads(x) for x in c.files.content(batch.output_file_id).text.splitlines()]
    assert out[0]["response"]["status_code"] == 200 and out[0]["response"]["body"]["object"] == "chat.completion"
    err = [json.loads(x) for x in c.files.content(batch.error_file_id).text.splitlines()]
    assert err[0]["custom_id"] == "r3" and err[0]["response"]["status_code"] == 404
    b2 = c.batches.create(input_file_id=bf.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert c.batches.cancel(b2.id).status in ("cancelling", "cancelled")
    # delete
    assert c.files.delete(bf.id).deleted

    labels = [validate_exchange(req, resp) for req, resp in rec.exchanges]
    assert len(labels) > 30


@pytest.mark.parametrize("kwargs, exc, status", [
    ({"model": "gpt-4o", "messages": []}, openai.BadRequestError, 400),
    ({"model": "does-not-exist", "messages": [{"role": "user", "content": "x"}]}, openai.NotFoundError, 404),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 21},
     openai.BadRequestError, 400),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
     openai.BadRequestError, 400),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "n": 2}, openai.BadRequestError, 400),
])
def test_error_responses_use_openai_envelope(sandbox_thread, kwargs, exc, status):
    rec = Recorder()
    c = rec.client(sandbox_thread.base_url)
    with pytest.raises(exc) as info:
        c.chat.completions.create(**kwargs)
    assert info.value.status_code == status
    for req, resp in rec.exchanges:
        validate_exchange(req, resp, check_request=False)


def test_missing_model_and_key(sandbox_thread):
    rec = Recorder()
    c = rec.client(sandbox_thread.base_url)
    with pytest.raises(openai.BadRequestError) as info:
        c.post("/chat/completions", body={"messages": [{"role": "user", "content": "x"}]}, cast_to=object)
    assert "model" in info.value.message
    with pytest.raises(openai.AuthenticationError) as info:
        c.models.list(extra_headers={"Authorization": ""})
    assert "API key" in info.value.message
    for req, resp in rec.exchanges:
        validate_exchange(req, resp, check_request=False)


def test_faults_are_spec_shaped_and_recoverable(sandbox_thread):
    rec = Recorder()
    c = rec.client(sandbox_thread.base_url)
    msgs = [{"role": "user", "content": "x"}]
    sandbox_thread.config.faults = parse_faults("429=1,retry_after=2")
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="gpt-4o", messages=msgs)
    headers = info.value.response.headers
    assert headers["retry-after"] == "2" and headers["x-ratelimit-remaining-requests"] == "0"
    sandbox_thread.config.faults = parse_faults("500=1")
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="gpt-4o", messages=msgs)
    sandbox_thread.config.faults = parse_faults("503=1")
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model="gpt-4o", messages=msgs)
    assert info.value.status_code == 503
    for req, resp in rec.exchanges:
        validate_exchange(req, resp, check_request=False)
    sandbox_thread.config.faults = parse_faults("drop=1")
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model="gpt-4o", messages=msgs)
    sandbox_thread.config.faults = parse_faults("")
    assert c.chat.completions.create(model="gpt-4o", messages=msgs).choices


async def test_async_client_round_trip_and_pagination(sandbox):
    rec = Recorder()
    c = rec.async_client(sandbox.base_url)
    r = await c.chat.completions.create(model="gpt-4.1-nano", messages=[{"role": "user", "content": "hello"}],
                                        logprobs=True, top_logprobs=0)
    assert r.choices[0].logprobs.content[0].top_logprobs == []
    f = await c.files.create(file=("t.jsonl", training_jsonl(10)), purpose="fine-tune")
    job = await c.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f.id,
                                          hyperparameters={"n_epochs": 1, "batch_size": 1})
    import asyncio

    for _ in range(200):
        job = await c.fine_tuning.jobs.retrieve(job.id)
        if job.status == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert job.status == "succeeded"
    events = [e async for e in c.fine_tuning.jobs.list_events(job.id, limit=4)]
    assert sum(e.type == "metrics" for e in events) == 10
    jobs = [j async for j in c.fine_tuning.jobs.list(limit=1)]
    assert [j.id for j in jobs] == [job.id]
    await c.close()
    for req, resp in rec.exchanges:
        validate_exchange(req, resp)
