"""The Fine-tuning page judges a file by the chosen backend's rules (the checks `finetune start` makes
before it uploads or starts anything) and judges it again when the backend or method changes; the
local trainer's method (supervised or DPO, LoRA or full) and device count reach the job as the
CLI's options; Together jobs cannot be paused."""

import json

from cascade_studio.cli import build_parser
from cascade_studio.cli.finetune import _local_options
from cascade_studio.services.finetune import tracker
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.workspace import Workspace
from cascade_studio.ui.finetune_page import FineTunePage
from tests.trainer.tiny import examples, write_jsonl


def preference_pairs(n: int) -> list[dict]:
    out = []
    for ex in examples(n):
        *prompt, answer = ex["messages"]
        wrong = {"role": "assistant", "content": "I cannot say."}
        out.append({"input": {"messages": prompt, **({"tools": ex["tools"]} if ex.get("tools") else {})},
                    "preferred_output": [answer], "non_preferred_output": [wrong]})
    return out


def make_page(qtbot, tmp_path) -> FineTunePage:
    Workspace.open(tmp_path / "ws").close()
    page = FineTunePage(SecretStore())
    qtbot.addWidget(page)
    page.set_workspace(Workspace.open(tmp_path / "ws"))
    return page


def close(page: FineTunePage) -> None:
    ws = page.ws
    page.set_workspace(None)  # stops following jobs before the database closes
    ws.close()


def choose(page: FineTunePage, backend: str, method: str | None = None) -> None:
    s = page.launcher
    s.backend.setCurrentIndex(s.backend.findData(backend))
    if method is not None:
        combo = s.together_method if backend == "together" else s.method
        combo.setCurrentIndex(combo.findData(method))


def test_each_backend_judges_the_file_by_its_rules(qtbot, tmp_path):
    page = make_page(qtbot, tmp_path)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_pairs(4))
    page.dataset_path = pairs
    page.validate(pairs)
    assert page.dataset.report[1].format == "preference"
    verdicts = {}
    for backend, method in (("openai", None), ("local", "lora"), ("local", "dpo"), ("local", "dpo-full"),
                            ("together", "sft"), ("together", "dpo")):
        choose(page, backend, method)
        verdicts[backend, method] = page.dataset_ok()
        text = page.ds_report.toPlainText()
        assert ("Fits" in text) == page.dataset_ok() and ("Not for" in text) != page.dataset_ok()
        if backend != "local" or page.launcher.backends["local"]["available"]:
            assert page.start_button.isEnabled() == page.dataset_ok()  # Start follows the backend's verdict
    assert verdicts == {("openai", None): False, ("local", "lora"): False, ("local", "dpo"): True,
                        ("local", "dpo-full"): True, ("together", "sft"): False, ("together", "dpo"): True}
    choose(page, "local", "lora")
    assert "--method dpo" in page.ds_report.toPlainText()

    chat = write_jsonl(tmp_path / "chat.jsonl", examples(4))  # under OpenAI's 10-example minimum
    page.dataset_path = chat
    page.validate(chat)
    choose(page, "openai")
    assert not page.dataset_ok() and "too_few_examples" in page.ds_report.toPlainText()
    choose(page, "local", "lora")
    assert page.dataset_ok() and "too_few_examples" not in page.ds_report.toPlainText()
    choose(page, "local", "dpo")  # DPO needs preference pairs
    assert not page.dataset_ok() and "preference" in page.ds_report.toPlainText()
    choose(page, "together", "sft")
    assert page.dataset_ok()
    close(page)


def test_local_method_and_devices_reach_the_job_as_the_cli_builds_them(qtbot, tmp_path, monkeypatch):
    page = make_page(qtbot, tmp_path)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_pairs(4))
    page.dataset_path = pairs
    page.validate(pairs)
    choose(page, "local", "dpo-full")
    page.launcher.devices.setValue(2)
    page.launcher.device.setCurrentIndex(page.launcher.device.findData("cpu"))
    page.local_model.setText(str(tmp_path / "model"))
    page.launcher.backends["local"]["available"] = True  # no trainer runs: the start is caught below
    specs = []
    monkeypatch.setattr(tracker, "start_job", lambda ws, spec, *a, **kw: specs.append((spec, kw)))
    monkeypatch.setattr(page.calls, "start", lambda name, started, ok, fail: True)  # nothing runs
    page.start_button.click()
    (spec, kwargs), = specs
    assert kwargs["backend_name"] == "local"
    args = build_parser().parse_args(["finetune", "start", "--backend", "local", "--dataset", str(pairs),
                                      "--base-model", "m", "--method", "dpo-full", "--devices", "2",
                                      "--device", "cpu"])
    options = spec.options
    assert options == _local_options(args)
    assert options["method"] == "full" and options["objective"] == "dpo" and options["devices"] == 2
    choose(page, "local", "lora")
    page.launcher.devices.setValue(1)
    args = build_parser().parse_args(["finetune", "start", "--backend", "local", "--dataset", str(pairs),
                                      "--base-model", "m", "--device", "cpu"])
    assert page.launcher.local_options() == _local_options(args) and "devices" not in _local_options(args)
    assert json.dumps(options)  # plain values: stored with the job
    close(page)


def test_together_jobs_cannot_be_paused(qtbot, tmp_path):
    page = make_page(qtbot, tmp_path)
    jobs = page.jobs_panel
    jobs._enable_controls({"status": "running", "backend": "together"})
    assert not jobs.pause_button.isEnabled() and "cannot pause" in jobs.pause_button.toolTip()
    assert jobs.cancel_button.isEnabled()
    jobs._enable_controls({"status": "running", "backend": "openai"})
    assert jobs.pause_button.isEnabled() and "cannot" not in jobs.pause_button.toolTip()
    close(page)


def test_the_local_trainers_other_options_reach_the_job_as_the_cli_builds_them(qtbot, tmp_path, monkeypatch):
    """Rank, learning rate, length, steps, beta, checkpoints and resume: the GUI's More training options
    equal `finetune start --backend local` with the same flags; empty or 0 is the CLI's default."""
    page = make_page(qtbot, tmp_path)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_pairs(4))
    page.dataset_path = pairs
    page.validate(pairs)
    launcher = page.launcher
    choose(page, "local", "dpo")
    launcher.more.click()
    assert not launcher.more_box.isHidden() and launcher.dpo_beta.isEnabled() and launcher.lora_rank.isEnabled()
    launcher.lora_rank.setValue(8)
    launcher.learning_rate.setText("1e-4")
    launcher.max_length.setValue(1024)
    launcher.max_steps.setValue(50)
    launcher.dpo_beta.setValue(0.25)
    launcher.checkpoint_every.setValue(10)
    launcher.resume_from.setText("7")
    launcher.device.setCurrentIndex(launcher.device.findData("cpu"))
    flags = ["--method", "dpo", "--lora-rank", "8", "--learning-rate", "1e-4", "--max-length", "1024",
             "--max-steps", "50", "--beta", "0.25", "--checkpoint-every", "10", "--resume-from", "7", "--device", "cpu"]
    args = build_parser().parse_args(["finetune", "start", "--backend", "local", "--dataset", str(pairs),
                                      "--base-model", "m", *flags])
    assert launcher.local_options() == _local_options(args)
    # back to the defaults: the same options as no flags at all
    for field in (launcher.max_steps, launcher.dpo_beta, launcher.checkpoint_every):
        field.setValue(0)
    launcher.lora_rank.setValue(16)
    launcher.max_length.setValue(2048)
    launcher.learning_rate.clear()
    launcher.resume_from.clear()
    args = build_parser().parse_args(["finetune", "start", "--backend", "local", "--dataset", str(pairs),
                                      "--base-model", "m", "--method", "dpo", "--device", "cpu"])
    assert launcher.local_options() == _local_options(args)
    # full fine-tuning has no rank; supervised methods have no beta
    choose(page, "local", "full")
    assert not launcher.lora_rank.isEnabled() and not launcher.dpo_beta.isEnabled()
    # a learning rate that is not a number is said, and nothing starts
    choose(page, "local", "dpo-full")
    launcher.learning_rate.setText("fast")
    page.local_model.setText(str(tmp_path / "model"))
    launcher.backends["local"]["available"] = True
    specs = []
    monkeypatch.setattr(tracker, "start_job", lambda *a, **kw: specs.append(a))
    page.start_button.click()
    assert specs == [] and "'fast' is not a number" in page.status.text()
    close(page)
