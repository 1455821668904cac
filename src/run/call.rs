//! One admitted call's whole life: fetch its transcript, mask it, take a slot at the LLM,
//! claim it, have it analysed, and hand the answer to [`answer::handle`], which decides the
//! outcome and saves the call through [`SaveCall`] — each stage behind its own limit.
//! A stage's error either fails this call (recorded in `call_failures`, retried by a later
//! run) or, when its severity says nothing else could work either, ends the run.

use chrono::NaiveDate;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::answer::{self, Finished, Judge, Keep, Spent};
use super::{Prepared, RunError, RunOptions};
use crate::domain::{Call, Outcome};
use crate::llm::Analyzed;
use crate::severity::{Severe, Severity};
use crate::store::{CallRecord, Claim, Failure, Store, StoreError};

/// A listed call the triage let in: a known operator, not stored yet.
pub(super) struct Admitted {
    pub call: Call,
    pub operator_id: i64,
}

/// What every call of a day shares: the prepared run, the day's run row, and the limits of
/// each stage.
pub(super) struct DayCalls<'a> {
    pub prepared: &'a Prepared,
    pub day: NaiveDate,
    pub run_id: Option<i64>,
    pub opts: &'a RunOptions,
    /// Transcript requests in flight (TBANK_CONCURRENCY); the LLM client has its own
    /// adaptive limit.
    pub transcripts: Semaphore,
    /// Calls waiting for or in an LLM request (LLM_CONCURRENCY). Waiting here rather
    /// than inside the client lets a stopped run drop the calls not sent yet.
    pub llm_slots: Semaphore,
    pub saves: Semaphore,
    /// Cancelled when the day stops admitting calls (a fatal error, the lock lost, a
    /// signal): calls not yet sent to the LLM are then left for a later run.
    pub halt: CancellationToken,
}

/// Transcript → mask → a slot at the LLM → claim → analysis → outcome and save.
/// `Ok(None)`: the day stopped before the call's transcript was asked for or before it
/// reached the LLM; it is left, untouched, for a later run. `Err` only for what stops the
/// whole run (the day's halt is then cancelled).
pub(super) async fn process_call(
    admitted: Admitted,
    day: &DayCalls<'_>,
) -> Result<Option<Finished>, RunError> {
    let Admitted { call, operator_id } = admitted;
    let p = day.prepared;
    let keep = SaveCall {
        day,
        call: &call,
        operator_id,
        stored_transcript: None,
    };
    let transcript = {
        let _permit = tokio::select! {
            biased;
            _ = day.halt.cancelled() => return Ok(None),
            permit = day.transcripts.acquire() => permit.expect("never closed"),
        };
        p.tbank.transcript(call.id).await
    };
    let transcript = match transcript {
        Ok(t) if t.is_empty() => return not_transcribed(&keep).await.map(Some),
        Ok(t) => t,
        Err(e) => {
            let finished = answer::failed(call.id, "transcript", e, Spent::default(), &keep).await;
            return halt_on_error(day, finished).map(Some);
        }
    };
    let raw = transcript.to_text();
    // Personal data is masked once, before the prompt is built; the listing's phone
    // number never goes into a prompt.
    let (text, stored) = p.settings.privacy.apply(&raw);
    let keep = SaveCall {
        stored_transcript: stored.as_deref(),
        ..keep
    };
    let prompt = p.prompt.render(&text);

    let slot = tokio::select! {
        biased;
        _ = day.halt.cancelled() => return Ok(None),
        slot = day.llm_slots.acquire() => slot.expect("never closed"),
    };
    // Claimed only now, right before the request, so a stopped run holds claims for the
    // calls really at the LLM and no others.
    if let Some(run_id) = day.run_id
        && let Some(end) = claim(&p.store, call.id, run_id, day.opts.reanalyze, &keep).await
    {
        return halt_on_error(day, end).map(Some);
    }
    let reply = p.llm.analyze(&prompt, &p.schema, &p.checklist).await;
    if reply.as_ref().is_err_and(|e| e.severity() > Severity::Call) {
        // Before this call's LLM slot is freed, so no waiting call takes it.
        day.halt.cancel();
    }
    drop(slot);
    let judge = Judge {
        checklist: &p.checklist,
        review_below_percent: p.settings.review_below_percent,
    };
    let finished = answer::handle(call.id, &text, reply, judge, &keep).await;
    // A saved call's claim ended with its save; any other end releases it here.
    let saved =
        matches!(&finished, Ok(f) if matches!(f.outcome, Outcome::Scored | Outcome::NotSales));
    if let Some(run_id) = day.run_id
        && !saved
        && let Err(e) = p.store.release_call(call.id, run_id).await
    {
        // A claim left behind is taken over once this run is no longer alive.
        tracing::warn!("call {}: could not release its claim: {e}", call.id);
    }
    halt_on_error(day, finished).map(Some)
}

/// Claims the call for `run_id` right before it costs money: `None` when this run won it,
/// otherwise how the call ends here — another run or batch has it, it was saved meanwhile,
/// or the claim itself failed (kept as the call's failure at stage `claim`).
pub(super) async fn claim(
    store: &Store,
    call_id: i64,
    run_id: i64,
    reanalyze: bool,
    keep: &impl Keep,
) -> Option<Result<Finished, RunError>> {
    match store.claim_call(call_id, run_id, reanalyze).await {
        Ok(Claim::Won) => None,
        Ok(Claim::Busy) => {
            tracing::info!("call {call_id}: another run or batch has it");
            Some(Ok(Finished::done(Outcome::ClaimedElsewhere)))
        }
        Ok(Claim::Stored) => Some(Ok(Finished::done(Outcome::AlreadyScored))),
        Err(e) => Some(answer::failed(call_id, "claim", e, Spent::default(), keep).await),
    }
}

/// An error that stops the run stops the day's admitting too.
fn halt_on_error(
    day: &DayCalls<'_>,
    finished: Result<Finished, RunError>,
) -> Result<Finished, RunError> {
    if finished.is_err() {
        day.halt.cancel();
    }
    finished
}

/// Not transcribed yet: recorded like a failure so the nightly run comes back to it.
async fn not_transcribed(keep: &SaveCall<'_>) -> Result<Finished, RunError> {
    let call_id = keep.call.id;
    tracing::info!("call {call_id} has no transcript yet; a later run will pick it up");
    match keep
        .failure(
            call_id,
            "no_transcript",
            "not transcribed yet",
            &Spent::default(),
        )
        .await
    {
        Ok(()) => {}
        Err(e) if e.severity() > Severity::Call => {
            keep.day.halt.cancel();
            return Err(e.into());
        }
        Err(e) => tracing::error!("call {call_id}: could not record its failure: {e}"),
    }
    Ok(Finished::done(Outcome::NoTranscript))
}

/// The night's run keeps an answer as the call's rows (one transaction, which also ends
/// its claim) and a failure in `call_failures`; a dry run keeps nothing.
struct SaveCall<'a> {
    day: &'a DayCalls<'a>,
    call: &'a Call,
    operator_id: i64,
    /// The transcript as TRANSCRIPT_STORE says to store it.
    stored_transcript: Option<&'a str>,
}

impl Keep for SaveCall<'_> {
    async fn answer(&self, call_id: i64, analyzed: &Analyzed) -> Result<(), StoreError> {
        let day = self.day;
        if day.opts.dry_run {
            let a = &analyzed.analysis;
            let outcome = if a.is_sales_call {
                Outcome::Scored
            } else {
                Outcome::NotSales
            };
            tracing::info!(
                "call {call_id}: {} ({}%)",
                outcome.as_str(),
                a.performance_percentage
            );
            return Ok(());
        }
        let p = day.prepared;
        let phone = self
            .call
            .phone
            .as_deref()
            .and_then(|n| p.settings.privacy.phone_to_store(n));
        let _permit = day.saves.acquire().await.expect("never closed");
        p.store.save_call(&self.record(&phone, analyzed)).await
    }

    async fn failure(
        &self,
        call_id: i64,
        stage: &'static str,
        error: &str,
        _spent: &Spent,
    ) -> Result<(), StoreError> {
        let day = self.day;
        if day.opts.dry_run {
            return Ok(());
        }
        let failure = Failure {
            call_id,
            department_id: day.prepared.settings.department_id,
            day: day.day,
            run_id: day.run_id,
            stage,
            error,
        };
        day.prepared.store.record_failure(&failure).await
    }
}

impl SaveCall<'_> {
    fn record<'r>(&'r self, phone: &'r Option<String>, analyzed: &'r Analyzed) -> CallRecord<'r> {
        let p = self.day.prepared;
        let s = &p.settings;
        let tz = s.timezone;
        let call = self.call;
        CallRecord {
            id: call.id,
            start_local: call.start.with_timezone(&tz).naive_local(),
            finish_local: call.finish.map(|f| f.with_timezone(&tz).naive_local()),
            duration_s: call.duration_s,
            direction: call.direction.as_deref(),
            phone: phone.as_deref(),
            operator_id: self.operator_id,
            department_id: s.department_id,
            transcript: self.stored_transcript,
            analysis: &analyzed.analysis,
            model: &s.llm.model,
            usage: analyzed.usage,
            cost: analyzed.cost,
            checklist_version: &p.checklist_version,
            prompt_version: &p.prompt_version,
            run_id: self.day.run_id,
        }
    }
}
