-- Each server renews the leases of all the turns it runs in one statement
-- (thousands may be waiting on people at once); this finds them without
-- reading every session.
CREATE INDEX agent_sessions_running_by_server ON agent_sessions (turn_server) WHERE turn_id IS NOT NULL;
