-- What a call and a run cost, and where the figure came from: 'gateway' (the gateway's own
-- per-response cost), 'prices' (token counts at LLM_PRICE_*), 'mixed' (a run with both);
-- NULL when nothing was costed. runs.llm_attempts counts every HTTP request sent to the
-- gateway (retries, refusals and abandoned requests too), beside runs.llm_requests, the
-- answers asked for.

ALTER TABLE calls ADD COLUMN IF NOT EXISTS cost_source text;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS llm_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS cost_source text;
