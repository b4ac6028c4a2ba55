"""Asking a judge (core.judges for the rules): requests with structured outputs where the server
takes them, verdicts stored as each arrives and never asked twice, cost counted and estimated.

A verdict is stored under (judge generation, template version, inputs' hash): a second run over the
same inputs reads the stored verdicts and sends no request. A request that fails is no verdict (it
is counted as failed and asked again next time); an answer without a clear verdict is stored as
"unparseable" and counts as neither pass nor fail.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import openai

from cascade_studio.core.errors import UserError
from cascade_studio.core.judges import (
    TIE,
    UNPARSEABLE,
    A,
    B,
    Judge,
    JudgeKind,
    build_request,
    combine_pairwise,
    inputs_hash,
    parse_verdict,
    render,
)
from cascade_studio.core.money import cost_micro_usd, micro_to_usd
from cascade_studio.core.tiers import transport_problem
from cascade_studio.core.trajectory import Usage
from cascade_studio.services.clients import (
    KeyWithheldError,
    MissingKeyError,
    describe_error,
    make_async_client,
)
from cascade_studio.services.secrets import SecretStore
from cascade_studio.services.trajectory_io import BATCH_DISCOUNT
from cascade_studio.store.judges import StoredVerdict, VerdictRepository
from cascade_studio.store.workspace import Workspace

log = logging.getLogger(__name__)
OUTPUT_TOKENS_ESTIMATE = 60  # a verdict and a one-sentence reason, for --dry-run estimates


@dataclass
class JudgeTotals:
    """What judging cost and how it went: every judged figure carries these."""

    judge: Judge
    asked: int = 0  # requests sent (and paid) in this run
    reused: int = 0  # verdicts read from the store (not paid again)
    unparseable: int = 0  # answers without a clear verdict (never a pass)
    failed: int = 0  # requests that failed (no verdict; asked again next run)
    cost_micro: int = 0  # known cost of the requests sent
    cost_unknown: int = 0  # requests whose usage the server did not report
    last_error: str = ""
    estimated: bool = False  # a --dry-run: nothing was sent, costs are estimates
    structured: bool | None = None  # whether structured outputs were used (None: nothing sent)

    def to_json(self) -> dict[str, Any]:
        j = self.judge
        return {"judge": j.name, "model": j.model, "kind": j.kind.value, "generation": j.generation,
                "template_version": j.template_version, "requests": self.asked, "reused": self.reused,
                "unparseable": self.unparseable, "failed": self.failed,
                "cost_usd": str(micro_to_usd(self.cost_micro)), "cost_unknown_requests": self.cost_unknown,
                "estimate": self.estimated, "structured_outputs": self.structured,
                "last_error": self.last_error or None}

    def named(self) -> str:
        """How a judged figure names its judge: "judge NAME (model, template vX, N unparseable)"."""
        return (f"judge {self.judge.name} ({self.judge.model}, template {self.judge.template_version}, "
                f"{self.unparseable} unparseable)")


def judge_client(judge: Judge, secrets: SecretStore) -> openai.AsyncOpenAI:
    """A client for the judge's endpoint under the tiers' key rules (core.tiers.transport_problem, the
    keyring entry per endpoint, the judge's own environment variable); errors name the judge."""
    tier = judge.connection_tier()
    try:
        return make_async_client(tier, secrets, max_retries=2)
    except KeyWithheldError:
        raise KeyWithheldError(f"Judge {judge.name}'s base URL {transport_problem(tier.base_url, tier.allow_insecure)}"
                               " No request was sent.") from None
    except MissingKeyError:
        raise MissingKeyError(f"Judge {judge.name} has no API key for {judge.base_url}. Set one with "
                              f"`cascade-studio keys set {judge.base_url}`, or export {tier.api_key_env}.") from None


@dataclass
class _Ask:
    inputs: dict[str, str]
    hash: str
    verdict: str | None = None  # None: not judged (failed, or a dry run)


@dataclass
class Judging:
    """One judge's session over many judgements: concurrency, structured-output fallback, totals."""

    ws: Workspace
    judge: Judge
    secrets: SecretStore
    dry_run: bool = False
    stored_only: bool = False  # with dry_run: read stored verdicts, estimate nothing (a page's quick look)
    batch: bool = False  # send through the Batch API (half price, results within 24 h)
    poll_s: float = 5.0
    totals: JudgeTotals = field(init=False)

    def __post_init__(self) -> None:
        self.totals = JudgeTotals(self.judge, estimated=self.dry_run)
        self._structured = self.judge.structured.value != "off"
        self._repo = VerdictRepository(self.ws)

    async def verdicts(self, inputs: list[dict[str, str]]) -> list[str | None]:
        """One verdict per inputs (a value of the kind, "unparseable", or None: not judged)."""
        asks = [_Ask(i, inputs_hash(self.judge.kind, i)) for i in inputs]
        stored = self._repo.get_many(self.judge.generation, self.judge.template_version, [a.hash for a in asks])
        todo: dict[str, list[_Ask]] = {}
        for a in asks:
            if a.hash in stored:
                a.verdict = stored[a.hash].verdict
                self.totals.reused += 1
                self.totals.unparseable += a.verdict == UNPARSEABLE
            else:
                todo.setdefault(a.hash, []).append(a)
        if self.dry_run:
            if not self.stored_only:
                self._estimate([group[0] for group in todo.values()])
            return [a.verdict for a in asks]
        if todo and self.batch:
            await self._ask_batch(todo)
        elif todo:
            await self._ask_all(todo)
        return [a.verdict for a in asks]

    async def _ask_batch(self, todo: dict[str, list[_Ask]]) -> None:
        """All of `todo` in one Batch API job (custom_id: the inputs' hash). The batch id is kept in the
        workspace until its results are stored, so a run that stops and starts again polls the same
        batch instead of paying twice."""
        import io

        key = f"judge_batch:{self.judge.generation}:{self.judge.template_version}"
        client = judge_client(self.judge, self.secrets)
        async with client:
            batch_id = self.ws.get_meta(key)
            resumed = bool(batch_id)  # a batch an earlier run created and did not finish reading
            if not batch_id:
                lines = [json.dumps({"custom_id": h, "method": "POST", "url": "/v1/chat/completions",
                                     "body": build_request(self.judge, render(self.judge.prompt_template, g[0].inputs),
                                                           structured=self._structured)})
                         for h, g in todo.items()]
                upload = await client.files.create(file=("cascade-judge.jsonl", io.BytesIO(
                    ("\n".join(lines) + "\n").encode())), purpose="batch")
                batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                    completion_window="24h",
                                                    metadata={"cascade_studio_judge": self.judge.name})
                batch_id = batch.id
                self.ws.set_meta(key, batch_id)
            while True:
                batch = await client.batches.retrieve(batch_id)
                if batch.status in ("completed", "failed", "expired", "cancelled"):
                    break
                await asyncio.sleep(self.poll_s)
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    text = (await client.files.content(file_id)).text
                    for line in text.splitlines():
                        if line.strip():
                            self._store_batch_line(json.loads(line), todo)
            self.ws.set_meta(key, "")
        remaining = {h: g for h, g in todo.items() if g[0].verdict is None}
        if resumed and remaining:  # the earlier batch held other judgements: ask for these now
            await self._ask_batch(remaining)
            return
        for group in todo.values():
            if group[0].verdict is None:
                self.totals.failed += 1
                self.totals.last_error = self.totals.last_error or f"batch {batch_id} ended {batch.status}"

    def _store_batch_line(self, row: dict[str, Any], todo: dict[str, list[_Ask]]) -> None:
        inputs_key = str(row.get("custom_id"))
        group = todo.get(inputs_key) or []  # a resumed batch may hold judgements this run did not ask for
        body = (row.get("response") or {}).get("body") or {}
        if (row.get("response") or {}).get("status_code") != 200 or not body.get("choices"):
            return
        self.totals.asked += 1
        self.totals.structured = self._structured
        verdict = parse_verdict(self.judge, body["choices"][0].get("message", {}).get("content"))
        usage = Usage.from_json(body.get("usage")) if body.get("usage") else None
        cost = None
        if usage is not None:
            cost = int((Decimal(cost_micro_usd(usage.prompt_tokens, self.judge.input_price)
                                + cost_micro_usd(usage.completion_tokens, self.judge.output_price))
                        * BATCH_DISCOUNT).to_integral_value())
            self.totals.cost_micro += cost
        else:
            self.totals.cost_unknown += 1
        self.totals.unparseable += not verdict.parsed
        self._repo.put(self.judge.generation, self.judge.template_version, inputs_key, self.judge.name,
                       self.judge.kind.value, StoredVerdict(verdict.value, verdict.reason, cost,
                                                            usage.prompt_tokens if usage else None,
                                                            usage.completion_tokens if usage else None))
        for a in group:
            a.verdict = verdict.value

    def _estimate(self, asks: list[_Ask]) -> None:
        from cascade_studio.services.tokenizer import token_counter

        count = token_counter(self.judge.model)
        for a in asks:
            prompt = render(self.judge.prompt_template, a.inputs)
            self.totals.asked += 1
            cost = (cost_micro_usd(count(prompt) + 8, self.judge.input_price)
                    + cost_micro_usd(OUTPUT_TOKENS_ESTIMATE, self.judge.output_price))
            self.totals.cost_micro += int((Decimal(cost) * BATCH_DISCOUNT).to_integral_value()) if self.batch else cost

    async def _ask_all(self, todo: dict[str, list[_Ask]]) -> None:
        client = judge_client(self.judge, self.secrets)
        gate = asyncio.Semaphore(self.judge.max_concurrency)

        async def one(group: list[_Ask]) -> None:
            async with gate:
                verdict = await self._ask(client, group[0])
            for a in group:
                a.verdict = verdict

        async with client:
            await asyncio.gather(*(one(g) for g in todo.values()))

    async def _ask(self, client: openai.AsyncOpenAI, a: _Ask) -> str | None:
        prompt = render(self.judge.prompt_template, a.inputs)
        structured = self._structured
        try:
            try:
                resp = await client.chat.completions.create(**build_request(self.judge, prompt, structured=structured))
            except openai.BadRequestError as exc:
                if not structured or self.judge.structured.value == "on" or "response_format" not in str(exc):
                    raise
                log.info("%s refused structured outputs; asking for a parsed answer instead", self.judge.base_url)
                self._structured = structured = False
                resp = await client.chat.completions.create(**build_request(self.judge, prompt, structured=False))
        except Exception as exc:  # noqa: BLE001 - a failed request is counted and named, never a verdict
            self.totals.failed += 1
            self.totals.last_error = describe_error(exc, self.judge.connection_tier())[1]
            return None
        self.totals.asked += 1
        self.totals.structured = structured
        text = resp.choices[0].message.content if resp.choices else None
        verdict = parse_verdict(self.judge, text)
        raw = resp.model_dump() if hasattr(resp, "model_dump") else {}
        usage = Usage.from_json(raw.get("usage")) if raw.get("usage") else None
        cost = None
        if usage is not None:
            cost = (cost_micro_usd(usage.prompt_tokens, self.judge.input_price)
                    + cost_micro_usd(usage.completion_tokens, self.judge.output_price))
            self.totals.cost_micro += cost
        else:
            self.totals.cost_unknown += 1
        self.totals.unparseable += not verdict.parsed
        self._repo.put(self.judge.generation, self.judge.template_version, a.hash, self.judge.name,
                       self.judge.kind.value, StoredVerdict(verdict.value, verdict.reason, cost,
                                                            usage.prompt_tokens if usage else None,
                                                            usage.completion_tokens if usage else None))
        return verdict.value

    async def pairwise(self, pairs: list[dict[str, str]]) -> list[str | None]:
        """Each pair (inputs with answer_a, answer_b) asked in both orders; A or B only when both
        orders agree, else a tie (core.judges.combine_pairwise)."""
        swapped = [{**p, "answer_a": p.get("answer_b", ""), "answer_b": p.get("answer_a", "")} for p in pairs]
        both = await self.verdicts([*pairs, *swapped])
        out: list[str | None] = []
        for first, second in zip(both[:len(pairs)], both[len(pairs):], strict=True):
            out.append(None if first is None or second is None else combine_pairwise(first, second))
        return out

    async def passes(self, inputs: list[dict[str, str]]) -> list[bool | None]:
        """Pass/fail per inputs for a reference or rubric judge (None: unparseable or not judged)."""
        if self.judge.kind == JudgeKind.PAIRWISE:
            raise ValueError("a pairwise judge compares two answers; use pairwise()")
        return [None if v is None else self.judge.passes(v) for v in await self.verdicts(inputs)]


def agreement_of_pair(verdict: str | None) -> bool | None:
    """A pairwise verdict of (teacher = A, student = B) as answer agreement: the student's answer is
    at least as good (B or a tie)."""
    if verdict is None or verdict == UNPARSEABLE:
        return None
    return verdict in (B, TIE) if verdict in (A, B, TIE) else None


# -- what a judge reads ------------------------------------------------------------------------------
RESULT_CHARS = 1500  # of each tool result, in an episode's transcript


def episode_transcript(episode: Any) -> str:
    """An episode as the judge reads it: each call (`CALL name {arguments}`), each result, and the
    final answer. The line format is fixed (the sandbox's judge replays the CALL lines)."""
    import json

    lines: list[str] = []
    for step in episode.steps:
        for call in step.call.tool_calls:
            lines.append(f"CALL {call.get('name')} {json.dumps(call.get('arguments'), ensure_ascii=False)}")
        for result in step.results:
            flag = "ERROR " if result.is_error or result.error else ""
            text = " ".join((result.content or result.error or "").split())[:RESULT_CHARS]
            lines.append(f"RESULT {flag}{result.name}: {text}")
        if step.answered:
            lines.append(f"ANSWER: {step.call.content or ''}")
    if not episode.steps or not episode.steps[-1].answered:
        lines.append(f"(no final answer; the episode ended: {episode.end_reason or 'unknown'})")
    return "\n".join(lines)


def episode_inputs(question: str, episode: Any, reference: str | None = None) -> dict[str, str]:
    """A rubric judge's inputs for "did the agent achieve the user's goal?" over one whole episode."""
    inputs = {"question": question, "episode": episode_transcript(episode), "scale": ""}
    if reference:
        inputs["reference"] = "A reference answer (from another agent or the task):\n" + reference
    return inputs


def answer_inputs(judge: Judge, question: str, candidate: str, reference: str | None) -> dict[str, str]:
    """Inputs for one answer: reference-guided (reference kind, or a rubric with a reference)."""
    inputs = {"question": question, "candidate": candidate}
    if reference:
        inputs["reference"] = reference
    if judge.kind == JudgeKind.RUBRIC:
        inputs["scale"] = ""
    return inputs


def with_scale(judge: Judge, inputs: dict[str, str]) -> dict[str, str]:
    if judge.kind == JudgeKind.RUBRIC:
        return {**inputs, "scale": ", ".join(judge.scale_values)}
    return inputs


async def judge_episodes(ws: Workspace, judge: Judge, items: dict[str, tuple[str, Any, str | None]],
                         secrets: SecretStore, *, dry_run: bool = False,
                         batch: bool = False) -> tuple[dict[str, bool | None], JudgeTotals]:
    """Episode success by judge (issue 30): {key: (the user's request, Episode, reference answer or None)}
    -> {key: True/False, or None when the verdict is unparseable or the request failed}. A rubric judge
    asks "did the agent achieve the user's goal?"; a reference judge compares the final answer with
    the reference. Verdicts are stored and reused (never paid twice)."""
    session = Judging(ws, judge, secrets, dry_run=dry_run, batch=batch)
    keys = list(items)
    if judge.kind == JudgeKind.PAIRWISE:
        raise JudgeKindError("episode success needs a rubric or reference judge, not a pairwise one")
    if judge.kind == JudgeKind.RUBRIC:
        inputs = [with_scale(judge, episode_inputs(*items[k])) for k in keys]
    else:
        inputs = [answer_inputs(judge, q, ep.final_answer or "(no final answer)", ref) for q, ep, ref in
                  (items[k] for k in keys)]
    verdicts = await session.passes(inputs)
    return dict(zip(keys, verdicts, strict=True)), session.totals


class JudgeKindError(UserError):
    pass
