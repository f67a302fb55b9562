-- A session on an agent keeps the agent's MCP servers (names, transports,
-- URLs as written, secret names, and the tools they listed) as it started.
ALTER TABLE agent_sessions ADD COLUMN mcp_servers JSONB NOT NULL DEFAULT '[]';
