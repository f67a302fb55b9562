-- Documents (versioned uploads and extracted siblings), their bytes, their
-- chunks (text + embedding), and the search log the derived search
-- structures replay.

ALTER TABLE indexes ADD COLUMN embedder TEXT;
ALTER TABLE indexes ADD COLUMN embedding_dims BIGINT;

CREATE TABLE documents (
    id                    TEXT PRIMARY KEY,
    project_id            TEXT NOT NULL REFERENCES projects(id),
    index_id              TEXT NOT NULL REFERENCES indexes(id) ON DELETE CASCADE,
    filename              TEXT NOT NULL,
    content_type          TEXT NOT NULL,
    file_size             BIGINT NOT NULL,
    status                TEXT NOT NULL,
    error_message         TEXT,
    page_count            BIGINT,
    chunk_count           BIGINT NOT NULL DEFAULT 0,
    name                  TEXT COLLATE "C",
    version               BIGINT NOT NULL,
    is_latest             BOOLEAN NOT NULL,
    metadata              JSONB NOT NULL,
    parent_id             TEXT,
    created_by_api_key_id TEXT,
    content_sha256        TEXT,
    deleted_at            TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    claim_token           TEXT,
    claimed_until_ms      BIGINT
);
CREATE INDEX documents_project_created ON documents (project_id, created_at DESC, id DESC);
CREATE INDEX documents_index ON documents (index_id);
CREATE INDEX documents_parent ON documents (parent_id);
CREATE INDEX documents_sha ON documents (project_id, content_sha256);
CREATE INDEX documents_work ON documents (status, claimed_until_ms) WHERE status IN ('pending', 'processing');
CREATE UNIQUE INDEX documents_live_latest_name ON documents (index_id, name)
    WHERE name IS NOT NULL AND is_latest AND deleted_at IS NULL;
CREATE UNIQUE INDEX documents_name_version ON documents (index_id, name, version) WHERE name IS NOT NULL;

CREATE TABLE document_blobs (
    document_id TEXT PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    bytes       BYTEA NOT NULL
);

CREATE TABLE chunks (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL,
    index_id    TEXT NOT NULL,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk_index BIGINT NOT NULL,
    content     TEXT NOT NULL,
    metadata    JSONB NOT NULL,
    embedding   BYTEA NOT NULL
);
CREATE INDEX chunks_document ON chunks (document_id, chunk_index);

-- One row; its row lock orders the commits that append to search_log, so a
-- reader that saw seq N has every entry up to N.
CREATE TABLE search_clock (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO search_clock (id, seq) VALUES (1, 0);

CREATE TABLE search_log (
    seq         BIGINT NOT NULL,
    project_id  TEXT NOT NULL,
    index_id    TEXT NOT NULL,
    document_id TEXT,
    op          TEXT NOT NULL
);
CREATE INDEX search_log_seq ON search_log (seq);
