//! Writes: one transaction per call (call row upserted, child rows replaced, transcript
//! upserted, its failure record cleared, the run's claim on it released — one statement),
//! failures, and the `runs` row.

use chrono::{NaiveDate, NaiveDateTime};

use tokio_postgres::types::ToSql;

use super::{Store, StoreError};
use crate::domain::{Analysis, Cost, Outcome, Usage};

/// Everything saved for one analysed call.
pub struct CallRecord<'a> {
    pub id: i64,
    pub start_local: NaiveDateTime,
    pub finish_local: Option<NaiveDateTime>,
    pub duration_s: i64,
    pub direction: Option<&'a str>,
    /// As PHONE_STORE says: the number, its keyed hash, or nothing.
    pub phone: Option<&'a str>,
    pub operator_id: i64,
    pub department_id: i32,
    /// `None` with TRANSCRIPT_STORE=none.
    pub transcript: Option<&'a str>,
    pub analysis: &'a Analysis,
    pub model: &'a str,
    pub usage: Usage,
    pub cost: Option<Cost>,
    pub checklist_version: &'a str,
    pub prompt_version: &'a str,
    pub run_id: Option<i64>,
}

pub struct Failure<'a> {
    pub call_id: i64,
    pub department_id: i32,
    pub day: NaiveDate,
    pub run_id: Option<i64>,
    pub stage: &'a str,
    pub error: &'a str,
}

pub struct RunStart<'a> {
    pub department_id: i32,
    pub day: NaiveDate,
    pub reanalyze: bool,
    pub limit: Option<usize>,
    pub model: &'a str,
    pub checklist_version: &'a str,
    pub prompt_version: &'a str,
}

pub struct RunFinish<'a> {
    pub status: &'a str,
    pub error: Option<&'a str>,
    pub counts: &'a [(Outcome, u64)],
    pub calls_listed: u64,
    pub items_unreadable: u64,
    pub deferred_by_limit: u64,
    pub llm_requests: u64,
    /// Every HTTP request sent to the gateway.
    pub llm_attempts: u64,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    /// `gateway`, `prices` or `mixed`; `None` when nothing was costed.
    pub cost_source: Option<&'a str>,
    pub wall_seconds: f64,
    pub unknown_operators: &'a [String],
    /// Whether the whole day was listed (false when the listing broke off or the run
    /// stopped before the end).
    pub listing_complete: bool,
}

// The whole save is one statement: PostgreSQL runs a statement, data-modifying `WITH`
// parts included, as one transaction, so a crash leaves either the old rows or the new
// ones — in one round trip, with no BEGIN and COMMIT of its own. Every part runs exactly
// once, read or not, and all of them see the rows as they were before the statement: the
// child deletes remove the old children only, never the ones inserted beside them, and
// the children's foreign keys are checked at its end, after the call row is written.
//
// Every parameter is cast to the type callq sends, so a database created by the old tool
// with other column types (integer ids, numeric scores, timestamptz) still accepts it.
// Children are written with one insert per table from arrays, however many rows. With
// TRANSCRIPT_STORE=none ($34 NULL) a transcript stored earlier is removed instead. The
// run's claim on the call ends in the same commit as its save, so another run that wins
// the claim next already sees the call stored. The call's failure record is cleared.
const SAVE_CALL: &str = "
WITH call AS (
    INSERT INTO calls (id, start_time, finish_time, operator_id, department_id, phone_number,
                       total_score, max_score, performance_percentage, call_direction, duration_s,
                       is_sales_call, model, prompt_tokens, completion_tokens, cached_tokens, cost_usd,
                       checklist_version, prompt_version, run_id, analyzed_at, review_reasons, cost_source)
    VALUES ($1::bigint, $2::timestamp, $3::timestamp, $4::integer, $5::integer, $6::text, $7::float8,
            $8::float8, $9::integer, $10::text, $11::integer, $12::boolean, $13::text, $14::integer,
            $15::integer, $16::integer, $17::float8, $18::text, $19::text, $20::bigint, now(),
            $21::text[], $22::text)
    ON CONFLICT (id) DO UPDATE SET
        start_time = EXCLUDED.start_time, finish_time = EXCLUDED.finish_time,
        operator_id = EXCLUDED.operator_id, department_id = EXCLUDED.department_id,
        phone_number = EXCLUDED.phone_number, total_score = EXCLUDED.total_score,
        max_score = EXCLUDED.max_score, performance_percentage = EXCLUDED.performance_percentage,
        call_direction = EXCLUDED.call_direction, duration_s = EXCLUDED.duration_s,
        is_sales_call = EXCLUDED.is_sales_call, model = EXCLUDED.model,
        prompt_tokens = EXCLUDED.prompt_tokens, completion_tokens = EXCLUDED.completion_tokens,
        cached_tokens = EXCLUDED.cached_tokens, cost_usd = EXCLUDED.cost_usd,
        checklist_version = EXCLUDED.checklist_version, prompt_version = EXCLUDED.prompt_version,
        run_id = EXCLUDED.run_id, analyzed_at = now(), review_reasons = EXCLUDED.review_reasons,
        cost_source = EXCLUDED.cost_source),
old_evaluations AS (DELETE FROM call_evaluations WHERE call_id = $1::bigint),
old_recommendations AS (DELETE FROM call_recommendations WHERE call_id = $1::bigint),
old_agreements AS (DELETE FROM agreements WHERE call_id = $1::bigint),
old_declines AS (DELETE FROM call_decline_reasons WHERE call_id = $1::bigint),
failure AS (DELETE FROM call_failures WHERE call_id = $1::bigint),
evaluations AS (
    INSERT INTO call_evaluations (call_id, category, criterion, score, max_score, reason, evidence,
                                  evidence_verified)
    SELECT $1::bigint, * FROM unnest($23::text[], $24::text[], $25::float8[], $26::float8[],
                                     $27::text[], $28::text[], $29::boolean[])),
recommendations AS (
    INSERT INTO call_recommendations (call_id, category, issue, recommendation, priority)
    SELECT $1::bigint, * FROM unnest($30::text[], $31::text[], $32::text[], $33::text[])),
agreements AS (
    INSERT INTO agreements (call_id, amount, agreement)
    SELECT $1::bigint, * FROM unnest($35::float8[], $36::text[])),
declines AS (
    INSERT INTO call_decline_reasons (call_id, reason_type, reason_description, product_category)
    SELECT $1::bigint, * FROM unnest($37::text[], $38::text[], $39::text[])),
old_transcript AS (
    DELETE FROM call_transcripts WHERE call_id = $1::bigint AND $34::text IS NULL),
transcript AS (
    INSERT INTO call_transcripts (call_id, transcript)
    SELECT $1::bigint, $34::text WHERE $34::text IS NOT NULL
    ON CONFLICT (call_id) DO UPDATE SET transcript = EXCLUDED.transcript),
claim AS (DELETE FROM call_claims WHERE call_id = $1::bigint AND run_id = $20::bigint)
SELECT 1";

fn i32_of(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Store {
    /// Saves one call atomically: a crash leaves either the old rows or the new ones.
    ///
    /// One statement ([`SAVE_CALL`]), prepared once per connection: one round trip and
    /// one transaction however many child rows a call has.
    pub async fn save_call(&self, r: &CallRecord<'_>) -> Result<(), StoreError> {
        self.timed("a call's save", self.write_call(r)).await
    }

    async fn write_call(&self, r: &CallRecord<'_>) -> Result<(), StoreError> {
        let client = self.client().await?;
        write_call_with(&client, r).await
    }
}

/// The save's one statement on `client`: a pooled connection, or a transaction that
/// does more around it (a batch's collection marks the call collected in the same commit).
pub(super) async fn write_call_with<C: deadpool_postgres::GenericClient>(
    client: &C,
    r: &CallRecord<'_>,
) -> Result<(), StoreError> {
    let save = client.prepare_cached(SAVE_CALL).await?;

    let a = r.analysis;
    let (total, max, pct) = if a.is_sales_call {
        (
            Some(a.total_score),
            Some(a.max_score),
            Some(a.performance_percentage),
        )
    } else {
        (None, None, None)
    };
    let duration = i32::try_from(r.duration_s).ok();
    let operator_id = i32::try_from(r.operator_id).ok();
    let (prompt_tokens, completion_tokens, cached_tokens) = (
        i32_of(r.usage.prompt_tokens),
        i32_of(r.usage.completion_tokens),
        i32_of(r.usage.cached_tokens),
    );
    let cost_usd = r.cost.map(|c| c.usd);
    let cost_source = r.cost.map(|c| c.source.as_str());
    let e = &a.evaluations;
    let e_cat: Vec<&str> = e.iter().map(|x| x.category.as_str()).collect();
    let e_crit: Vec<&str> = e.iter().map(|x| x.criterion.as_str()).collect();
    let e_score: Vec<f64> = e.iter().map(|x| x.score).collect();
    let e_max: Vec<f64> = e.iter().map(|x| x.max_score).collect();
    let e_reason: Vec<&str> = e.iter().map(|x| x.reason.as_str()).collect();
    let e_evidence: Vec<Option<&str>> = e.iter().map(|x| x.evidence.as_deref()).collect();
    let e_verified: Vec<Option<bool>> = e.iter().map(|x| x.evidence_verified).collect();
    let review: Vec<&str> = a.review_reasons.iter().map(|r| r.as_str()).collect();
    let v = &a.recommendations;
    let r_cat: Vec<&str> = v.iter().map(|x| x.category.as_str()).collect();
    let r_issue: Vec<&str> = v.iter().map(|x| x.issue.as_str()).collect();
    let r_text: Vec<&str> = v.iter().map(|x| x.recommendation.as_str()).collect();
    let r_prio: Vec<&str> = v.iter().map(|x| x.priority.as_str()).collect();
    let g_amount: Vec<Option<f64>> = a.agreements.iter().map(|x| x.amount).collect();
    let g_text: Vec<&str> = a.agreements.iter().map(|x| x.agreement.as_str()).collect();
    let d = &a.decline_reasons;
    let d_type: Vec<&str> = d.iter().map(|x| x.reason_type.as_str()).collect();
    let d_desc: Vec<&str> = d.iter().map(|x| x.reason_description.as_str()).collect();
    let d_cat: Vec<&str> = d.iter().map(|x| x.product_category.as_str()).collect();

    let params: [&(dyn ToSql + Sync); 39] = [
        &r.id,
        &r.start_local,
        &r.finish_local,
        &operator_id,
        &r.department_id,
        &r.phone,
        &total,
        &max,
        &pct,
        &r.direction,
        &duration,
        &a.is_sales_call,
        &r.model,
        &prompt_tokens,
        &completion_tokens,
        &cached_tokens,
        &cost_usd,
        &r.checklist_version,
        &r.prompt_version,
        &r.run_id,
        &review,
        &cost_source,
        &e_cat,
        &e_crit,
        &e_score,
        &e_max,
        &e_reason,
        &e_evidence,
        &e_verified,
        &r_cat,
        &r_issue,
        &r_text,
        &r_prio,
        &r.transcript,
        &g_amount,
        &g_text,
        &d_type,
        &d_desc,
        &d_cat,
    ];
    client.execute(&save, &params).await?;
    Ok(())
}

impl Store {
    /// Records (or re-records) a call that failed; the next run picks it up again because
    /// it still has no row in `calls`.
    pub async fn record_failure(&self, f: &Failure<'_>) -> Result<(), StoreError> {
        self.timed("a failure record", self.write_failure(f)).await
    }

    async fn write_failure(&self, f: &Failure<'_>) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO call_failures (call_id, department_id, call_date, run_id, stage, error)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (call_id) DO UPDATE SET
                     run_id = EXCLUDED.run_id, stage = EXCLUDED.stage, error = EXCLUDED.error,
                     attempts = call_failures.attempts + 1, last_failed_at = now()",
            )
            .await?;
        client
            .execute(
                &stmt,
                &[
                    &f.call_id,
                    &f.department_id,
                    &f.day,
                    &f.run_id,
                    &f.stage,
                    &f.error,
                ],
            )
            .await?;
        Ok(())
    }

    /// Days in `[since, before)` with calls of the department that failed or were not
    /// transcribed, have no row in `calls` since, and were tried fewer than `max_attempts` times.
    pub async fn days_with_waiting_calls(
        &self,
        department_id: i32,
        since: NaiveDate,
        before: NaiveDate,
        max_attempts: i32,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT f.call_date FROM call_failures f
                 WHERE f.department_id = $1 AND f.call_date >= $2 AND f.call_date < $3
                   AND f.attempts < $4
                   AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = f.call_id)
                 ORDER BY 1",
                &[&department_id, &since, &before, &max_attempts],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn start_run(&self, r: &RunStart<'_>) -> Result<i64, StoreError> {
        self.timed("the run's start", self.insert_run(r)).await
    }

    async fn insert_run(&self, r: &RunStart<'_>) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let limit = r.limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX));
        let row = client
            .query_one(
                "INSERT INTO runs (department_id, call_date, reanalyze, call_limit, model,
                                   checklist_version, prompt_version, heartbeat_at, process_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8) RETURNING id",
                &[
                    &r.department_id,
                    &r.day,
                    &r.reanalyze,
                    &limit,
                    &r.model,
                    &r.checklist_version,
                    &r.prompt_version,
                    &self.process_key,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    pub async fn finish_run(&self, id: i64, f: &RunFinish<'_>) -> Result<(), StoreError> {
        self.timed("the run's end", self.update_run(id, f)).await
    }

    async fn update_run(&self, id: i64, f: &RunFinish<'_>) -> Result<(), StoreError> {
        let client = self.client().await?;
        let count = |o: Outcome| {
            i32_of(
                f.counts
                    .iter()
                    .find(|(k, _)| *k == o)
                    .map_or(0, |(_, n)| *n),
            )
        };
        client
            .execute(
                "UPDATE runs SET finished_at = now(), status = $2, error = $3,
                     calls_listed = $4, items_unreadable = $5, skipped_short = $6, unknown_operator = $7,
                     no_transcript = $8, already_scored = $9, not_sales = $10, scored = $11, failed = $12,
                     deferred_by_limit = $13, llm_requests = $14, prompt_tokens = $15,
                     completion_tokens = $16, cached_tokens = $17, cost_usd = $18, wall_seconds = $19,
                     unknown_operators = $20, listing_complete = $21, claimed_elsewhere = $22,
                     llm_attempts = $23, cost_source = $24
                 WHERE id = $1",
                &[
                    &id,
                    &f.status,
                    &f.error,
                    &i32_of(f.calls_listed),
                    &i32_of(f.items_unreadable),
                    &count(Outcome::SkippedShort),
                    &count(Outcome::UnknownOperator),
                    &count(Outcome::NoTranscript),
                    &count(Outcome::AlreadyScored),
                    &count(Outcome::NotSales),
                    &count(Outcome::Scored),
                    &count(Outcome::Failed),
                    &i32_of(f.deferred_by_limit),
                    &i32_of(f.llm_requests),
                    &(f.usage.prompt_tokens as i64),
                    &(f.usage.completion_tokens as i64),
                    &(f.usage.cached_tokens as i64),
                    &f.cost_usd,
                    &f.wall_seconds,
                    &f.unknown_operators,
                    &f.listing_complete,
                    &count(Outcome::ClaimedElsewhere),
                    &i32_of(f.llm_attempts),
                    &f.cost_source,
                ],
            )
            .await?;
        Ok(())
    }
}
