//! What the report shows, read from the BI views (db/migrations/0003_bi_views.sql) so its
//! numbers are the ones a BI tool shows. Nothing here re-derives a figure a view has.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use tokio_postgres::Client;
use tokio_postgres::types::{Json, ToSql};

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

    fn params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.from, &self.to, &self.department, &self.operator]
    }
}

/// The WHERE clause every view query shares; $1..$4 are [`Scope::params`].
const SCOPE: &str = "day BETWEEN $1 AND $2 \
     AND ($3::int IS NULL OR department_id = $3) \
     AND ($4::int IS NULL OR operator_id = $4)";

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

/// A night of the canary for the "Model stability" section (see `callq canary report`).
#[derive(Debug, Clone, PartialEq)]
pub struct StabilityNight {
    pub department_id: i32,
    pub night: NaiveDate,
    /// `ok`, `skipped` or `failed`.
    pub status: String,
    pub why: Option<String>,
    pub calls: i32,
    /// Agreement with human QA, every criterion's pairs pooled.
    pub exact: Option<f64>,
    pub within1: Option<f64>,
    pub qwk: Option<f64>,
    pub mae: Option<f64>,
    /// Exact agreement with the model's own stored scores.
    pub own_exact: Option<f64>,
    /// Median exact agreement of the nights before.
    pub median: Option<f64>,
    pub dropped: bool,
    /// What changed since the night before: (what, from, to).
    pub changes: Vec<(String, String, String)>,
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
    /// The canary's nights up to the period's end, oldest first (empty when it never ran).
    pub stability: Vec<StabilityNight>,
}

/// Recommendations shown per operator; the rest are counted.
pub const RECOMMENDATIONS_SHOWN: i64 = 5;
/// Review-queue calls shown at most, lowest percentage first.
pub const REVIEW_SHOWN: i64 = 500;

/// The latest day with a scored call in the department/operator, for the default range.
pub async fn latest_scored_day(
    client: &Client,
    department: Option<i32>,
    operator: Option<i32>,
) -> Result<Option<NaiveDate>, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT max(day) FROM v_scored_calls \
             WHERE ($1::int IS NULL OR department_id = $1) AND ($2::int IS NULL OR operator_id = $2)",
            &[&department, &operator],
        )
        .await?;
    Ok(row.get(0))
}

/// The figures, trend and review queue: cheap queries, on one connection.
pub async fn summary(
    client: &Client,
    scope: &Scope,
) -> Result<(Headline, Headline, Vec<Day>, Option<Vec<ReviewItem>>), tokio_postgres::Error> {
    let headline = headline_of(client, scope).await?;
    let previous = headline_of(client, &scope.previous()).await?;
    let days = days(client, scope).await?;
    let review = review(client, scope).await?;
    Ok((headline, previous, days, review))
}

/// The operators with their sparklines and open recommendations, on one connection.
pub async fn operator_list(
    client: &Client,
    scope: &Scope,
) -> Result<Vec<Operator>, tokio_postgres::Error> {
    let mut operators = operators(client, scope).await?;
    daily_per_operator(client, scope, &mut operators).await?;
    recommendations(client, scope, &mut operators).await?;
    Ok(operators)
}

/// Puts the pieces together: criteria in checklist order with the department's shares,
/// each operator's shares by criterion index.
pub fn assemble(
    scope: Scope,
    summary: (Headline, Headline, Vec<Day>, Option<Vec<ReviewItem>>),
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
    let (headline, previous, days, review) = summary;
    ReportData {
        scope,
        headline,
        previous,
        days,
        criteria,
        operators,
        review,
        stability: Vec::new(),
    }
}

/// Scored calls and their mean from v_scored_calls, not-sales calls from v_operator_daily.
async fn headline_of(client: &Client, scope: &Scope) -> Result<Headline, tokio_postgres::Error> {
    let sql = format!(
        "SELECT (SELECT count(*) FROM v_scored_calls WHERE {SCOPE}),
                (SELECT COALESCE(sum(calls_not_sales), 0)::bigint FROM v_operator_daily WHERE {SCOPE}),
                (SELECT avg(performance_percentage)::float8 FROM v_scored_calls WHERE {SCOPE})"
    );
    let row = client.query_one(&sql, &scope.params()).await?;
    Ok(Headline {
        calls_scored: row.get(0),
        not_sales: row.get(1),
        avg_pct: row.get(2),
    })
}

async fn days(client: &Client, scope: &Scope) -> Result<Vec<Day>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT day, count(*), avg(performance_percentage)::float8
         FROM v_scored_calls WHERE {SCOPE} GROUP BY day ORDER BY day"
    );
    let rows = client.query(&sql, &scope.params()).await?;
    let by_day: BTreeMap<NaiveDate, (i64, Option<f64>)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    // Every day of the range, so a day without calls shows as a gap, not as nothing.
    Ok(scope
        .from
        .iter_days()
        .take_while(|d| *d <= scope.to)
        .map(|day| {
            let (calls_scored, avg_pct) = by_day.get(&day).copied().unwrap_or((0, None));
            Day {
                day,
                calls_scored,
                avg_pct,
            }
        })
        .collect())
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

/// Each operator's share per criterion. v_criterion_daily has no operator column, so this
/// is the view's mean of score / max_score taken over the evaluations of the calls
/// v_scored_calls lists, per operator (in float8: over millions of rows numeric
/// division is twice as slow, and the value is only shown to one decimal).
pub async fn operator_criteria(
    client: &Client,
    scope: &Scope,
) -> Result<Vec<OperatorCriterion>, tokio_postgres::Error> {
    let sql = "SELECT s.operator_id, e.category, e.criterion, min(e.id),
                      avg(e.score / NULLIF(e.max_score, 0))::float8
               FROM call_evaluations e
               JOIN v_scored_calls s ON s.call_id = e.call_id
               WHERE s.day BETWEEN $1 AND $2
                 AND ($3::int IS NULL OR s.department_id = $3)
                 AND ($4::int IS NULL OR s.operator_id = $4)
                 AND s.operator_id IS NOT NULL
               GROUP BY s.operator_id, e.category, e.criterion";
    let rows = client.query(sql, &scope.params()).await?;
    Ok(rows
        .iter()
        .map(|r| OperatorCriterion {
            operator_id: r.get(0),
            key: (text(r.get(1)), text(r.get(2))),
            first_id: r.get(3),
            share: r.get(4),
        })
        .collect())
}

/// The department-wide share of each criterion from v_criterion_daily, its days weighted
/// by their evaluations.
pub async fn department_criteria(
    client: &Client,
    scope: &Scope,
) -> Result<BTreeMap<(String, String), Option<f64>>, tokio_postgres::Error> {
    let sql = "SELECT category, criterion,
                      (sum(avg_score_share * evaluations) / NULLIF(sum(evaluations), 0))::float8
               FROM v_criterion_daily
               WHERE day BETWEEN $1 AND $2 AND ($3::int IS NULL OR department_id = $3)
               GROUP BY category, criterion";
    let rows = client
        .query(sql, &[&scope.from, &scope.to, &scope.department])
        .await?;
    Ok(rows
        .iter()
        .map(|r| ((text(r.get(0)), text(r.get(1))), r.get(2)))
        .collect())
}

fn text(v: Option<String>) -> String {
    v.unwrap_or_default()
}

/// Operators with scored or not-sales calls in the period, most calls first.
async fn operators(client: &Client, scope: &Scope) -> Result<Vec<Operator>, tokio_postgres::Error> {
    let sql = format!(
        "WITH d AS (SELECT operator_id, max(operator_name) AS operator_name,
                           sum(calls_not_sales)::bigint AS not_sales
                    FROM v_operator_daily WHERE {SCOPE} AND operator_id IS NOT NULL
                    GROUP BY operator_id),
              s AS (SELECT operator_id, count(*) AS calls, avg(performance_percentage)::float8 AS avg_pct
                    FROM v_scored_calls WHERE {SCOPE} AND operator_id IS NOT NULL
                    GROUP BY operator_id)
         SELECT d.operator_id, d.operator_name, COALESCE(s.calls, 0), d.not_sales, s.avg_pct
         FROM d LEFT JOIN s USING (operator_id)
         ORDER BY COALESCE(s.calls, 0) DESC, d.operator_id"
    );
    let rows = client.query(&sql, &scope.params()).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let id: i32 = r.get(0);
            Operator {
                id,
                name: r
                    .get::<_, Option<String>>(1)
                    .unwrap_or_else(|| format!("#{id}")),
                calls_scored: r.get(2),
                not_sales: r.get(3),
                avg_pct: r.get(4),
                daily: Vec::new(),
                criteria: BTreeMap::new(),
                recommendations: Vec::new(),
                recommendations_total: 0,
            }
        })
        .collect())
}

/// The sparkline's points: v_operator_daily's mean per day (summed over departments,
/// weighted by calls, for an operator who moved department that day).
async fn daily_per_operator(
    client: &Client,
    scope: &Scope,
    operators: &mut [Operator],
) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "SELECT operator_id, day,
                (sum(avg_performance_percentage * calls_scored) / NULLIF(sum(calls_scored), 0))::float8
         FROM v_operator_daily WHERE {SCOPE} AND operator_id IS NOT NULL AND calls_scored > 0
         GROUP BY operator_id, day ORDER BY operator_id, day"
    );
    let rows = client.query(&sql, &scope.params()).await?;
    let index: BTreeMap<i32, usize> = operators
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id, i))
        .collect();
    for r in &rows {
        if let (Some(&i), Some(v)) = (index.get(&r.get(0)), r.get::<_, Option<f64>>(2)) {
            operators[i].daily.push((r.get(1), v));
        }
    }
    Ok(())
}

/// The open recommendations of the report's operators, most urgent and latest first.
async fn recommendations(
    client: &Client,
    scope: &Scope,
    operators: &mut [Operator],
) -> Result<(), tokio_postgres::Error> {
    let ids: Vec<i32> = operators.iter().map(|o| o.id).collect();
    let sql = "SELECT operator_id, day, call_id, priority, category, issue, recommendation, total
               FROM (SELECT r.*,
                            row_number() OVER (PARTITION BY operator_id
                                               ORDER BY priority_rank, start_time DESC, recommendation_id) AS n,
                            count(*) OVER (PARTITION BY operator_id) AS total
                     FROM v_open_recommendations r
                     WHERE operator_id = ANY($1) AND ($2::int IS NULL OR department_id = $2)) t
               WHERE n <= $3
               ORDER BY operator_id, n";
    let rows = client
        .query(sql, &[&ids, &scope.department, &RECOMMENDATIONS_SHOWN])
        .await?;
    let index: BTreeMap<i32, usize> = operators
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id, i))
        .collect();
    for r in &rows {
        let Some(&i) = index.get(&r.get(0)) else {
            continue;
        };
        let op = &mut operators[i];
        op.recommendations_total = r.get(7);
        op.recommendations.push(Recommendation {
            day: r.get(1),
            call_id: r.get(2),
            priority: r.get(3),
            category: r.get(4),
            issue: r.get(5),
            recommendation: r.get(6),
        });
    }
    Ok(())
}

/// Whether the database has the review-queue view.
pub async fn has_review_queue(client: &Client) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT to_regclass('v_review_queue') IS NOT NULL", &[])
        .await?
        .get(0))
}

async fn review(
    client: &Client,
    scope: &Scope,
) -> Result<Option<Vec<ReviewItem>>, tokio_postgres::Error> {
    if !has_review_queue(client).await? {
        return Ok(None);
    }
    let sql = format!(
        "SELECT call_id, day, operator_id, operator_name, performance_percentage,
                review_reasons, failing_criteria
         FROM v_review_queue WHERE {SCOPE}
         ORDER BY performance_percentage NULLS LAST, call_id
         LIMIT $5"
    );
    let mut params = scope.params().to_vec();
    params.push(&REVIEW_SHOWN);
    let rows = client.query(&sql, &params).await?;
    rows.iter()
        .map(|r| {
            let reasons: Vec<Option<String>> = r.try_get(5)?;
            let failing: Json<Vec<FailingCriterion>> = r.try_get(6)?;
            Ok(ReviewItem {
                call_id: r.try_get(0)?,
                day: r.try_get(1)?,
                operator_id: r.try_get(2)?,
                operator_name: r.try_get(3)?,
                performance_percentage: r.try_get(4)?,
                reasons: reasons.into_iter().flatten().collect(),
                failing: failing.0,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
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
