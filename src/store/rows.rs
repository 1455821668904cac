//! Row helpers more than one area of the store uses: counts into `integer` columns, a
//! call's evaluations as the column arrays an `unnest` insert takes, and a human score read
//! back with the model's side.

use tokio_postgres::Row;

use crate::calibration::report::PairRow;
use crate::domain::Evaluation;

/// A count for an `integer` column: saturates rather than wrapping, since no count callq
/// keeps comes near `i32::MAX` and a wrapped one would be negative.
pub(super) fn i32_of(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Evaluations as one array per column, for `unnest($…::text[], $…::text[], $…::float8[],
/// $…::float8[], $…::text[], $…::text[], $…::boolean[])` in this field order: any number of
/// rows in one statement.
pub(super) struct EvaluationColumns<'a> {
    pub category: Vec<&'a str>,
    pub criterion: Vec<&'a str>,
    pub score: Vec<f64>,
    pub max_score: Vec<f64>,
    pub reason: Vec<&'a str>,
    pub evidence: Vec<Option<&'a str>>,
    pub evidence_verified: Vec<Option<bool>>,
}

impl<'a> EvaluationColumns<'a> {
    pub(super) fn of(e: &'a [Evaluation]) -> EvaluationColumns<'a> {
        EvaluationColumns {
            category: e.iter().map(|x| x.category.as_str()).collect(),
            criterion: e.iter().map(|x| x.criterion.as_str()).collect(),
            score: e.iter().map(|x| x.score).collect(),
            max_score: e.iter().map(|x| x.max_score).collect(),
            reason: e.iter().map(|x| x.reason.as_str()).collect(),
            evidence: e.iter().map(|x| x.evidence.as_deref()).collect(),
            evidence_verified: e.iter().map(|x| x.evidence_verified).collect(),
        }
    }
}

/// A row of `call_id, category, criterion, reviewer, score` (of `human_evaluations`), then
/// the model's `score::float8, max_score::float8` (NULL where the model has none).
pub(super) fn pair_row(r: &Row) -> PairRow {
    PairRow {
        call_id: r.get(0),
        category: r.get(1),
        criterion: r.get(2),
        reviewer: r.get(3),
        human: r.get(4),
        model: r.get(5),
        max_score: r.get(6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        assert_eq!(i32_of(0), 0);
        assert_eq!(i32_of(i32::MAX as u64), i32::MAX);
        assert_eq!(i32_of(i32::MAX as u64 + 1), i32::MAX);
        assert_eq!(i32_of(u64::MAX), i32::MAX);
    }

    #[test]
    fn evaluation_columns_keep_the_rows_order_and_fields() {
        let e = |c: &str, score: f64, evidence: Option<&str>, verified: Option<bool>| Evaluation {
            category: "cat".into(),
            criterion: c.into(),
            score,
            max_score: 2.0,
            reason: format!("why {c}"),
            evidence: evidence.map(str::to_string),
            evidence_verified: verified,
        };
        let rows = [
            e("a", 1.0, Some("quote"), Some(true)),
            e("b", 0.0, None, None),
        ];
        let cols = EvaluationColumns::of(&rows);
        assert_eq!(cols.category, ["cat", "cat"]);
        assert_eq!(cols.criterion, ["a", "b"]);
        assert_eq!(cols.score, [1.0, 0.0]);
        assert_eq!(cols.max_score, [2.0, 2.0]);
        assert_eq!(cols.reason, ["why a", "why b"]);
        assert_eq!(cols.evidence, [Some("quote"), None]);
        assert_eq!(cols.evidence_verified, [Some(true), None]);
    }
}
