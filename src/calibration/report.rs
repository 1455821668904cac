//! The calibration report: the model against human QA, and humans against each other
//! where a call has two or more reviewers (the ceiling the model can hope to reach).
//! Built from stored rows by pure code; `commands::calibrate` prints it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Value, json};

use super::stats::{Agreement, Totals, agreement, totals};

/// One human score, with the model's score of the same call and criterion when it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRow {
    pub call_id: i64,
    pub category: String,
    pub criterion: String,
    pub reviewer: String,
    pub human: f64,
    pub model: Option<f64>,
    /// The criterion's max score as stored with the model's evaluations.
    pub max_score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CriterionRow {
    pub category: String,
    pub criterion: String,
    pub agreement: Agreement,
}

/// Agreement of two raters per criterion and over whole calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub calls: usize,
    pub pairs: usize,
    /// Worst first: lowest kappa (undefined kappas last), then highest MAE.
    pub criteria: Vec<CriterionRow>,
    pub total: Totals,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The model against each human score.
    pub model: Comparison,
    /// Every two reviewers of the same call against each other; `None` when no call has two.
    pub between_reviewers: Option<Comparison>,
}

type Key = (String, String);

/// Builds the report. Each human score is one pair with the model's score of the same
/// call and criterion (a call two people scored counts twice); per call, totals are summed
/// over the criteria both sides scored.
pub fn build(rows: &[PairRow]) -> Report {
    let mut max_of: BTreeMap<Key, f64> = BTreeMap::new();
    for r in rows {
        let m = max_of
            .entry((r.category.clone(), r.criterion.clone()))
            .or_insert(0.0);
        *m = m.max(r.max_score.unwrap_or(0.0)).max(r.human);
    }

    // Model against humans.
    let mut per_criterion: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    let mut per_call: BTreeMap<(i64, &str), (f64, f64, f64)> = BTreeMap::new();
    for r in rows {
        let Some(model) = r.model else { continue };
        let key = (r.category.clone(), r.criterion.clone());
        per_criterion
            .entry(key.clone())
            .or_default()
            .push((model, r.human));
        let t = per_call.entry((r.call_id, &r.reviewer)).or_default();
        t.0 += model;
        t.1 += r.human;
        t.2 += max_of[&key];
    }
    let calls: BTreeSet<i64> = per_call.keys().map(|(c, _)| *c).collect();
    let model = comparison(calls.len(), per_criterion, per_call.into_values().collect());

    // Human against human: every two reviewers of a call, in reviewer order.
    let mut by_item: BTreeMap<(i64, Key), BTreeMap<&str, f64>> = BTreeMap::new();
    for r in rows {
        by_item
            .entry((r.call_id, (r.category.clone(), r.criterion.clone())))
            .or_default()
            .insert(&r.reviewer, r.human);
    }
    let mut h_criterion: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    let mut h_call: BTreeMap<(i64, &str, &str), (f64, f64, f64)> = BTreeMap::new();
    for ((call, key), scores) in &by_item {
        let scores: Vec<(&str, f64)> = scores.iter().map(|(r, s)| (*r, *s)).collect();
        for (i, (r1, s1)) in scores.iter().enumerate() {
            for (r2, s2) in &scores[i + 1..] {
                h_criterion.entry(key.clone()).or_default().push((*s1, *s2));
                let t = h_call.entry((*call, r1, r2)).or_default();
                t.0 += s1;
                t.1 += s2;
                t.2 += max_of[key];
            }
        }
    }
    let between_reviewers = (!h_call.is_empty()).then(|| {
        let calls: BTreeSet<i64> = h_call.keys().map(|(c, _, _)| *c).collect();
        comparison(calls.len(), h_criterion, h_call.into_values().collect())
    });
    Report {
        model,
        between_reviewers,
    }
}

fn comparison(
    calls: usize,
    per_criterion: BTreeMap<Key, Vec<(f64, f64)>>,
    per_call: Vec<(f64, f64, f64)>,
) -> Comparison {
    let pairs = per_criterion.values().map(Vec::len).sum();
    let mut criteria: Vec<CriterionRow> = per_criterion
        .into_iter()
        .map(|((category, criterion), pairs)| CriterionRow {
            category,
            criterion,
            agreement: agreement(&pairs),
        })
        .collect();
    criteria.sort_by(|a, b| {
        let (ka, kb) = (a.agreement.qwk, b.agreement.qwk);
        match (ka, kb) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
        .then_with(|| {
            b.agreement
                .mae
                .unwrap_or(0.0)
                .total_cmp(&a.agreement.mae.unwrap_or(0.0))
        })
    });
    Comparison {
        calls,
        pairs,
        criteria,
        total: totals(&per_call),
    }
}

impl Comparison {
    pub fn to_json(&self) -> Value {
        json!({
            "calls": self.calls,
            "pairs": self.pairs,
            "criteria": self.criteria.iter().map(|c| json!({
                "category": c.category,
                "criterion": c.criterion,
                "n": c.agreement.n,
                "exact": c.agreement.exact,
                "within1": c.agreement.within1,
                "bias": c.agreement.bias,
                "mae": c.agreement.mae,
                "qwk": c.agreement.qwk,
            })).collect::<Vec<_>>(),
            "total": {
                "n": self.total.n,
                "mae_points": self.total.mae_points,
                "mae_pct": self.total.mae_pct,
                "pearson": self.total.pearson,
                "spearman": self.total.spearman,
            },
        })
    }
}

impl Report {
    /// The object `callq calibrate report --json` prints.
    pub fn to_json(&self) -> Value {
        let mut out = self.model.to_json();
        out["between_reviewers"] = self
            .between_reviewers
            .as_ref()
            .map_or(Value::Null, Comparison::to_json);
        out
    }
}

fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or("—".to_string(), |v| format!("{v:.digits$}"))
}

fn pct(x: Option<f64>) -> String {
    x.map_or("—".to_string(), |v| format!("{:.0}%", 100.0 * v))
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} call(s), {} scored pair(s); worst criteria first",
            self.calls, self.pairs
        )?;
        writeln!(
            f,
            "  {:>5}  {:>5}  {:>5}  {:>6}  {:>5}  {:>5}  criterion",
            "n", "exact", "±1", "bias", "MAE", "QWK"
        )?;
        for c in &self.criteria {
            let a = &c.agreement;
            writeln!(
                f,
                "  {:>5}  {:>5}  {:>5}  {:>6}  {:>5}  {:>5}  {} / {}",
                a.n,
                pct(a.exact),
                pct(a.within1),
                a.bias.map_or("—".into(), |b| format!("{b:+.2}")),
                num(a.mae, 2),
                num(a.qwk, 2),
                c.category,
                c.criterion
            )?;
        }
        let t = &self.total;
        writeln!(
            f,
            "  per call ({}): MAE {} points, {} percentage points; Pearson {}, Spearman {}",
            t.n,
            num(t.mae_points, 2),
            num(t.mae_pct, 1),
            num(t.pearson, 2),
            num(t.spearman, 2)
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Model against human QA: {}", self.model)?;
        match &self.between_reviewers {
            Some(h) => write!(f, "Reviewers against each other (the ceiling): {h}"),
            None => writeln!(
                f,
                "Reviewers against each other: no call has two reviewers (have two people score \
                 some calls to see the ceiling)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(call: i64, crit: &str, reviewer: &str, human: f64, model: Option<f64>) -> PairRow {
        PairRow {
            call_id: call,
            category: "Кат".into(),
            criterion: crit.into(),
            reviewer: reviewer.into(),
            human,
            model,
            max_score: model.map(|_| 2.0),
        }
    }

    #[test]
    fn pairs_totals_and_reviewers() {
        let rows = vec![
            // Call 1 by two reviewers; call 2 by one; call 3 the model did not score.
            row(1, "А", "Орлова", 2.0, Some(2.0)),
            row(1, "Б", "Орлова", 0.0, Some(1.0)),
            row(1, "А", "Петров", 1.0, Some(2.0)),
            row(1, "Б", "Петров", 0.0, Some(1.0)),
            row(2, "А", "Орлова", 2.0, Some(2.0)),
            row(2, "Б", "Орлова", 2.0, Some(2.0)),
            row(3, "А", "Орлова", 1.0, None),
        ];
        let r = build(&rows);
        assert_eq!((r.model.calls, r.model.pairs), (2, 6));
        // Б: (1,0) (1,0) (2,2): exact 1/3, bias (4−2)/3; А: (2,2) (2,1) (2,2).
        // QWK А: observed (0+1+0)/3; cross pairs a = 2,2,2 against b = 2,1,2:
        // (0+1+0)·3/9 = 1/3 → κ = 1 − (1/3)/(1/3) = 0. QWK Б: observed (1+1+0)/3 = 2/3;
        // cross a = 1,1,2 against b = 0,0,2: a=1 → 1+1+1, a=1 → 3, a=2 → 4+4+0 = 8;
        // 14/9 → κ = 1 − (2/3)/(14/9) = 1 − 6/14 = 0.571429. Worst first: А.
        let names: Vec<&str> = r
            .model
            .criteria
            .iter()
            .map(|c| c.criterion.as_str())
            .collect();
        assert_eq!(names, ["А", "Б"]);
        assert!((r.model.criteria[0].agreement.qwk.unwrap()).abs() < 1e-9);
        assert!((r.model.criteria[1].agreement.qwk.unwrap() - 4.0 / 7.0).abs() < 1e-9);
        // Per (call, reviewer) totals over max 4: (3,2) (3,1) (4,4).
        assert_eq!(r.model.total.n, 3);
        assert!((r.model.total.mae_points.unwrap() - 1.0).abs() < 1e-9);
        assert!((r.model.total.mae_pct.unwrap() - 25.0).abs() < 1e-9);

        let h = r
            .between_reviewers
            .as_ref()
            .expect("call 1 has two reviewers");
        assert_eq!((h.calls, h.pairs), (1, 2));
        // Орлова against Петров: А (2,1), Б (0,0); one pair each: no kappa.
        assert!(h.criteria.iter().all(|c| c.agreement.qwk.is_none()));
        assert_eq!(h.total.n, 1);
        assert!((h.total.mae_points.unwrap() - 1.0).abs() < 1e-9);

        let json = r.to_json();
        assert_eq!(json["calls"], 2);
        assert_eq!(json["criteria"][0]["criterion"], "А");
        assert_eq!(json["between_reviewers"]["total"]["pearson"], Value::Null);
        let text = r.to_string();
        assert!(
            text.contains("Model against human QA: 2 call(s), 6 scored pair(s)"),
            "{text}"
        );
    }

    #[test]
    fn no_second_reviewer_means_no_ceiling() {
        let r = build(&[row(1, "А", "", 2.0, Some(2.0))]);
        assert_eq!(r.between_reviewers, None);
        assert_eq!(r.to_json()["between_reviewers"], Value::Null);
        let empty = build(&[]);
        assert_eq!(empty.model.pairs, 0);
        assert_eq!(empty.to_json()["total"]["mae_points"], Value::Null);
    }
}
