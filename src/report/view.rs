//! ReportData → what the template shows: formatted texts, raw values for the page's
//! `data-*` attributes (the browser check compares those with SQL) and chart geometry.

use std::collections::BTreeMap;

use serde::Serialize;

use super::charts::{self, Trend};
use super::data::{FailingCriterion, Headline, ReportData, ReviewItem, StabilityNight};
use super::i18n;
use crate::config::ReportLang;
use crate::domain::ReviewReason;

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
    pub stability: StabilityView,
    pub spark_w: f64,
    pub spark_h: f64,
}

/// The "Model stability" section: the canary's nights and their chart.
#[derive(Debug, Serialize)]
pub struct StabilityView {
    pub nights: Vec<StabilityRow>,
    pub chart: charts::Stability,
    /// Show the department column (a report of every department).
    pub departments: bool,
}

#[derive(Debug, Serialize)]
pub struct StabilityRow {
    pub department_id: i32,
    pub night: String,
    pub status: String,
    pub status_text: String,
    pub why: String,
    pub calls: i32,
    /// Unrounded exact agreement with human QA, for `data-exact`; empty without one.
    pub exact: String,
    pub exact_text: String,
    pub within1_text: String,
    pub qwk_text: String,
    pub mae_text: String,
    pub own_text: String,
    pub median_text: String,
    pub dropped: bool,
    pub changes: Vec<String>,
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
    /// The change: calls (and per cent) for counts, percentage points for the average;
    /// empty when there is nothing to compare.
    pub delta: String,
    /// The change in per cent, unrounded, for `data-delta-pct`; empty when not shown.
    pub delta_pct: String,
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
    pub call_id: i64,
    pub operator_id: Option<i32>,
    pub operator_name: String,
    pub day: String,
    pub pct: String,
    pub reasons: Vec<Tag>,
    pub failing: Vec<FailingView>,
}

/// A code and its words on the page (`data-reason` / `data-why` carry the code).
#[derive(Debug, Serialize, PartialEq)]
pub struct Tag {
    pub code: String,
    pub text: String,
    /// A longer explanation for the tooltip; empty when none.
    pub hint: String,
}

/// A criterion of a queued call and why it is listed.
#[derive(Debug, Serialize)]
pub struct FailingView {
    pub category: String,
    pub criterion: String,
    /// `3/10`; empty without a score.
    pub score: String,
    pub why: Vec<Tag>,
    pub evidence: String,
    /// "true", "false" or "" (no quote to check), for `data-verified`.
    pub verified: &'static str,
}

/// How many a count's previous period needs before its change is also given in per cent
/// (and both periods before the average's change is given): from 1 call to 54 is "+5300 %",
/// a figure that says nothing.
pub const MIN_BASE_FOR_CHANGE: i64 = 20;

fn stability_view(
    nights: &[StabilityNight],
    lang: ReportLang,
    t: &BTreeMap<&'static str, &'static str>,
) -> StabilityView {
    let dash = t["no_value"];
    let share = |v: Option<f64>| {
        v.map_or(dash.to_string(), |v| {
            format!("{} %", i18n::decimal(lang, v * 100.0))
        })
    };
    let num = |v: Option<f64>| {
        v.map_or(dash.to_string(), |v| {
            let s = format!("{v:.2}");
            if lang == ReportLang::Ru {
                s.replace('.', ",")
            } else {
                s
            }
        })
    };
    let departments = nights
        .iter()
        .map(|n| n.department_id)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let rows: Vec<StabilityRow> = nights
        .iter()
        .map(|n| StabilityRow {
            department_id: n.department_id,
            night: n.night.to_string(),
            status: n.status.clone(),
            status_text: t
                .get(format!("status_{}", n.status).as_str())
                .map_or(n.status.clone(), |s| s.to_string()),
            why: n.why.clone().unwrap_or_default(),
            calls: n.calls,
            exact: raw(n.exact),
            exact_text: share(n.exact),
            within1_text: share(n.within1),
            qwk_text: num(n.qwk),
            mae_text: num(n.mae),
            own_text: share(n.own_exact),
            median_text: share(n.median),
            dropped: n.dropped,
            changes: n
                .changes
                .iter()
                .map(|(what, from, to)| {
                    let name = t
                        .get(format!("change_{what}").as_str())
                        .copied()
                        .unwrap_or(what.as_str());
                    if from.is_empty() {
                        format!("{name}: {to}")
                    } else {
                        format!("{name} {from} → {to}")
                    }
                })
                .collect(),
        })
        .collect();
    // One department's line at a time: the chart is drawn when the nights are of one.
    let points: Vec<charts::StabilityPoint> = if departments {
        Vec::new()
    } else {
        nights
            .iter()
            .map(|n| (n.exact, n.own_exact, !n.changes.is_empty()))
            .collect()
    };
    let labels: Vec<String> = nights.iter().map(|n| n.night.to_string()).collect();
    StabilityView {
        nights: rows,
        chart: charts::stability(&points, &labels, |v| share(Some(v))),
        departments,
    }
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
    let stability = stability_view(&data.stability, lang, &t);
    let review = data.review.as_ref().map(|items| {
        items
            .iter()
            .map(|r| review_view(r, lang, &t, &pct))
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
        stability,
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

fn tag(code: &str, text: impl Into<String>, hint: &str) -> Tag {
    Tag {
        code: code.to_string(),
        text: text.into(),
        hint: hint.to_string(),
    }
}

fn review_view(
    r: &ReviewItem,
    lang: ReportLang,
    t: &BTreeMap<&'static str, &'static str>,
    pct: &dyn Fn(Option<f64>) -> String,
) -> ReviewView {
    let critical_missed = r
        .reasons
        .iter()
        .any(|c| c == ReviewReason::CriticalMissed.as_str());
    // The database keeps no critical mark per criterion (the checklist has it), but a call
    // queued as critical_missed has one at 0: certain when only one criterion is at 0.
    let at_zero = |f: &FailingCriterion| matches!(f.score, Some(s) if s <= 0.0);
    let zeros = r.failing.iter().filter(|f| at_zero(f)).count();
    let failing = r
        .failing
        .iter()
        .map(|f| {
            let mut why = Vec::new();
            if let (Some(score), Some(max)) = (f.score, f.max_score)
                && score < max
            {
                why.push(tag(
                    "points_lost",
                    format!(
                        "{} {} {} {}",
                        t["lost"],
                        i18n::points(lang, max - score),
                        t["of"],
                        i18n::points(lang, max)
                    ),
                    "",
                ));
            }
            if critical_missed && at_zero(f) {
                why.push(if zeros == 1 {
                    tag("critical", t["why_critical"], "")
                } else {
                    tag(
                        "critical_possible",
                        t["why_critical_possible"],
                        t["why_critical_possible_hint"],
                    )
                });
            }
            if f.evidence_verified == Some(false) {
                why.push(tag(
                    "quote_not_found",
                    t["quote_not_found"],
                    t["quote_not_found_hint"],
                ));
            }
            FailingView {
                category: f.category.clone().unwrap_or_default(),
                criterion: f.criterion.clone().unwrap_or_default(),
                score: match (f.score, f.max_score) {
                    (Some(s), Some(m)) => {
                        format!("{}/{}", i18n::points(lang, s), i18n::points(lang, m))
                    }
                    (Some(s), None) => i18n::points(lang, s),
                    _ => String::new(),
                },
                why,
                evidence: f.evidence.clone().unwrap_or_default(),
                verified: match f.evidence_verified {
                    Some(true) => "true",
                    Some(false) => "false",
                    None => "",
                },
            }
        })
        .collect();
    ReviewView {
        call_id: r.call_id,
        operator_id: r.operator_id,
        operator_name: r.operator_name.clone().unwrap_or_default(),
        day: r.day.to_string(),
        pct: pct(r.performance_percentage.map(f64::from)),
        reasons: r
            .reasons
            .iter()
            .map(|code| tag(code, i18n::review_reason(lang, code).unwrap_or(code), ""))
            .collect(),
        failing,
    }
}

fn figures(
    now: &Headline,
    before: &Headline,
    lang: ReportLang,
    t: &BTreeMap<&'static str, &'static str>,
) -> Vec<Figure> {
    let count = |key: &'static str, label: &'static str, a: i64, b: i64| {
        // The change in calls always; in per cent of the previous period only from a base
        // large enough for the ratio to mean something.
        let change = a - b;
        let percent = (b >= MIN_BASE_FOR_CHANGE).then(|| 100.0 * change as f64 / b as f64);
        let mut delta = i18n::signed_integer(lang, change);
        if let Some(p) = percent {
            delta.push_str(&format!(" ({} %)", i18n::signed(lang, p)));
        }
        Figure {
            key,
            label,
            value: a.to_string(),
            text: i18n::integer(lang, a),
            previous: b.to_string(),
            previous_text: i18n::integer(lang, b),
            delta,
            delta_pct: raw(percent),
            direction: direction(change as f64),
        }
    };
    let avg = {
        let comparable =
            now.calls_scored >= MIN_BASE_FOR_CHANGE && before.calls_scored >= MIN_BASE_FOR_CHANGE;
        let (delta, dir) = match (now.avg_pct, before.avg_pct) {
            (Some(a), Some(b)) if comparable => (
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
            previous_text: format!(
                "{} ({}: {})",
                text(before.avg_pct),
                t["calls_short"],
                i18n::integer(lang, before.calls_scored)
            ),
            delta,
            delta_pct: String::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headline(calls: i64, avg: f64) -> Headline {
        Headline {
            calls_scored: calls,
            not_sales: 0,
            avg_pct: Some(avg),
        }
    }

    #[test]
    fn a_change_is_in_per_cent_only_from_a_base_that_gives_it_meaning() {
        let t = i18n::labels(ReportLang::Ru);
        // One scored call before: the change is +53 calls, not "+5300 %".
        let f = figures(&headline(54, 70.0), &headline(1, 40.0), ReportLang::Ru, &t);
        assert_eq!(f[0].delta, "+53");
        assert_eq!(f[0].delta_pct, "");
        assert_eq!(f[0].previous_text, "1");
        assert_eq!((f[0].direction, f[2].delta.as_str()), ("up", ""));
        assert_eq!(f[2].previous_text, "40,0 % (звонков: 1)");
        let f = figures(&headline(30, 70.0), &headline(40, 72.5), ReportLang::Ru, &t);
        assert_eq!(f[0].delta, "−10 (−25,0 %)");
        assert_eq!(f[0].delta_pct, "-25.000000");
        assert_eq!((f[2].delta.as_str(), f[2].direction), ("−2,5 п.п.", "down"));
        let f = figures(&headline(0, 0.0), &headline(0, 0.0), ReportLang::En, &t);
        assert_eq!((f[0].delta.as_str(), f[0].direction), ("0", "flat"));
    }

    fn failing(criterion: &str, score: f64, max: f64, verified: Option<bool>) -> FailingCriterion {
        FailingCriterion {
            category: Some("Кат".into()),
            criterion: Some(criterion.into()),
            score: Some(score),
            max_score: Some(max),
            reason: None,
            evidence: verified.map(|_| "«цитата»".to_string()),
            evidence_verified: verified,
        }
    }

    fn item(reasons: &[&str], failing: Vec<FailingCriterion>) -> ReviewItem {
        ReviewItem {
            call_id: 42,
            day: "2025-08-07".parse().unwrap(),
            operator_id: Some(7),
            operator_name: Some("Иванова".into()),
            performance_percentage: Some(31),
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            failing,
        }
    }

    fn why(v: &FailingView) -> Vec<&str> {
        v.why.iter().map(|w| w.code.as_str()).collect()
    }

    #[test]
    fn each_listed_criterion_says_why_it_is_there_in_the_page_language() {
        let t = i18n::labels(ReportLang::Ru);
        let pct = |v: Option<f64>| format!("{v:?}");
        let r = item(
            &[
                "low_score",
                "critical_missed",
                "unverified_evidence",
                "new_code",
            ],
            vec![
                failing("Приветствие", 0.0, 10.0, None),
                failing("Бюджет", 1.5, 2.5, Some(true)),
                failing("Прощание", 1.0, 1.0, Some(false)),
            ],
        );
        let v = review_view(&r, ReportLang::Ru, &t, &pct);
        let reasons: Vec<&str> = v.reasons.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "низкий процент",
                "критичный критерий на нуле",
                "цитата не найдена в расшифровке",
                "new_code"
            ]
        );
        assert_eq!(why(&v.failing[0]), ["points_lost", "critical"]);
        assert_eq!(v.failing[0].why[0].text, "потеряно 10 из 10");
        assert_eq!(why(&v.failing[1]), ["points_lost"]);
        assert_eq!(v.failing[1].why[0].text, "потеряно 1 из 2,5");
        assert_eq!(
            (v.failing[1].score.as_str(), v.failing[1].verified),
            ("1,5/2,5", "true")
        );
        assert_eq!(why(&v.failing[2]), ["quote_not_found"]);
        assert_eq!(v.failing[2].verified, "false");

        // Two criteria at 0: the database cannot say which one is critical.
        let r = item(
            &["critical_missed"],
            vec![failing("А", 0.0, 5.0, None), failing("Б", 0.0, 5.0, None)],
        );
        let v = review_view(&r, ReportLang::En, &i18n::labels(ReportLang::En), &pct);
        assert_eq!(v.reasons[0].text, "critical criterion scored 0");
        assert_eq!(why(&v.failing[1]), ["points_lost", "critical_possible"]);
        // Without critical_missed a 0 is only points lost.
        let r = item(&["low_score"], vec![failing("А", 0.0, 5.0, None)]);
        assert_eq!(
            why(&review_view(&r, ReportLang::En, &t, &pct).failing[0]),
            ["points_lost"]
        );
    }
}
