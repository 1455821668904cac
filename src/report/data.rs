//! What the report shows, read from the BI views (db/migrations/0003_bi_views.sql, the
//! queries in `store::report`) so its numbers are the ones a BI tool shows. Nothing here
//! re-derives a figure a view has.

use std::collections::BTreeMap;

use chrono::NaiveDate;

/// Days (inclusive), department and operator the report covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scope {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub department: Option<i32>,
    pub operator: Option<i32>,
}

impl Scope {
    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The period of the same length just before this one.
    pub fn previous(&self) -> Scope {
        let len = chrono::Days::new(self.days() as u64);
        Scope {
            from: self.from - len,
            to: self.from - chrono::Days::new(1),
            ..*self
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headline {
    pub calls_scored: i64,
    pub not_sales: i64,
    /// Mean percentage of the scored calls; None without any.
    pub avg_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    pub day: NaiveDate,
    pub calls_scored: i64,
    pub avg_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    pub id: i32,
    pub name: String,
    pub calls_scored: i64,
    pub not_sales: i64,
    pub avg_pct: Option<f64>,
    /// (day, mean percentage) of the days with scored calls, in order.
    pub daily: Vec<(NaiveDate, f64)>,
    /// Mean share of the maximum per criterion index (into [`ReportData::criteria`]).
    pub criteria: BTreeMap<usize, f64>,
    pub recommendations: Vec<Recommendation>,
    /// Open recommendations in all, of which `recommendations` holds the first few.
    pub recommendations_total: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    pub category: String,
    pub criterion: String,
    /// The department-wide share from v_criterion_daily, weighted by evaluations.
    pub share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub day: NaiveDate,
    pub call_id: i64,
    pub priority: Option<String>,
    pub category: Option<String>,
    pub issue: Option<String>,
    pub recommendation: Option<String>,
}

/// A call of `v_review_queue`, its columns as db/migrations/0006_quality.sql defines them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewItem {
    pub call_id: i64,
    pub day: NaiveDate,
    pub operator_id: Option<i32>,
    pub operator_name: Option<String>,
    pub performance_percentage: Option<i32>,
    /// `calls.review_reasons`: the codes `crate::review::assess` gives (`low_score`, …).
    pub reasons: Vec<String>,
    pub failing: Vec<FailingCriterion>,
}

/// One element of the view's `failing_criteria` JSON array: a criterion that lost points
/// or whose quote was not found in the transcript.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct FailingCriterion {
    pub category: Option<String>,
    pub criterion: Option<String>,
    pub score: Option<f64>,
    pub max_score: Option<f64>,
    pub reason: Option<String>,
    pub evidence: Option<String>,
    /// false: the quote is not in the transcript; None: no quote to check.
    pub evidence_verified: Option<bool>,
}

/// The figures, trend and review queue: what one connection reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub headline: Headline,
    /// The same figures for [`Scope::previous`].
    pub previous: Headline,
    pub days: Vec<Day>,
    /// None when the database has no v_review_queue view.
    pub review: Option<Vec<ReviewItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportData {
    pub scope: Scope,
    pub headline: Headline,
    pub previous: Headline,
    pub days: Vec<Day>,
    pub criteria: Vec<Criterion>,
    pub operators: Vec<Operator>,
    /// None when the database has no v_review_queue view.
    pub review: Option<Vec<ReviewItem>>,
}

/// Recommendations shown per operator; the rest are counted.
pub const RECOMMENDATIONS_SHOWN: i64 = 5;
/// Review-queue calls shown at most, lowest percentage first.
pub const REVIEW_SHOWN: i64 = 500;

/// Puts the pieces together: criteria in checklist order with the department's shares,
/// each operator's shares by criterion index.
pub fn assemble(
    scope: Scope,
    summary: Summary,
    mut operators: Vec<Operator>,
    by_operator: Vec<OperatorCriterion>,
    department: BTreeMap<(String, String), Option<f64>>,
) -> ReportData {
    let mut first_seen: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in &by_operator {
        first_seen
            .entry(r.key.clone())
            .and_modify(|v| *v = (*v).min(r.first_id))
            .or_insert(r.first_id);
    }
    let mut order: Vec<((String, String), i64)> = first_seen.into_iter().collect();
    order.sort_by_key(|(_, id)| *id);
    let index: BTreeMap<(String, String), usize> = order
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), i))
        .collect();
    let position: BTreeMap<i32, usize> = operators
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id, i))
        .collect();
    for r in &by_operator {
        if let (Some(&p), Some(share)) = (position.get(&r.operator_id), r.share) {
            operators[p].criteria.insert(index[&r.key], share);
        }
    }
    let criteria = order
        .into_iter()
        .map(|((category, criterion), _)| {
            let share = department
                .get(&(category.clone(), criterion.clone()))
                .copied()
                .flatten();
            Criterion {
                category,
                criterion,
                share,
            }
        })
        .collect();
    let Summary {
        headline,
        previous,
        days,
        review,
    } = summary;
    ReportData {
        scope,
        headline,
        previous,
        days,
        criteria,
        operators,
        review,
    }
}

/// One operator's mean share of the maximum on one criterion.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorCriterion {
    pub operator_id: i32,
    pub key: (String, String),
    /// The criterion's first stored evaluation: checklist order.
    pub first_id: i64,
    pub share: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_period_has_the_same_length_and_ends_the_day_before() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let s = Scope {
            from: d("2025-08-01"),
            to: d("2025-08-07"),
            department: Some(1),
            operator: None,
        };
        let p = s.previous();
        assert_eq!(
            (p.from, p.to, p.days()),
            (d("2025-07-25"), d("2025-07-31"), 7)
        );
        assert_eq!(p.department, Some(1));
    }
}
