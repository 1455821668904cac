//! ReportData → what the template shows: formatted texts, raw values for the page's
//! `data-*` attributes (the browser check compares those with SQL) and chart geometry.

use std::collections::BTreeMap;

use serde::Serialize;

use super::charts::{self, Trend};
use super::data::{Headline, ReportData};
use super::i18n;
use crate::config::ReportLang;

#[derive(Debug, Serialize)]
pub struct Page {
    pub lang: &'static str,
    pub t: BTreeMap<&'static str, &'static str>,
    pub from: String,
    pub to: String,
    pub scope: String,
    pub department: Option<i32>,
    pub operator: Option<i32>,
    pub generated: String,
    pub has_data: bool,
    pub figures: Vec<Figure>,
    pub trend: Trend,
    pub criteria: Vec<CriterionView>,
    pub operators: Vec<OperatorView>,
    /// None: the database has no review queue, so the section is left out.
    pub review: Option<Vec<ReviewView>>,
    pub spark_w: f64,
    pub spark_h: f64,
}

#[derive(Debug, Serialize)]
pub struct Figure {
    pub key: &'static str,
    pub label: &'static str,
    /// Unrounded, for data-value; empty when there is no value.
    pub value: String,
    pub text: String,
    pub previous: String,
    pub previous_text: String,
    pub delta: String,
    /// "up", "down" or "flat".
    pub direction: &'static str,
}

#[derive(Debug, Serialize)]
pub struct CriterionView {
    pub category: String,
    pub criterion: String,
    pub share: String,
    pub text: String,
    pub colour: String,
}

#[derive(Debug, Serialize)]
pub struct Cell {
    pub share: String,
    pub text: String,
    pub colour: String,
}

#[derive(Debug, Serialize)]
pub struct OperatorView {
    pub id: i32,
    pub name: String,
    pub calls: i64,
    pub calls_text: String,
    pub not_sales: i64,
    pub avg: String,
    pub avg_text: String,
    pub spark: String,
    /// A lone day is drawn as a dot, a line needs two.
    pub spark_dot: Option<(f64, f64)>,
    pub weakest: Option<String>,
    pub weakest_text: String,
    pub cells: Vec<Option<Cell>>,
    pub recommendations: Vec<RecommendationView>,
    pub recommendations_more: i64,
}

#[derive(Debug, Serialize)]
pub struct RecommendationView {
    pub day: String,
    pub call_id: i64,
    pub priority: String,
    pub category: String,
    pub issue: String,
    pub recommendation: String,
}

#[derive(Debug, Serialize)]
pub struct ReviewView {
    pub call_id: String,
    pub operator_id: Option<i64>,
    pub operator_name: String,
    pub day: String,
    pub pct: String,
    pub reasons: Vec<String>,
    pub failing: Vec<(String, String, String)>,
}

fn raw(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.6}")).unwrap_or_default()
}

pub fn page(data: &ReportData, lang: ReportLang, generated: String) -> Page {
    let t = i18n::labels(lang);
    let dash = t["no_value"].to_string();
    let pct = |v: Option<f64>| v.map_or(dash.clone(), |v| format!("{} %", i18n::decimal(lang, v)));
    let share_text = |v: f64| format!("{} %", i18n::decimal(lang, v * 100.0));
    let scope = {
        let mut parts = vec![match data.scope.department {
            Some(d) => format!("{} {d}", t["department"]),
            None => t["all_departments"].to_string(),
        }];
        if let Some(op) = data.scope.operator {
            parts.push(format!("{} {op}", t["operator"]));
        }
        parts.join(", ")
    };
    let figures = figures(&data.headline, &data.previous, lang, &t);
    let trend = charts::trend(&data.days, |v| pct(Some(v)));
    let criteria = data
        .criteria
        .iter()
        .map(|c| CriterionView {
            category: c.category.clone(),
            criterion: c.criterion.clone(),
            share: raw(c.share),
            text: c.share.map_or(dash.clone(), share_text),
            colour: c.share.map(charts::heat_colour).unwrap_or_default(),
        })
        .collect();
    let slots = data.days.len();
    let day_index: BTreeMap<chrono::NaiveDate, usize> = data
        .days
        .iter()
        .enumerate()
        .map(|(i, d)| (d.day, i))
        .collect();
    let operators = data
        .operators
        .iter()
        .map(|op| {
            let points: Vec<(usize, f64)> = op
                .daily
                .iter()
                .filter_map(|(d, v)| Some((*day_index.get(d)?, *v)))
                .collect();
            let spark = charts::sparkline(&points, slots);
            let spark_dot = (points.len() == 1).then(|| {
                let (x, y) = spark.split_once(',').expect("one point");
                (x.parse().unwrap_or(0.0), y.parse().unwrap_or(0.0))
            });
            // The weakest criterion: lowest share, the first in checklist order on a tie.
            let weakest = op
                .criteria
                .iter()
                .min_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(b.0)))
                .map(|(i, s)| (data.criteria[*i].criterion.clone(), *s));
            OperatorView {
                id: op.id,
                name: op.name.clone(),
                calls: op.calls_scored,
                calls_text: i18n::integer(lang, op.calls_scored),
                not_sales: op.not_sales,
                avg: raw(op.avg_pct),
                avg_text: pct(op.avg_pct),
                spark,
                spark_dot,
                weakest_text: weakest
                    .as_ref()
                    .map_or(dash.clone(), |(_, s)| share_text(*s)),
                weakest: weakest.map(|(name, _)| name),
                cells: (0..data.criteria.len())
                    .map(|i| {
                        op.criteria.get(&i).map(|s| Cell {
                            share: raw(Some(*s)),
                            text: i18n::decimal(lang, s * 100.0),
                            colour: charts::heat_colour(*s),
                        })
                    })
                    .collect(),
                recommendations: op
                    .recommendations
                    .iter()
                    .map(|r| RecommendationView {
                        day: r.day.to_string(),
                        call_id: r.call_id,
                        priority: r.priority.clone().unwrap_or_default(),
                        category: r.category.clone().unwrap_or_default(),
                        issue: r.issue.clone().unwrap_or_default(),
                        recommendation: r.recommendation.clone().unwrap_or_default(),
                    })
                    .collect(),
                recommendations_more: (op.recommendations_total - op.recommendations.len() as i64)
                    .max(0),
            }
        })
        .collect();
    let review = data.review.as_ref().map(|items| {
        items
            .iter()
            .map(|r| ReviewView {
                call_id: r.call_id.map(|c| c.to_string()).unwrap_or_default(),
                operator_id: r.operator_id,
                operator_name: r.operator_name.clone().unwrap_or_default(),
                day: r.day.clone().unwrap_or_default(),
                pct: pct(r.performance_percentage),
                reasons: r.reasons.clone(),
                failing: r
                    .failing
                    .iter()
                    .map(|f| {
                        (
                            f.criterion.clone(),
                            f.score.clone().unwrap_or_default(),
                            f.evidence.clone().unwrap_or_default(),
                        )
                    })
                    .collect(),
            })
            .collect()
    });
    Page {
        lang: i18n::code(lang),
        from: data.scope.from.to_string(),
        to: data.scope.to.to_string(),
        scope,
        department: data.scope.department,
        operator: data.scope.operator,
        generated,
        has_data: data.headline.calls_scored > 0,
        figures,
        trend,
        criteria,
        operators,
        review,
        spark_w: charts::SPARK_W,
        spark_h: charts::SPARK_H,
        t,
    }
}

fn direction(delta: f64) -> &'static str {
    match (delta * 10.0).round() {
        d if d > 0.0 => "up",
        d if d < 0.0 => "down",
        _ => "flat",
    }
}

fn figures(
    now: &Headline,
    before: &Headline,
    lang: ReportLang,
    t: &BTreeMap<&'static str, &'static str>,
) -> Vec<Figure> {
    let count = |key: &'static str, label: &'static str, a: i64, b: i64| {
        // Counts change in per cent of the previous period; from nothing there is no ratio.
        let (delta, dir) = if b > 0 {
            let change = 100.0 * (a - b) as f64 / b as f64;
            (
                format!("{} %", i18n::signed(lang, change)),
                direction(change),
            )
        } else {
            (String::new(), "flat")
        };
        Figure {
            key,
            label,
            value: a.to_string(),
            text: i18n::integer(lang, a),
            previous: b.to_string(),
            previous_text: i18n::integer(lang, b),
            delta,
            direction: dir,
        }
    };
    let avg = {
        let (delta, dir) = match (now.avg_pct, before.avg_pct) {
            (Some(a), Some(b)) => (
                format!("{} {}", i18n::signed(lang, a - b), t["pp"]),
                direction(a - b),
            ),
            _ => (String::new(), "flat"),
        };
        let text = |v: Option<f64>| {
            v.map_or(t["no_value"].to_string(), |v| {
                format!("{} %", i18n::decimal(lang, v))
            })
        };
        Figure {
            key: "avg_pct",
            label: t["avg_pct"],
            value: raw(now.avg_pct),
            text: text(now.avg_pct),
            previous: raw(before.avg_pct),
            previous_text: text(before.avg_pct),
            delta,
            direction: dir,
        }
    };
    vec![
        count(
            "calls_scored",
            t["calls_scored"],
            now.calls_scored,
            before.calls_scored,
        ),
        count("not_sales", t["not_sales"], now.not_sales, before.not_sales),
        avg,
    ]
}
