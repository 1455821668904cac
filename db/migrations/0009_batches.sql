-- Batch mode: calls scored through the gateway's Batch API. A batch is recorded before
-- its file is uploaded (the intent), so a run killed at any point leaves a row the next
-- run can finish: found again at the gateway by its tag, or released when it never
-- existed there.
--
-- state: filling (lines being written), uploading (the intent: the file is going up),
-- creating (file uploaded, the batch being created), submitted (the gateway has it),
-- collected (every line saved or failed), released (never created at the gateway: its
-- calls were given back).
CREATE TABLE IF NOT EXISTS llm_batches (
    id              bigserial PRIMARY KEY,
    department_id   integer NOT NULL,
    call_date       date NOT NULL,
    run_id          bigint,
    -- Random, written into the batch's metadata: how a batch created but not recorded is
    -- found again among the gateway's batches.
    tag             text NOT NULL UNIQUE,
    state           text NOT NULL DEFAULT 'filling',
    file_id         text,
    batch_id        text,
    gateway_status  text,
    requests        integer NOT NULL DEFAULT 0,
    bytes           bigint NOT NULL DEFAULT 0,
    model           text,
    checklist_version text,
    prompt_version  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    submitted_at    timestamptz,
    collected_at    timestamptz,
    -- Saved and failed lines, and what the saved answers cost (LLM_PRICE_BATCH_FACTOR ×
    -- the prices unless the gateway reported a cost).
    saved           integer NOT NULL DEFAULT 0,
    failed          integer NOT NULL DEFAULT 0,
    bad_lines       integer NOT NULL DEFAULT 0,
    cost_usd        double precision,
    last_error      text
);

CREATE INDEX IF NOT EXISTS llm_batches_open
    ON llm_batches (department_id, call_date) WHERE state NOT IN ('collected', 'released');

-- One row per call in a batch: what its save needs from the listing, and the masked
-- transcript the evidence check reads. The transcripts are removed as each call is
-- collected, so with TRANSCRIPT_STORE=none nothing of them outlives the batch.
-- state: pending, saved, failed.
CREATE TABLE IF NOT EXISTS llm_batch_calls (
    batch_id        bigint NOT NULL REFERENCES llm_batches (id) ON DELETE CASCADE,
    call_id         bigint NOT NULL,
    custom_id       text NOT NULL,
    operator_id     bigint NOT NULL,
    start_local     timestamp NOT NULL,
    finish_local    timestamp,
    duration_s      bigint NOT NULL,
    direction       text,
    -- As PHONE_STORE says to store it.
    phone           text,
    -- The masked text the model saw, and the transcript as TRANSCRIPT_STORE says to
    -- store it (NULL with none; NULL too when it is the masked text, store_transcript says).
    transcript      text,
    stored_transcript text,
    store_transcript boolean NOT NULL DEFAULT true,
    attempts        integer NOT NULL DEFAULT 1,
    state           text NOT NULL DEFAULT 'pending',
    PRIMARY KEY (batch_id, call_id),
    UNIQUE (batch_id, custom_id)
);

CREATE INDEX IF NOT EXISTS llm_batch_calls_call ON llm_batch_calls (call_id);

-- A claim held for a call in a batch lasts as long as the batch, not as long as the run
-- that submitted it.
ALTER TABLE call_claims ADD COLUMN IF NOT EXISTS batch_id bigint;

-- What a run did in batch mode: calls it put into batches, and batches it submitted.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS in_batch integer;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS batches_submitted integer;
