//! Scoring stored calls again as one experiment, for `compare` and the canary: each call's
//! stored transcript masked as the run masks it, sent with the experiment's prompt, its
//! answer judged by `run::handle_answer` like a nightly answer and kept as an experiment row
//! (never in `calls`), and in memory for the caller's statistics.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt;

use crate::domain::{Analysis, Outcome, Usage};
use crate::llm::{Analyzed, LlmClient, LlmError, PromptBuilder, ResponseSchema};
use crate::pii::PrivacySettings;
use crate::run::{self, Judge, Spent};
use crate::store::{ExperimentCall, Store, StoreError, StoredCall};

/// What an experiment is scored with.
pub(crate) struct Rescore<'a> {
    pub store: &'a Store,
    pub experiment_id: i64,
    pub llm: &'a LlmClient,
    pub prompt: &'a PromptBuilder,
    pub schema: &'a ResponseSchema,
    pub judge: Judge<'a>,
    pub privacy: &'a PrivacySettings,
    /// Requests in flight at most.
    pub concurrency: usize,
}

/// The experiment's answers and what they cost.
pub(crate) struct Rescored {
    /// Valid answers by call id.
    pub answers: HashMap<i64, Analysis>,
    pub failed: usize,
    pub usage: Usage,
    /// Everything paid, failed calls' answers included; None when no price was known.
    pub cost: Option<f64>,
}

/// Scores `calls` again and records the experiment's totals. An error that stops the
/// experiment (the gateway refusing the key, the database gone) is returned as `R`; a call
/// that fails alone is an error row and counted in `failed`.
pub(crate) async fn rescore<R>(with: &Rescore<'_>, calls: &[StoredCall]) -> Result<Rescored, R>
where
    R: From<LlmError> + From<StoreError>,
{
    // A transcript stored raw (TRANSCRIPT_STORE=raw) is masked here as the run masks it:
    // with PII_MASKING=on nothing personal reaches the model by this path either. Text
    // stored masked comes out unchanged.
    let texts: HashMap<i64, String> = calls
        .iter()
        .map(|c| (c.id, with.privacy.for_llm(&c.transcript).into_owned()))
        .collect();
    let keep = KeepExperiment {
        store: with.store,
        experiment_id: with.experiment_id,
        answers: Mutex::new(HashMap::new()),
    };
    let mut results = futures::stream::iter(calls.iter().map(|call| {
        let (keep, text) = (&keep, &texts[&call.id]);
        async move {
            let rendered = with.prompt.render(text);
            let answer = with
                .llm
                .analyze(&rendered, with.schema, with.judge.checklist)
                .await;
            run::handle_answer::<R>(call.id, text, answer, with.judge, keep).await
        }
    }))
    .buffer_unordered(with.concurrency.max(1))
    // Boxed so the closure's borrowed types do not leak into the caller's future.
    .boxed();
    let (mut usage, mut cost, mut failed) = (Usage::default(), None::<f64>, 0usize);
    while let Some(result) = results.next().await {
        let finished = match result {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("experiment {} is incomplete", with.experiment_id);
                return Err(e);
            }
        };
        usage += finished.spent.usage;
        if let Some(c) = finished.spent.cost {
            *cost.get_or_insert(0.0) += c.usd;
        }
        if finished.outcome == Outcome::Failed {
            failed += 1;
        }
    }
    drop(results);
    with.store
        .finish_experiment(with.experiment_id, usage, cost)
        .await?;
    Ok(Rescored {
        answers: keep.answers.into_inner().expect("answers"),
        failed,
        usage,
        cost,
    })
}

/// Keeps each answer as an experiment row, never touching `calls`, and in memory.
struct KeepExperiment<'a> {
    store: &'a Store,
    experiment_id: i64,
    answers: Mutex<HashMap<i64, Analysis>>,
}

/// An answer as an experiment's row.
pub(crate) fn answered_row(call_id: i64, analyzed: &Analyzed) -> ExperimentCall<'_> {
    ExperimentCall {
        call_id,
        analysis: Some(&analyzed.analysis),
        usage: analyzed.usage,
        cost_usd: analyzed.cost.map(|c| c.usd),
        error: None,
    }
}

/// A call that failed, as an experiment's row: why, and what its answers cost.
pub(crate) fn failed_row<'a>(call_id: i64, error: &'a str, spent: &Spent) -> ExperimentCall<'a> {
    ExperimentCall {
        call_id,
        analysis: None,
        usage: spent.usage,
        cost_usd: spent.cost.map(|c| c.usd),
        error: Some(error),
    }
}

impl run::Keep for KeepExperiment<'_> {
    async fn answer(&self, call_id: i64, analyzed: &Analyzed) -> Result<(), StoreError> {
        self.store
            .save_experiment_call(self.experiment_id, &answered_row(call_id, analyzed))
            .await?;
        self.answers
            .lock()
            .expect("answers")
            .insert(call_id, analyzed.analysis.clone());
        Ok(())
    }

    async fn failure(
        &self,
        call_id: i64,
        _stage: &'static str,
        error: &str,
        spent: &Spent,
    ) -> Result<(), StoreError> {
        self.store
            .save_experiment_call(self.experiment_id, &failed_row(call_id, error, spent))
            .await
    }
}
