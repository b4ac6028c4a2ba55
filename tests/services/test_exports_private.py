"""Exports hold prompts and answers: written owner-only, all or nothing, never through a symlink
(issue 14); a ShareGPT dataset gets its teacher-logprobs file too (issue 21)."""

from __future__ import annotations

import stat

import pytest

from cascade_studio.services.output_files import atomic_text, write_text


def test_written_owner_only_and_atomically(tmp_path):
    target = tmp_path / "export.jsonl"
    write_text(target, "one\n")
    assert target.read_text() == "one\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(RuntimeError), atomic_text(target) as fh:
        fh.write("half of a new file")
        raise RuntimeError("disk full, say")
    assert target.read_text() == "one\n" and [p.name for p in tmp_path.iterdir()] == ["export.jsonl"]


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "policy.json"
    link.symlink_to(victim)
    write_text(link, "{}")
    assert victim.read_text() == "keep me" and not link.is_symlink() and link.read_text() == "{}"


def test_cli_exports_are_private(tmp_path, capsys, sandbox_thread):
    from cascade_studio.cli import main

    ws = str(tmp_path / "ws")
    assert main(["-w", ws, "tiers", "set", "1", "--model", "gpt-4o", "--base-url", sandbox_thread.base_url,
                 "--provider", "sandbox"]) == 0
    for args, out in ((["tiers", "export"], "tiers.json"), (["policy", "export"], "policy.json"),
                      (["trajectories", "export"], "t.jsonl")):
        assert main(["-w", ws, *args, str(tmp_path / out)]) == 0
        assert stat.S_IMODE((tmp_path / out).stat().st_mode) == 0o600, out
    assert not list(tmp_path.glob(".*.tmp"))


def test_sharegpt_build_writes_the_teacher_logprobs(tmp_path, capsys, sandbox_thread):
    from pathlib import Path

    from cascade_studio.cli import main

    ws = str(tmp_path / "ws")
    bfcl = Path(__file__).resolve().parents[2] / "resources" / "bfcl" / "BFCL_v4_multiple.json"
    assert main(["-w", ws, "tiers", "set", "1", "--model", "gpt-4o", "--base-url", sandbox_thread.base_url,
                 "--provider", "sandbox"]) == 0
    assert main(["-w", ws, "tasks", "import", str(bfcl)]) == 0
    assert main(["-w", ws, "collect", "--limit", "20"]) == 0
    out = tmp_path / "sg.jsonl"
    assert main(["-w", ws, "dataset", "build", "--out", str(out), "--format", "sharegpt", "--reasoning",
                 "reasoning"]) == 0
    logprobs = out.with_name("sg.logprobs.jsonl")
    assert logprobs.exists()
    assert len(logprobs.read_text().splitlines()) == len(out.read_text().splitlines())
    assert "<think>" in out.read_text()
