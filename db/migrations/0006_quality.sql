-- Quality of the scores: the quote behind every score and whether it was found in the
-- transcript, the review queue, and human QA scores to calibrate the model against.

-- The model's verbatim quote for each score; evidence_verified is NULL where no quote was
-- asked for or given (rows of earlier versions, an empty quote for something absent).
ALTER TABLE call_evaluations
    ADD COLUMN IF NOT EXISTS evidence          text,
    ADD COLUMN IF NOT EXISTS evidence_verified boolean;

-- Why a scored call needs a person: low_score, critical_missed, unverified_evidence.
ALTER TABLE calls
    ADD COLUMN IF NOT EXISTS review_reasons text[] NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS calls_review_idx ON calls (start_time)
    WHERE cardinality(review_reasons) > 0;

-- Human QA scores (`callq calibrate import`): one row per call, criterion and reviewer, the
-- criterion spelt as in the checklist. No foreign key to calls: QA may score a call callq
-- has not stored yet, and the report simply leaves it out until it has.
CREATE TABLE IF NOT EXISTS human_evaluations (
    call_id     bigint NOT NULL,
    category    text NOT NULL,
    criterion   text NOT NULL,
    reviewer    text NOT NULL DEFAULT '',
    score       double precision NOT NULL,
    reviewed_at date,
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, category, criterion, reviewer)
);

CREATE OR REPLACE VIEW v_review_queue AS
SELECT c.id                   AS call_id,
       c.start_time::date     AS day,
       c.start_time,
       c.operator_id,
       o.full_name            AS operator_name,
       c.department_id,
       d.name                 AS department_name,
       c.performance_percentage,
       c.review_reasons,
       COALESCE((SELECT jsonb_agg(jsonb_build_object(
                            'category', e.category,
                            'criterion', e.criterion,
                            'score', e.score,
                            'max_score', e.max_score,
                            'reason', e.reason,
                            'evidence', e.evidence,
                            'evidence_verified', e.evidence_verified)
                        ORDER BY e.id)
                 FROM call_evaluations e
                 WHERE e.call_id = c.id
                   AND (e.score < e.max_score OR e.evidence_verified = false)),
                '[]'::jsonb) AS failing_criteria,
       c.analyzed_at
FROM calls c
LEFT JOIN operators o ON o.id = c.operator_id
LEFT JOIN departments d ON d.id = c.department_id
WHERE cardinality(c.review_reasons) > 0
ORDER BY c.start_time DESC, c.id DESC;

COMMENT ON VIEW v_review_queue IS
    'Scored calls a person should look at, newest first: review_reasons is not empty.';
COMMENT ON COLUMN v_review_queue.review_reasons IS
    'low_score (below REVIEW_BELOW_PERCENT), critical_missed (a critical criterion scored 0), unverified_evidence (a quote not found in the transcript)';
COMMENT ON COLUMN v_review_queue.failing_criteria IS
    'JSON array, checklist order: criteria that lost points or whose quote was not found, with score, max_score, reason, evidence and evidence_verified';
