"""A large answer is stored once, compressed: not twice uncompressed in `content` and `final_answer`
(issue 33: five 80 MB answers made an 802 MB workspace). It reads back the same everywhere."""

from __future__ import annotations

import os
from decimal import Decimal

from cascade_studio.core.tiers import Provider, Tier
from cascade_studio.core.trajectory import trajectory_from_response
from cascade_studio.services import trajectory_io as tio
from cascade_studio.store import payloads
from cascade_studio.store.trajectories import TrajectoryRepository
from cascade_studio.store.workspace import Workspace

TIER = Tier(tier=1, model="m", base_url="http://127.0.0.1:9/v1", provider=Provider.SANDBOX,
            input_price=Decimal("1"), output_price=Decimal("1"))


def _answer(text: str) -> dict:
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [
        {"index": 0, "finish_reason": "stop", "logprobs": None, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5}}


def test_a_large_answer_is_stored_once_compressed_and_reads_back(tmp_path):
    words = " ".join(f"word{i % 997}" for i in range(800_000))  # ~6.5 MB of text
    with Workspace.open(tmp_path / "ws") as ws:
        repo = TrajectoryRepository(ws)
        small = trajectory_from_response("small", TIER, {"messages": []}, _answer("short"), 1.0)
        large = trajectory_from_response("large", TIER, {"messages": []}, _answer(words), 1.0)
        small_id, large_id = repo.save(None, small, "c"), repo.save(None, large, "c")
        stored = dict(ws.conn.execute("SELECT task_id, length(content) + length(final_answer) FROM trajectories"))
        assert stored["small"] == 10  # short text stays plain (and searchable)
        assert stored["large"] < len(words) // 4  # compressed, and the final answer not a second copy
        got = repo.get(large_id)[0]
        assert got.content == words and got.final_answer == words
        assert repo.get(small_id)[0].final_answer == "short"
        rows = {r[1]: r for r in repo.by_ids([small_id, large_id], ("id", "task_id", "content", "final_answer"))}
        assert rows["large"][2] == words and rows["large"][3] == words
        tio.export_native(ws, tmp_path / "out.jsonl")
    assert words in (tmp_path / "out.jsonl").read_text()
    assert os.path.getsize(tmp_path / "ws" / "workspace.sqlite") < len(words)


def test_a_large_final_answer_unlike_its_content_is_compressed_on_its_own():
    assert payloads.pack_answer("a" * 70_000, "b" * 70_000)[:1] == bytes([payloads.ZLIB])
    assert payloads.pack_answer("a" * 70_000, "a" * 70_000) == payloads.SAME_AS_CONTENT
    assert payloads.pack_answer("short", "short") == "short"


def test_an_imported_answer_over_the_cap_is_refused_in_words(tmp_path, monkeypatch):
    import json

    import pytest

    from cascade_studio.core.errors import UserError
    from cascade_studio.store.tiers import TierRepository

    monkeypatch.setenv("CASCADE_STUDIO_MAX_ANSWER_MB", "1")
    lines = [json.dumps({"task_id": f"t{i}", "model": "m", "latency_ms": 1, "response": _answer(text)})
             for i, text in enumerate(["fine", "y" * (2 * 1024 * 1024)])]
    (tmp_path / "big.jsonl").write_text("\n".join(lines) + "\n")
    with Workspace.open(tmp_path / "ws") as ws:
        TierRepository(ws).replace_all([TIER])
        with pytest.raises(UserError) as caught:
            tio.import_native(ws, tmp_path / "big.jsonl", TIER)
        assert ws.conn.execute("SELECT count(*) FROM trajectories").fetchone()[0] == 0
    assert "big.jsonl:2: the answer is larger than the 1 MB limit" in str(caught.value)


def test_the_text_search_finds_words_inside_a_compressed_answer(tmp_path):
    """The inspector's search: a word deep in an answer over 64 KB (stored compressed) is found, in
    any case, as one in a short answer is; a word in neither finds nothing."""
    from cascade_studio.store.trajectory_query import TrajectoryFilter, matching_ids

    words = " ".join(f"word{i % 997}" for i in range(20_000)) + " Needle-Deep " + "tail " * 5000
    with Workspace.open(tmp_path / "ws") as ws:
        repo = TrajectoryRepository(ws)
        small_id = repo.save(None, trajectory_from_response("small", TIER, {"messages": []},
                                                            _answer("a short needle-deep answer"), 1.0), "c")
        large_id = repo.save(None, trajectory_from_response("large", TIER, {"messages": []}, _answer(words), 1.0), "c")
        assert isinstance(ws.conn.execute("SELECT content FROM trajectories WHERE id = ?", (large_id,)).fetchone()[0],
                          bytes)
        assert sorted(matching_ids(ws, TrajectoryFilter(search="NEEDLE-deep")).tolist()) == [small_id, large_id]
        assert matching_ids(ws, TrajectoryFilter(search="short")).tolist() == [small_id]
        assert matching_ids(ws, TrajectoryFilter(search="absent-word")).tolist() == []
        reader = ws.reader()  # the page's reads run on a second connection: it has the function too
        try:
            assert sorted(matching_ids(reader, TrajectoryFilter(search="needle-deep")).tolist()) == [small_id, large_id]
        finally:
            reader.close()
