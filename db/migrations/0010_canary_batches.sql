-- The canary in batch mode: a night's canary calls go to the gateway as a batch of their
-- own, scored into that night's experiment (never into `calls`) and measured when the
-- batch is collected. canary_nights.status is 'in_batch' until then.
--
-- A canary batch belongs to no run (run_id NULL) and holds no claims: whether the process
-- filling it is alive is told by its process key, as a run's is. Its lines save no call,
-- so their listing columns (operator_id, start_local, duration_s) are not read.
ALTER TABLE llm_batches ADD COLUMN IF NOT EXISTS canary_night_id bigint
    REFERENCES canary_nights (id) ON DELETE CASCADE;
ALTER TABLE llm_batches ADD COLUMN IF NOT EXISTS process_key bigint;
CREATE INDEX IF NOT EXISTS llm_batches_canary ON llm_batches (canary_night_id)
    WHERE canary_night_id IS NOT NULL;
