-- Projects, API keys, secret vaults, prompt templates and the audit log.
-- Timestamps are TIMESTAMPTZ; JSON is JSONB; bytes are BYTEA. Names sort
-- bytewise (COLLATE "C"), as on SQLite.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    slug        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    vault_id    TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_keys_project ON api_keys (project_id, created_at);

CREATE TABLE secret_vaults (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name       TEXT COLLATE "C" NOT NULL,
    metadata   JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, name)
);

ALTER TABLE projects ADD FOREIGN KEY (vault_id) REFERENCES secret_vaults(id) ON DELETE SET NULL;

CREATE TABLE secrets (
    project_id  TEXT NOT NULL REFERENCES projects(id),
    vault_id    TEXT NOT NULL REFERENCES secret_vaults(id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    ciphertext  BYTEA NOT NULL,
    wrapped_key BYTEA NOT NULL,
    kek_id      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (vault_id, name)
);

CREATE TABLE prompt_templates (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name       TEXT COLLATE "C" NOT NULL,
    content    TEXT NOT NULL,
    variables  JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
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
    metadata         JSONB NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_log_project_created ON audit_log (project_id, created_at DESC, id DESC);
