//! The canary's tables: its set of calls per department, one row per night and that night's
//! agreement. The answers themselves are experiment rows (`experiment*`).

use chrono::{DateTime, NaiveDate, Utc};

use super::{Store, StoreError};
use crate::calibration::stats::Agreement;

/// One line of a night's agreement: against `human` or `self`, per criterion, or the total
/// (empty category and criterion).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CanaryAgreement {
    pub against: &'static str,
    pub category: String,
    pub criterion: String,
    pub agreement: Agreement,
}

/// A night as written.
#[derive(Debug, Clone)]
pub(crate) struct CanaryNightRecord<'a> {
    pub department_id: i32,
    pub night: NaiveDate,
    pub started_at: DateTime<Utc>,
    pub status: &'a str,
    pub why: Option<&'a str>,
    pub experiment_id: Option<i64>,
    pub checklist_version: &'a str,
    pub prompt_version: &'a str,
    pub model: &'a str,
    pub model_reported: Option<&'a str>,
    pub calls: usize,
    pub calls_failed: usize,
    pub calls_replaced: usize,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: Option<f64>,
    pub margin: f64,
    pub agreement: &'a [CanaryAgreement],
}

/// A night as read back, with its totals (`None` where it had none).
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryNightRow {
    pub id: i64,
    pub department_id: i32,
    pub night: NaiveDate,
    pub started_at: DateTime<Utc>,
    pub status: String,
    pub why: Option<String>,
    pub experiment_id: Option<i64>,
    pub checklist_version: Option<String>,
    pub prompt_version: Option<String>,
    pub model: Option<String>,
    pub model_reported: Option<String>,
    pub calls: i32,
    pub calls_failed: i32,
    pub calls_replaced: i32,
    pub cost_usd: Option<f64>,
    pub margin: Option<f64>,
    pub human: Option<Agreement>,
    pub own: Option<Agreement>,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn agreement_of(row: &tokio_postgres::Row, at: usize) -> Option<Agreement> {
    let n: Option<i32> = row.get(at);
    Some(Agreement {
        n: n? as usize,
        exact: row.get(at + 1),
        within1: row.get(at + 2),
        qwk: row.get(at + 3),
        mae: row.get(at + 4),
        bias: row.get(at + 5),
    })
}

impl Store {
    /// Whether the canary's tables exist (a database migrated by a callq that has them).
    pub(crate) async fn has_canary(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT to_regclass('canary_nights') IS NOT NULL", &[])
            .await?;
        Ok(row.get(0))
    }

    /// Calls of the department the canary may use: scored, with human scores and a stored
    /// transcript.
    pub(crate) async fn canary_candidates(
        &self,
        department_id: i32,
    ) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.id::bigint FROM calls c
                 WHERE c.department_id = $1
                   AND COALESCE(c.is_sales_call, c.total_score IS NOT NULL)
                   AND EXISTS (SELECT 1 FROM human_evaluations h WHERE h.call_id = c.id)
                   AND EXISTS (SELECT 1 FROM call_transcripts t
                               WHERE t.call_id = c.id AND coalesce(t.transcript, '') <> '')
                 ORDER BY c.id",
                &[&department_id],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The department's canary set.
    pub(crate) async fn canary_set(&self, department_id: i32) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT call_id FROM canary_calls WHERE department_id = $1 ORDER BY call_id",
                &[&department_id],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Takes `remove` out of the set and puts `add` in, in one transaction.
    pub(crate) async fn change_canary_set(
        &self,
        department_id: i32,
        remove: &[i64],
        add: &[i64],
        seed: u64,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM canary_calls WHERE department_id = $1 AND call_id = ANY($2::bigint[])",
            &[&department_id, &remove],
        )
        .await?;
        tx.execute(
            "INSERT INTO canary_calls (department_id, call_id, seed)
             SELECT $1, id, $3 FROM unnest($2::bigint[]) AS a(id)
             ON CONFLICT DO NOTHING",
            &[&department_id, &add, &(seed as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Empties the department's set (`callq canary reset`); the next night chooses again.
    pub(crate) async fn reset_canary_set(&self, department_id: i32) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM canary_calls WHERE department_id = $1",
                &[&department_id],
            )
            .await?)
    }

    /// Writes a night and its agreement in one transaction; returns its id. With `id`,
    /// the night recorded earlier while its calls are in a batch is written over — once:
    /// `None` when it is not `in_batch` any more (another collector measured it first).
    pub(crate) async fn save_canary_night(
        &self,
        id: Option<i64>,
        n: &CanaryNightRecord<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A night waiting for its batch is not finished yet.
        let sql = match id {
            None => {
                "INSERT INTO canary_nights (department_id, night, started_at, finished_at, status,
                     why, experiment_id, checklist_version, prompt_version, model, model_reported,
                     calls, calls_failed, calls_replaced, prompt_tokens, completion_tokens,
                     cost_usd, margin)
                 VALUES ($1, $2, $3, CASE WHEN $4 = 'in_batch' THEN NULL ELSE now() END, $4, $5,
                     $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                 RETURNING id"
            }
            Some(_) => {
                "UPDATE canary_nights SET department_id = $1, night = $2, started_at = $3,
                     finished_at = CASE WHEN $4 = 'in_batch' THEN NULL ELSE now() END,
                     status = $4, why = $5, experiment_id = $6, checklist_version = $7,
                     prompt_version = $8, model = $9, model_reported = $10, calls = $11,
                     calls_failed = $12, calls_replaced = $13, prompt_tokens = $14,
                     completion_tokens = $15, cost_usd = $16, margin = $17
                 WHERE id = $18 AND status = 'in_batch'
                 RETURNING id"
            }
        };
        let id_param = id.unwrap_or_default();
        let (calls, failed, replaced) = (
            count(n.calls),
            count(n.calls_failed),
            count(n.calls_replaced),
        );
        let (prompt_tokens, completion_tokens) =
            (n.prompt_tokens as i64, n.completion_tokens as i64);
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &n.department_id,
            &n.night,
            &n.started_at,
            &n.status,
            &n.why,
            &n.experiment_id,
            &n.checklist_version,
            &n.prompt_version,
            &n.model,
            &n.model_reported,
            &calls,
            &failed,
            &replaced,
            &prompt_tokens,
            &completion_tokens,
            &n.cost_usd,
            &n.margin,
        ];
        if id.is_some() {
            params.push(&id_param);
        }
        let Some(row) = tx.query_opt(sql, &params).await? else {
            return Ok(None);
        };
        let id: i64 = row.get(0);
        tx.execute("DELETE FROM canary_agreement WHERE night_id = $1", &[&id])
            .await?;
        let a = n.agreement;
        let against: Vec<&str> = a.iter().map(|x| x.against).collect();
        let category: Vec<&str> = a.iter().map(|x| x.category.as_str()).collect();
        let criterion: Vec<&str> = a.iter().map(|x| x.criterion.as_str()).collect();
        let pairs: Vec<i32> = a.iter().map(|x| count(x.agreement.n)).collect();
        let exact: Vec<Option<f64>> = a.iter().map(|x| x.agreement.exact).collect();
        let within1: Vec<Option<f64>> = a.iter().map(|x| x.agreement.within1).collect();
        let qwk: Vec<Option<f64>> = a.iter().map(|x| x.agreement.qwk).collect();
        let mae: Vec<Option<f64>> = a.iter().map(|x| x.agreement.mae).collect();
        let bias: Vec<Option<f64>> = a.iter().map(|x| x.agreement.bias).collect();
        tx.execute(
            "INSERT INTO canary_agreement (night_id, against, category, criterion, n, exact,
                 within1, qwk, mae, bias)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::int[],
                 $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::float8[])",
            &[
                &id, &against, &category, &criterion, &pairs, &exact, &within1, &qwk, &mae, &bias,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// The department's latest `limit` nights (every department's when `None`), oldest
    /// first, with their totals.
    pub(crate) async fn canary_nights(
        &self,
        department_id: Option<i32>,
        limit: i64,
    ) -> Result<Vec<CanaryNightRow>, StoreError> {
        self.canary_nights_where(department_id, None, limit).await
    }

    /// The department's nights still `in_batch` with no batch open: their batches were
    /// collected or given back but the night was not measured (a crash, a database error),
    /// or the run recording them stopped before opening a batch (an hour ago or more).
    pub(crate) async fn canary_nights_to_measure(
        &self,
        department_id: i32,
    ) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT n.id FROM canary_nights n
                 WHERE n.department_id = $1 AND n.status = 'in_batch'
                   AND NOT EXISTS (SELECT 1 FROM llm_batches b
                                   WHERE b.canary_night_id = n.id AND b.state = ANY($2))
                   AND (EXISTS (SELECT 1 FROM llm_batches b WHERE b.canary_night_id = n.id)
                        OR n.started_at < now() - interval '1 hour')
                 ORDER BY n.started_at, n.id",
                &[&department_id, &super::OPEN_STATES.as_slice()],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// One night by its id.
    pub(crate) async fn canary_night(&self, id: i64) -> Result<Option<CanaryNightRow>, StoreError> {
        Ok(self.canary_nights_where(None, Some(id), 1).await?.pop())
    }

    async fn canary_nights_where(
        &self,
        department_id: Option<i32>,
        id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<CanaryNightRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT * FROM (
                     SELECT n.id, n.department_id, n.night, n.started_at, n.status, n.why,
                            n.experiment_id, n.checklist_version, n.prompt_version, n.model,
                            n.model_reported, n.calls, n.calls_failed, n.calls_replaced,
                            n.cost_usd, n.margin,
                            h.n, h.exact, h.within1, h.qwk, h.mae, h.bias,
                            s.n, s.exact, s.within1, s.qwk, s.mae, s.bias
                     FROM canary_nights n
                     LEFT JOIN canary_agreement h ON h.night_id = n.id AND h.against = 'human'
                          AND h.category = '' AND h.criterion = ''
                     LEFT JOIN canary_agreement s ON s.night_id = n.id AND s.against = 'self'
                          AND s.category = '' AND s.criterion = ''
                     WHERE ($1::int IS NULL OR n.department_id = $1)
                       AND ($3::bigint IS NULL OR n.id = $3)
                     ORDER BY n.started_at DESC, n.id DESC
                     LIMIT $2) t
                 ORDER BY started_at, id",
                &[&department_id, &limit, &id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| CanaryNightRow {
                id: r.get(0),
                department_id: r.get(1),
                night: r.get(2),
                started_at: r.get(3),
                status: r.get(4),
                why: r.get(5),
                experiment_id: r.get(6),
                checklist_version: r.get(7),
                prompt_version: r.get(8),
                model: r.get(9),
                model_reported: r.get(10),
                calls: r.get(11),
                calls_failed: r.get(12),
                calls_replaced: r.get(13),
                cost_usd: r.get(14),
                margin: r.get(15),
                human: agreement_of(r, 16),
                own: agreement_of(r, 22),
            })
            .collect())
    }

    /// The first and last day of the calls `ids` (the range an experiment row records).
    pub(crate) async fn call_days(
        &self,
        ids: &[i64],
    ) -> Result<(NaiveDate, NaiveDate), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(start_time::date), max(start_time::date) FROM calls
                 WHERE id = ANY($1::bigint[])",
                &[&ids],
            )
            .await?;
        let today = Utc::now().date_naive();
        Ok((
            row.get::<_, Option<NaiveDate>>(0).unwrap_or(today),
            row.get::<_, Option<NaiveDate>>(1).unwrap_or(today),
        ))
    }

    /// Every agreement line of the given nights, per criterion and total.
    pub(crate) async fn canary_agreement(
        &self,
        night_ids: &[i64],
    ) -> Result<Vec<(i64, CanaryAgreement)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT night_id, against, category, criterion, n, exact, within1, qwk, mae, bias
                 FROM canary_agreement WHERE night_id = ANY($1::bigint[])
                 ORDER BY night_id, against, category, criterion",
                &[&night_ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let against = if r.get::<_, &str>(1) == "human" {
                    "human"
                } else {
                    "self"
                };
                (
                    r.get(0),
                    CanaryAgreement {
                        against,
                        category: r.get(2),
                        criterion: r.get(3),
                        agreement: agreement_of(r, 4).expect("n is NOT NULL"),
                    },
                )
            })
            .collect())
    }
}
