"""Every importer, fed mutated and truncated copies of a valid file: it succeeds or raises a UserError
naming the file, never another exception, and on error the workspace is unchanged (issue 14)."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade_studio.core.errors import UserError
from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.services import catalog, datasets, task_import, tier_service
from cascade_studio.services import trajectory_io as tio
from cascade_studio.store.workspace import Workspace

BFCL = Path(__file__).resolve().parents[1] / "resources" / "bfcl"
TIER = Tier(tier=1, model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", provider=Provider.SANDBOX,
            input_price=Decimal("0.15"), output_price=Decimal("0.6"))
RESPONSE = {"id": "c", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": {
    "role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function", "function": {
        "name": "f", "arguments": "{\"x\": 1.5}"}}]}, "logprobs": {"content": [{"token": "f", "logprob": -0.1,
                                                                               "top_logprobs": []}]},
    "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 10, "completion_tokens": 3}}
EXAMPLE = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                        {"role": "assistant", "content": None, "tool_calls": [
                            {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}

SEEDS = {
    "tasks.jsonl": "\n".join(json.dumps({"id": f"t{i}", "category": "c", "messages": [{"role": "user", "content": "q"}],
                                         "tools": [{"type": "function", "function": {"name": "f", "parameters": {
                                             "type": "object", "properties": {"x": {"type": "number"}}}}}],
                                         "expected": [{"f": {"x": [1.5]}}]}) for i in range(3)),
    "tasks.csv": "id,prompt,category,expected\na,\"hello, there\",c,x\nb,bye,d,\n",
    "traj.jsonl": "\n".join(json.dumps({"task_id": f"t{i}", "model": "m", "latency_ms": 12.5, "response": RESPONSE,
                                        "created_at": "2025-01-01T00:00:00", "curation": "accepted",
                                        "tags": ["a"], "category": "c"}) for i in range(3)),
    "batch.jsonl": "\n".join(json.dumps({"custom_id": f"t{i}", "response": {"status_code": 200, "body": RESPONSE}})
                             for i in range(3)),
    "dataset.jsonl": "\n".join(json.dumps(EXAMPLE) for _ in range(3)),
    "tiers.json": json.dumps({"format": "cascade-studio/tiers@1", "tiers": [
        {"tier": 1, "model": "a", "base_url": "http://localhost:8000/v1", "provider": "compatible",
         "input_price": "0.1", "output_price": "0.2", "timeout_s": 30},
        {"tier": 2, "model": "b", "base_url": "http://localhost:8000/v1", "provider": "compatible",
         "input_price": "1", "output_price": "2"}]}),
    "litellm.json": json.dumps({"m1": {"mode": "chat", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
                                "m2": {"mode": "embedding", "input_cost_per_token": 1e-7}}),
}
BFCL_TASKS = (BFCL / "BFCL_v4_multiple.json").read_text().splitlines()[:3]
TOKENS = ["NaN", "Infinity", "-Infinity", "1e999999999", "2" * 30, "[" * 200, "{\"a\":" * 100, "\"", ",", "}", "]",
          "null", "5", "[1]", "\"abc\"", "\x00", "\n", "\u00e9", "true", "{}", "[]"]


@st.composite
def mutated(draw, seed: str) -> bytes:
    text = seed
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["insert", "replace", "truncate", "byte", "dup"]))
        at = draw(st.integers(0, max(0, len(text))))
        if kind == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif kind == "replace":
            end = min(len(text), at + draw(st.integers(1, 12)))
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[end:]
        elif kind == "truncate":
            text = text[:at]
        elif kind == "dup":
            lines = text.split("\n")
            text = "\n".join(lines + lines[:1])
        else:
            data = text.encode()
            pos = min(at, len(data))
            return data[:pos] + bytes([draw(st.integers(0x80, 0xFF))]) + data[pos:]
    return text.encode()


def snapshot(ws: Workspace) -> tuple[list[str], bytes | None]:
    override = ws.path / catalog.CATALOG_FILE
    return list(ws.conn.iterdump()), override.read_bytes() if override.exists() else None


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("fuzz") / "w")
    from cascade_studio.store.tiers import TierRepository

    TierRepository(ws).replace_all([TIER])
    task_import.import_tasks(ws, _write(tmp_path_factory.mktemp("seed") / "tasks.jsonl", SEEDS["tasks.jsonl"].encode()))
    yield ws
    ws.close()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


IMPORTERS = {
    "tasks.jsonl": lambda ws, p: task_import.import_tasks(ws, p, "native"),
    "tasks.csv": lambda ws, p: task_import.import_tasks(ws, p, "csv"),
    "traj.jsonl": lambda ws, p: tio.import_native(ws, p, TIER),
    "batch.jsonl": lambda ws, p: tio.import_batch_output(ws, p, TIER),
    "dataset.jsonl": lambda ws, p: datasets.validate_file(p, "gpt-4o-mini"),
    "tiers.json": lambda ws, p: tier_service.import_tiers(ws, p),
    "litellm.json": lambda ws, p: catalog.import_litellm_file(p, ws.path),
}


def check(ws: Workspace, folder: Path, name: str, data: bytes) -> None:
    path = _write(folder / name, data)
    before = snapshot(ws)
    try:
        IMPORTERS[name](ws, path)
    except UserError as exc:
        assert name in str(exc), str(exc)
        assert snapshot(ws) == before, f"{name}: the workspace changed on error: {exc}"
    # anything else propagates and fails the test


FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_importer_answers_mutated_files_in_words(name, ws, tmp_path):
    check(ws, tmp_path, name, SEEDS[name].encode())  # the seed itself is valid

    @FUZZ
    @given(data=mutated(SEEDS[name]))
    def run(data):
        check(ws, tmp_path, name, data)

    run()


def test_bfcl_with_answers(ws, tmp_path):
    answers = [json.dumps({"id": json.loads(line)["id"], "ground_truth": [{"f": {"x": [1]}}]}) for line in BFCL_TASKS]

    @FUZZ
    @given(task_data=mutated("\n".join(BFCL_TASKS)), answer_data=mutated("\n".join(answers)))
    def run(task_data, answer_data):
        tasks = _write(tmp_path / "BFCL_v4_x.json", task_data)
        ans = _write(tmp_path / "answers.json", answer_data)
        before = snapshot(ws)
        try:
            task_import.import_tasks(ws, tasks, "bfcl", ans)
        except UserError as exc:
            assert "BFCL_v4_x.json" in str(exc) or "answers.json" in str(exc), str(exc)
            assert snapshot(ws) == before

    run()


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_folders_and_fifos_are_refused_up_front(name, ws, tmp_path):
    folder = tmp_path / name
    folder.mkdir()
    with pytest.raises(UserError, match="folder"):
        IMPORTERS[name](ws, folder)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / ("fifo-" + name)
        os.mkfifo(fifo)
        with pytest.raises(UserError, match="FIFO"):  # and does not block
            IMPORTERS[name](ws, fifo)
