-- Views for BI tools (Metabase, Superset, Grafana, Power BI) and the indexes their
-- filters, joins and groupings use. The views are part of callq's interface: columns are
-- only ever added (at the end), never renamed, dropped or retyped.
--
-- Conventions shared by every view:
-- * day is calls.start_time::date, the call's local (CALLS_TIMEZONE) wall-clock date, as
--   T-Bank lists it; no time zone conversion happens anywhere.
-- * A call is "scored" when is_sales_call is true, or when is_sales_call is NULL but the
--   call has a total_score (rows the old tool wrote before callq's columns existed).
--   Calls judged not-sales (is_sales_call false) have no scores and appear only as counts.
-- * Shares are numeric fractions from 0 to 1 (format them as percentages in the BI tool);
--   percentages are 0 to 100.
-- * Names come from the directory (operators, departments, offices, supervisors) as they
--   are now, not as they were on the day of the call.

-- Day filters on every view become (start_time::date) comparisons, and per-operator
-- history, its latest call and the operator-day grouping read calls by operator.
CREATE INDEX IF NOT EXISTS calls_day_department_idx ON calls ((start_time::date), department_id);
CREATE INDEX IF NOT EXISTS calls_operator_start_idx ON calls (operator_id, start_time);

CREATE OR REPLACE VIEW v_scored_calls AS
SELECT c.id                         AS call_id,
       c.start_time::date           AS day,
       c.start_time,
       c.operator_id,
       o.full_name                  AS operator_name,
       c.department_id,
       d.name                       AS department_name,
       f.name                       AS office_name,
       s.full_name                  AS supervisor_name,
       c.total_score,
       c.max_score,
       c.performance_percentage,
       c.total_score::numeric / NULLIF(c.max_score, 0)::numeric AS score_share,
       c.duration_s,
       c.call_direction,
       c.model,
       c.checklist_version,
       c.analyzed_at
FROM calls c
LEFT JOIN operators o ON o.id = c.operator_id
LEFT JOIN departments d ON d.id = c.department_id
LEFT JOIN offices f ON f.id = o.office_id
LEFT JOIN supervisors s ON s.id = o.supervisor_id
WHERE COALESCE(c.is_sales_call, c.total_score IS NOT NULL);

COMMENT ON VIEW v_scored_calls IS
    'One row per scored call: is_sales_call true, or NULL with a total_score (rows of the old tool). Not-sales calls are left out.';
COMMENT ON COLUMN v_scored_calls.call_id IS 'calls.id, T-Bank''s segmentId';
COMMENT ON COLUMN v_scored_calls.day IS 'The call''s local wall-clock date (start_time::date)';
COMMENT ON COLUMN v_scored_calls.start_time IS 'Local wall-clock start time, as T-Bank lists it (timestamp without time zone)';
COMMENT ON COLUMN v_scored_calls.operator_name IS 'operators.full_name, as the directory spells it now';
COMMENT ON COLUMN v_scored_calls.department_id IS 'The department whose run scored the call (calls.department_id)';
COMMENT ON COLUMN v_scored_calls.performance_percentage IS 'Stored percentage, 0-100, floored to an integer';
COMMENT ON COLUMN v_scored_calls.score_share IS 'total_score / max_score recomputed as an unrounded numeric fraction, 0-1; NULL when max_score is 0 or NULL';
COMMENT ON COLUMN v_scored_calls.duration_s IS 'Call duration in seconds; NULL for rows of the old tool';
COMMENT ON COLUMN v_scored_calls.call_direction IS 'inbound or outbound, as T-Bank reports it; NULL for rows of the old tool';
COMMENT ON COLUMN v_scored_calls.model IS 'The LLM that scored the call; NULL for rows of the old tool';
COMMENT ON COLUMN v_scored_calls.checklist_version IS 'Content hash of the checklist that produced the score; NULL for rows of the old tool';
COMMENT ON COLUMN v_scored_calls.analyzed_at IS 'When callq saved the score; NULL for rows of the old tool';

CREATE OR REPLACE VIEW v_operator_daily AS
SELECT c.start_time::date AS day,
       c.operator_id,
       o.full_name        AS operator_name,
       c.department_id,
       d.name             AS department_name,
       f.name             AS office_name,
       s.full_name        AS supervisor_name,
       count(*)           AS calls_stored,
       count(*) FILTER (WHERE COALESCE(c.is_sales_call, c.total_score IS NOT NULL)) AS calls_scored,
       count(*) FILTER (WHERE c.is_sales_call = false) AS calls_not_sales,
       avg(c.performance_percentage) FILTER (WHERE COALESCE(c.is_sales_call, c.total_score IS NOT NULL))
                          AS avg_performance_percentage,
       avg(c.total_score::numeric / NULLIF(c.max_score, 0)::numeric)
           FILTER (WHERE COALESCE(c.is_sales_call, c.total_score IS NOT NULL)) AS avg_score_share,
       sum(c.duration_s)  AS duration_s,
       COALESCE(sum(a.agreements), 0)::bigint AS agreements,
       COALESCE(sum(a.amount), 0)     AS agreements_amount
FROM calls c
LEFT JOIN (SELECT call_id, count(*) AS agreements, sum(amount) AS amount
           FROM agreements
           GROUP BY call_id) a ON a.call_id = c.id
LEFT JOIN operators o ON o.id = c.operator_id
LEFT JOIN departments d ON d.id = c.department_id
LEFT JOIN offices f ON f.id = o.office_id
LEFT JOIN supervisors s ON s.id = o.supervisor_id
GROUP BY c.start_time::date, c.operator_id, o.full_name, c.department_id, d.name, f.name, s.full_name;

COMMENT ON VIEW v_operator_daily IS
    'One row per operator, day and department (an operator moved between departments has a row for each): call counts, average score of the scored calls, agreements.';
COMMENT ON COLUMN v_operator_daily.calls_stored IS 'Every stored call of the operator that day: scored, not-sales and unscored rows of the old tool';
COMMENT ON COLUMN v_operator_daily.calls_scored IS 'Calls as v_scored_calls counts them';
COMMENT ON COLUMN v_operator_daily.calls_not_sales IS 'Calls the model judged not to be sales calls (is_sales_call false)';
COMMENT ON COLUMN v_operator_daily.avg_performance_percentage IS 'Mean of performance_percentage (0-100) over the scored calls; NULL without scored calls';
COMMENT ON COLUMN v_operator_daily.avg_score_share IS 'Mean of total_score / max_score (0-1) over the scored calls, each call weighted equally';
COMMENT ON COLUMN v_operator_daily.duration_s IS 'Total duration of the stored calls in seconds (rows of the old tool count as NULL)';
COMMENT ON COLUMN v_operator_daily.agreements IS 'Number of agreements (orders) in that day''s calls of the operator';
COMMENT ON COLUMN v_operator_daily.agreements_amount IS 'Sum of the agreements'' amounts; agreements without an amount add 0';

CREATE OR REPLACE VIEW v_criterion_daily AS
SELECT c.department_id,
       d.name             AS department_name,
       c.start_time::date AS day,
       e.category,
       e.criterion,
       count(*)           AS evaluations,
       avg(e.score)       AS avg_score,
       max(e.max_score)   AS max_score,
       avg(e.score::numeric / NULLIF(e.max_score, 0)::numeric) AS avg_score_share,
       (count(*) FILTER (WHERE e.score = 0))::numeric / NULLIF(count(e.score), 0) AS zero_share
FROM call_evaluations e
JOIN calls c ON c.id = e.call_id
LEFT JOIN departments d ON d.id = c.department_id
WHERE COALESCE(c.is_sales_call, c.total_score IS NOT NULL)
GROUP BY c.department_id, d.name, c.start_time::date, e.category, e.criterion;

COMMENT ON VIEW v_criterion_daily IS
    'One row per department, day, checklist category and criterion, over the evaluations of scored calls: how often and how well the criterion was met.';
COMMENT ON COLUMN v_criterion_daily.evaluations IS 'Evaluations of the criterion (one per scored call that was scored on it)';
COMMENT ON COLUMN v_criterion_daily.avg_score IS 'Mean score given, in the criterion''s own points';
COMMENT ON COLUMN v_criterion_daily.max_score IS 'The criterion''s maximum score (the highest, should the checklist have changed that day)';
COMMENT ON COLUMN v_criterion_daily.avg_score_share IS 'Mean of score / max_score, 0-1; evaluations with a max_score of 0 are left out';
COMMENT ON COLUMN v_criterion_daily.zero_share IS 'Share of evaluations scored 0, 0-1: how often the criterion was missed entirely';

CREATE OR REPLACE VIEW v_open_recommendations AS
SELECT r.id                 AS recommendation_id,
       c.operator_id,
       o.full_name          AS operator_name,
       c.department_id,
       d.name               AS department_name,
       s.full_name          AS supervisor_name,
       c.id                 AS call_id,
       c.start_time::date   AS day,
       c.start_time,
       l.latest_day,
       l.latest_day - c.start_time::date AS days_before_latest,
       r.category,
       r.issue,
       r.recommendation,
       r.priority,
       CASE lower(btrim(r.priority))
           WHEN 'high' THEN 1 WHEN 'высокий' THEN 1
           WHEN 'medium' THEN 2 WHEN 'средний' THEN 2
           WHEN 'low' THEN 3 WHEN 'низкий' THEN 3
           ELSE 4
       END                  AS priority_rank,
       c.performance_percentage
FROM call_recommendations r
JOIN calls c ON c.id = r.call_id
JOIN (SELECT operator_id, max(start_time)::date AS latest_day
      FROM calls
      WHERE operator_id IS NOT NULL
      GROUP BY operator_id) l ON l.operator_id = c.operator_id
LEFT JOIN operators o ON o.id = c.operator_id
LEFT JOIN departments d ON d.id = c.department_id
LEFT JOIN supervisors s ON s.id = o.supervisor_id
WHERE c.start_time::date > l.latest_day - 30;

COMMENT ON VIEW v_open_recommendations IS
    'Coaching recommendations still open: those from an operator''s calls in the 30 days up to and including that operator''s latest stored call day (latest_day). Counting from the operator''s own latest call keeps the list stable across nightly lag, backfills and absences; filter latest_day >= current_date - 30 to hide operators without recent calls. Sort by priority_rank, then start_time DESC.';
COMMENT ON COLUMN v_open_recommendations.latest_day IS 'The day of the operator''s latest stored call (any outcome)';
COMMENT ON COLUMN v_open_recommendations.days_before_latest IS 'latest_day - day: 0 for the latest day, at most 29';
COMMENT ON COLUMN v_open_recommendations.priority IS 'As stored: high, medium or low (callq); the old tool may have written other words';
COMMENT ON COLUMN v_open_recommendations.priority_rank IS '1 high, 2 medium, 3 low (English or Russian, any case), 4 anything else: sort ascending';
COMMENT ON COLUMN v_open_recommendations.performance_percentage IS 'The call''s stored percentage, 0-100';
