-- A session started on an agent records which agent and version it runs
-- (no version: the agent's draft).
ALTER TABLE agent_sessions ADD COLUMN agent_id TEXT;
ALTER TABLE agent_sessions ADD COLUMN agent_version_id TEXT;
CREATE INDEX agent_sessions_agent ON agent_sessions (agent_id) WHERE agent_id IS NOT NULL;
