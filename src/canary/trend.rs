//! The canary's arithmetic, pure: agreement of one pass with the human scores and with the
//! model's stored scores (the statistics of `calibrate report`), and the trend over nights —
//! each night against the median of the nights before it, with what changed between them.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::calibration::report::{self, PairRow};
use crate::calibration::stats::{self, Agreement};
use crate::store::{CanaryAgreement, CanaryNightRow};

/// Earlier nights whose median a night is held against.
pub const TRAILING_NIGHTS: usize = 7;
/// Earlier nights needed before a night can be said to have fallen.
pub const MIN_HISTORY: usize = 3;

/// One pass's scores as its experiment keeps them: per call, (category, criterion, score,
/// max) of each criterion of an answer that scored the call as a sale.
pub(crate) type Scores = HashMap<i64, Vec<(String, String, f64, f64)>>;

/// [`Scores`] from (call, category, criterion, score, max) rows.
pub(crate) fn scores(rows: Vec<(i64, String, String, f64, f64)>) -> Scores {
    let mut out = Scores::new();
    for (id, category, criterion, score, max) in rows {
        out.entry(id)
            .or_default()
            .push((category, criterion, score, max));
    }
    out
}

/// Tonight's score of each human score's call and criterion: the pairs `calibrate report`
/// builds, with tonight's answers as the model.
pub(crate) fn against_humans(humans: &[PairRow], answers: &Scores) -> Vec<PairRow> {
    humans
        .iter()
        .map(|h| {
            let own = tonight(answers, h.call_id, &h.category, &h.criterion);
            PairRow {
                model: own.map(|(s, _)| s),
                max_score: own.map(|(_, m)| m),
                ..h.clone()
            }
        })
        .collect()
}

/// Tonight's scores against the scores stored when the calls were scored (the stored score
/// in the place of the human one).
pub(crate) fn against_stored(
    stored: &[(i64, String, String, f64, f64)],
    answers: &Scores,
) -> Vec<PairRow> {
    stored
        .iter()
        .map(|(id, category, criterion, score, max)| {
            let own = tonight(answers, *id, category, criterion);
            PairRow {
                call_id: *id,
                category: category.clone(),
                criterion: criterion.clone(),
                reviewer: String::new(),
                human: *score,
                model: own.map(|(s, _)| s),
                max_score: Some(own.map_or(*max, |(_, m)| m)),
            }
        })
        .collect()
}

fn tonight(answers: &Scores, call_id: i64, category: &str, criterion: &str) -> Option<(f64, f64)> {
    answers
        .get(&call_id)?
        .iter()
        .find(|(c, k, _, _)| c == category && k == criterion)
        .map(|(_, _, score, max)| (*score, *max))
}

/// The total (every criterion's pairs pooled; empty category and criterion) first, then
/// each criterion as `calibrate report` computes it.
pub(crate) fn measure(against: &'static str, pairs: &[PairRow]) -> Vec<CanaryAgreement> {
    let pooled: Vec<(f64, f64)> = pairs
        .iter()
        .filter_map(|p| Some((p.model?, p.human)))
        .collect();
    let mut out = vec![CanaryAgreement {
        against,
        category: String::new(),
        criterion: String::new(),
        agreement: stats::agreement(&pooled),
    }];
    out.extend(
        report::build(pairs)
            .model
            .criteria
            .into_iter()
            .map(|c| CanaryAgreement {
                against,
                category: c.category,
                criterion: c.criterion,
                agreement: c.agreement,
            }),
    );
    out
}

pub(crate) fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The figures a night is judged by: agreement with the humans, or with the stored scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    Human,
    Own,
}

impl Against {
    pub const ALL: [Against; 2] = [Against::Human, Against::Own];

    pub fn as_str(self) -> &'static str {
        match self {
            Against::Human => "human",
            Against::Own => "self",
        }
    }

    pub fn of(self, row: &CanaryNightRow) -> Option<&Agreement> {
        match self {
            Against::Human => row.human.as_ref(),
            Against::Own => row.own.as_ref(),
        }
    }
}

/// The statistics published per night.
pub const STATS: [&str; 4] = ["exact", "within1", "qwk", "mae"];

pub fn stat(a: &Agreement, name: &str) -> Option<f64> {
    match name {
        "exact" => a.exact,
        "within1" => a.within1,
        "qwk" => a.qwk,
        "mae" => a.mae,
        _ => None,
    }
}

/// What changed since the night before: the checklist, the prompt, the model the gateway
/// reported, or calls of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub what: &'static str,
    pub from: String,
    pub to: String,
}

/// A night in the trend.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendNight {
    pub row: CanaryNightRow,
    /// Median exact agreement with the humans of the [`TRAILING_NIGHTS`] measured nights
    /// before this one; `None` before [`MIN_HISTORY`] of them.
    pub median: Option<f64>,
    /// The margin the night was judged with (CANARY_MARGIN at the time).
    pub margin: f64,
    /// Agreement fell below the median by more than the margin.
    pub dropped: bool,
    pub changes: Vec<Change>,
}

impl TrendNight {
    pub fn to_json(&self) -> Value {
        let a = |x: Option<&Agreement>| {
            x.map_or(Value::Null, |a| {
                json!({"n": a.n, "exact": a.exact, "within1": a.within1, "qwk": a.qwk,
                       "mae": a.mae, "bias": a.bias})
            })
        };
        let r = &self.row;
        json!({
            "night": r.night.to_string(),
            "department_id": r.department_id,
            "started_at": r.started_at.to_rfc3339(),
            "status": r.status,
            "why": r.why,
            "experiment_id": r.experiment_id,
            "calls": r.calls,
            "calls_failed": r.calls_failed,
            "calls_replaced": r.calls_replaced,
            "checklist_version": r.checklist_version,
            "prompt_version": r.prompt_version,
            "model": r.model,
            "model_reported": r.model_reported,
            "cost_usd": r.cost_usd,
            "human": a(r.human.as_ref()),
            "self": a(r.own.as_ref()),
            "trailing_median": self.median,
            "margin": self.margin,
            "dropped": self.dropped,
            "changes": self.changes.iter().map(|c| json!({"what": c.what, "from": c.from, "to": c.to})).collect::<Vec<_>>(),
        })
    }
}

/// A version hash shortened to 12 characters (as `git` shortens), a model name whole.
fn short(what: &str, v: &Option<String>) -> String {
    let keep = if what == "model" { usize::MAX } else { 12 };
    v.as_deref()
        .map_or("—".to_string(), |s| s.chars().take(keep).collect())
}

/// One department's nights, oldest first, each judged against the ones before it.
/// `margin` is used for nights that did not record theirs.
pub fn trend(rows: &[CanaryNightRow], margin: f64) -> Vec<TrendNight> {
    let mut out: Vec<TrendNight> = Vec::with_capacity(rows.len());
    let mut history: Vec<f64> = Vec::new();
    let mut last_measured: Option<&CanaryNightRow> = None;
    for row in rows {
        let margin = row.margin.unwrap_or(margin);
        let window = &history[history.len().saturating_sub(TRAILING_NIGHTS)..];
        let median = (window.len() >= MIN_HISTORY)
            .then(|| median(window))
            .flatten();
        let exact = row.human.as_ref().and_then(|a| a.exact);
        let measured = row.status == "ok" && exact.is_some();
        let dropped =
            measured && matches!((median, exact), (Some(m), Some(x)) if m - x > margin + 1e-9);
        let mut changes = Vec::new();
        if measured {
            if let Some(prev) = last_measured {
                for (what, from, to) in [
                    ("checklist", &prev.checklist_version, &row.checklist_version),
                    ("prompt", &prev.prompt_version, &row.prompt_version),
                    ("model", &prev.model_reported, &row.model_reported),
                ] {
                    // A model name the answers did not report is unknown, not changed.
                    let unknown = what == "model" && (from.is_none() || to.is_none());
                    if from != to && !unknown {
                        changes.push(Change {
                            what,
                            from: short(what, from),
                            to: short(what, to),
                        });
                    }
                }
                if row.calls_replaced > 0 {
                    changes.push(Change {
                        what: "calls",
                        from: String::new(),
                        to: format!("{} replaced", row.calls_replaced),
                    });
                }
            }
            last_measured = Some(row);
            history.push(exact.expect("measured"));
        }
        out.push(TrendNight {
            row: row.clone(),
            median,
            margin,
            dropped,
            changes,
        });
    }
    out
}

/// The median of each figure over the measured nights before the last one, as
/// `trend` takes them: what the last night is held against.
pub fn trailing_medians(rows: &[CanaryNightRow]) -> Vec<(Against, &'static str, f64)> {
    let before: Vec<&CanaryNightRow> = rows
        .iter()
        .take(rows.len().saturating_sub(1))
        .filter(|r| r.status == "ok" && r.human.is_some())
        .collect();
    let window = &before[before.len().saturating_sub(TRAILING_NIGHTS)..];
    if window.len() < MIN_HISTORY {
        return Vec::new();
    }
    let mut out = Vec::new();
    for against in Against::ALL {
        for name in STATS {
            let xs: Vec<f64> = window
                .iter()
                .filter_map(|r| against.of(r).and_then(|a| stat(a, name)))
                .collect();
            if let Some(m) = median(&xs) {
                out.push((against, name, m));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, exact: Option<f64>, checklist: &str) -> CanaryNightRow {
        CanaryNightRow {
            id,
            department_id: 1,
            night: chrono::NaiveDate::from_ymd_opt(2025, 8, 1).unwrap()
                + chrono::Days::new(id as u64),
            started_at: chrono::Utc::now(),
            status: if exact.is_some() { "ok" } else { "skipped" }.into(),
            why: None,
            experiment_id: None,
            checklist_version: Some(checklist.into()),
            prompt_version: Some("p".into()),
            model: Some("m".into()),
            model_reported: Some("m".into()),
            calls: 10,
            calls_failed: 0,
            calls_replaced: 0,
            cost_usd: None,
            margin: None,
            human: exact.map(|x| Agreement {
                n: 10,
                exact: Some(x),
                within1: Some(1.0),
                qwk: Some(0.5),
                mae: Some(1.0 - x),
                bias: Some(0.0),
            }),
            own: None,
        }
    }

    #[test]
    fn a_night_is_judged_against_the_median_of_the_nights_before_it() {
        let rows = vec![
            row(1, Some(0.80), "a"),
            row(2, Some(0.90), "a"),
            row(3, None, "a"), // could not run: no figure, no history
            row(4, Some(0.84), "a"),
            row(5, Some(0.79), "a"), // median 0.84: 0.05 below, within a 0.05 margin
            row(6, Some(0.70), "b"), // median of .80 .90 .84 .79 = 0.82: 0.12 below
        ];
        let t = trend(&rows, 0.05);
        assert_eq!(t[0].median, None);
        assert_eq!(t[2].median, None, "two measured nights are not enough");
        assert!(!t[2].dropped);
        assert!((t[4].median.unwrap() - 0.84).abs() < 1e-9);
        assert!(!t[4].dropped, "exactly at the margin is not a fall");
        assert!((t[5].median.unwrap() - 0.82).abs() < 1e-9);
        assert!(t[5].dropped);
        assert_eq!(t[5].changes.len(), 1);
        assert_eq!(t[5].changes[0].what, "checklist");
        assert!(t[4].changes.is_empty());
        let m = trailing_medians(&rows);
        let exact = m
            .iter()
            .find(|(a, s, _)| *a == Against::Human && *s == "exact")
            .unwrap();
        assert!((exact.2 - 0.82).abs() < 1e-9);
        assert_eq!(t[5].to_json()["dropped"], true);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
