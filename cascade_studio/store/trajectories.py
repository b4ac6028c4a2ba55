"""Trajectories. Every finished trajectory is committed on its own, so a crash loses nothing done;
(run_id, task_id, trial) is unique, so a resumed run never duplicates a task's trial. Runs live in
store.runs (imported here too, where callers have always found them)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson

from cascade_studio.core.agreement import decision_top
from cascade_studio.core.confidence import confidence_column
from cascade_studio.core.trajectory import Trajectory, Usage
from cascade_studio.store import payloads
from cascade_studio.store.payloads import PAYLOAD_COLUMNS, _strip, restore_logprobs  # noqa: F401 - re-exported
from cascade_studio.store.runs import Run, RunRepository, now  # noqa: F401 - their old home, still imported
from cascade_studio.store.workspace import Workspace


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# a trajectory as `get` reads it; request, response and logprobs live in trajectory_payloads (store.payloads)
ROW_COLUMNS = ("run_id", "task_id", "tier", "model", "status", "category", "tool_name", "content", "final_answer",
               "tool_calls", "request", "response", "logprobs", "prompt_tokens", "completion_tokens", "cached_tokens",
               "reasoning_tokens", "latency_ms", "cost_micro", "conf_mean", "conf_min", "conf_tool",
               "system_fingerprint", "error", "attempts", "started_at", "finished_at", "generation")
_COLUMNS = ", ".join(c for c in ROW_COLUMNS if c not in PAYLOAD_COLUMNS)  # what `save` writes to `trajectories`

_KNOWN_COLUMNS = frozenset(ROW_COLUMNS) | {"id", "curation", "tags", "episode", "steps", "end_reason", "correct",
                                           "trial", "episode_info"}
_EXPORT_COLUMNS = ("task_id", "tier", "model", "status", "request", "response", "latency_ms", "finished_at", "error",
                   "curation", "tags", "category", "logprobs")
_PAYLOADS_JOIN = " LEFT JOIN trajectory_payloads p ON p.id = t.id"


def _columns(names: Sequence[str]) -> str:
    """The SELECT list of `names` from `trajectories t` (payload columns from `trajectory_payloads p`;
    a row without payloads, inserted by hand, reads as the old columns' defaults: request `{}`)."""
    unknown = [n for n in names if n not in _KNOWN_COLUMNS]
    if unknown:
        raise ValueError(f"not trajectory columns: {unknown}")
    return ", ".join("coalesce(p.request, '{}')" if n == "request" else payloads.final_answer_sql("t")
                     if n == "final_answer" else ("p." if n in PAYLOAD_COLUMNS else "t.") + n for n in names)


def _source(names: Sequence[str]) -> str:
    """`trajectories t`, joined with the payloads only when `names` need them."""
    return "trajectories t" + (_PAYLOADS_JOIN if any(n in PAYLOAD_COLUMNS for n in names) else "")


def row_sql(names: Sequence[str]) -> tuple[str, Any]:
    """("SELECT names FROM trajectories t [payloads]", a function that inflates a row's payloads):
    add a WHERE on `t.` columns."""
    return f"SELECT {_columns(names)} FROM {_source(names)}", payloads.unpacked(names)


def _inflated(names: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """`rows` of `names` with their payloads as JSON text (a cursor as it is when there are none)."""
    if not any(n in PAYLOAD_COLUMNS or n in payloads.TEXT_COLUMNS for n in names):
        return iter(rows)
    return map(payloads.unpacked(names), rows)


_CHUNK = 500  # ids per `IN (...)` query


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]
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


_SORTABLE_ID_LENGTH = 256  # task ids up to this long are sorted as numpy text (n x 4 bytes x the longest)


def _latest_per_task(tasks: list[str], ids: list[int]) -> np.ndarray:
    """Indices of the row with the largest id of each task, in task id order (as `GROUP BY task_id`
    with `max(id)` picks them). Sorted by numpy on fixed-width text (100k rows ~15 ms instead of ~90);
    by a dictionary where that text would not compare as Python's does (numpy ignores trailing NULs)
    or would be too wide."""
    if max(map(len, tasks), default=0) <= _SORTABLE_ID_LENGTH and not any("\0" in t for t in tasks):
        text = np.array(tasks, dtype=str)
        order = np.lexsort((np.asarray(ids, dtype=np.int64), text))  # by task, then id
        text = text[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = text[1:] != text[:-1]
        return order[last]
    best: dict[str, int] = {}
    for i, (task, row_id) in enumerate(zip(tasks, ids, strict=True)):
        at = best.get(task)
        if at is None or row_id > ids[at]:
            best[task] = i
    return np.array([best[t] for t in sorted(best)], dtype=np.int64)


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
        """What `latest_ok` reads, as arrays sorted by task id: (task ids, {column: float64 values, NULL
        as NaN}, trajectory ids). One scan of the covering index trajectories_latest (migration 19) over
        every ok row of the tier, fetched in one call; the latest row per task is picked here, not by a
        GROUP BY (with two generations SQLite sorted the groups in a temporary b-tree, and writing the
        numbers as text for numpy to parse cost more than the rows themselves: 100k rows ~0.12 s instead
        of ~0.35 s). None when a value is not a number or a task id not text (use `latest_ok`)."""
        unknown = [c for c in numeric if c not in _KNOWN_COLUMNS or c in PAYLOAD_COLUMNS]
        if unknown:
            raise ValueError(f"not numeric trajectory columns: {unknown}")
        gen, args = _generation_clause(generations)
        rows = self.ws.conn.execute(
            f"SELECT task_id, id{''.join(f', {c}' for c in numeric)} FROM trajectories INDEXED BY trajectories_latest "
            f"WHERE tier = ? AND status = 'ok'{gen}", (tier, *args)).fetchall()
        if not rows:
            return [], {c: np.zeros(0) for c in numeric}, np.zeros(0, dtype=np.int64)
        table = np.array(rows, dtype=object)
        task = table[:, 0]
        try:
            ids = table[:, 1].astype(np.int64)
            values = table[:, 2:].astype(np.float64)  # None -> NaN
            # in index order the task ids ascend within a generation: each task once, already sorted
            ascending = bool((task[1:] > task[:-1]).all())
        except (TypeError, ValueError, OverflowError):
            return None
        if not ascending:  # a task collected again, or rows of two generations: the latest row per task
            keep = _latest_per_task(task.tolist(), ids.tolist())
            task, ids, values = task[keep], ids[keep], values[keep]
        return task.tolist(), {c: np.ascontiguousarray(values[:, k]) for k, c in enumerate(numeric)}, ids

    def set_correct(self, verdicts: Iterable[tuple[int, bool]]) -> None:
        """Keep the verdicts (trajectory id, correct) computed against the tasks' expected answers."""
        conn = self.ws.conn
        rows = sorted((i, int(ok)) for i, ok in verdicts)  # in id order: each page of the table visited once
        with self.ws.page_cache():  # holds the batch's pages (the 2 MB default spilled them mid-update)
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("UPDATE trajectories SET correct = ? WHERE id = ?", ((ok, i) for i, ok in rows))
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

    def ok_units(self, tier: int, generations: Sequence[str], task_ids: Sequence[str]) -> set[tuple[str, int]]:
        """(task id, trial) pairs of `task_ids` with a successful trajectory of `tier` in `generations`."""
        gen, args = _generation_clause(generations)
        wanted = set(task_ids)
        return {(r[0], r[1]) for r in self.ws.conn.execute(
            f"SELECT DISTINCT task_id, trial FROM trajectories WHERE tier = ? AND status = 'ok'{gen}", (tier, *args))
            if r[0] in wanted}

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
        # an episode teaches only when it finished the job (answered, or the user ended the conversation), not
        # when it ran out of steps or time or handed off
        clauses, args = ["status = 'ok'", "tier = ?",
                         "(end_reason IS NULL OR end_reason IN ('answered', 'user_stop'))"], [tier]
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

    def export_rows(self, tier: int | None = None, ids: Sequence[int] | None = None) -> Iterator[tuple[Any, ...]]:
        """The export's columns (_EXPORT_COLUMNS) of every trajectory (of `tier`; or those of `ids`: what
        a filtered view shows), in id order, streamed."""
        sql, _ = row_sql(_EXPORT_COLUMNS)
        if ids is not None:
            return (row for chunk in _chunks(sorted(ids)) for row in _inflated(_EXPORT_COLUMNS, self.ws.conn.execute(
                f"{sql} WHERE t.id IN ({','.join('?' * len(chunk))}) ORDER BY t.id", chunk)))
        where, args = (" WHERE t.tier = ?", [tier]) if tier is not None else ("", [])
        return _inflated(_EXPORT_COLUMNS, self.ws.conn.execute(f"{sql}{where} ORDER BY t.id", args))

    def save(self, run_id: int | None, t: Trajectory, category: str = "", trial: int = 0,
             correct: bool | None = None) -> int:
        """Insert, or replace an earlier error for the same (run, task, trial); commits at once.

        The response is stored without its logprobs (they have their own column), so they are
        not stored twice; `get` and the exports put them back. The first decision token's
        alternatives go to trajectory_decisions (what evaluation reads instead of the logprobs). The
        row, its payloads (compressed, in trajectory_payloads) and its decision token are written in
        one transaction (the caller's, when it has one open). `correct`: its verdict against the task's
        expected answer when the caller judged it (core.agreement.kept_verdict), kept as Trade-offs keeps it."""
        values = (run_id, t.task_id, t.tier, t.model, t.status, category, t.tool_name, payloads.pack_text(t.content),
                  payloads.pack_answer(t.final_answer, t.content),
                  _dumps(t.tool_calls), t.usage.prompt_tokens,
                  t.usage.completion_tokens, t.usage.cached_tokens, t.usage.reasoning_tokens, t.latency_ms,
                  t.cost_micro, t.conf_mean, t.conf_min, t.conf_tool, t.system_fingerprint, t.error, t.attempts,
                  t.started_at, t.finished_at, t.generation, trial, None if correct is None else int(correct))
        placeholders = ", ".join("?" * len(values))
        updates = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in (*_COLUMNS.split(",")[2:], "correct"))
        conn = self.ws.conn
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(
                f"INSERT INTO trajectories ({_COLUMNS}, trial, correct) VALUES ({placeholders}) "
                f"ON CONFLICT(run_id, task_id, trial) DO UPDATE "
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

    def summary_rows(self, tier: int | None = None, ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """One summary per trajectory (of `tier`; or those of `ids`), in id order."""
        select = ("SELECT id, task_id, tier, model, status, category, tool_name, conf_mean, conf_min, conf_tool, "
                  "cost_micro, latency_ms, prompt_tokens, completion_tokens, curation, tags, run_id, generation, steps, "
                  "end_reason, trial, episode_info FROM trajectories")
        if ids is not None:
            rows = [r for chunk in _chunks(sorted(ids)) for r in self.ws.conn.execute(
                f"{select} WHERE id IN ({','.join('?' * len(chunk))}) ORDER BY id", chunk)]
        else:
            where, args = ("WHERE tier = ?", [tier]) if tier is not None else ("", [])
            rows = self.ws.conn.execute(f"{select} {where} ORDER BY id", args).fetchall()
        keys = ["id", "task_id", "tier", "model", "status", "category", "tool_name", "conf_mean", "conf_min", "conf_tool",
                "cost_micro", "latency_ms", "prompt_tokens", "completion_tokens", "curation", "tags", "run_id",
                "generation", "steps", "end_reason", "trial", "episode_info"]
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def data_version(self) -> int:
        """SQLite's data_version of this connection: it changes when another connection (a worker thread,
        the CLI, another window) commits to the workspace, so a view can tell it has changes to read."""
        return self.ws.conn.execute("PRAGMA data_version").fetchone()[0]

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
