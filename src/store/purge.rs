//! Retention: the transcripts and phone numbers of old calls are removed; their scores,
//! reasons, recommendations, agreements and decline reasons stay for the reports.
//!
//! A call's day is the date of its `start_time`, which holds the wall-clock time in
//! CALLS_TIMEZONE (see `save`), so "older than N days" is `start_time` before the day N
//! days before today there. Calls without a start time are never purged.

use chrono::NaiveDate;

use super::{Store, StoreError};

/// Calls one purge transaction handles at most: each batch commits on its own, so a
/// purge of millions of calls never holds its row locks for long nor builds one huge
/// transaction, and an interrupted purge keeps what it did (the next one goes on).
pub const PURGE_BATCH: i64 = 5_000;

/// Which calls a purge removes personal data from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeScope {
    /// Calls whose day is before this one.
    pub before: NaiveDate,
    /// Only this department's calls; all departments when `None`.
    pub department_id: Option<i32>,
}

impl PurgeScope {
    /// The calls more than `days` days before `today`: a call `days` days old or less
    /// stays. `callq purge` and the run's RETENTION_DAYS both take their scope from here.
    pub fn older_than(today: NaiveDate, days: u32, department_id: Option<i32>) -> PurgeScope {
        PurgeScope {
            before: today - chrono::Days::new(u64::from(days)),
            department_id,
        }
    }
}

/// What a purge removed, or, for a dry run, would remove.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Calls that had a transcript or a phone number.
    pub calls: u64,
    /// Rows of `call_transcripts` deleted.
    pub transcripts: u64,
    /// `calls.phone_number` values set to NULL.
    pub phone_numbers: u64,
}

// The calls in scope that still hold something to remove. Casts keep it working on a
// database of the old tool with other column types (integer ids, timestamptz).
const IN_SCOPE: &str = "
    c.start_time < $1::date
    AND ($2::integer IS NULL OR c.department_id = $2::integer)
    AND (c.phone_number IS NOT NULL
         OR EXISTS (SELECT 1 FROM call_transcripts t WHERE t.call_id = c.id))";

impl Store {
    /// What [`Store::purge`] would remove now, without removing anything.
    pub async fn purge_counts(&self, scope: PurgeScope) -> Result<PurgeCounts, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    // A call has at most one transcript (a unique index since 0001).
                    "SELECT count(*)::bigint,
                            count(*) FILTER (WHERE c.phone_number IS NOT NULL)::bigint,
                            count(*) FILTER (WHERE EXISTS (
                                SELECT 1 FROM call_transcripts t WHERE t.call_id = c.id))::bigint
                       FROM calls c WHERE {IN_SCOPE}"
                ),
                &[&scope.before, &scope.department_id],
            )
            .await?;
        Ok(PurgeCounts {
            calls: row.get::<_, i64>(0) as u64,
            phone_numbers: row.get::<_, i64>(1) as u64,
            transcripts: row.get::<_, i64>(2) as u64,
        })
    }

    /// Deletes the transcripts and clears the phone numbers of the calls in `scope`,
    /// `batch` calls per transaction, until none is left. A second purge of the same
    /// scope finds nothing to do.
    pub async fn purge(&self, scope: PurgeScope, batch: i64) -> Result<PurgeCounts, StoreError> {
        let client = self.client().await?;
        // One statement per batch, so one short transaction each. Calls are taken in id
        // order after the last id done, so the batches never scan the same rows twice.
        let stmt = client
            .prepare(&format!(
                "WITH batch AS (
                     SELECT c.id FROM calls c
                      WHERE c.id > $3::bigint AND {IN_SCOPE}
                      ORDER BY c.id LIMIT $4::bigint),
                 t AS (DELETE FROM call_transcripts
                        WHERE call_id IN (SELECT id FROM batch) RETURNING 1),
                 p AS (UPDATE calls SET phone_number = NULL
                        WHERE id IN (SELECT id FROM batch) AND phone_number IS NOT NULL
                        RETURNING 1)
                 SELECT (SELECT count(*) FROM batch)::bigint,
                        (SELECT max(id) FROM batch)::bigint,
                        (SELECT count(*) FROM t)::bigint,
                        (SELECT count(*) FROM p)::bigint"
            ))
            .await?;
        let mut total = PurgeCounts::default();
        let mut after = i64::MIN;
        loop {
            let row = client
                .query_one(
                    &stmt,
                    &[&scope.before, &scope.department_id, &after, &batch.max(1)],
                )
                .await?;
            let calls: i64 = row.get(0);
            if calls == 0 {
                break;
            }
            after = row.get(1);
            let transcripts: i64 = row.get(2);
            let phones: i64 = row.get(3);
            total.calls += calls as u64;
            total.transcripts += transcripts as u64;
            total.phone_numbers += phones as u64;
            tracing::debug!(
                "purged {calls} call(s) up to id {after}: {transcripts} transcript(s), \
                 {phones} phone number(s)"
            );
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_than_n_days_keeps_the_day_n_days_back() {
        let today = NaiveDate::from_ymd_opt(2025, 8, 9).unwrap();
        let scope = PurgeScope::older_than(today, 2, Some(3));
        assert_eq!(scope.before, NaiveDate::from_ymd_opt(2025, 8, 7).unwrap());
        assert_eq!(scope.department_id, Some(3));
        assert_eq!(
            PurgeScope::older_than(today, 90, None).before,
            NaiveDate::from_ymd_opt(2025, 5, 11).unwrap()
        );
    }
}
