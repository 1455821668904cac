//! The lifecycle of `runs` rows: a run's start and end, runs that died marked `abandoned`,
//! and the days the nightly run must visit again.

use chrono::NaiveDate;

use super::rows::i32_of;
use super::{Store, StoreError};
use crate::domain::{Outcome, Usage};

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

/// Why the nightly run visits an earlier day again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revisit {
    /// Calls of the day failed or were not transcribed yet, and still wait.
    WaitingCalls,
    /// The day's last run did not finish (its status: failed, interrupted, abandoned).
    Unfinished(String),
    /// The day's last run did not list the whole day.
    ListingIncomplete,
    /// The day's last run left calls to another run that was scoring them
    /// (`claimed_elsewhere`): whether that run saved them is checked again.
    LeftToAnotherRun,
    /// Calls of the day are in a batch at the gateway not collected yet.
    InBatch,
}

impl std::fmt::Display for Revisit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revisit::WaitingCalls => f.write_str("calls still waiting"),
            Revisit::Unfinished(status) => write!(f, "its last run {status}"),
            Revisit::ListingIncomplete => f.write_str("its last run did not list the whole day"),
            Revisit::LeftToAnotherRun => {
                f.write_str("its last run left calls to another run scoring them")
            }
            Revisit::InBatch => f.write_str("calls of it are in a batch not collected yet"),
        }
    }
}

impl Store {
    pub async fn start_run(&self, r: &RunStart<'_>) -> Result<i64, StoreError> {
        self.timed("the run's start", self.insert_run(r)).await
    }

    async fn insert_run(&self, r: &RunStart<'_>) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let limit = r.limit.map(|l| i32_of(l as u64));
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

    /// Marks this department's and day's `running` rows whose run is dead (its process
    /// holds no session on the database: `callq_run_alive`) as `abandoned`. Called by the
    /// run that holds the day's lock; a run that lost that lock but is still finishing its
    /// calls is alive and keeps its row. Returns their ids.
    pub async fn abandon_dead_runs(
        &self,
        department_id: i32,
        day: NaiveDate,
    ) -> Result<Vec<i64>, StoreError> {
        self.timed("marking dead runs", async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "UPDATE runs SET status = 'abandoned', finished_at = now(),
                         error = coalesce(error, 'the run stopped without recording its end')
                     WHERE department_id = $1 AND call_date = $2 AND status = 'running'
                       AND NOT callq_run_alive(process_key, heartbeat_at)
                     RETURNING id",
                    &[&department_id, &day],
                )
                .await?;
            Ok::<_, StoreError>(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    /// Days in `[since, before)` the nightly run must visit again, with why: calls still
    /// waiting (failed or not transcribed, fewer than `max_attempts` tries), or a last run
    /// that did not finish (a `running` row counts when its run is dead), did not list the
    /// whole day, or left calls to another run.
    pub async fn days_to_revisit(
        &self,
        department_id: i32,
        since: NaiveDate,
        before: NaiveDate,
        max_attempts: i32,
    ) -> Result<Vec<(NaiveDate, Revisit)>, StoreError> {
        let mut days: Vec<(NaiveDate, Revisit)> = self
            .days_with_waiting_calls(department_id, since, before, max_attempts)
            .await?
            .into_iter()
            .map(|d| (d, Revisit::WaitingCalls))
            .collect();
        let unfinished = self
            .timed("the runs of earlier days", async {
                let client = self.client().await?;
                client
                    .query(
                        "SELECT call_date, status, listing_complete, claimed_elsewhere FROM (
                             SELECT DISTINCT ON (call_date) call_date, status, listing_complete,
                                    claimed_elsewhere, heartbeat_at, process_key
                             FROM runs
                             WHERE department_id = $1 AND call_date >= $2 AND call_date < $3
                             ORDER BY call_date, id DESC) last
                         WHERE status IN ('failed', 'interrupted', 'abandoned')
                            OR (status = 'running'
                                AND NOT callq_run_alive(process_key, heartbeat_at))
                            OR listing_complete = false
                            OR claimed_elsewhere > 0",
                        &[&department_id, &since, &before],
                    )
                    .await
                    .map_err(StoreError::from)
            })
            .await?;
        for row in unfinished {
            let day: NaiveDate = row.get(0);
            let status: String = row.get(1);
            let complete: Option<bool> = row.get(2);
            let left: i32 = row.get(3);
            if days.iter().any(|(d, _)| *d == day) {
                continue;
            }
            let why = match status.as_str() {
                "failed" | "interrupted" | "abandoned" => Revisit::Unfinished(status),
                "running" => Revisit::Unfinished("abandoned".into()),
                _ if complete == Some(false) => Revisit::ListingIncomplete,
                _ if left > 0 => Revisit::LeftToAnotherRun,
                _ => continue,
            };
            days.push((day, why));
        }
        days.sort_by_key(|(d, _)| *d);
        Ok(days)
    }

    /// Days in `[since, before)` with calls of the department that failed or were not
    /// transcribed, have no row in `calls` since, and were tried fewer than `max_attempts` times.
    async fn days_with_waiting_calls(
        &self,
        department_id: i32,
        since: NaiveDate,
        before: NaiveDate,
        max_attempts: i32,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        self.timed("the days with waiting calls", async {
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
            Ok::<_, StoreError>(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }
}
