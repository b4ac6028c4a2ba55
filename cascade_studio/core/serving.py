"""How to serve a locally trained model with an OpenAI-compatible server and register it as a tier.

Pure string building: the trainer writes these into the job's output folder (SERVE.md) and its
result, the GUI and the CLI show them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

VLLM_PORT, LLAMA_CPP_PORT, OLLAMA_PORT = 8000, 8080, 11434

# vLLM needs a parser that turns the model's tool-call text back into OpenAI tool_calls.
_TOOL_PARSERS = {"qwen2": "hermes", "qwen3": "hermes", "qwen2_moe": "hermes", "llama": "llama3_json",
                 "mistral": "mistral", "granite": "granite", "internlm2": "internlm", "phi3": "phi4_mini_json"}


@dataclass(frozen=True)
class ServeRecipe:
    server: str
    base_url: str
    model: str
    commands: list[str]
    note: str = ""

    def to_json(self) -> dict:
        return {"server": self.server, "base_url": self.base_url, "model": self.model, "commands": self.commands,
                "note": self.note}


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


def serve_recipes(name: str, *, merged: Path | None, adapter: Path | None, base_model: Path,
                  model_type: str = "", lora_rank: int = 16) -> list[ServeRecipe]:
    """vLLM, llama.cpp server and Ollama recipes for a merged model folder (or, for vLLM, the base
    model plus a LoRA adapter)."""
    parser = _TOOL_PARSERS.get(model_type)
    tools = f" --enable-auto-tool-choice --tool-call-parser {parser}" if parser else ""
    tools_note = "" if parser else (" For tool calls add --enable-auto-tool-choice --tool-call-parser NAME "
                                    "(the parser of the model family; see vLLM's tool calling docs).")
    out: list[ServeRecipe] = []
    if merged is not None:
        out.append(ServeRecipe("vLLM", f"http://localhost:{VLLM_PORT}/v1", name,
                               [f"vllm serve {_q(merged)} --served-model-name {name} --port {VLLM_PORT}{tools}"],
                               "GPU server; the merged folder needs nothing else." + tools_note))
    if adapter is not None:
        out.append(ServeRecipe("vLLM (LoRA adapter)", f"http://localhost:{VLLM_PORT}/v1", name,
                               [f"vllm serve {_q(base_model)} --enable-lora --lora-modules {name}={_q(adapter)} "
                                f"--max-lora-rank {max(16, lora_rank)} --port {VLLM_PORT}{tools}"],
                               "Serves several adapters over one copy of the base model."))
    if merged is not None:
        gguf = merged.parent / f"{name}.gguf"
        out.append(ServeRecipe("llama.cpp server", f"http://localhost:{LLAMA_CPP_PORT}/v1", name, [
            f"python convert_hf_to_gguf.py {_q(merged)} --outfile {_q(gguf)} --outtype q8_0",
            f"llama-server -m {_q(gguf)} --alias {name} --port {LLAMA_CPP_PORT} --jinja",
        ], "CPU or GPU; convert_hf_to_gguf.py comes with llama.cpp. --jinja uses the model's chat "
           "template, which tool calls need."))
        out.append(ServeRecipe("Ollama", f"http://localhost:{OLLAMA_PORT}/v1", name, [
            f"printf 'FROM %s\\n' {_q(gguf)} > {_q(merged.parent / 'Modelfile')}",
            f"ollama create {name} -f {_q(merged.parent / 'Modelfile')}",
            "ollama serve",
        ], "Uses the GGUF file from the llama.cpp recipe."))
    return out


def register_command(workspace: Path | str, job_id: str, base_url: str, tier: int = 1) -> str:
    return f"cascade-studio --workspace {_q(workspace)} finetune use {job_id} --tier {tier} --base-url {base_url}"


def serve_markdown(name: str, recipes: list[ServeRecipe], workspace: Path | str, job_id: str) -> str:
    lines = [f"# Serving {name}", "",
             "Start one of these OpenAI-compatible servers, then register the model as a tier.", ""]
    for r in recipes:
        lines += [f"## {r.server}", "", "```sh", *r.commands, "```", ""]
        if r.note:
            lines += [r.note, ""]
        lines += [f"Register: `{register_command(workspace, job_id, r.base_url)}`", ""]
    return "\n".join(lines)
