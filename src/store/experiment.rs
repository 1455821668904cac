//! Prompt experiments' tables (`callq compare`). Reads `calls`, `call_transcripts`,
//! `call_evaluations` and `human_evaluations`; writes only the `experiment*` tables.

use chrono::NaiveDate;
use tokio_postgres::types::ToSql;

use super::rows::{EvaluationColumns, i32_of, pair_row};
use super::{Store, StoreError};
use crate::calibration::report::PairRow;
use crate::domain::{Analysis, Usage};

/// A scored call with its stored transcript and what scoring it cost.
#[derive(Debug, Clone)]
pub struct StoredCall {
    pub id: i64,
    pub transcript: String,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
}

pub struct ExperimentStart<'a> {
    pub department_id: i32,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub sample_size: usize,
    pub seed: u64,
    pub prompt_file: &'a str,
    pub prompt_version: &'a str,
    pub checklist_version: &'a str,
    pub model: &'a str,
}

/// One call as the variant scored it, or why it could not.
pub struct ExperimentCall<'a> {
    pub call_id: i64,
    pub analysis: Option<&'a Analysis>,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub error: Option<&'a str>,
}

/// An experiment's calls counted from its rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExperimentTotals {
    pub scored: usize,
    pub failed: usize,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
}

impl Store {
    /// Ids of the department's scored calls in `from..=to`, and how many of them have no
    /// stored transcript (those cannot be scored again).
    pub async fn comparable_call_ids(
        &self,
        department_id: i32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<(Vec<i64>, u64), StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.id::bigint,
                        EXISTS (SELECT 1 FROM call_transcripts t
                                WHERE t.call_id = c.id AND coalesce(t.transcript, '') <> '')
                 FROM calls c
                 WHERE c.department_id = $1 AND c.start_time::date BETWEEN $2 AND $3
                   AND COALESCE(c.is_sales_call, c.total_score IS NOT NULL)
                 ORDER BY c.id",
                &[&department_id, &from, &to],
            )
            .await?;
        let ids = rows
            .iter()
            .filter(|r| r.get::<_, bool>(1))
            .map(|r| r.get(0))
            .collect();
        let missing = rows.iter().filter(|r| !r.get::<_, bool>(1)).count() as u64;
        Ok((ids, missing))
    }

    pub async fn stored_calls(&self, ids: &[i64]) -> Result<Vec<StoredCall>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.id::bigint, t.transcript, coalesce(c.prompt_tokens, 0)::bigint,
                        coalesce(c.completion_tokens, 0)::bigint,
                        coalesce(c.cached_tokens, 0)::bigint, c.cost_usd::float8
                 FROM calls c JOIN call_transcripts t ON t.call_id = c.id
                 WHERE c.id = ANY($1::bigint[]) ORDER BY c.id",
                &[&ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredCall {
                id: r.get(0),
                transcript: r.get(1),
                usage: Usage {
                    prompt_tokens: r.get::<_, i64>(2).max(0) as u64,
                    completion_tokens: r.get::<_, i64>(3).max(0) as u64,
                    cached_tokens: r.get::<_, i64>(4).max(0) as u64,
                },
                cost_usd: r.get(5),
            })
            .collect())
    }

    pub async fn start_experiment(&self, e: &ExperimentStart<'_>) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let size = i32_of(e.sample_size as u64);
        let seed = e.seed as i64;
        let row = client
            .query_one(
                "INSERT INTO experiments (department_id, date_from, date_to, sample_size, seed,
                     prompt_file, prompt_version, checklist_version, model)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    &e.department_id,
                    &e.from,
                    &e.to,
                    &size,
                    &seed,
                    &e.prompt_file,
                    &e.prompt_version,
                    &e.checklist_version,
                    &e.model,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    pub async fn save_experiment_call(
        &self,
        experiment_id: i64,
        c: &ExperimentCall<'_>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        write_experiment_call(&tx, experiment_id, c).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// An experiment call's rows, inside the caller's transaction (a canary batch's line marks
/// itself collected in the same commit).
pub(super) async fn write_experiment_call<C: deadpool_postgres::GenericClient>(
    tx: &C,
    experiment_id: i64,
    c: &ExperimentCall<'_>,
) -> Result<(), StoreError> {
    let a = c.analysis;
    let sales = a.map(|a| a.is_sales_call);
    let scored = a.filter(|a| a.is_sales_call);
    let total = scored.map(|a| a.total_score);
    let max = scored.map(|a| a.max_score);
    let pct = scored.map(|a| a.performance_percentage);
    let reasons: Vec<&str> = a
        .map(|a| a.review_reasons.iter().map(|r| r.as_str()).collect())
        .unwrap_or_default();
    let (pt, ct) = (
        i32_of(c.usage.prompt_tokens),
        i32_of(c.usage.completion_tokens),
    );
    let params: [&(dyn ToSql + Sync); 11] = [
        &experiment_id,
        &c.call_id,
        &sales,
        &total,
        &max,
        &pct,
        &reasons,
        &pt,
        &ct,
        &c.cost_usd,
        &c.error,
    ];
    tx.execute(
        "INSERT INTO experiment_calls (experiment_id, call_id, is_sales_call, total_score,
                 max_score, performance_percentage, review_reasons, prompt_tokens,
                 completion_tokens, cost_usd, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7::text[], $8, $9, $10, $11)",
        &params,
    )
    .await?;
    if let Some(a) = a {
        let e = EvaluationColumns::of(&a.evaluations);
        tx.execute(
            "INSERT INTO experiment_evaluations (experiment_id, call_id, category, criterion,
                     score, max_score, reason, evidence, evidence_verified)
                 SELECT $1::bigint, $2::bigint, * FROM unnest($3::text[], $4::text[],
                     $5::float8[], $6::float8[], $7::text[], $8::text[], $9::boolean[])",
            &[
                &experiment_id,
                &c.call_id,
                &e.category,
                &e.criterion,
                &e.score,
                &e.max_score,
                &e.reason,
                &e.evidence,
                &e.evidence_verified,
            ],
        )
        .await?;
    }
    Ok(())
}

impl Store {
    pub async fn finish_experiment(
        &self,
        id: i64,
        usage: Usage,
        cost_usd: Option<f64>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE experiments SET finished_at = now(), prompt_tokens = $2,
                     completion_tokens = $3, cached_tokens = $4, cost_usd = $5
                 WHERE id = $1",
                &[
                    &id,
                    &(usage.prompt_tokens as i64),
                    &(usage.completion_tokens as i64),
                    &(usage.cached_tokens as i64),
                    &cost_usd,
                ],
            )
            .await?;
        Ok(())
    }

    /// (call, category, criterion, score, max) of an experiment's scores: its calls answered
    /// as sales calls.
    pub async fn experiment_scores(
        &self,
        experiment_id: i64,
    ) -> Result<Vec<(i64, String, String, f64, f64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT e.call_id, coalesce(e.category, ''), coalesce(e.criterion, ''),
                        e.score::float8, coalesce(e.max_score, 0)::float8
                 FROM experiment_evaluations e
                 JOIN experiment_calls c ON c.experiment_id = e.experiment_id
                      AND c.call_id = e.call_id
                 WHERE e.experiment_id = $1 AND c.is_sales_call AND e.score IS NOT NULL
                 ORDER BY e.call_id, e.category, e.criterion",
                &[&experiment_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect())
    }

    /// The calls an experiment has a row for (answered or failed).
    pub async fn experiment_call_ids(&self, experiment_id: i64) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT call_id FROM experiment_calls WHERE experiment_id = $1 ORDER BY call_id",
                &[&experiment_id],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// An experiment's calls counted from its rows: answered as sales calls, failed, and
    /// what every answer cost (failed ones included; `None` when no price was known).
    pub async fn experiment_totals(
        &self,
        experiment_id: i64,
    ) -> Result<ExperimentTotals, StoreError> {
        let client = self.client().await?;
        let r = client
            .query_one(
                "SELECT count(*) FILTER (WHERE error IS NULL AND is_sales_call),
                        count(*) FILTER (WHERE error IS NOT NULL),
                        coalesce(sum(prompt_tokens), 0)::bigint,
                        coalesce(sum(completion_tokens), 0)::bigint,
                        sum(cost_usd)::float8
                 FROM experiment_calls WHERE experiment_id = $1",
                &[&experiment_id],
            )
            .await?;
        Ok(ExperimentTotals {
            scored: r.get::<_, i64>(0).max(0) as usize,
            failed: r.get::<_, i64>(1).max(0) as usize,
            usage: Usage {
                prompt_tokens: r.get::<_, i64>(2).max(0) as u64,
                completion_tokens: r.get::<_, i64>(3).max(0) as u64,
                cached_tokens: 0,
            },
            cost_usd: r.get(4),
        })
    }

    /// (call, category, criterion, score, max) of the stored evaluations of `ids`.
    pub async fn stored_scores(
        &self,
        ids: &[i64],
    ) -> Result<Vec<(i64, String, String, f64, f64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT call_id::bigint, coalesce(category, ''), coalesce(criterion, ''),
                        score::float8, max_score::float8
                 FROM call_evaluations
                 WHERE call_id = ANY($1::bigint[]) AND score IS NOT NULL
                 ORDER BY call_id, id",
                &[&ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get::<_, Option<f64>>(4).unwrap_or(0.0),
                )
            })
            .collect())
    }

    /// Human scores of `ids`, as pairs without a model side (filled in by the caller).
    pub async fn human_scores(&self, ids: &[i64]) -> Result<Vec<PairRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT call_id, category, criterion, reviewer, score,
                        NULL::float8, NULL::float8
                 FROM human_evaluations
                 WHERE call_id = ANY($1::bigint[])
                 ORDER BY call_id, category, criterion, reviewer",
                &[&ids],
            )
            .await?;
        Ok(rows.iter().map(pair_row).collect())
    }
}
