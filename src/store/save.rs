//! A call's rows: which calls are stored already, the save (call row upserted, child rows
//! replaced, transcript upserted, its failure record cleared, the run's claim on it
//! released — one statement, one transaction), and the failure record of a call that
//! could not be saved.

use chrono::{NaiveDate, NaiveDateTime};

use tokio_postgres::types::ToSql;

use super::rows::{EvaluationColumns, i32_of};
use super::{Store, StoreError};
use crate::domain::{Analysis, Cost, Usage};

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

impl Store {
    /// Which of these calls already have a row in `calls` (scored or judged not-sales,
    /// by this tool or the old one).
    pub async fn existing_calls(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.timed("the stored calls", async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("SELECT id::bigint FROM calls WHERE id = ANY($1::bigint[])")
                .await?;
            let rows = client.query(&stmt, &[&ids]).await?;
            Ok::<_, StoreError>(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

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
    let e = EvaluationColumns::of(&a.evaluations);
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
        &e.category,
        &e.criterion,
        &e.score,
        &e.max_score,
        &e.reason,
        &e.evidence,
        &e.evidence_verified,
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
}
