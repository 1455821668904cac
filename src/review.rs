//! Which scored calls a person should look at, and why (`calls.review_reasons`,
//! `v_review_queue`). Pure: the pipeline calls [`assess`] on each analysis before saving it.

use crate::domain::{Analysis, Checklist, ReviewReason};
use crate::evidence::TranscriptIndex;

/// Checks every quote against `transcript` (setting `evidence_verified`) and sets
/// `review_reasons`. A call judged not to be a sales call has no scores and no reasons.
pub fn assess(analysis: &mut Analysis, transcript: &str, checklist: &Checklist, below_percent: u8) {
    let index = TranscriptIndex::new(transcript);
    for e in &mut analysis.evaluations {
        e.evidence_verified = e
            .evidence
            .as_deref()
            .and_then(|quote| index.check(quote))
            .map(|c| c.found);
    }
    let mut reasons = Vec::new();
    if analysis.is_sales_call {
        if analysis.performance_percentage < i32::from(below_percent) {
            reasons.push(ReviewReason::LowScore);
        }
        let critical_missed = analysis.evaluations.iter().any(|e| {
            e.score <= 0.0
                && checklist
                    .criteria
                    .iter()
                    .any(|c| c.critical && c.category == e.category && c.indicator == e.criterion)
        });
        if critical_missed {
            reasons.push(ReviewReason::CriticalMissed);
        }
        if analysis
            .evaluations
            .iter()
            .any(|e| e.evidence_verified == Some(false))
        {
            reasons.push(ReviewReason::UnverifiedEvidence);
        }
    }
    analysis.review_reasons = reasons;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Criterion, Evaluation};

    fn eval(criterion: &str, score: f64, evidence: Option<&str>) -> Evaluation {
        Evaluation {
            category: "Кат".into(),
            criterion: criterion.into(),
            score,
            max_score: 5.0,
            reason: String::new(),
            evidence: evidence.map(str::to_string),
            evidence_verified: None,
        }
    }

    fn checklist() -> Checklist {
        let mut critical = Criterion::new("Кат", "Назвал банк", 5.0);
        critical.critical = true;
        Checklist {
            criteria: vec![Criterion::new("Кат", "Поздоровался", 5.0), critical],
            custom_instructions: String::new(),
        }
    }

    fn analysis(evaluations: Vec<Evaluation>, pct: i32) -> Analysis {
        Analysis {
            is_sales_call: true,
            performance_percentage: pct,
            evaluations,
            ..Analysis::default()
        }
    }

    const CALL: &str = "operator: Добрый день, банк Пример.\nclient: Здравствуйте.\n";

    #[test]
    fn a_good_call_with_found_quotes_needs_no_review() {
        let mut a = analysis(
            vec![
                eval("Поздоровался", 5.0, Some("Добрый день")),
                eval("Назвал банк", 5.0, Some("банк «Пример»")),
            ],
            50,
        );
        assess(&mut a, CALL, &checklist(), 50);
        assert!(a.review_reasons.is_empty());
        let verified: Vec<Option<bool>> =
            a.evaluations.iter().map(|e| e.evidence_verified).collect();
        assert_eq!(verified, [Some(true), Some(true)]);
    }

    #[test]
    fn each_reason_is_given_once_in_order() {
        let mut a = analysis(
            vec![
                eval("Поздоровался", 1.0, Some("Привет, это банк Сбер")),
                eval("Назвал банк", 0.0, Some("")),
            ],
            49,
        );
        assess(&mut a, CALL, &checklist(), 50);
        assert_eq!(
            a.review_reasons,
            [
                ReviewReason::LowScore,
                ReviewReason::CriticalMissed,
                ReviewReason::UnverifiedEvidence
            ]
        );
        let verified: Vec<Option<bool>> =
            a.evaluations.iter().map(|e| e.evidence_verified).collect();
        // An empty quote is no quote: NULL, not unverified.
        assert_eq!(verified, [Some(false), None]);
    }

    #[test]
    fn a_zero_on_an_ordinary_criterion_or_a_missing_quote_is_no_reason() {
        let mut a = analysis(
            vec![
                eval("Поздоровался", 0.0, None),
                eval("Назвал банк", 5.0, None),
            ],
            50,
        );
        assess(&mut a, CALL, &checklist(), 50);
        assert!(a.review_reasons.is_empty());
        assess(&mut a, CALL, &checklist(), 51);
        assert_eq!(a.review_reasons, [ReviewReason::LowScore]);
    }

    #[test]
    fn a_not_sales_call_is_never_queued() {
        let mut a = Analysis::default();
        assess(&mut a, CALL, &checklist(), 50);
        assert!(a.review_reasons.is_empty());
    }
}
