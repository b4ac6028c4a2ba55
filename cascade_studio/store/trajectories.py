"""Runs and trajectories. Every finished trajectory is committed on its own, so a crash loses
nothing done; (run_id, task_id) is unique, so a resumed run never duplicates a task."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from cascade_studio.core.agreement import decision_top
from cascade_studio.core.confidence import confidence_column
from cascade_studio.core.trajectory import Trajectory, Usage
from cascade_studio.store import payloads
from cascade_studio.store.numbers import number_text, parse_numbers
from cascade_studio.store.payloads import PAYLOAD_COLUMNS
from cascade_studio.store.workspace import Workspace


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class Run:
    id: int
    tier: int
    model: str
    status: str
    task_ids: list[str]
    params: dict[str, Any]
    created_at: str
    message: str = ""
    generation: str = ""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _strip(response: dict[str, Any]) -> dict[str, Any]:
    choices = response.get("choices") or []
    if not choices or not isinstance(choices[0].get("logprobs"), dict) or choices[0]["logprobs"].get("content") is None:
        return response
    first = dict(choices[0])
    first["logprobs"] = {**first["logprobs"], "content": "@logprobs"}
    return {**response, "choices": [first, *choices[1:]]}


def restore_logprobs(response: dict[str, Any], logprobs_json: str | None) -> dict[str, Any]:
    choices = response.get("choices") or []
    if choices and isinstance(choices[0].get("logprobs"), dict) and choices[0]["logprobs"].get("content") == "@logprobs":
        choices[0]["logprobs"]["content"] = orjson.loads(logprobs_json) if logprobs_json else None
    return response


class RunRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def create(self, tier: int, model: str, task_ids: list[str], params: dict[str, Any], generation: str = "") -> Run:
        stamp = now()
        cur = self.ws.conn.execute(
            "INSERT INTO runs (tier, model, status, task_ids, params, created_at, updated_at, generation) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
            (tier, model, json.dumps(task_ids), json.dumps(params), stamp, stamp, generation))
        return Run(cur.lastrowid, tier, model, "running", task_ids, params, stamp, "", generation)

    def get(self, run_id: int) -> Run | None:
        row = self.ws.conn.execute("SELECT id, tier, model, status, task_ids, params, created_at, message, generation FROM runs "
                                   "WHERE id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def list(self) -> list[Run]:
        rows = self.ws.conn.execute("SELECT id, tier, model, status, task_ids, params, created_at, message, generation FROM runs "
                                    "ORDER BY id DESC").fetchall()
        return [_run(r) for r in rows]

    def find_unfinished(self, tier: int, task_ids: list[str], generation: str | None = None) -> Run | None:
        """The latest run of this tier (and generation) over exactly these tasks that did not finish."""
        wanted = json.dumps(task_ids)
        gen_clause, args = ("AND generation = ? ", [generation]) if generation is not None else ("", [])
        row = self.ws.conn.execute(
            "SELECT id, tier, model, status, task_ids, params, created_at, message, generation FROM runs WHERE tier = ? AND "
            f"task_ids = ? {gen_clause}AND status IN ('running', 'paused', 'cancelled', 'failed') ORDER BY id DESC LIMIT 1",
            (tier, wanted, *args)).fetchone()
        return _run(row) if row else None

    def latest_unfinished(self, tier: int, generation: str) -> Run | None:
        """The newest run of this tier's generation that did not finish (cancelled, failed, or killed
        while it ran), whatever its tasks."""
        row = self.ws.conn.execute(
            "SELECT id, tier, model, status, task_ids, params, created_at, message, generation FROM runs WHERE tier = ? "
            "AND generation = ? AND status IN ('running', 'paused', 'cancelled', 'failed') ORDER BY id DESC LIMIT 1",
            (tier, generation)).fetchone()
        return _run(row) if row else None

    def totals(self, run_id: int) -> tuple[int, int, int]:
        """(ok trajectories, tokens, cost in micro-USD) of everything the run stored: the whole run,
        across resumes. Agent episodes count what they paid even when they ended in an error, and the
        steps of episodes not finished yet (a cancelled or killed run) count too."""
        row = self.ws.conn.execute(
            "SELECT coalesce(sum(status = 'ok'), 0), coalesce(sum(prompt_tokens + completion_tokens), 0), "
            "coalesce(sum(cost_micro), 0) FROM trajectories WHERE run_id = ? AND (status = 'ok' OR episode IS NOT NULL)",
            (run_id,)).fetchone()
        open_steps = self.ws.conn.execute(
            "SELECT coalesce(sum(json_extract(call, '$.usage[0]') + json_extract(call, '$.usage[1]')), 0), "
            "coalesce(sum(json_extract(call, '$.cost_micro')), 0) FROM episode_steps s WHERE s.run_id = ? "
            "AND s.episode NOT LIKE 'forced:%' AND NOT EXISTS (SELECT 1 FROM trajectories t WHERE t.episode = s.episode)",
            (run_id,)).fetchone()
        return int(row[0]), int(row[1]) + int(open_steps[0]), int(row[2]) + int(open_steps[1])

    def set_status(self, run_id: int, status: str, message: str = "") -> None:
        self.ws.conn.execute("UPDATE runs SET status = ?, message = ?, updated_at = ? WHERE id = ?",
                             (status, message, now(), run_id))

    def finished_task_ids(self, run_id: int) -> set[str]:
        return {r[0] for r in self.ws.conn.execute(
            "SELECT task_id FROM trajectories WHERE run_id = ? AND status = 'ok'", (run_id,))}

    def set_params(self, run_id: int, params: dict[str, Any]) -> None:
        self.ws.conn.execute("UPDATE runs SET params = ? WHERE id = ?", (json.dumps(params), run_id))

    def import_run(self, tier: int, model: str, source: str) -> int:
        """One run per (tier, imported file): re-importing the same file updates instead of duplicating."""
        params = json.dumps({"import": source})
        row = self.ws.conn.execute("SELECT id FROM runs WHERE tier = ? AND params = ?", (tier, params)).fetchone()
        if row:
            return row[0]
        stamp = now()
        return self.ws.conn.execute(
            "INSERT INTO runs (tier, model, status, task_ids, params, created_at, updated_at) "
            "VALUES (?, ?, 'imported', '[]', ?, ?, ?)", (tier, model, params, stamp, stamp)).lastrowid


def _run(row: tuple) -> Run:
    return Run(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6], row[7], row[8])


# a trajectory as `get` reads it; request, response and logprobs live in trajectory_payloads (store.payloads)
ROW_COLUMNS = ("run_id", "task_id", "tier", "model", "status", "category", "tool_name", "content", "final_answer",
               "tool_calls", "request", "response", "logprobs", "prompt_tokens", "completion_tokens", "cached_tokens",
               "reasoning_tokens", "latency_ms", "cost_micro", "conf_mean", "conf_min", "conf_tool",
               "system_fingerprint", "error", "attempts", "started_at", "finished_at", "generation")
_COLUMNS = ", ".join(c for c in ROW_COLUMNS if c not in PAYLOAD_COLUMNS)  # what `save` writes to `trajectories`

_KNOWN_COLUMNS = frozenset(ROW_COLUMNS) | {"id", "curation", "tags", "episode", "steps", "end_reason", "correct"}
_EXPORT_COLUMNS = ("task_id", "tier", "model", "status", "request", "response", "latency_ms", "finished_at", "error",
                   "curation", "tags", "category", "logprobs")
_PAYLOADS_JOIN = " LEFT JOIN trajectory_payloads p ON p.id = t.id"


def _columns(names: Sequence[str]) -> str:
    """The SELECT list of `names` from `trajectories t` (payload columns from `trajectory_payloads p`;
    a row without payloads, inserted by hand, reads as the old columns' defaults: request `{}`)."""
    unknown = [n for n in names if n not in _KNOWN_COLUMNS]
    if unknown:
        raise ValueError(f"not trajectory columns: {unknown}")
    return ", ".join("coalesce(p.request, '{}')" if n == "request" else ("p." if n in PAYLOAD_COLUMNS else "t.") + n
                     for n in names)


def _source(names: Sequence[str]) -> str:
    """`trajectories t`, joined with the payloads only when `names` need them."""
    return "trajectories t" + (_PAYLOADS_JOIN if any(n in PAYLOAD_COLUMNS for n in names) else "")


def row_sql(names: Sequence[str]) -> tuple[str, Any]:
    """("SELECT names FROM trajectories t [payloads]", a function that inflates a row's payloads):
    add a WHERE on `t.` columns."""
    return f"SELECT {_columns(names)} FROM {_source(names)}", payloads.unpacked(names)


def _inflated(names: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """`rows` of `names` with their payloads as JSON text (a cursor as it is when there are none)."""
    if not any(n in PAYLOAD_COLUMNS for n in names):
        return iter(rows)
    return map(payloads.unpacked(names), rows)


_CHUNK = 500  # ids per `IN (...)` query
DERIVE_BATCH = 100  # full logprobs parsed at once when deriving decision tokens of older rows


def _decision_top_json(logprobs: Any, tool_name: str | None) -> str | None:
    """The stored form of core.agreement.decision_top (None: none). Logprobs too malformed to
    find the decision token in have none: a save never fails on them."""
    try:
        top = decision_top(logprobs, tool_name)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError):
        return None
    return None if top is None else _dumps(top)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _generation_clause(generations: Sequence[str] | None) -> tuple[str, list[str]]:
    if not generations:
        return "", []
    return f" AND generation IN ({','.join('?' * len(generations))})", list(generations)


class TrajectoryRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def save_all(self, run_id: int, items: Iterable[tuple[Trajectory, str]]) -> int:
        """Save (trajectory, category) pairs in one transaction: all of them or none."""
        conn = self.ws.conn
        conn.execute("BEGIN IMMEDIATE")
        n = 0
        try:
            for traj, category in items:
                self.save(run_id, traj, category)
                n += 1
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        return n

    def latest_ok(self, tier: int, columns: Sequence[str],
                  generations: Sequence[str] | None = None) -> Iterator[tuple[Any, ...]]:
        """`columns` of the latest successful trajectory of `tier` (of one of `generations`, when
        given: the tier's current generation) for each task, streamed."""
        gen, args = _generation_clause(generations)
        return _inflated(columns, self.ws.conn.execute(
            f"SELECT {_columns(columns)} FROM {_source(columns)} JOIN (SELECT task_id, max(id) AS id FROM "
            f"trajectories WHERE tier = ? AND status = 'ok'{gen} GROUP BY task_id) last ON last.id = t.id",
            (tier, *args)))

    def latest_ok_arrays(self, tier: int, numeric: Sequence[str], generations: Sequence[str] | None = None
                         ) -> tuple[list[str], dict[str, np.ndarray], np.ndarray] | None:
        """What `latest_ok` reads, as arrays, in one aggregate pass (no Python tuple per row: 100k rows
        in ~0.1 s instead of ~0.35 s): (task ids, {column: float64 values, NULL as NaN}, trajectory
        ids). None when a task id holds the separator or a value is not a number (use `latest_ok`)."""
        unknown = [c for c in numeric if c not in _KNOWN_COLUMNS or c in PAYLOAD_COLUMNS]
        if unknown:
            raise ValueError(f"not numeric trajectory columns: {unknown}")
        gen, args = _generation_clause(generations)
        values = "".join(f", group_concat({number_text(c)})" for c in numeric)
        # max(id) with bare columns: SQLite takes them from the row holding the max, so the columns come
        # straight out of the covering index trajectories_latest (migration 19), no row fetched by id.
        # Named: with two generations (current and legacy) the planner walks (tier, task_id) instead, to
        # skip sorting for the GROUP BY, and fetches every row (340 ms a tier at 100k instead of 205)
        row = self.ws.conn.execute(
            f"SELECT count(*), group_concat(task_id, char(31)), group_concat(id){values} FROM (SELECT task_id, "
            f"max(id) AS id, {', '.join(numeric)} FROM trajectories INDEXED BY trajectories_latest "
            f"WHERE tier = ? AND status = 'ok'{gen} "
            f"GROUP BY task_id)", (tier, *args)).fetchone()
        n = row[0]
        task_ids = row[1].split("\x1f") if n else []
        ids = parse_numbers(row[2], np.int64)
        arrays = {c: parse_numbers(text, np.float64) for c, text in zip(numeric, row[3:], strict=True)}
        if len(task_ids) != n or ids is None or len(ids) != n or any(a is None or len(a) != n for a in arrays.values()):
            return None
        return task_ids, arrays, ids  # type: ignore[return-value]

    def set_correct(self, verdicts: Iterable[tuple[int, bool]]) -> None:
        """Keep the verdicts (trajectory id, correct) computed against the tasks' expected answers."""
        conn = self.ws.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("UPDATE trajectories SET correct = ? WHERE id = ?", ((int(ok), i) for i, ok in verdicts))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def latest_ok_ids(self, tier: int, generations: Sequence[str] | None = None) -> dict[str, int]:
        """{task id: id of its latest successful trajectory of `tier` (of one of `generations`)}: the
        small index that evaluation reads the rows it needs by, in batches (`by_ids`)."""
        gen, args = _generation_clause(generations)
        return dict(self.ws.conn.execute(
            f"SELECT task_id, max(id) FROM trajectories WHERE tier = ? AND status = 'ok'{gen} GROUP BY task_id",
            (tier, *args)))

    def by_ids(self, ids: Sequence[int], columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """`columns` of the trajectories `ids` (those that exist), read in chunks of 500, streamed."""
        sql = f"SELECT {_columns(columns)} FROM {_source(columns)} WHERE t.id IN "
        for chunk in _chunks(ids):
            yield from _inflated(columns, self.ws.conn.execute(f"{sql}({','.join('?' * len(chunk))})", chunk))

    def decision_tops(self, ids: Sequence[int]) -> dict[int, list[dict[str, Any]] | None]:
        """{id: the alternatives of its first decision token (core.agreement.decision_top)} for `ids`,
        without reading the full logprobs. Rows stored before schema step 13 have no decision row
        yet: theirs are derived here from their logprobs, DERIVE_BATCH rows at a time, and stored."""
        out: dict[int, list[dict[str, Any]] | None] = {}
        underived: list[int] = []
        for chunk in _chunks(ids):
            for tid, top, known in self.ws.conn.execute(
                    "SELECT t.id, d.top, d.id IS NOT NULL FROM trajectories t LEFT JOIN trajectory_decisions d "
                    f"ON d.id = t.id WHERE t.id IN ({','.join('?' * len(chunk))})", chunk):
                if known:
                    out[tid] = None if top is None else orjson.loads(top)
                else:
                    underived.append(tid)
        for chunk in _chunks(underived, DERIVE_BATCH):
            derived = [(tid, _decision_top_json(None if lp is None else orjson.loads(payloads.unpack(lp)), tool))
                       for tid, tool, lp in self.ws.conn.execute(
                           "SELECT t.id, t.tool_name, p.logprobs FROM trajectories t LEFT JOIN trajectory_payloads p "
                           f"ON p.id = t.id WHERE t.id IN ({','.join('?' * len(chunk))})", chunk)]
            self._store_decisions(derived)
            out.update((tid, None if top is None else orjson.loads(top)) for tid, top in derived)
        return out

    def _store_decisions(self, rows: list[tuple[int, str | None]]) -> None:
        conn = self.ws.conn
        sql = ("INSERT INTO trajectory_decisions (id, top) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET "
               "top = excluded.top")
        if conn.in_transaction:
            conn.executemany(sql, rows)
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return  # read-only or busy: derived again next time, the figures are the same
        try:
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def ok_task_ids(self, tier: int, generations: Sequence[str], task_ids: Sequence[str] | None = None) -> set[str]:
        """Tasks with a successful trajectory of `tier` in one of `generations` (among `task_ids`)."""
        gen, args = _generation_clause(generations)
        found = {r[0] for r in self.ws.conn.execute(
            f"SELECT DISTINCT task_id FROM trajectories WHERE tier = ? AND status = 'ok'{gen}", (tier, *args))}
        return found if task_ids is None else found & set(task_ids)

    def recent_completion_tokens(self, tier: int, generations: Sequence[str], limit: int = 200) -> list[int]:
        """Output lengths of the tier's latest successful trajectories (for cost estimates)."""
        gen, args = _generation_clause(generations)
        return [r[0] for r in self.ws.conn.execute(
            f"SELECT completion_tokens FROM trajectories WHERE tier = ? AND status = 'ok'{gen} ORDER BY id DESC LIMIT ?",
            (tier, *args, limit))]

    def mean_episode_steps(self, tier: int, generations: Sequence[str], limit: int = 200) -> float | None:
        clause, args = _generation_clause(generations)
        row = self.ws.conn.execute(
            f"SELECT avg(steps) FROM (SELECT steps FROM trajectories WHERE tier = ? AND episode IS NOT NULL "
            f"AND status = 'ok'{clause} ORDER BY id DESC LIMIT ?)", [tier, *args, limit]).fetchone()
        return row[0] if row and row[0] else None

    def record_generation(self, tier: int, generation: str, params: dict[str, Any]) -> None:
        """Remember what a generation id stands for (model, endpoint, prompt, temperature)."""
        self.ws.conn.execute("INSERT OR IGNORE INTO generations (id, tier, params, first_seen) VALUES (?, ?, ?, ?)",
                             (generation, tier, json.dumps(params, sort_keys=True), now()))

    def generation_params(self, generation: str) -> dict[str, Any] | None:
        row = self.ws.conn.execute("SELECT params FROM generations WHERE id = ?", (generation,)).fetchone()
        return None if row is None else json.loads(row[0])

    def generations(self, tier: int | None = None) -> list[tuple[int, str, str, int]]:
        """(tier, generation, model, trajectories) for each generation stored, newest first."""
        where, args = ("WHERE tier = ?", [tier]) if tier is not None else ("", [])
        return self.ws.conn.execute(
            f"SELECT tier, generation, max(model), count(*) FROM trajectories {where} GROUP BY tier, generation "
            "ORDER BY max(id) DESC", args).fetchall()

    def latest_curated(self, tier: int | None, *, accepted_only: bool = False, category: str | None = None,
                       min_confidence: float | None = None, confidence_method: str = "mean_token_prob",
                       tool: str | None = None, generations: Sequence[str] | None = None,
                       columns: Sequence[str] = ("id", "task_id", "category", "request", "content", "tool_calls")
                       ) -> Iterator[tuple[Any, ...]]:
        """`columns` of the latest successful trajectory of `tier` per task among those that pass the
        filters (accepted only, or not rejected), in id order, streamed: the source of a fine-tuning
        dataset."""
        # an episode teaches only when it finished the job (answered), not when it ran out of steps or time
        clauses, args = ["status = 'ok'", "tier = ?", "(end_reason IS NULL OR end_reason = 'answered')"], [tier]
        if accepted_only:
            clauses.append("curation = 'accepted'")
        else:
            clauses.append("(curation IS NULL OR curation != 'rejected')")
        if category:
            clauses.append("category = ?")
            args.append(category)
        if min_confidence is not None:
            clauses.append(f"{confidence_column(confidence_method)} >= ?")
            args.append(min_confidence)
        if tool:
            clauses.append("tool_name = ?")
            args.append(tool)
        if generations:
            clauses.append(f"generation IN ({','.join('?' * len(generations))})")
            args.extend(generations)
        return _inflated(columns, self.ws.conn.execute(
            f"SELECT {_columns(columns)} FROM {_source(columns)} WHERE t.id IN (SELECT max(id) "
            f"FROM trajectories WHERE {' AND '.join(clauses)} GROUP BY task_id) ORDER BY t.id", args))

    def logprobs_texts(self, ids: Sequence[int]) -> Iterator[tuple[int, str]]:
        """(id, stored logprobs JSON, unparsed) of those of `ids` that have logprobs, 500 ids at a time."""
        for chunk in _chunks(ids):
            for tid, blob in self.ws.conn.execute(f"SELECT id, logprobs FROM trajectory_payloads WHERE id IN "
                                                  f"({','.join('?' * len(chunk))}) AND logprobs IS NOT NULL", chunk):
                yield tid, payloads.unpack(blob)

    def any_logprobs(self, ids: Sequence[int]) -> bool:
        """Whether any of `ids` has recorded logprobs (without reading them)."""
        return any(self.ws.conn.execute(f"SELECT 1 FROM trajectory_payloads WHERE id IN "
                                        f"({','.join('?' * len(chunk))}) AND logprobs IS NOT NULL LIMIT 1",
                                        chunk).fetchone()
                   for chunk in _chunks(ids))

    def export_rows(self, tier: int | None = None) -> Iterator[tuple[Any, ...]]:
        """The export's columns (_EXPORT_COLUMNS) of every trajectory (of `tier`), in id order, streamed."""
        where, args = (" WHERE t.tier = ?", [tier]) if tier is not None else ("", [])
        sql, _ = row_sql(_EXPORT_COLUMNS)
        return _inflated(_EXPORT_COLUMNS, self.ws.conn.execute(f"{sql}{where} ORDER BY t.id", args))

    def save(self, run_id: int | None, t: Trajectory, category: str = "") -> int:
        """Insert, or replace an earlier error for the same (run, task); commits at once.

        The response is stored without its logprobs (they have their own column), so they are
        not stored twice; `get` and the exports put them back. The first decision token's
        alternatives go to trajectory_decisions (what evaluation reads instead of the logprobs). The
        row, its payloads (compressed, in trajectory_payloads) and its decision token are written in
        one transaction (the caller's, when it has one open)."""
        values = (run_id, t.task_id, t.tier, t.model, t.status, category, t.tool_name, t.content, t.final_answer,
                  _dumps(t.tool_calls), t.usage.prompt_tokens,
                  t.usage.completion_tokens, t.usage.cached_tokens, t.usage.reasoning_tokens, t.latency_ms,
                  t.cost_micro, t.conf_mean, t.conf_min, t.conf_tool, t.system_fingerprint, t.error, t.attempts,
                  t.started_at, t.finished_at, t.generation)
        placeholders = ", ".join("?" * len(values))
        updates = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _COLUMNS.split(",")[2:])
        conn = self.ws.conn
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(
                f"INSERT INTO trajectories ({_COLUMNS}) VALUES ({placeholders}) ON CONFLICT(run_id, task_id) DO UPDATE "
                f"SET {updates} WHERE trajectories.status != 'ok' RETURNING id", values)
            stored = cur.fetchall()  # all of it: the statement ends here
            if stored:  # inserted, or replaced an error: its payloads and decision token beside it
                payloads.store(conn, stored[0][0], orjson.dumps(t.request),
                               None if t.response is None else orjson.dumps(_strip(t.response)),
                               None if t.logprobs is None else orjson.dumps(t.logprobs))
                conn.execute(
                    "INSERT INTO trajectory_decisions (id, top) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET "
                    "top = excluded.top", (stored[0][0], _decision_top_json(t.logprobs, t.tool_name)))
            if own:
                conn.execute("COMMIT")
        except BaseException:
            if own and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return cur.lastrowid

    def get(self, traj_id: int) -> tuple[Trajectory, dict[str, Any]] | None:
        sql, inflate = row_sql((*ROW_COLUMNS, "id", "curation", "tags"))
        row = self.ws.conn.execute(f"{sql} WHERE t.id = ?", (traj_id,)).fetchone()
        if row is None:
            return None
        row = inflate(row)
        t = Trajectory(
            task_id=row[1], tier=row[2], model=row[3], status=row[4], content=row[7], final_answer=row[8],
            tool_calls=orjson.loads(row[9]), request=orjson.loads(row[10]),
            response=None if row[11] is None else restore_logprobs(orjson.loads(row[11]), row[12]),
            logprobs=None if row[12] is None else orjson.loads(row[12]),
            usage=Usage(row[13], row[14], row[15], row[16]), latency_ms=row[17], cost_micro=row[18],
            conf_mean=row[19], conf_min=row[20], conf_tool=row[21], system_fingerprint=row[22], error=row[23],
            attempts=row[24], started_at=row[25], finished_at=row[26], generation=row[27])
        return t, {"id": row[28], "run_id": row[0], "category": row[5], "curation": row[29], "tags": row[30]}

    def summary_rows(self, tier: int | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE tier = ?", [tier]) if tier is not None else ("", [])
        rows = self.ws.conn.execute(
            "SELECT id, task_id, tier, model, status, category, tool_name, conf_mean, conf_min, conf_tool, cost_micro, "
            f"latency_ms, prompt_tokens, completion_tokens, curation, tags, run_id, generation, steps, end_reason "
            f"FROM trajectories {where} ORDER BY id", args).fetchall()
        keys = ["id", "task_id", "tier", "model", "status", "category", "tool_name", "conf_mean", "conf_min", "conf_tool",
                "cost_micro", "latency_ms", "prompt_tokens", "completion_tokens", "curation", "tags", "run_id",
                "generation", "steps", "end_reason"]
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def count(self, where: str = "", args: list[Any] | None = None) -> int:
        return self.ws.conn.execute(f"SELECT count(*) FROM trajectories {where}", args or []).fetchone()[0]

    def set_curation(self, ids: list[int], curation: str | None) -> dict[int, str | None]:
        """Returns the previous values, for undo."""
        previous = self._column(ids, "curation")
        self.ws.conn.executemany("UPDATE trajectories SET curation = ? WHERE id = ?", [(curation, i) for i in ids])
        return previous

    def restore_curation(self, previous: dict[int, str | None]) -> None:
        self.ws.conn.executemany("UPDATE trajectories SET curation = ? WHERE id = ?",
                                 [(v, k) for k, v in previous.items()])

    def add_tag(self, ids: list[int], tag: str) -> dict[int, str]:
        previous = self._column(ids, "tags")
        rows = []
        for i, tags in previous.items():
            parts = [p for p in (tags or "").split(",") if p]
            if tag not in parts:
                parts.append(tag)
            rows.append((",".join(parts), i))
        self.ws.conn.executemany("UPDATE trajectories SET tags = ? WHERE id = ?", rows)
        return previous

    def restore_tags(self, previous: dict[int, str]) -> None:
        self.ws.conn.executemany("UPDATE trajectories SET tags = ? WHERE id = ?", [(v, k) for k, v in previous.items()])

    def _column(self, ids: list[int], column: str) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self.ws.conn.execute(f"SELECT id, {column} FROM trajectories WHERE id IN ({marks})", chunk))
        return out
