-- Agent sessions, their durable event logs (the steps are the events with
-- a step_index), and the input requests their turns wait on.

CREATE TABLE agent_sessions (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects(id),
    title             TEXT NOT NULL,
    system_prompt     TEXT NOT NULL,
    model             TEXT NOT NULL,
    tools             TEXT NOT NULL,
    metadata          TEXT NOT NULL,
    status            TEXT NOT NULL,
    -- NULL: every index of the project; []: none.
    index_ids         TEXT,
    data              TEXT NOT NULL,
    -- The turn holding the session, and until when its claim lasts.
    turn_id           TEXT,
    lease_until       TEXT,
    last_seq          BIGINT NOT NULL DEFAULT 0,
    step_count        BIGINT NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    duration_ms       BIGINT NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX agent_sessions_project_created ON agent_sessions (project_id, created_at DESC, id DESC);
CREATE INDEX agent_sessions_lease ON agent_sessions (lease_until) WHERE turn_id IS NOT NULL;

CREATE TABLE agent_events (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects(id),
    session_id        TEXT NOT NULL REFERENCES agent_sessions(id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    turn_id           TEXT NOT NULL,
    -- Set for steps; their content, tool_name and tool_args too.
    step_index        BIGINT,
    step_type         TEXT NOT NULL,
    -- The EventBody's JSON, as serde_json wrote it.
    body              TEXT NOT NULL,
    content           TEXT,
    tool_name         TEXT,
    tool_args         TEXT,
    duration_ms       BIGINT NOT NULL,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    UNIQUE (session_id, seq)
);
CREATE INDEX agent_events_steps ON agent_events (session_id, step_index) WHERE step_index IS NOT NULL;

CREATE TABLE agent_input_requests (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    session_id  TEXT NOT NULL REFERENCES agent_sessions(id) ON DELETE CASCADE,
    turn_id     TEXT NOT NULL,
    input_type  TEXT NOT NULL,
    message     TEXT NOT NULL,
    options     TEXT NOT NULL,
    placeholder TEXT NOT NULL,
    -- NULL until answered.
    value       TEXT,
    answered_at TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX agent_input_requests_session ON agent_input_requests (session_id);
