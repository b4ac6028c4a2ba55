"""Forward-only schema migrations. Never edit a released step; append a new one."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from cascade_studio.store.payloads import move_payloads

# A step is an SQL script, or a function of the connection for what SQL alone cannot do (it runs
# inside the step's transaction like a script).
Step = str | Callable[[sqlite3.Connection], object]



def add_tier_demonstrations(conn: sqlite3.Connection) -> None:
    """tiers.demonstrations (issue 31), added only where it is missing."""
    if "demonstrations" not in {r[1] for r in conn.execute("PRAGMA table_info(tiers)")}:
        conn.execute("ALTER TABLE tiers ADD COLUMN demonstrations TEXT")

MIGRATIONS: list[Step] = [
    # 1: workspace metadata and tiers
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE tiers (
        tier              INTEGER PRIMARY KEY CHECK (tier BETWEEN 1 AND 3),
        name              TEXT NOT NULL DEFAULT '',
        provider          TEXT NOT NULL,
        base_url          TEXT NOT NULL,
        model             TEXT NOT NULL,
        input_price       TEXT NOT NULL,   -- Decimal as text, USD per 1M tokens
        output_price      TEXT NOT NULL,
        cached_price      TEXT,
        timeout_s         REAL NOT NULL,
        max_concurrency   INTEGER NOT NULL,
        rpm_limit         INTEGER,
        tpm_limit         INTEGER,
        temperature       REAL NOT NULL,
        system_prompt     TEXT NOT NULL DEFAULT '',
        confidence_method TEXT NOT NULL,
        threshold         REAL NOT NULL,
        api_key_env       TEXT NOT NULL DEFAULT '',
        updated_at        TEXT NOT NULL
    );
    """,
    # 2: tasks
    """
    CREATE TABLE tasks (
        id           TEXT PRIMARY KEY,
        category     TEXT NOT NULL,
        messages     TEXT NOT NULL,   -- JSON list of chat messages
        tools        TEXT NOT NULL,   -- JSON list of OpenAI tool definitions
        expected     TEXT,            -- JSON, or NULL
        prompt       TEXT NOT NULL,   -- last user message, for search and display
        tool_names   TEXT NOT NULL,   -- comma-separated, for filtering
        source       TEXT NOT NULL DEFAULT '',
        content_hash TEXT NOT NULL,
        imported_at  TEXT NOT NULL
    );
    CREATE INDEX tasks_category ON tasks(category);
    """,
    # 3: collection runs and trajectories
    """
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        tier        INTEGER NOT NULL,
        model       TEXT NOT NULL,
        status      TEXT NOT NULL,   -- running, paused, cancelled, done, failed
        task_ids    TEXT NOT NULL,   -- JSON list: the run's fixed task set
        params      TEXT NOT NULL,   -- JSON: category, limit, concurrency, batch
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        message     TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE trajectories (
        id                 INTEGER PRIMARY KEY,
        run_id             INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        task_id            TEXT NOT NULL,
        tier               INTEGER NOT NULL,
        model              TEXT NOT NULL,
        status             TEXT NOT NULL,       -- ok, error
        category           TEXT NOT NULL DEFAULT '',
        tool_name          TEXT,
        content            TEXT,
        final_answer       TEXT,
        tool_calls         TEXT NOT NULL DEFAULT '[]',
        request            TEXT NOT NULL DEFAULT '{}',
        response           TEXT,
        logprobs           TEXT,
        prompt_tokens      INTEGER NOT NULL DEFAULT 0,
        completion_tokens  INTEGER NOT NULL DEFAULT 0,
        cached_tokens      INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
        latency_ms         REAL NOT NULL DEFAULT 0,
        cost_micro         INTEGER NOT NULL DEFAULT 0,
        conf_mean          REAL,
        conf_min           REAL,
        conf_tool          REAL,
        system_fingerprint TEXT,
        error              TEXT,
        attempts           INTEGER NOT NULL DEFAULT 1,
        curation           TEXT,                -- accepted, rejected, or NULL
        tags               TEXT NOT NULL DEFAULT '',
        started_at         TEXT NOT NULL DEFAULT '',
        finished_at        TEXT NOT NULL DEFAULT ''
    );
    CREATE UNIQUE INDEX trajectories_run_task ON trajectories(run_id, task_id);
    CREATE INDEX trajectories_tier_task ON trajectories(tier, task_id);
    CREATE INDEX trajectories_category ON trajectories(category);
    CREATE INDEX trajectories_conf ON trajectories(conf_mean);
    CREATE INDEX trajectories_cost ON trajectories(cost_micro);
    """,
    # 4: indexes for the inspector's filter choices (distinct values by index skip-scan)
    """
    CREATE INDEX trajectories_status ON trajectories(status);
    CREATE INDEX trajectories_tool ON trajectories(tool_name);
    """,
    # 5: evaluation history (aggregates; per-task results are recomputed from trajectories)
    """
    CREATE TABLE evaluations (
        id            INTEGER PRIMARY KEY,
        created_at    TEXT NOT NULL,
        teacher_tier  INTEGER NOT NULL,
        teacher_model TEXT NOT NULL,
        student_tier  INTEGER NOT NULL,
        student_model TEXT NOT NULL,
        category      TEXT,
        tasks         INTEGER NOT NULL,
        agreement     REAL,
        metrics       TEXT NOT NULL      -- JSON: overall and per-category figures
    );
    CREATE INDEX evaluations_student ON evaluations(student_tier, created_at);
    """,
    # 6: what-if scenarios
    """
    CREATE TABLE scenarios (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        params     TEXT NOT NULL,   -- JSON: mode, thresholds, WhatIf fields
        results    TEXT NOT NULL    -- JSON: the figures at save time
    );
    """,
    # 7: fine-tuning datasets, traceable to the trajectories they were built from
    """
    CREATE TABLE datasets (
        id                  INTEGER PRIMARY KEY,
        created_at          TEXT NOT NULL,
        path                TEXT NOT NULL,
        validation_path     TEXT,
        format              TEXT NOT NULL,
        filters             TEXT NOT NULL,   -- JSON: tier, accepted_only, category, min_confidence, tool, strategy
        examples            INTEGER NOT NULL,
        validation_examples INTEGER NOT NULL,
        trajectory_ids      TEXT NOT NULL    -- JSON list
    );
    """,
    # 8: fine-tune jobs and their events (tracked across restarts)
    """
    CREATE TABLE finetune_jobs (
        id               TEXT PRIMARY KEY,      -- the backend's job id
        backend          TEXT NOT NULL,         -- openai (any endpoint with OpenAI's fine-tuning API)
        base_url         TEXT NOT NULL,
        tier_endpoint    INTEGER,               -- the tier whose endpoint and key were used
        base_model       TEXT NOT NULL,
        dataset_id       INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
        training_file    TEXT NOT NULL,
        status           TEXT NOT NULL,
        fine_tuned_model TEXT,
        trained_tokens   INTEGER,
        error            TEXT,                  -- JSON {code, message, param}
        hyperparameters  TEXT NOT NULL DEFAULT '{}',
        estimated_finish INTEGER,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL,
        finished_at      TEXT
    );
    CREATE TABLE finetune_events (
        job_id     TEXT NOT NULL REFERENCES finetune_jobs(id) ON DELETE CASCADE,
        event_id   TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        level      TEXT NOT NULL,
        type       TEXT NOT NULL,
        message    TEXT NOT NULL,
        data       TEXT,
        PRIMARY KEY (job_id, event_id)
    );
    """,
    # 9: the validation split's task ids (evaluations default to it)
    """
    ALTER TABLE datasets ADD COLUMN validation_task_ids TEXT NOT NULL DEFAULT '[]';
    """,
    # 10: a tier may send its key over plain http to another machine only when the user said so
    """
    ALTER TABLE tiers ADD COLUMN allow_insecure INTEGER NOT NULL DEFAULT 0;
    """,
    # 11: logprobs per tier (auto/on/off, how many alternatives, learned support), what a tier
    # without them does, and local servers that need no key
    """
    ALTER TABLE tiers ADD COLUMN logprobs TEXT NOT NULL DEFAULT 'auto';
    ALTER TABLE tiers ADD COLUMN top_logprobs INTEGER NOT NULL DEFAULT 5;
    ALTER TABLE tiers ADD COLUMN logprobs_unsupported INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tiers ADD COLUMN without_logprobs TEXT NOT NULL DEFAULT 'escalate';
    ALTER TABLE tiers ADD COLUMN no_key INTEGER NOT NULL DEFAULT 0;
    """,
    # 12: generations: every trajectory and run names the tier settings that produced it
    # (core.tiers.generation_id); rows from before carry "legacy:MODEL" (the run's model)
    """
    ALTER TABLE trajectories ADD COLUMN generation TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN generation TEXT NOT NULL DEFAULT '';
    UPDATE runs SET generation = 'legacy:' || model;
    UPDATE trajectories SET generation = 'legacy:' || coalesce(
        (SELECT model FROM runs WHERE runs.id = trajectories.run_id), trajectories.model);
    CREATE INDEX trajectories_tier_generation ON trajectories(tier, generation, task_id);
    CREATE TABLE generations (
        id         TEXT PRIMARY KEY,
        tier       INTEGER NOT NULL,
        params     TEXT NOT NULL,   -- JSON: model, endpoint, system_prompt, temperature
        first_seen TEXT NOT NULL
    );
    """,
    # 13: the first decision token's alternatives of each trajectory (core.agreement.decision_top:
    # all the decision KL reads of its ~35 KB of logprobs), beside the trajectory; rows stored before
    # this step are derived on first use, in batches (TrajectoryRepository.decision_tops)
    """
    CREATE TABLE trajectory_decisions (
        id  INTEGER PRIMARY KEY REFERENCES trajectories(id) ON DELETE CASCADE,
        top TEXT   -- JSON list of {token, logprob}; NULL: no decision token with alternatives
    );
    """,
    # 14: agent episodes: tasks name an environment (MCP server or Python module) and a step limit;
    # an episode's steps are stored as they complete (so a killed run resumes it without paying a
    # finished step again); the finished episode is one trajectory row that names its episode
    """
    ALTER TABLE tasks ADD COLUMN environment TEXT NOT NULL DEFAULT '';
    ALTER TABLE tasks ADD COLUMN max_steps INTEGER;
    ALTER TABLE trajectories ADD COLUMN episode TEXT;
    ALTER TABLE trajectories ADD COLUMN steps INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE trajectories ADD COLUMN end_reason TEXT;
    ALTER TABLE trajectories ADD COLUMN check_passed INTEGER;  -- the task's state check after the episode
    ALTER TABLE trajectories ADD COLUMN check_detail TEXT;
    CREATE TABLE episode_steps (
        episode    TEXT NOT NULL,      -- the episode's key (a uuid)
        step       INTEGER NOT NULL,   -- 0, 1, ...
        task_id    TEXT NOT NULL,
        tier       INTEGER NOT NULL,
        generation TEXT NOT NULL,
        run_id     INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        environment TEXT NOT NULL DEFAULT '',
        call       TEXT NOT NULL,      -- JSON: the model call (core.trajectory.Trajectory, without logprobs)
        logprobs   TEXT,               -- JSON list, or NULL
        results    TEXT NOT NULL DEFAULT '[]',  -- JSON list of core.episode.ToolResult
        created_at TEXT NOT NULL,
        PRIMARY KEY (episode, step)
    );
    CREATE INDEX episode_steps_task ON episode_steps(tier, generation, task_id);
    CREATE INDEX trajectories_episode ON trajectories(episode);
    CREATE TABLE environments (
        name       TEXT PRIMARY KEY,
        kind       TEXT NOT NULL,      -- stdio, http, python
        spec       TEXT NOT NULL,      -- JSON: command/args/cwd/env names, or url/header names, or module
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 15: production traffic brought home from the gateway's logs (`traffic import`): one row per
    # request, with the tiers it tried and, when a shadow sample was taken, whether the teacher agreed
    """
    CREATE TABLE production_requests (
        id                 TEXT PRIMARY KEY,    -- the gateway's request id
        time               TEXT NOT NULL,       -- UTC, ISO 8601
        category           TEXT NOT NULL,
        task_id            TEXT,                -- NULL: the log kept no content (--log-content none/hash)
        answered_by        INTEGER,             -- NULL: every tier failed
        escalated          INTEGER NOT NULL,
        tiers_tried        INTEGER NOT NULL,
        latency_ms         REAL NOT NULL,
        cost_micro         INTEGER NOT NULL,
        teacher_only_micro INTEGER,
        attempts           TEXT NOT NULL,       -- JSON: the log's attempts (tier, status, confidence, ...)
        shadow_agree       INTEGER,             -- 1/0: the teacher's shadow answer agreed; NULL: no sample
        source             TEXT NOT NULL        -- the log file it came from
    );
    CREATE INDEX production_requests_time ON production_requests(time);
    CREATE INDEX production_requests_task ON production_requests(task_id);
    """,
    # 16: (issue 13): which generation of teacher and student each evaluation
    # measured (core.tiers.generation_id); older rows count as their models' legacy generations
    """
    ALTER TABLE evaluations ADD COLUMN teacher_generation TEXT;
    ALTER TABLE evaluations ADD COLUMN student_generation TEXT;
    UPDATE evaluations SET teacher_generation = 'legacy:' || teacher_model,
                           student_generation = 'legacy:' || student_model;
    CREATE INDEX evaluations_student_generation ON evaluations(student_tier, student_generation);
    """,
    # 17: (issue 22) storage shaped for the queries: request, response and logprobs (~37 KB of JSON a
    # trajectory with logprobs, stored in the middle of the row) move to `trajectory_payloads`,
    # zlib-compressed (store.payloads), in batches; `trajectories` keeps the narrow columns only
    move_payloads,
    # 18: each trajectory's verdict against its task's expected calls (BFCL rules), computed once by
    # the first trade-off load that needs it and kept (NULL: not computed yet); a task whose content
    # changes clears its trajectories' verdicts (store.tasks.TaskRepository.upsert); an index that
    # answers "the latest ok trajectory of each task" (evaluation, trade-offs, datasets) from itself
    """
    ALTER TABLE trajectories ADD COLUMN correct INTEGER;
    CREATE INDEX trajectories_latest ON trajectories(tier, status, generation, task_id);
    """,
    # 19: (issue 22) the inspector at a million rows: every column its filters and sorts read, in one
    # covering index (store.trajectory_query): a filter or sort scans ~140 bytes a row, not the table's
    # ~570, and never fetches rows at random through a single-column index; ~5 s at a million rows.
    # "The latest ok trajectory per task" carries the numbers trade-offs read (latest_ok_arrays)
    """
    DROP INDEX trajectories_latest;
    CREATE INDEX trajectories_latest ON trajectories(tier, status, generation, task_id, cost_micro, latency_ms,
        prompt_tokens, completion_tokens, conf_mean, conf_min, conf_tool, correct);
    CREATE INDEX trajectories_inspect ON trajectories(tier, generation, category, status, tool_name, curation,
        conf_mean, conf_min, conf_tool, cost_micro, latency_ms, prompt_tokens, completion_tokens, steps,
        end_reason, episode, task_id, model, tags);
    """,
    # (issue 30) judges: workspace entries (endpoint, model, prices, template), their verdicts keyed by
    # (judge generation, template version, inputs' hash) so none is paid twice, and people's ratings of
    # stored trajectories (good / bad / a score) that judges are calibrated against (JUDGES_STEP)
    """
    CREATE TABLE IF NOT EXISTS judges (
        name            TEXT PRIMARY KEY,
        spec            TEXT NOT NULL,   -- JSON: core.judges.Judge (never a key)
        updated_at      TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS judge_verdicts (
        judge_generation  TEXT NOT NULL,
        template_version  TEXT NOT NULL,
        inputs_hash       TEXT NOT NULL,
        judge_name        TEXT NOT NULL,
        kind              TEXT NOT NULL,
        verdict           TEXT NOT NULL,   -- a value of the kind, or 'unparseable'
        reason            TEXT NOT NULL DEFAULT '',
        prompt_tokens     INTEGER,
        completion_tokens INTEGER,
        cost_micro        INTEGER,         -- NULL: unknown (no usage reported)
        created_at        TEXT NOT NULL,
        PRIMARY KEY (judge_generation, template_version, inputs_hash)
    );
    CREATE TABLE IF NOT EXISTS trajectory_ratings (
        trajectory_id   INTEGER PRIMARY KEY REFERENCES trajectories(id) ON DELETE CASCADE,
        rating          TEXT NOT NULL,   -- good, bad, or a score on a judge's scale
        rated_at        TEXT NOT NULL
    );
    """,
    # (issue 31) prompt distillation: a student tier's generation may carry demonstrations from the
    # teacher's trajectories (core.demonstrations: a JSON document; NULL: none)
    add_tier_demonstrations,
    # tiers moved to a new origin by an import: their key variables wait for the user's confirmation
    KEY_ORIGIN_PENDING_STEP := "ALTER TABLE tiers ADD COLUMN key_origin_pending INTEGER NOT NULL DEFAULT 0;",
    # (issue 29) agents as they run in the wild: several episodes of one task and generation in a run,
    # told apart by `trial`; an episode row keeps its own prompt, its recorded outcome, what the record
    # did not say (unknown usage, cost, latency) and a simulated user's usage (JSON, `episode_info`);
    # each stored step keeps the user turns that answered it; a task may name its user (scripted turns or a
    # user simulator, core.user_sim)
    TRIALS_STEP := """
    ALTER TABLE tasks ADD COLUMN user_spec TEXT;
    ALTER TABLE trajectories ADD COLUMN trial INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE trajectories ADD COLUMN episode_info TEXT;
    ALTER TABLE trajectories ADD COLUMN unknown TEXT;  -- of usage,cost,latency: what the record did not give
    ALTER TABLE episode_steps ADD COLUMN trial INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE episode_steps ADD COLUMN user_turns TEXT NOT NULL DEFAULT '[]';
    DROP INDEX trajectories_run_task;
    CREATE UNIQUE INDEX trajectories_run_task ON trajectories(run_id, task_id, trial);
    """,
    # (issue 27) the tier history: every change of the tier set keeps the set before and after it
    # (store.tiers.TierRepository.replace_all), so a switch, a threshold or a removal can be undone
    # (`tiers undo`, Edit > Undo); an undo is a change too (it names the change it undid)
    TIER_HISTORY := """
    CREATE TABLE IF NOT EXISTS tier_history (
        id         INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        before     TEXT NOT NULL,  -- JSON list of Tier.to_json
        after      TEXT NOT NULL,
        undoes     INTEGER,        -- the change this one undid
        undone_by  INTEGER         -- the undo that undid this change
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
# steps that only add a nullable column (no row is rewritten; a step killed half-way leaves the
# schema as it was): named by their function, so reordering steps at a merge keeps them right
COLUMN_ONLY_STEPS = frozenset({add_tier_demonstrations})
# steps that only add an index, a column with a constant default or an empty table: nothing in the
# data changes, and a step killed half-way leaves the previous schema as it was, so upgrading through
# them alone needs no backup (a copy of a 10 GB file). Named by content, so reordering keeps them right.
INDEX_ONLY_STEPS = frozenset({19, *(MIGRATIONS.index(step) + 1
                                    for step in (KEY_ORIGIN_PENDING_STEP, TRIALS_STEP, TIER_HISTORY))})
# steps that only create new tables: no existing row changes either (found by content, not number,
# so that appending steps on other branches cannot make this point at the wrong one)
ADDITIVE_STEPS = frozenset(i + 1 for i, step in enumerate(MIGRATIONS)
                           if isinstance(step, str) and "CREATE TABLE IF NOT EXISTS judges (" in step)


def needs_backup(version: int) -> bool:
    """Whether upgrading from `version` runs a step that changes data (worth a copy first)."""
    return any(step not in INDEX_ONLY_STEPS | ADDITIVE_STEPS and MIGRATIONS[step - 1] not in COLUMN_ONLY_STEPS
               for step in range(version + 1, SCHEMA_VERSION + 1))


def current_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int | None = None) -> list[int]:
    """Apply pending steps (up to `target`, default all), each in its own transaction: a step
    killed half-way leaves the workspace at the step before. Returns the versions applied."""
    applied: list[int] = []
    version = current_version(conn)
    for index in range(version, SCHEMA_VERSION if target is None else min(target, SCHEMA_VERSION)):
        step = index + 1
        conn.execute("BEGIN IMMEDIATE")
        try:
            script = MIGRATIONS[index]
            if callable(script):
                script(conn)
            else:
                for statement in _split(script):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step}")
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        applied.append(step)
    return applied


PAYLOADS_STEP = MIGRATIONS.index(move_payloads) + 1


def compact_after(conn: sqlite3.Connection, applied: list[int]) -> bool:
    """After the payloads step moved the wide columns (their pages are free now, but the file keeps
    them): give the space back with a VACUUM when over half the file is free. Best effort (it needs
    free disk space the size of what remains): the workspace is sound either way. Whether it ran."""
    if PAYLOADS_STEP not in applied:
        return False
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if free * 2 < conn.execute("PRAGMA page_count").fetchone()[0]:
        return False
    try:
        conn.execute("VACUUM")
    except sqlite3.Error:
        return False
    return True


def _split(script: str) -> list[str]:
    parts: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                parts.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        parts.append(buffer.strip())
    return parts
