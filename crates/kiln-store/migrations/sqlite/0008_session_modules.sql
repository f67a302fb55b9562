-- A session on an agent keeps the agent's skill modules as it started, so
-- `require` in its blocks reaches the code of the version it runs.
ALTER TABLE agent_sessions ADD COLUMN skill_modules TEXT NOT NULL DEFAULT '[]';
