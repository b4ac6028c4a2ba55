"""tools/together_spec_mock.py stays runnable: the whole Together job against a mock generated from
Together's spec (not the sandbox) goes through with every request and answer following the spec."""

import importlib.util
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "together_spec_mock.py"


def test_job_against_a_mock_generated_from_the_spec(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("together_spec_mock", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [str(TOOL)])
    assert module.main() == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for step in ("POST /v1/files/upload -> 200", "POST /v1/fine-tunes/estimate-price -> 200",
                 "GET /v1/fine-tunes/{id}/metrics -> 200", "POST /v1/fine-tunes/{id}/cancel -> 200", "tier 1 now"):
        assert step in out
