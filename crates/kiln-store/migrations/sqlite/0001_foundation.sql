-- Projects, API keys, secret vaults, prompt templates and the audit log.
-- Timestamps are RFC 3339 text in UTC; JSON is text.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    slug        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    vault_id    TEXT REFERENCES secret_vaults(id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_keys_project ON api_keys (project_id, created_at);

CREATE TABLE secret_vaults (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name       TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE secrets (
    project_id  TEXT NOT NULL REFERENCES projects(id),
    vault_id    TEXT NOT NULL REFERENCES secret_vaults(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    ciphertext  BLOB NOT NULL,
    wrapped_key BLOB NOT NULL,
    kek_id      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (vault_id, name)
);

CREATE TABLE prompt_templates (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name       TEXT NOT NULL,
    content    TEXT NOT NULL,
    variables  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE audit_log (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects(id),
    actor_user_id    TEXT,
    actor_api_key_id TEXT,
    action           TEXT NOT NULL,
    subject_type     TEXT NOT NULL,
    subject_id       TEXT NOT NULL,
    agent_version_id TEXT,
    session_id       TEXT,
    metadata         TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX audit_log_project_created ON audit_log (project_id, created_at DESC, id DESC);
