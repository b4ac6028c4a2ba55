"""A tiny randomly initialised causal LM and a tokenizer trained on the spot (no downloads)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

SPECIALS = ["<|pad|>", "<|im_start|>", "<|im_end|>"]
CITIES = ["Paris", "Berlin", "Tokyo", "Lima", "Oslo", "Cairo", "Quito", "Delhi"]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                         "required": ["city"]}}}]


def examples(n: int = 48, seed: int = 0) -> list[dict]:
    """Chat examples in OpenAI's format: half plain answers, half tool calls."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        city = rng.choice(CITIES)
        if i % 2:
            out.append({"messages": [{"role": "user", "content": f"What is the weather in {city}?"},
                                     {"role": "assistant", "content": None, "tool_calls": [
                                         {"id": f"call_{i}", "type": "function",
                                          "function": {"name": "get_weather",
                                                       "arguments": json.dumps({"city": city})}}]}],
                        "tools": TOOLS})
        else:
            out.append({"messages": [{"role": "system", "content": "Answer briefly."},
                                     {"role": "user", "content": f"Capital city check: {city}?"},
                                     {"role": "assistant", "content": f"Yes, {city} is a capital city."}]})
    return out


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def build_model(folder: Path, rows: list[dict] | None = None, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from cascade_studio.trainer.data import CHATML_TEMPLATE

    rows = rows or examples()
    texts = [json.dumps(r) for r in rows] + [CHATML_TEMPLATE] * 3
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIALS,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|im_end|>")
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id, bos_token_id=None,
                      tie_word_embeddings=True)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(str(folder))
    return folder


def teacher_logprobs(folder: Path, rows: list[dict], *, top_k: int = 3, seed: int = 0) -> list[dict | None]:
    """Logprobs as an OpenAI-compatible server (vLLM) serving a teacher with the same tokenizer
    would record them: the assistant text cut into the tokenizer's tokens, each with top-k
    alternatives."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    rng = random.Random(seed)
    vocab = [t for t in (tok.decode([i]) for i in range(len(tok))) if t.strip() and len(tok.encode(t)) == 1]
    out: list[dict | None] = []
    for r in rows:
        text = r["messages"][-1].get("content")
        if not text:
            out.append(None)
            continue
        content = []
        for tid in tok.encode(text, add_special_tokens=False):
            piece = tok.decode([tid])
            p = rng.uniform(0.5, 0.95)
            alts = rng.sample([v for v in vocab if v != piece], top_k - 1)
            rest = 1 - p
            top = [{"token": piece, "logprob": math.log(p)}]
            for a in alts:
                rest /= 2
                top.append({"token": a, "logprob": math.log(rest)})
            content.append({"token": piece, "logprob": math.log(p), "top_logprobs": top})
        out.append({"content": content})
    return out
