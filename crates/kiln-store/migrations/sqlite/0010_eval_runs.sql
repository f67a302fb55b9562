-- Eval runs of agents' suites and each case's result. Cases and suites are
-- derived from the agents' drafts and versions (no tables of their own).
CREATE TABLE eval_runs (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL,
    agent_id       TEXT NOT NULL,
    suite_id       TEXT NOT NULL,
    suite_version  TEXT,
    target         TEXT NOT NULL,
    status         TEXT NOT NULL,
    total_cases    INTEGER NOT NULL,
    passed         INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    average_score  REAL NOT NULL DEFAULT 0,
    threshold      REAL NOT NULL,
    judge_model    TEXT NOT NULL,
    error          TEXT NOT NULL DEFAULT '',
    -- The server running it renews this; past it, the run was abandoned.
    lease_until    TEXT,
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    finished_at    TEXT
);
CREATE INDEX eval_runs_project ON eval_runs (project_id, created_at, id);
CREATE INDEX eval_runs_agent ON eval_runs (project_id, agent_id, created_at);
CREATE INDEX eval_runs_open ON eval_runs (status, lease_until);

CREATE TABLE eval_results (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL,
    run_id       TEXT NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    case_id      TEXT NOT NULL,
    case_name    TEXT NOT NULL,
    set_name     TEXT NOT NULL,
    score        INTEGER NOT NULL,
    pass         BOOLEAN NOT NULL,
    reasoning    TEXT NOT NULL,
    response     TEXT NOT NULL,
    tool_calls   TEXT NOT NULL,
    duration_ms  INTEGER NOT NULL,
    error        TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX eval_results_run ON eval_results (run_id, created_at, id);
