-- Conversations, their messages, and one row per LLM call (token usage).

CREATE TABLE conversations (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects(id),
    title             TEXT NOT NULL,
    system_prompt     TEXT NOT NULL,
    model             TEXT NOT NULL,
    metadata          TEXT NOT NULL,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    llm_calls         BIGINT NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX conversations_project_created ON conversations (project_id, created_at DESC, id DESC);

CREATE TABLE conversation_messages (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX conversation_messages_conversation ON conversation_messages (conversation_id, created_at, id);

CREATE TABLE llm_calls (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects(id),
    source            TEXT NOT NULL,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    created_at        TEXT NOT NULL
);
CREATE INDEX llm_calls_project ON llm_calls (project_id, created_at);
