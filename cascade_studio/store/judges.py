"""Judges, their stored verdicts, and people's ratings of trajectories (issue 30)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from cascade_studio.core.judges import Judge, judge_from_spec, judge_to_spec, validate_judge
from cascade_studio.store.trajectories import now
from cascade_studio.store.workspace import Workspace


class JudgeRepository:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def list(self) -> list[Judge]:
        rows = self.ws.conn.execute("SELECT spec FROM judges ORDER BY name").fetchall()
        return [judge_from_spec(json.loads(r[0])) for r in rows]

    def get(self, name: str) -> Judge | None:
        row = self.ws.conn.execute("SELECT spec FROM judges WHERE name = ?", (name,)).fetchone()
        return judge_from_spec(json.loads(row[0])) if row else None

    def save(self, judge: Judge) -> None:
        issues = validate_judge(judge)
        if issues:
            raise ValueError("; ".join(issues))
        self.ws.conn.execute(
            "INSERT INTO judges (name, spec, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
            "spec = excluded.spec, updated_at = excluded.updated_at",
            (judge.name, json.dumps(judge_to_spec(judge), sort_keys=True), now()))

    def remove(self, name: str) -> bool:
        """Forget a judge (its stored verdicts stay: they are keyed by generation, and a judge added
        again with the same model and template finds them)."""
        return self.ws.conn.execute("DELETE FROM judges WHERE name = ?", (name,)).rowcount > 0


@dataclass(frozen=True)
class StoredVerdict:
    verdict: str
    reason: str
    cost_micro: int | None
    prompt_tokens: int | None
    completion_tokens: int | None


class VerdictRepository:
    """Verdicts keyed by (judge generation, template version, inputs' hash): a judgement already
    stored is read, never asked (and paid for) again."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def get_many(self, generation: str, version: str, hashes: Iterable[str]) -> dict[str, StoredVerdict]:
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, StoredVerdict] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows = self.ws.conn.execute(
                "SELECT inputs_hash, verdict, reason, cost_micro, prompt_tokens, completion_tokens FROM judge_verdicts "
                f"WHERE judge_generation = ? AND template_version = ? AND inputs_hash IN ({','.join('?' * len(chunk))})",
                (generation, version, *chunk))
            out.update({r[0]: StoredVerdict(*r[1:]) for r in rows})
        return out

    def put(self, generation: str, version: str, inputs_hash: str, judge_name: str, kind: str,
            verdict: StoredVerdict) -> None:
        self.ws.conn.execute(
            "INSERT OR REPLACE INTO judge_verdicts (judge_generation, template_version, inputs_hash, judge_name, kind, "
            "verdict, reason, prompt_tokens, completion_tokens, cost_micro, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (generation, version, inputs_hash, judge_name, kind, verdict.verdict, verdict.reason,
             verdict.prompt_tokens, verdict.completion_tokens, verdict.cost_micro, now()))

    def count(self, generation: str | None = None) -> int:
        if generation is None:
            return self.ws.conn.execute("SELECT count(*) FROM judge_verdicts").fetchone()[0]
        return self.ws.conn.execute("SELECT count(*) FROM judge_verdicts WHERE judge_generation = ?",
                                    (generation,)).fetchone()[0]


class RatingRepository:
    """People's labels on stored trajectories: a rating (good, bad, or a score), and the curation
    (accepted / rejected) the trajectories table keeps."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def existing_ids(self, ids: list[int]) -> set[int]:
        out: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            out.update(r[0] for r in self.ws.conn.execute(
                f"SELECT id FROM trajectories WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return out

    def rate(self, ids: list[int], rating: str | None) -> None:
        """Set (or, with None, clear) the rating of each trajectory."""
        if rating is None:
            self.ws.conn.executemany("DELETE FROM trajectory_ratings WHERE trajectory_id = ?", [(i,) for i in ids])
            return
        stamp = now()
        self.ws.conn.executemany(
            "INSERT INTO trajectory_ratings (trajectory_id, rating, rated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(trajectory_id) DO UPDATE SET rating = excluded.rating, rated_at = excluded.rated_at",
            [(i, rating, stamp) for i in ids])

    def ratings_of(self, ids: list[int]) -> dict[int, str | None]:
        """Each trajectory's rating (None: none), for undo."""
        out: dict[int, str | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            out.update(self.ws.conn.execute(
                f"SELECT trajectory_id, rating FROM trajectory_ratings WHERE trajectory_id IN ({','.join('?' * len(chunk))})",
                chunk))
        return out

    def restore(self, previous: dict[int, str | None]) -> None:
        for rating in set(previous.values()):
            self.rate([i for i, r in previous.items() if r == rating], rating)

    def labels(self) -> list[tuple[int, str, int, str, str | None, str | None]]:
        """(trajectory id, task id, tier, generation, rating, curation) of every trajectory a person
        rated or curated, oldest first."""
        return self.ws.conn.execute(
            "SELECT t.id, t.task_id, t.tier, t.generation, r.rating, t.curation FROM trajectories t "
            "LEFT JOIN trajectory_ratings r ON r.trajectory_id = t.id "
            "WHERE r.rating IS NOT NULL OR t.curation IS NOT NULL ORDER BY t.id").fetchall()

    def unlabelled(self, tier: int | None = None, category: str | None = None) -> list[int]:
        """Ids of the ok trajectories no person rated or curated (candidates to label)."""
        clauses, args = ["t.status = 'ok'", "t.curation IS NULL", "r.rating IS NULL",
                         "t.episode NOT LIKE 'forced:%' OR t.episode IS NULL"], []
        if tier is not None:
            clauses.append("t.tier = ?")
            args.append(tier)
        if category:
            clauses.append("t.category = ?")
            args.append(category)
        return [r[0] for r in self.ws.conn.execute(
            "SELECT t.id FROM trajectories t LEFT JOIN trajectory_ratings r ON r.trajectory_id = t.id WHERE "
            + " AND ".join(f"({c})" for c in clauses) + " ORDER BY t.id", args)]

    def rating_of(self, trajectory_id: int) -> str | None:
        row = self.ws.conn.execute("SELECT rating FROM trajectory_ratings WHERE trajectory_id = ?",
                                   (trajectory_id,)).fetchone()
        return row[0] if row else None
