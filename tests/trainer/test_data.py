"""What the trainer trains on: only the assistant's turn (and its end token), logits taken only at
those positions, and the teacher's tokens placed on the student's tokens when they match."""

import pytest

from tests.trainer.tiny import examples, teacher_logprobs


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    from cascade_studio.trainer.data import CHATML_TEMPLATE

    t = AutoTokenizer.from_pretrained(str(tiny_model), local_files_only=True)
    t.chat_template = CHATML_TEMPLATE
    return t


def _targets(tok, enc):
    return tok.decode([int(t) for t, keep in zip(enc.ids, enc.labels, strict=True) if keep])


def test_only_the_assistant_turn_is_trained_on(tok):
    from cascade_studio.trainer.data import encode_example

    answer, call = examples(2)
    assert _targets(tok, encode_example(tok, answer, 2048)) == answer["messages"][-1]["content"] + "<|im_end|>\n"
    city = call["messages"][-1]["tool_calls"][0]["function"]["arguments"]
    assert _targets(tok, encode_example(tok, call, 2048)) == \
        f'<tool_call>\n{{"name": "get_weather", "arguments": {city}}}\n</tool_call><|im_end|>\n'
    skipped = {**answer, "messages": [*answer["messages"][:-1], {**answer["messages"][-1], "weight": 0}]}
    assert encode_example(tok, skipped, 2048) is None  # weight 0: nothing to train on
    short = encode_example(tok, answer, 12)
    assert short is None or (short.truncated and len(short.ids) == 12)


def test_logits_only_at_targets_equal_the_full_forward(tok, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    from cascade_studio.trainer.data import encode_example
    from cascade_studio.trainer.train import _collate

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), local_files_only=True).eval()
    batch = _collate([encode_example(tok, e, 2048) for e in examples(4)], tok.pad_token_id, "cpu")
    with torch.no_grad():
        kept = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     logits_to_keep=batch["keep"]).logits[batch["rows"], batch["cols"]]
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.allclose(kept, full[batch["rows"], batch["keep"][batch["cols"]]], atol=1e-5)
    assert bool((batch["input_ids"][batch["rows"], batch["keep"][batch["cols"]] + 1] == batch["labels"]).all())
    soft_batch = _collate([_with_soft(tok, tiny_model, e) for e in examples(4)], tok.pad_token_id, "cpu")
    # each soft label sits on its target: the teacher's chosen token (its top-1) is the label there
    chosen = soft_batch["soft_ids"][soft_batch["has_soft"], 0]
    assert int(soft_batch["has_soft"].sum()) > 0 and bool((chosen == soft_batch["labels"][soft_batch["has_soft"]]).all())


def _with_soft(tok, model, example):
    from cascade_studio.trainer.data import TeacherTokens, attach_soft_labels, encode_example

    enc = encode_example(tok, example, 2048)
    lp = teacher_logprobs(model, [example])[0]
    if lp:
        attach_soft_labels(enc, lp["content"], TeacherTokens(tok))
    return enc


def test_teacher_tokens_placed_on_the_students(tok, tiny_model):
    from cascade_studio.trainer.data import TeacherTokens, attach_soft_labels, encode_example

    row = examples(1)[0]
    lp = teacher_logprobs(tiny_model, [row], top_k=3)[0]["content"]
    enc = encode_example(tok, row, 2048)
    placed, total = attach_soft_labels(enc, lp, TeacherTokens(tok))
    assert placed == total == len(lp) and len(enc.soft_pos) == total
    first = int(enc.soft_pos[0])
    assert tok.decode([int(enc.ids[first])]) == lp[0]["token"] and enc.labels[first]
    top = enc.soft_at(first)
    assert len(top) == 3 and top[0][0] == enc.ids[first]  # the chosen token first
    assert top[0][1] == pytest.approx(lp[0]["logprob"], rel=1e-6)
    foreign = [{**e, "token": e["token"] + "§§"} for e in lp]
    enc2 = encode_example(tok, row, 2048)
    assert attach_soft_labels(enc2, foreign, TeacherTokens(tok)) == (0, len(lp)) and enc2.soft_pos is None


def test_sharegpt_rows_get_a_hint(tok):
    from cascade_studio.trainer.data import DataError, encode_example

    with pytest.raises(DataError, match="ShareGPT.*--format openai"):
        encode_example(tok, {"conversations": [{"from": "human", "value": "hi"}]}, 2048)
