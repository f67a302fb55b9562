-- Agents as code: one agent config per (project, manifest project, local
-- id), created by the first source-sync that names it, and one draft per
-- (agent, environment) holding the last synced files and what they say.

CREATE TABLE agent_configs (
    id                   TEXT PRIMARY KEY,
    project_id           TEXT NOT NULL REFERENCES projects(id),
    code_first_project   TEXT NOT NULL,
    local_id             TEXT NOT NULL,
    name                 TEXT NOT NULL,
    description          TEXT NOT NULL,
    created_by           TEXT NOT NULL,
    -- The live version's fields (empty until the first deploy).
    persona_md           TEXT NOT NULL,
    skills_json          JSONB NOT NULL,
    stores_json          JSONB NOT NULL,
    provider             TEXT NOT NULL,
    model                TEXT NOT NULL,
    enabled_capabilities JSONB,
    eval_suite_id        TEXT,
    active_version_id    TEXT,
    published_at         TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, code_first_project, local_id)
);
CREATE INDEX agent_configs_project ON agent_configs (project_id, created_at, id);

CREATE TABLE agent_drafts (
    id                   TEXT PRIMARY KEY,
    project_id           TEXT NOT NULL REFERENCES projects(id),
    agent_id             TEXT NOT NULL REFERENCES agent_configs(id) ON DELETE CASCADE,
    environment          TEXT NOT NULL,
    source_hash          TEXT NOT NULL,
    -- {path: base64 of the bytes}, as synced.
    files                JSONB NOT NULL,
    -- What the files say (AgentSpec with resolved index ids), as JSON.
    spec                 JSONB NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (agent_id, environment)
);

-- One immutable version per deploy of an agent: what its draft held then.
CREATE TABLE agent_versions (
    id                   TEXT PRIMARY KEY,
    project_id           TEXT NOT NULL REFERENCES projects(id),
    agent_id             TEXT NOT NULL REFERENCES agent_configs(id) ON DELETE CASCADE,
    -- 0, 1, 2, …: the patch number of semver 1.0.<seq>.
    seq                  BIGINT NOT NULL,
    semver               TEXT NOT NULL,
    persona_md           TEXT NOT NULL,
    skills_json          JSONB NOT NULL,
    stores_json          JSONB NOT NULL,
    provider             TEXT NOT NULL,
    model                TEXT NOT NULL,
    eval_suite_id        TEXT,
    eval_suite_version   TEXT,
    environment          TEXT NOT NULL,
    source_hash          TEXT NOT NULL,
    files                JSONB NOT NULL,
    spec                 JSONB NOT NULL,
    created_by           TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (agent_id, seq)
);
