//! The report's reads (`callq report`), from the BI views (db/migrations/0003_bi_views.sql
//! and 0006_quality.sql) so its numbers are the ones a BI tool shows. The report's shapes
//! and how they are put together are in `report::data`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use tokio_postgres::Client;
use tokio_postgres::types::{Json, ToSql};

use super::{Store, StoreError};
use crate::report::data::{
    Day, FailingCriterion, Headline, Operator, OperatorCriterion, RECOMMENDATIONS_SHOWN,
    REVIEW_SHOWN, Recommendation, ReviewItem, Scope, Summary,
};

/// The WHERE clause every view query shares; $1..$4 are [`params`].
const SCOPE: &str = "day BETWEEN $1 AND $2 \
     AND ($3::int IS NULL OR department_id = $3) \
     AND ($4::int IS NULL OR operator_id = $4)";

fn params(scope: &Scope) -> [&(dyn ToSql + Sync); 4] {
    [&scope.from, &scope.to, &scope.department, &scope.operator]
}

impl Store {
    /// The latest day with a scored call in the department/operator, for the default range.
    pub async fn latest_scored_day(
        &self,
        department: Option<i32>,
        operator: Option<i32>,
    ) -> Result<Option<NaiveDate>, StoreError> {
        let client = self.client().await?;
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
    pub async fn report_summary(&self, scope: &Scope) -> Result<Summary, StoreError> {
        let client = self.client().await?;
        Ok(Summary {
            headline: headline_of(&client, scope).await?,
            previous: headline_of(&client, &scope.previous()).await?,
            days: days(&client, scope).await?,
            review: review(&client, scope).await?,
        })
    }

    /// The operators with their sparklines and open recommendations, on one connection.
    pub async fn report_operators(&self, scope: &Scope) -> Result<Vec<Operator>, StoreError> {
        let client = self.client().await?;
        let mut operators = operators(&client, scope).await?;
        daily_per_operator(&client, scope, &mut operators).await?;
        recommendations(&client, scope, &mut operators).await?;
        Ok(operators)
    }

    /// Each operator's share per criterion. v_criterion_daily has no operator column, so
    /// this is the view's mean of score / max_score taken over the evaluations of the calls
    /// v_scored_calls lists, per operator (in float8: over millions of rows numeric
    /// division is twice as slow, and the value is only shown to one decimal).
    pub async fn operator_criteria(
        &self,
        scope: &Scope,
    ) -> Result<Vec<OperatorCriterion>, StoreError> {
        let client = self.client().await?;
        let sql = "SELECT s.operator_id, e.category, e.criterion, min(e.id),
                          avg(e.score / NULLIF(e.max_score, 0))::float8
                   FROM call_evaluations e
                   JOIN v_scored_calls s ON s.call_id = e.call_id
                   WHERE s.day BETWEEN $1 AND $2
                     AND ($3::int IS NULL OR s.department_id = $3)
                     AND ($4::int IS NULL OR s.operator_id = $4)
                     AND s.operator_id IS NOT NULL
                   GROUP BY s.operator_id, e.category, e.criterion";
        let rows = client.query(sql, &params(scope)).await?;
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

    /// The department-wide share of each criterion from v_criterion_daily, its days
    /// weighted by their evaluations.
    pub async fn department_criteria(
        &self,
        scope: &Scope,
    ) -> Result<BTreeMap<(String, String), Option<f64>>, StoreError> {
        let client = self.client().await?;
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
}

/// Scored calls and their mean from v_scored_calls, not-sales calls from v_operator_daily.
async fn headline_of(client: &Client, scope: &Scope) -> Result<Headline, tokio_postgres::Error> {
    let sql = format!(
        "SELECT (SELECT count(*) FROM v_scored_calls WHERE {SCOPE}),
                (SELECT COALESCE(sum(calls_not_sales), 0)::bigint FROM v_operator_daily WHERE {SCOPE}),
                (SELECT avg(performance_percentage)::float8 FROM v_scored_calls WHERE {SCOPE})"
    );
    let row = client.query_one(&sql, &params(scope)).await?;
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
    let rows = client.query(&sql, &params(scope)).await?;
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
    let rows = client.query(&sql, &params(scope)).await?;
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
    let rows = client.query(&sql, &params(scope)).await?;
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
async fn has_review_queue(client: &Client) -> Result<bool, tokio_postgres::Error> {
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
    let mut with_limit = params(scope).to_vec();
    with_limit.push(&REVIEW_SHOWN);
    let rows = client.query(&sql, &with_limit).await?;
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
