-- Which server holds a claim: a server that restarts after a crash
-- releases its own claims at once (documents back to pending, turns ended
-- as interrupted), instead of leaving them to run out their leases while
-- other servers share the database.
ALTER TABLE documents ADD COLUMN claimed_by TEXT;
ALTER TABLE agent_sessions ADD COLUMN turn_server TEXT;
