-- Files an agent's code writes (files.write), kept with the session and
-- read back through GET /agents/:id/files. Quotas are checked in the
-- writing transaction.
CREATE TABLE session_files (
    project_id  TEXT NOT NULL REFERENCES projects(id),
    session_id  TEXT NOT NULL REFERENCES agent_sessions(id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    content     BLOB NOT NULL,
    size        BIGINT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (session_id, path)
);
