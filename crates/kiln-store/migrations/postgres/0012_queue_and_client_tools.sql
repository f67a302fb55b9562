-- The per-session queue (POST /agents/:id/messages on a busy session). A
-- queued turn leaves this table in the transaction that claims its session
-- for it, so it runs once whichever server drains it; its id becomes the
-- turn's id. It acts as the key that queued it.
CREATE TABLE agent_queued_turns (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    session_id  TEXT NOT NULL REFERENCES agent_sessions(id) ON DELETE CASCADE,
    key_id      TEXT NOT NULL,
    message     TEXT NOT NULL,
    position    BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX agent_queued_turns_session ON agent_queued_turns (session_id, position);

-- Tools the client runs: declared on create, called by the model, answered
-- through POST /agents/:id/tool-results.
ALTER TABLE agent_sessions ADD COLUMN client_tools JSONB NOT NULL DEFAULT '[]';
CREATE TABLE agent_tool_calls (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    session_id  TEXT NOT NULL REFERENCES agent_sessions(id) ON DELETE CASCADE,
    turn_id     TEXT NOT NULL,
    tool        TEXT NOT NULL,
    args        JSONB NOT NULL,
    -- NULL until answered; then one of result and error is set.
    result      JSONB,
    error       TEXT,
    resolved_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX agent_tool_calls_session ON agent_tool_calls (session_id);
