//! One admitted call's whole life, and the one place its outcome is decided: fetch its
//! transcript, take a slot at the LLM, claim it, have it analysed, save it — each stage
//! behind its own limit.
//! A stage's error either fails this call (recorded in `call_failures`, retried by a later
//! run) or, when its severity says nothing else could work either, ends the run.

use super::RunError;
use super::day::DayRun;
use crate::domain::{Call, Cost, Outcome, Usage};
use crate::llm::{Analyzed, LlmError};
use crate::severity::{Severe, Severity};
use crate::store::{CallRecord, Claim, Failure};

/// A listed call the triage let in: a known operator, not stored yet.
pub(super) struct Admitted {
    pub call: Call,
    pub operator_id: i64,
}

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
}

/// One call's end, as the collector counts it.
pub(crate) struct Finished {
    pub outcome: Outcome,
    pub spent: Spent,
    pub failure: Option<(i64, String)>,
    /// Why a scored call goes to the review queue, if it does.
    pub review: Vec<crate::domain::ReviewReason>,
}

impl Finished {
    pub(super) fn done(outcome: Outcome) -> Finished {
        Finished {
            outcome,
            spent: Spent::default(),
            failure: None,
            review: Vec::new(),
        }
    }
}

impl DayRun<'_> {
    /// Transcript → a slot at the LLM → claim → analysis → save. `Ok(None)`: the day
    /// stopped before the call's transcript was asked for or before it reached the LLM;
    /// it is left, untouched, for a later run.
    /// `Err` only for what stops the whole run.
    pub(super) async fn process_call(
        &self,
        admitted: Admitted,
    ) -> Result<Option<Finished>, RunError> {
        let Admitted { call, operator_id } = admitted;
        let p = self.prepared;
        let transcript = {
            let _permit = tokio::select! {
                biased;
                _ = self.halt.cancelled() => return Ok(None),
                permit = self.transcripts.acquire() => permit.expect("never closed"),
            };
            p.tbank.transcript(call.id).await
        };
        let transcript = match transcript {
            Ok(t) if t.is_empty() => return self.not_transcribed(call.id).await.map(Some),
            Ok(t) => t,
            Err(e) => {
                return self
                    .failed(call.id, "transcript", e, Spent::default())
                    .await
                    .map(Some);
            }
        };
        let raw = transcript.to_text();
        // Personal data is masked once, before the prompt is built; the listing's phone
        // number never goes into a prompt.
        let (text, stored) = p.settings.privacy.apply(&raw);
        let prompt = p.prompt.render(&text);

        let slot = tokio::select! {
            biased;
            _ = self.halt.cancelled() => return Ok(None),
            slot = self.llm_slots.acquire() => slot.expect("never closed"),
        };
        // Claimed only now, right before the request, so a stopped run holds claims for
        // the calls really at the LLM and no others.
        if let Some(run_id) = self.run_id {
            match p
                .store
                .claim_call(call.id, run_id, self.opts.reanalyze)
                .await
            {
                Ok(Claim::Won) => {}
                Ok(Claim::Busy) => {
                    tracing::info!("call {}: another run is scoring it now", call.id);
                    return Ok(Some(Finished::done(Outcome::ClaimedElsewhere)));
                }
                Ok(Claim::Stored) => return Ok(Some(Finished::done(Outcome::AlreadyScored))),
                Err(e) => {
                    return self
                        .failed(call.id, "claim", e, Spent::default())
                        .await
                        .map(Some);
                }
            }
        }
        let finished = self
            .analyze_and_save(&call, operator_id, &prompt, &text, stored.as_deref(), slot)
            .await;
        // A saved call's claim ended with its save; any other end releases it here.
        let saved =
            matches!(&finished, Ok(f) if matches!(f.outcome, Outcome::Scored | Outcome::NotSales));
        if let Some(run_id) = self.run_id
            && !saved
            && let Err(e) = p.store.release_call(call.id, run_id).await
        {
            // A claim left behind is taken over once this run is no longer alive.
            tracing::warn!("call {}: could not release its claim: {e}", call.id);
        }
        finished.map(Some)
    }

    async fn analyze_and_save(
        &self,
        call: &Call,
        operator_id: i64,
        prompt: &str,
        text: &str,
        stored: Option<&str>,
        slot: tokio::sync::SemaphorePermit<'_>,
    ) -> Result<Finished, RunError> {
        let p = self.prepared;
        let mut analyzed = match p.llm.analyze(prompt, &p.schema, &p.checklist).await {
            Ok(a) => a,
            Err(e) => {
                let spent = spent_on_failure(&e);
                return self.failed(call.id, "llm", e, spent).await;
            }
        };
        drop(slot);
        // Quotes are checked against the text the model saw, before anything is stored.
        crate::review::assess(
            &mut analyzed.analysis,
            text,
            &p.checklist,
            p.settings.review_below_percent,
        );
        for note in &analyzed.notes {
            tracing::debug!("call {}: {note}", call.id);
        }
        let outcome = if analyzed.analysis.is_sales_call {
            Outcome::Scored
        } else {
            Outcome::NotSales
        };
        let spent = Spent::of(&analyzed);
        if self.opts.dry_run {
            tracing::info!(
                "call {}: {} ({}%)",
                call.id,
                outcome.as_str(),
                analyzed.analysis.performance_percentage
            );
        } else {
            let phone = call
                .phone
                .as_deref()
                .and_then(|n| p.settings.privacy.phone_to_store(n));
            let _permit = self.saves.acquire().await.expect("never closed");
            if let Err(e) = p
                .store
                .save_call(&self.record(call, operator_id, stored, &phone, &analyzed))
                .await
            {
                return self.failed(call.id, "save", e, spent).await;
            }
        }
        Ok(Finished {
            outcome,
            spent,
            failure: None,
            review: analyzed.analysis.review_reasons.clone(),
        })
    }

    fn record<'r>(
        &'r self,
        call: &'r Call,
        operator_id: i64,
        transcript: Option<&'r str>,
        phone: &'r Option<String>,
        analyzed: &'r Analyzed,
    ) -> CallRecord<'r> {
        let s = &self.prepared.settings;
        let tz = s.timezone;
        CallRecord {
            id: call.id,
            start_local: call.start.with_timezone(&tz).naive_local(),
            finish_local: call.finish.map(|f| f.with_timezone(&tz).naive_local()),
            duration_s: call.duration_s,
            direction: call.direction.as_deref(),
            phone: phone.as_deref(),
            operator_id,
            department_id: s.department_id,
            transcript,
            analysis: &analyzed.analysis,
            model: &s.llm.model,
            usage: analyzed.usage,
            cost: analyzed.cost,
            checklist_version: &self.prepared.checklist_version,
            prompt_version: &self.prepared.prompt_version,
            run_id: self.run_id,
        }
    }

    /// Not transcribed yet: recorded like a failure so the nightly run comes back to it.
    async fn not_transcribed(&self, call_id: i64) -> Result<Finished, RunError> {
        tracing::info!("call {call_id} has no transcript yet; a later run will pick it up");
        self.record_failure(call_id, "no_transcript", "not transcribed yet")
            .await?;
        Ok(Finished::done(Outcome::NoTranscript))
    }

    /// A stage failed: this call fails, or — when the error's severity reaches beyond the
    /// call — the run stops (the call is then left to the next run, not counted as tried).
    async fn failed<E>(
        &self,
        call_id: i64,
        stage: &'static str,
        error: E,
        spent: Spent,
    ) -> Result<Finished, RunError>
    where
        E: Severe + std::fmt::Display,
        RunError: From<E>,
    {
        if error.severity() > Severity::Call {
            // Before this call's LLM slot is freed, so no waiting call takes it.
            self.halt.cancel();
            return Err(error.into());
        }
        let text = match stage {
            "save" => format!("saving failed: {error}"),
            _ => error.to_string(),
        };
        tracing::warn!("call {call_id} failed at the {stage} stage: {text}");
        self.record_failure(call_id, stage, &text).await?;
        Ok(Finished {
            outcome: Outcome::Failed,
            spent,
            failure: Some((call_id, text)),
            review: Vec::new(),
        })
    }

    /// Records a call's failure. A database that cannot take even that is gone: the run
    /// stops rather than report failures that were not kept.
    async fn record_failure(&self, call_id: i64, stage: &str, error: &str) -> Result<(), RunError> {
        if self.opts.dry_run {
            return Ok(());
        }
        let failure = Failure {
            call_id,
            department_id: self.prepared.settings.department_id,
            day: self.day,
            run_id: self.run_id,
            stage,
            error,
        };
        match self.prepared.store.record_failure(&failure).await {
            Ok(()) => Ok(()),
            Err(e) if e.severity() > Severity::Call => {
                self.halt.cancel();
                Err(e.into())
            }
            Err(e) => {
                tracing::error!("call {call_id}: could not record its failure: {e}");
                Ok(())
            }
        }
    }
}

fn spent_on_failure(e: &LlmError) -> Spent {
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
