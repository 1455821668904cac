-- A run you can leave alone: runs prove they are alive, calls are claimed before they are
-- sent to the LLM, and a run records whether it saw its whole day.

-- Written every few seconds by a running run; a `running` row whose heartbeat is old
-- belongs to a run that died, and the next run of its day marks it `abandoned`.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz;
-- False when the listing broke off or the run stopped before listing the whole day.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS listing_complete boolean;
-- Calls another live run was already scoring.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS claimed_elsewhere integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS runs_department_day ON runs (department_id, call_date, id);

-- One row per call being scored right now: only one run can hold it, so no call is sent
-- to the LLM by two runs at once even if the day lock fails. Deleted when the call ends;
-- a row of a run that is no longer alive may be taken over.
CREATE TABLE IF NOT EXISTS call_claims (
    call_id    bigint PRIMARY KEY,
    run_id     bigint NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
