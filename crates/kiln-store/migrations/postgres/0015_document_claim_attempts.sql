-- How many times ingestion claimed each document. A file that kills the
-- worker (or the server) is claimed again after a restart or when its
-- lease runs out; past a few attempts it is marked `error` instead, so a
-- crafted upload cannot crash-loop the server.
ALTER TABLE documents ADD COLUMN claim_attempts BIGINT NOT NULL DEFAULT 0;
