//! What the model's answer makes of a call, wherever the answer came from: a request of the
//! night's run, or `compare` scoring a stored call again. The one place an answer becomes an
//! outcome: quotes checked against the text the model saw, review reasons set, the outcome
//! and what it cost counted, then the one step that differs between those paths — where a
//! valid answer or a failure is kept ([`Keep`]).

use crate::domain::{Checklist, Cost, Outcome, ReviewReason, Usage};
use crate::llm::{Analyzed, LlmError};
use crate::severity::{Severe, Severity};
use crate::store::StoreError;

/// What one call cost at the LLM, whether it ended scored or failed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spent {
    pub llm_requests: u64,
    pub usage: Usage,
    pub cost: Option<Cost>,
}

impl Spent {
    fn of(a: &Analyzed) -> Spent {
        Spent {
            llm_requests: u64::from(a.attempts),
            usage: a.usage,
            cost: a.cost,
        }
    }

    /// What a failed request still cost: rejected answers are paid for.
    pub(crate) fn of_failure(e: &LlmError) -> Spent {
        let answers = match e {
            LlmError::InvalidContent { attempts, .. } => u64::from(*attempts),
            _ => 0,
        };
        Spent {
            llm_requests: answers,
            usage: e.usage(),
            cost: e.cost(),
        }
    }
}

/// One call's end, as the run's collector (or `compare`) counts it.
pub(crate) struct Finished {
    pub outcome: Outcome,
    pub spent: Spent,
    pub failure: Option<(i64, String)>,
    /// Why a scored call goes to the review queue, if it does.
    pub review: Vec<ReviewReason>,
}

impl Finished {
    /// An outcome decided without an answer (from the listing, a claim, a missing
    /// transcript): nothing spent.
    pub(crate) fn done(outcome: Outcome) -> Finished {
        Finished {
            outcome,
            spent: Spent::default(),
            failure: None,
            review: Vec::new(),
        }
    }

    fn failed(call_id: i64, error: String, spent: Spent) -> Finished {
        Finished {
            outcome: Outcome::Failed,
            spent,
            failure: Some((call_id, error)),
            review: Vec::new(),
        }
    }
}

/// The step that differs between the paths an answer takes: where a call's valid answer and
/// a call's failure are kept.
pub(crate) trait Keep {
    /// Keeps a valid, assessed answer (the call's rows; an experiment's row).
    async fn answer(&self, call_id: i64, analyzed: &Analyzed) -> Result<(), StoreError>;

    /// Keeps a call's failure at `stage` (`call_failures`; an experiment's error row).
    async fn failure(
        &self,
        call_id: i64,
        stage: &'static str,
        error: &str,
        spent: &Spent,
    ) -> Result<(), StoreError>;
}

/// How answers are judged: the checklist the quotes and scores belong to, and the score
/// below which a call goes to the review queue.
#[derive(Clone, Copy)]
pub(crate) struct Judge<'a> {
    pub checklist: &'a Checklist,
    pub review_below_percent: u8,
}

/// Decides a call's outcome from the model's answer to the prompt built from `text`, and
/// keeps it with `keep`. `Err` only for what stops the whole run (or the whole `compare`):
/// an answer refused for every call alike (a rejected key, an unknown model), or a store
/// that cannot keep even a failure.
pub(crate) async fn handle<R>(
    call_id: i64,
    text: &str,
    answer: Result<Analyzed, LlmError>,
    judge: Judge<'_>,
    keep: &impl Keep,
) -> Result<Finished, R>
where
    R: From<LlmError> + From<StoreError>,
{
    let mut analyzed = match answer {
        Ok(a) => a,
        Err(e) => {
            let spent = Spent::of_failure(&e);
            return failed(call_id, "llm", e, spent, keep).await;
        }
    };
    // Quotes are checked against the text the model saw, before anything is kept.
    crate::review::assess(
        &mut analyzed.analysis,
        text,
        judge.checklist,
        judge.review_below_percent,
    );
    for note in &analyzed.notes {
        tracing::debug!("call {call_id}: {note}");
    }
    let outcome = if analyzed.analysis.is_sales_call {
        Outcome::Scored
    } else {
        Outcome::NotSales
    };
    let spent = Spent::of(&analyzed);
    if let Err(e) = keep.answer(call_id, &analyzed).await {
        return failed(call_id, "save", e, spent, keep).await;
    }
    Ok(Finished {
        outcome,
        spent,
        failure: None,
        review: analyzed.analysis.review_reasons,
    })
}

/// A stage failed: this call fails and its failure is kept, or — when the error's severity
/// reaches beyond the call — the run stops (the call is then left to the next run, not
/// counted as tried).
pub(crate) async fn failed<E, R>(
    call_id: i64,
    stage: &'static str,
    error: E,
    spent: Spent,
    keep: &impl Keep,
) -> Result<Finished, R>
where
    E: Severe + std::fmt::Display,
    R: From<E> + From<StoreError>,
{
    if error.severity() > Severity::Call {
        return Err(error.into());
    }
    let text = match stage {
        "save" => format!("saving failed: {error}"),
        _ => error.to_string(),
    };
    tracing::warn!("call {call_id} failed at the {stage} stage: {text}");
    match keep.failure(call_id, stage, &text, &spent).await {
        Ok(()) => {}
        // A store that cannot take even the failure is gone: stop rather than report
        // failures that were not kept.
        Err(e) if e.severity() > Severity::Call => return Err(e.into()),
        Err(e) => tracing::error!("call {call_id}: could not record its failure: {e}"),
    }
    Ok(Finished::failed(call_id, text, spent))
}
