//! Calibration's tables: storing people's scores (`human_evaluations`), reading them with
//! the model's.

use chrono::NaiveDate;

use super::rows::pair_row;
use super::{Store, StoreError};
use crate::calibration::import::HumanScore;
use crate::calibration::report::PairRow;

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HumanImportCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows whose call is not in `calls` (yet): stored, left out of reports until it is.
    pub calls_not_stored: u64,
}

impl Store {
    /// Upserts the rows in one transaction; a row equal to the stored one is left alone,
    /// so importing a file again changes nothing.
    pub async fn import_human_scores(
        &self,
        rows: &[HumanScore],
    ) -> Result<HumanImportCounts, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.call_id).collect();
        let categories: Vec<&str> = rows.iter().map(|r| r.category.as_str()).collect();
        let criteria: Vec<&str> = rows.iter().map(|r| r.criterion.as_str()).collect();
        let reviewers: Vec<&str> = rows.iter().map(|r| r.reviewer.as_str()).collect();
        let scores: Vec<f64> = rows.iter().map(|r| r.score).collect();
        let dates: Vec<Option<NaiveDate>> = rows.iter().map(|r| r.reviewed_at).collect();
        let changed = tx
            .query(
                "INSERT INTO human_evaluations AS h
                     (call_id, category, criterion, reviewer, score, reviewed_at)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                                      $5::float8[], $6::date[])
                 ON CONFLICT (call_id, category, criterion, reviewer) DO UPDATE
                     SET score = EXCLUDED.score, reviewed_at = EXCLUDED.reviewed_at,
                         imported_at = now()
                     WHERE (h.score, h.reviewed_at)
                           IS DISTINCT FROM (EXCLUDED.score, EXCLUDED.reviewed_at)
                 RETURNING (xmax = 0) AS inserted",
                &[&ids, &categories, &criteria, &reviewers, &scores, &dates],
            )
            .await?;
        let missing: i64 = tx
            .query_one(
                "SELECT count(*) FROM unnest($1::bigint[]) AS f(id)
                 WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = f.id)",
                &[&ids],
            )
            .await?
            .get(0);
        tx.commit().await?;
        let inserted = changed.iter().filter(|r| r.get::<_, bool>(0)).count() as u64;
        let updated = changed.len() as u64 - inserted;
        Ok(HumanImportCounts {
            inserted,
            updated,
            unchanged: rows.len() as u64 - inserted - updated,
            calls_not_stored: missing as u64,
        })
    }

    /// Every human score of a stored call (its day in `from..=to` when given), with the
    /// model's score of the same criterion where the model has one.
    pub async fn calibration_pairs(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<PairRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT h.call_id, h.category, h.criterion, h.reviewer, h.score,
                        e.score::float8, e.max_score::float8
                 FROM human_evaluations h
                 JOIN calls c ON c.id = h.call_id
                 LEFT JOIN LATERAL (
                     SELECT score, max_score FROM call_evaluations e
                     WHERE e.call_id = h.call_id AND e.category = h.category
                       AND e.criterion = h.criterion
                     ORDER BY e.id LIMIT 1) e ON true
                 WHERE ($1::date IS NULL OR c.start_time::date >= $1::date)
                   AND ($2::date IS NULL OR c.start_time::date <= $2::date)
                 ORDER BY h.call_id, h.category, h.criterion, h.reviewer",
                &[&from, &to],
            )
            .await?;
        Ok(rows.iter().map(pair_row).collect())
    }
}
