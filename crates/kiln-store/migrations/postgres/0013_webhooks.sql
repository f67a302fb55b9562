-- A session's webhooks (at most 5; PUT /agents/:id/webhooks replaces them).
-- `events` is '' (every event) or the chosen ones as ',a,b,' so the outbox
-- insert can filter with LIKE on both backends. The secret is sealed with
-- the server's key-encryption key, like a vault secret.
CREATE TABLE session_webhooks (
    id                 TEXT PRIMARY KEY,
    project_id         TEXT NOT NULL REFERENCES projects(id),
    session_id         TEXT NOT NULL REFERENCES agent_sessions(id) ON DELETE CASCADE,
    position           BIGINT NOT NULL,
    url                TEXT NOT NULL,
    events             TEXT NOT NULL,
    secret_ciphertext  BYTEA,
    secret_wrapped_key BYTEA,
    secret_kek_id      TEXT,
    created_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX session_webhooks_session ON session_webhooks (session_id, position);

-- The outbox: one row per (event, webhook), written in the transaction that
-- appends the event, so a committed event is never lost to a crash; the
-- sender claims due rows by moving next_attempt_at (a lease) and records
-- each attempt. state: pending, delivered, failed (gave up).
CREATE TABLE webhook_deliveries (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects(id),
    session_id        TEXT NOT NULL REFERENCES agent_sessions(id) ON DELETE CASCADE,
    webhook_id        TEXT NOT NULL,
    url               TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    run_id            TEXT NOT NULL,
    session_status    TEXT NOT NULL,
    session_error     TEXT,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    state             TEXT NOT NULL,
    attempt           BIGINT NOT NULL DEFAULT 0,
    status_code       BIGINT,
    last_error        TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    delivered_at      TIMESTAMPTZ,
    next_attempt_at   TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_session ON webhook_deliveries (session_id, created_at);
