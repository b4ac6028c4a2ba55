"""Episodes: every step is committed as it completes; the finished episode is one trajectory row
(core.episode.Episode.summary) that names its episode key. A killed run leaves steps without a
row: the next run finds them (`unfinished`) and goes on from the last one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from cascade_studio.core.episode import Episode, Step, ToolResult
from cascade_studio.core.trajectory import Trajectory, Usage
from cascade_studio.store.trajectories import TrajectoryRepository, _strip, now, restore_logprobs
from cascade_studio.store.workspace import Workspace

_CALL_FIELDS = ("task_id", "tier", "model", "status", "request", "content", "tool_calls", "final_answer",
                "latency_ms", "cost_micro", "conf_mean", "conf_min", "conf_tool", "system_fingerprint", "error",
                "attempts", "started_at", "finished_at", "generation")


def _call_json(t: Trajectory) -> bytes:
    d: dict[str, Any] = {f: getattr(t, f) for f in _CALL_FIELDS}
    d["response"] = None if t.response is None else _strip(t.response)
    d["usage"] = [t.usage.prompt_tokens, t.usage.completion_tokens, t.usage.cached_tokens, t.usage.reasoning_tokens]
    return orjson.dumps(d)


def _call(blob: str | bytes, logprobs: str | None) -> Trajectory:
    d = orjson.loads(blob)
    usage = Usage(*d.pop("usage"))
    response = d.pop("response")
    return Trajectory(**d, usage=usage,
                      response=None if response is None else restore_logprobs(response, logprobs),
                      logprobs=None if logprobs is None else orjson.loads(logprobs))


class EpisodeRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def save_step(self, episode: Episode, step: Step, run_id: int | None) -> None:
        """Commit one step (its model call and tool results) at once."""
        c = step.call
        self.ws.conn.execute(
            "INSERT INTO episode_steps (episode, step, task_id, tier, generation, run_id, environment, call, logprobs, "
            "results, created_at, trial, user_turns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(episode, step) DO UPDATE SET "
            "call = excluded.call, logprobs = excluded.logprobs, results = excluded.results, "
            "user_turns = excluded.user_turns",
            (episode.key, step.index, episode.task_id, episode.tier, episode.generation, run_id, episode.environment,
             _call_json(c), None if c.logprobs is None else orjson.dumps(c.logprobs).decode(),
             orjson.dumps([r.to_json() for r in step.results]).decode(), now(), episode.trial,
             orjson.dumps(step.user_turns).decode()))

    def steps(self, key: str, *, with_logprobs: bool = True) -> list[Step]:
        """The episode's steps; without logprobs (a judge reads none) ~10x less to decode."""
        rows = self.ws.conn.execute(
            f"SELECT step, call, {'logprobs' if with_logprobs else 'NULL'}, results, user_turns FROM episode_steps "
            "WHERE episode = ? ORDER BY step", (key,))
        return [Step(r[0], _call(r[1], r[2]), [ToolResult.from_json(x) for x in orjson.loads(r[3])],
                     orjson.loads(r[4]) if r[4] else []) for r in rows]

    def unfinished(self, task_id: str, tier: int, generations: Sequence[str], trial: int = 0) -> str | None:
        """The latest episode of this task and generation that has steps but no finished row, or whose
        row is an error (a failed model call or a stopped environment): the next run goes on from it."""
        if not generations:
            return None
        marks = ",".join("?" * len(generations))
        row = self.ws.conn.execute(
            f"SELECT s.episode FROM episode_steps s WHERE s.task_id = ? AND s.tier = ? AND s.generation IN ({marks}) "
            "AND s.trial = ? AND s.episode NOT LIKE 'forced:%' "
            "AND NOT EXISTS (SELECT 1 FROM trajectories t WHERE t.episode = s.episode AND t.status = 'ok') "
            "GROUP BY s.episode ORDER BY max(s.created_at) DESC LIMIT 1", (task_id, tier, *generations, trial)).fetchone()
        return row[0] if row else None

    def finish(self, run_id: int | None, episode: Episode, category: str, *, replace: bool = False) -> int:
        """Store the finished episode's row and name its episode, in one transaction. `replace`: an
        imported episode read again replaces its stored row (same id) and drops steps it no longer has."""
        conn = self.ws.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if replace:  # `save` replaces only a row that is not "ok"
                conn.execute("UPDATE trajectories SET status = 'replacing' WHERE run_id IS ? AND task_id = ? "
                             "AND trial = ?", (run_id, episode.task_id, episode.trial))
                conn.execute("DELETE FROM episode_steps WHERE episode = ? AND step >= ?",
                             (episode.key, len(episode.steps)))
            traj_id = TrajectoryRepository(self.ws).save(run_id, episode.summary(), category, episode.trial)
            info = episode.info_json()
            conn.execute("UPDATE trajectories SET episode = ?, steps = ?, end_reason = ?, check_passed = ?, "
                         "check_detail = ?, episode_info = ?, unknown = ? WHERE run_id IS ? AND task_id = ? "
                         "AND trial = ?",
                         (episode.key, len(episode.steps), episode.end_reason,
                          None if episode.check_passed is None else int(episode.check_passed), episode.check_detail,
                          orjson.dumps(info).decode() if info else None, ",".join(episode.unknown) or None,
                          run_id, episode.task_id, episode.trial))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return traj_id

    def of_trajectory(self, traj_id: int, *, with_logprobs: bool = True) -> Episode | None:
        row = self.ws.conn.execute(
            "SELECT episode, task_id, tier, model, generation, end_reason, error, latency_ms, check_passed, check_detail, "
            "trial, episode_info FROM trajectories WHERE id = ?", (traj_id,)).fetchone()
        if row is None or not row[0]:
            return None
        env = self.ws.conn.execute("SELECT environment FROM episode_steps WHERE episode = ? LIMIT 1",
                                   (row[0],)).fetchone()
        episode = Episode(task_id=row[1], tier=row[2], model=row[3], generation=row[4], key=row[0],
                          steps=self.steps(row[0], with_logprobs=with_logprobs), end_reason=row[5], error=row[6], wall_ms=row[7] or 0.0,
                          environment=env[0] if env else "", check_passed=None if row[8] is None else bool(row[8]),
                          check_detail=row[9], trial=row[10])
        episode.apply_info(orjson.loads(row[11]) if row[11] else None)
        return episode

    def trial_ids(self, tier: int, generations: Sequence[str], task_ids: Sequence[str] | None = None
                  ) -> dict[str, dict[int, int]]:
        """{task id: {trial: id of its latest ok episode row}} of `tier` in `generations`."""
        if not generations:
            return {}
        marks = ",".join("?" * len(generations))
        out: dict[str, dict[int, int]] = {}
        wanted = None if task_ids is None else set(task_ids)
        for task_id, trial, traj_id in self.ws.conn.execute(
                f"SELECT task_id, trial, max(id) FROM trajectories WHERE tier = ? AND status = 'ok' "
                f"AND episode IS NOT NULL AND generation IN ({marks}) GROUP BY task_id, trial",
                (tier, *generations)):
            if wanted is None or task_id in wanted:
                out.setdefault(task_id, {})[trial] = traj_id
        return out

    def episode_info(self, ids: Sequence[int]) -> dict[int, tuple[int, str | None]]:
        """Trajectory id -> (steps, end_reason) for rows that are episodes."""
        out: dict[int, tuple[int, str | None]] = {}
        for start in range(0, len(ids), 900):
            chunk = list(ids[start:start + 900])
            marks = ",".join("?" * len(chunk))
            for tid, steps, reason in self.ws.conn.execute(
                    f"SELECT id, steps, end_reason FROM trajectories WHERE episode IS NOT NULL AND id IN ({marks})",
                    chunk):
                out[tid] = (steps, reason)
        return out
