//! Agreement statistics between two raters (the model and a person, or two people). Pure.
//! A figure that is undefined for the data (no pairs, one pair, no variance) is `None`,
//! never NaN.

/// Agreement of paired scores on one criterion; pairs are (first rater, second rater).
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub n: usize,
    /// Share of pairs with the same score, 0..1.
    pub exact: Option<f64>,
    /// Share of pairs at most one point apart, 0..1.
    pub within1: Option<f64>,
    /// Mean of the first rater minus mean of the second.
    pub bias: Option<f64>,
    /// Mean absolute difference, in points.
    pub mae: Option<f64>,
    /// Quadratic-weighted Cohen's kappa.
    pub qwk: Option<f64>,
}

/// Scores closer than this are the same score (sums of decimal scores are not exact).
const SAME: f64 = 1e-9;

pub fn agreement(pairs: &[(f64, f64)]) -> Agreement {
    let n = pairs.len();
    let share = |pred: &dyn Fn(f64, f64) -> bool| {
        (n > 0).then(|| pairs.iter().filter(|(a, b)| pred(*a, *b)).count() as f64 / n as f64)
    };
    Agreement {
        n,
        exact: share(&|a, b| (a - b).abs() < SAME),
        within1: share(&|a, b| (a - b).abs() <= 1.0 + SAME),
        bias: mean(pairs.iter().map(|(a, b)| a - b)),
        mae: mean(pairs.iter().map(|(a, b)| (a - b).abs())),
        qwk: quadratic_weighted_kappa(pairs),
    }
}

/// κ_w = 1 − Σ w·O / Σ w·E with weights (i − j)² / max² over the criterion's 0..max scale,
/// O the observed pairs and E what the two raters' own score distributions give by chance.
/// Scores not observed add nothing to either sum and the max² cancels, so this equals
/// 1 − mean over pairs of (a − b)² / mean over all n² cross pairs of (aᵢ − bⱼ)², which
/// also works for decimal scales (2.5). Undefined with fewer than two pairs or when both
/// raters gave one and the same score throughout.
pub fn quadratic_weighted_kappa(pairs: &[(f64, f64)]) -> Option<f64> {
    let n = pairs.len();
    if n < 2 {
        return None;
    }
    let observed: f64 = pairs.iter().map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n as f64;
    let mut chance = 0.0;
    for (a, _) in pairs {
        for (_, b) in pairs {
            chance += (a - b).powi(2);
        }
    }
    let chance = chance / (n * n) as f64;
    (chance > SAME).then(|| 1.0 - observed / chance)
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Pearson's correlation; `None` with fewer than two pairs or when either side is constant.
pub fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return None;
    }
    let mx = xs[..n].iter().sum::<f64>() / n as f64;
    let my = ys[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    (sxx > SAME && syy > SAME).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's correlation: Pearson's over ranks, tied values sharing their mean rank.
pub fn spearman(xs: &[f64], ys: &[f64]) -> Option<f64> {
    pearson(&ranks(xs), &ranks(ys))
}

/// 1-based ranks; equal values get the mean of the ranks they span.
fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut out = vec![0.0; xs.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && (xs[order[end]] - xs[order[start]]).abs() < SAME {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = rank;
        }
        start = end;
    }
    out
}

/// Whole-call totals of two raters over the same criteria.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub n: usize,
    pub mae_points: Option<f64>,
    /// Mean absolute difference of the two percentages (total / max), in percentage points.
    pub mae_pct: Option<f64>,
    pub pearson: Option<f64>,
    pub spearman: Option<f64>,
}

/// `calls`: (first rater's total, second rater's total, max possible) per call.
pub fn totals(calls: &[(f64, f64, f64)]) -> Totals {
    let a: Vec<f64> = calls.iter().map(|c| c.0).collect();
    let b: Vec<f64> = calls.iter().map(|c| c.1).collect();
    Totals {
        n: calls.len(),
        mae_points: mean(calls.iter().map(|(a, b, _)| (a - b).abs())),
        mae_pct: mean(
            calls
                .iter()
                .filter(|(_, _, max)| *max > 0.0)
                .map(|(a, b, max)| 100.0 * (a - b).abs() / max),
        ),
        pearson: pearson(&a, &b),
        spearman: spearman(&a, &b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: Option<f64>, want: f64) {
        let got = got.expect("a defined figure");
        assert!((got - want).abs() < 1e-6, "{got} != {want}");
    }

    #[test]
    fn agreement_of_a_small_table_matches_the_hand_computation() {
        // (model, human) on a 0..2 criterion: (2,2) (1,2) (0,0) (2,1).
        // exact: (2,2) and (0,0) → 2/4 = 0.5; within 1: all four → 1.
        // bias: model mean 5/4 − human mean 5/4 = 0; MAE: (0+1+0+1)/4 = 0.5.
        // QWK by the textbook formula, categories 0..2, w_ij = (i−j)²/2²:
        //   observed O (model row, human column): O22=1, O12=1, O00=1, O21=1
        //   Σ w·O = ((1−2)² + (2−1)²)/4 = 0.5
        //   marginals: model 0:1 1:1 2:2, human 0:1 1:1 2:2; E_ij = r_i·c_j/4
        //   Σ r_i c_j (i−j)² = model 0 row: 1·(1·0+1·1+2·4)=9; model 1 row: 1·(1·1+1·0+2·1)=3;
        //   model 2 row: 2·(1·4+1·1+2·0)=10; total 22 → Σ w·E = 22/(4·4) = 1.375
        //   κ = 1 − 0.5/1.375 = 7/11 = 0.636364
        let a = agreement(&[(2.0, 2.0), (1.0, 2.0), (0.0, 0.0), (2.0, 1.0)]);
        assert_eq!(a.n, 4);
        close(a.exact, 0.5);
        close(a.within1, 1.0);
        close(a.bias, 0.0);
        close(a.mae, 0.5);
        close(a.qwk, 7.0 / 11.0);
    }

    #[test]
    fn a_rater_who_is_always_higher_has_a_bias_and_a_lower_kappa() {
        // (model, human) on 0..5: (5,3) (3,1) (5,5) (1,1).
        // exact 2/4; within 1: only the equal ones → 0.5; bias (14 − 10)/4 = 1; MAE (2+2+0+0)/4 = 1.
        // Σ(a−b)²/n = (4+4+0+0)/4 = 2.
        // Cross pairs Σ(aᵢ−bⱼ)², b = {3,1,5,1}: a=5 → 4+16+0+16 = 36; a=3 → 0+4+4+4 = 12;
        // a=5 → 36; a=1 → 4+0+16+0 = 20; total 104, /16 = 6.5. κ = 1 − 2/6.5 = 0.692308.
        let a = agreement(&[(5.0, 3.0), (3.0, 1.0), (5.0, 5.0), (1.0, 1.0)]);
        close(a.exact, 0.5);
        close(a.within1, 0.5);
        close(a.bias, 1.0);
        close(a.mae, 1.0);
        close(a.qwk, 1.0 - 2.0 / 6.5);
    }

    #[test]
    fn perfect_agreement_is_one_and_opposite_ratings_are_negative() {
        close(
            quadratic_weighted_kappa(&[(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)]),
            1.0,
        );
        // (0,2) (2,0): observed (4+4)/2 = 4; cross: a=0 → (0−2)²+(0−0)² = 4, a=2 → 0+4 = 4;
        // 8/4 = 2. κ = 1 − 4/2 = −1.
        close(quadratic_weighted_kappa(&[(0.0, 2.0), (2.0, 0.0)]), -1.0);
    }

    #[test]
    fn undefined_figures_are_none_not_nan() {
        let empty = agreement(&[]);
        assert_eq!(
            empty,
            Agreement {
                n: 0,
                exact: None,
                within1: None,
                bias: None,
                mae: None,
                qwk: None
            }
        );
        let one = agreement(&[(1.0, 2.0)]);
        close(one.mae, 1.0);
        assert_eq!(one.qwk, None, "one pair");
        // Everyone gave full marks: no variance, kappa undefined.
        assert_eq!(quadratic_weighted_kappa(&[(5.0, 5.0), (5.0, 5.0)]), None);
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0], &[1.0]), None);
        let t = totals(&[]);
        assert_eq!((t.n, t.mae_points, t.pearson), (0, None, None));
    }

    #[test]
    fn totals_of_a_small_table_match_the_hand_computation() {
        // (model, human, max): (8,10,10) (5,5,10) (2,4,10).
        // MAE points (2+0+2)/3 = 1.333333; in percentage points (20+0+20)/3 = 13.333333.
        // Pearson: x = 8,5,2 (mean 5), y = 10,5,4 (mean 19/3); dx = 3,0,−3;
        // dy = 11/3, −4/3, −7/3; Σdx·dy = 11 + 0 + 7 = 18; Σdx² = 18;
        // Σdy² = (121+16+49)/9 = 186/9; r = 18 / √(18·186/9) = 18/√372 = 0.933257.
        // Spearman: both rank 3,2,1 → 1.
        let t = totals(&[(8.0, 10.0, 10.0), (5.0, 5.0, 10.0), (2.0, 4.0, 10.0)]);
        assert_eq!(t.n, 3);
        close(t.mae_points, 4.0 / 3.0);
        close(t.mae_pct, 40.0 / 3.0);
        close(t.pearson, 18.0 / 372f64.sqrt());
        close(t.spearman, 1.0);
    }

    #[test]
    fn spearman_gives_ties_their_mean_rank() {
        // x = 1,2,2,3 → ranks 1, 2.5, 2.5, 4; y = 1,3,2,4 → ranks 1,3,2,4 (means 2.5).
        // dx = −1.5,0,0,1.5; dy = −1.5,0.5,−0.5,1.5; Σdx·dy = 4.5; Σdx² = 4.5; Σdy² = 5;
        // ρ = 4.5/√22.5 = 0.948683.
        close(
            spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]),
            4.5 / 22.5f64.sqrt(),
        );
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 3.0]), [3.0, 1.0, 3.0, 3.0]);
    }
}
