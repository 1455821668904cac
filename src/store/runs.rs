//! The lifecycle of `runs` rows beyond a run's own start and end: runs that died are marked
//! `abandoned`, and the nightly run finds the days it must visit again.

use chrono::NaiveDate;

use super::{Store, StoreError};

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
}
