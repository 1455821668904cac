-- Whether a run is alive, decided by what the server knows for certain rather than by a
-- heartbeat's age: every database session of a callq process (its pool's and its day
-- lock's) holds a shared advisory lock on the process's random 63-bit key, recorded in
-- `runs.process_key`. The server releases a session's locks the moment the session ends,
-- so a killed process (`kill -9`, a crashed host whose connections are reset) is seen dead
-- at once, while a run that lost only its day lock's connection — its pool connections
-- still open, requests still at the LLM — is still alive and keeps its claims.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS process_key bigint;

-- True while the run's process holds a session on this database. pg_locks is readable by
-- every role (pg_stat_activity hides other roles' sessions' details). A run written by a
-- callq from before this migration has no key: its heartbeat, younger than 60 s, decides.
CREATE OR REPLACE FUNCTION callq_run_alive(run_key bigint, run_heartbeat timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN run_key IS NULL
        THEN coalesce(run_heartbeat > now() - interval '60 seconds', false)
        ELSE EXISTS (
            SELECT 1 FROM pg_locks
            WHERE locktype = 'advisory' AND objsubid = 1 AND granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND classid = (run_key >> 32)::oid
              AND objid = (run_key & 4294967295)::oid)
    END
$$;
