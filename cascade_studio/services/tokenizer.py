"""Offline token counting for OpenAI models: tiktoken with the BPE files bundled in
resources/tokenizers (nothing is downloaded at run time)."""

from __future__ import annotations

import base64
import gzip
from functools import lru_cache

from cascade_studio.services.paths import resources_dir

_O200K = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""", r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""", r"""\s*[\r\n]+""", r"""\s+(?!\S)""", r"""\s+""",
])
_CL100K = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
_SPECS = {
    "o200k_base": (_O200K, {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}),
    "cl100k_base": (_CL100K, {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                              "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}),
}


def encoding_name_for(model: str) -> str:
    base = model.split(":")[1] if model.startswith("ft:") else model
    if base.startswith(("gpt-3.5", "gpt-4-", "text-embedding-3", "text-embedding-ada")) or base == "gpt-4":
        return "cl100k_base"
    return "o200k_base"  # gpt-4o, gpt-4.1, gpt-5, o-series


@lru_cache(maxsize=2)
def encoding(name: str):
    import tiktoken

    pat, special = _SPECS[name]
    ranks = {}
    with gzip.open(resources_dir() / "tokenizers" / f"{name}.tiktoken.gz", "rt") as fh:
        for line in fh:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(name=name, pat_str=pat, mergeable_ranks=ranks, special_tokens=special)


def token_counter(model: str):
    enc = encoding(encoding_name_for(model))
    return lambda text: len(enc.encode(text or "", disallowed_special=()))
