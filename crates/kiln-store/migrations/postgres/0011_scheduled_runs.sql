-- Scheduled runs (CONTRACT §2.11): a message sent into a session on a cron
-- schedule. Every server's scheduler claims a due firing by moving
-- next_run_at on with a compare-and-set, so each fires once.
CREATE TABLE scheduled_runs (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    agent_session_id TEXT NOT NULL,
    name             TEXT NOT NULL,
    cron_expression  TEXT NOT NULL,
    message          TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    last_run_at      TIMESTAMPTZ,
    next_run_at      TIMESTAMPTZ,
    run_count        BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX scheduled_runs_project ON scheduled_runs (project_id, created_at, id);
CREATE INDEX scheduled_runs_due ON scheduled_runs (enabled, next_run_at);
