"""Half a surrogate pair ("\\ud800") in otherwise valid JSON is refused in words naming file:line by the
five importers and `serve`'s policy check, and the workspace is unchanged (issue 33)."""

from __future__ import annotations

import json

import pytest

from cascade_studio.core.errors import UserError
from cascade_studio.core.jsonl import JsonProblem, loads
from cascade_studio.services import task_import, tier_service
from cascade_studio.services import trajectory_io as tio
from cascade_studio.services.policy import load_policy, policy_document
from cascade_studio.services.traffic import import_traffic
from cascade_studio.services.transcript_import import import_transcripts
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace
from tests.agent.test_transcript_import import conversation
from tests.gateway.helpers import tiers_at
from tests.gateway.test_full_disk import _record
from tests.test_importers_fuzz import SEEDS, TIER

LONE = "\\ud800"  # as it appears in the file: a JSON escape


def _poisoned(lines: list[str], at: int, old: str) -> str:
    assert old in lines[at]
    lines[at] = lines[at].replace(old, old[:-1] + LONE + old[-1], 1)
    return "\n".join(lines) + "\n"


def _cases(tmp_path):
    from cascade_studio.core.traffic import FORMAT

    traffic = [json.dumps({**_record(n), "format": FORMAT, "content": {"messages": [{"role": "user", "content": "hi"}]}})
               for n in range(3)]
    return {
        "tasks.jsonl": (lambda ws, p: task_import.import_tasks(ws, p, "native"),
                        _poisoned(SEEDS["tasks.jsonl"].split("\n"), 1, '"q"')),
        "traj.jsonl": (lambda ws, p: tio.import_native(ws, p, TIER), _poisoned(SEEDS["traj.jsonl"].split("\n"), 1, '"c"')),
        "transcripts.jsonl": (lambda ws, p: import_transcripts(ws, p, TIER),
                              _poisoned([json.dumps(conversation(n)) for n in range(3)], 1, '"You are a support agent."')),
        "tiers.json": (lambda ws, p: tier_service.import_tiers(ws, p),
                       _poisoned(json.dumps(json.loads(SEEDS["tiers.json"]), indent=1).split("\n"), 5, '"a"')),
        "traffic.jsonl": (lambda ws, p: import_traffic(ws, p), _poisoned(traffic, 1, '"hi"')),
    }


@pytest.mark.parametrize("name", ["tasks.jsonl", "traj.jsonl", "transcripts.jsonl", "tiers.json", "traffic.jsonl"])
def test_importers_refuse_half_a_surrogate_pair_naming_the_line(tmp_path, name):
    importer, text = _cases(tmp_path)[name]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with Workspace.open(tmp_path / "ws") as ws:
        TierRepository(ws).replace_all([TIER])
        before = list(ws.conn.iterdump())
        with pytest.raises(UserError) as caught:
            importer(ws, path)
        assert list(ws.conn.iterdump()) == before
    message = str(caught.value)
    assert f"{name}:2" in message if name != "tiers.json" else f"{name}:6" in message
    assert "half of a surrogate pair" in message and "\\ud800" in message


def test_serve_refuses_a_policy_with_half_a_surrogate_pair(tmp_path, capsys):
    from cascade_studio.cli import main

    doc = policy_document(tiers_at("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"))
    doc["tiers"][0]["system_prompt"] = "Be brief.@"
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc, indent=1).replace("Be brief.@", "Be brief." + LONE))
    with pytest.raises(UserError) as caught:
        load_policy(path)
    assert "policy.json:" in str(caught.value) and "half of a surrogate pair" in str(caught.value)
    assert main(["serve", "--policy", str(path), "--port", "0"]) != 0
    assert "half of a surrogate pair" in capsys.readouterr().err


def test_a_whole_pair_is_a_character():
    assert loads('"\\ud83d\\ude00"') == "\U0001F600"
    assert loads('"\\\\ud800"') == "\\ud800"  # an escaped backslash: six characters of text, no surrogate
    with pytest.raises(JsonProblem):
        loads('{"k\\udfff": 1}')
