//! Batch mode: a day's admitted calls go to the gateway's Batch API instead of one request
//! each, and a later run collects the answers.
//!
//! Submitting ([`Submitter`]): each call's transcript is fetched, masked and its prompt
//! rendered exactly as in sync mode; the call is claimed, and its request line is appended
//! to an unnamed temporary file (gone with the process, however it ends) while its row
//! (what the save needs, and the masked text the evidence check reads) goes to
//! `llm_batch_calls`. The batch's row — the intent, with a random tag —
//! exists before anything is uploaded. A file full by LLM_BATCH_MAX_REQUESTS or
//! LLM_BATCH_MAX_BYTES is uploaded, its batch created (metadata: callq, department, day,
//! run, tag), and each id recorded as it comes.
//!
//! A canary night in batch mode ([`submit_canary`]) goes into a batch of its own through
//! the same [`Submitter`]: no run, no claims; its lines are kept as the night's experiment
//! rows when collected ([`KeepCanaryLine`]) and the night is measured then.
//!
//! Collecting ([`Collector`]): every run of the department first collects its pending
//! batches. A batch whose run died before it was recorded as created is looked for at the
//! gateway by its tag, and given back (its calls scored again) when it never existed. A
//! finished batch's output and error files are read line by line, each line's answer read
//! as a synchronous answer is and handed to [`answer::handle`](super::answer::handle) — the
//! one place an answer becomes an outcome — with a [`Keep`] that saves the call and marks
//! it collected in one transaction. Lines not answered (an expired, cancelled or failed
//! batch) are recorded as failed, and the nightly run puts them into its next batch (a
//! canary batch's become failed rows of its night's experiment).

use std::collections::HashSet;
use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use futures::{FutureExt, StreamExt};
use serde_json::{Map, Value};
use tokio::io::AsyncBufReadExt;

use super::answer::{self, Finished, Judge, Keep, Spent};
use super::call::{self, Admitted, DayCalls};
use super::{Prepared, RunError, SAVE_CONCURRENCY, Stop};
use crate::config::RunSettings;
use crate::domain::{Checklist, Outcome};
use crate::experiment;
use crate::llm::batch::{BatchClient, BatchError, GatewayBatch, parse_output_line};
use crate::llm::{Analyzed, LlmError};
use crate::severity::{Severe, Severity};
use crate::store::{
    BatchCall, BatchRow, CallRecord, Failure, NewBatch, Store, StoreError, StoredCall,
};
use crate::summary::Summary;

/// Rows written to `llm_batch_calls` at once while a file fills.
const ROWS_PER_INSERT: usize = 200;

/// How `collect --wait` paces its polls: from the first delay, growing by half each
/// time, up to the last.
const POLL_FIRST: Duration = Duration::from_secs(5);
const POLL_MAX: Duration = Duration::from_secs(300);

/// The `custom_id` of a call's line.
fn custom_id(call_id: i64) -> String {
    format!("call-{call_id}")
}

/// The `custom_id` of a canary line.
fn canary_custom_id(call_id: i64) -> String {
    format!("canary-{call_id}")
}

/// What a day submitted.
#[derive(Debug, Default)]
pub(super) struct Submitted {
    pub batches: u64,
    pub calls: u64,
    /// Calls given back because their batch could not be submitted, with why.
    pub given_back: Vec<(i64, String)>,
    /// Calls whose batch may or may not exist at the gateway (its creation's answer was
    /// lost): a later run finds out by its tag.
    pub unsure: u64,
    pub error: Option<BatchError>,
}

/// A file being filled.
struct Part {
    id: i64,
    tag: String,
    file: std::io::BufWriter<std::fs::File>,
    requests: usize,
    bytes: u64,
    /// Rows not written to `llm_batch_calls` yet.
    rows: Vec<BatchCall>,
    calls: Vec<i64>,
    created_unix: i64,
}

/// A full file, on its way to the gateway.
struct Sent {
    id: i64,
    requests: usize,
    bytes: u64,
    calls: Vec<i64>,
    tag: String,
    created_unix: i64,
}

struct Filling {
    part: Option<Part>,
    done: Submitted,
    /// Set once a batch could not be submitted: the day stops putting calls into batches.
    broken: bool,
}

/// A day's batches (or a canary night's) being filled and submitted.
pub(super) struct Submitter<'a> {
    prepared: &'a Prepared,
    day: NaiveDate,
    /// The day's run, whose claims the calls hold; `None` for a canary night.
    run_id: Option<i64>,
    canary_night: Option<i64>,
    state: tokio::sync::Mutex<Filling>,
}

impl<'a> Submitter<'a> {
    pub fn new(prepared: &'a Prepared, day: NaiveDate, run_id: i64) -> Submitter<'a> {
        Submitter::filling(prepared, day, Some(run_id), None)
    }

    /// A canary night's batch: its lines are scored into the night's experiment.
    fn for_canary(prepared: &'a Prepared, night: NaiveDate, night_id: i64) -> Submitter<'a> {
        Submitter::filling(prepared, night, None, Some(night_id))
    }

    fn filling(
        prepared: &'a Prepared,
        day: NaiveDate,
        run_id: Option<i64>,
        canary_night: Option<i64>,
    ) -> Submitter<'a> {
        Submitter {
            prepared,
            day,
            run_id,
            canary_night,
            state: tokio::sync::Mutex::new(Filling {
                part: None,
                done: Submitted::default(),
                broken: false,
            }),
        }
    }

    /// Appends one call's line, submitting the file first when the line would not fit.
    /// `Ok(false)`: the day's batches are broken (one could not be submitted); the call
    /// was not added.
    async fn add(&self, line: &[u8], row: BatchCall) -> Result<bool, RunError> {
        let limits = &self.prepared.settings.batch;
        let mut state = self.state.lock().await;
        if state.broken {
            return Ok(false);
        }
        let full = state.part.as_ref().is_some_and(|p| {
            p.requests + 1 > limits.max_requests
                || p.bytes + line.len() as u64 > limits.max_bytes as u64
        });
        if full {
            let part = state.part.take().expect("a part");
            self.submit(part, &mut state).await?;
            if state.broken {
                return Ok(false);
            }
        }
        if state.part.is_none() {
            state.part = Some(self.open_part().await?);
        }
        let part = state.part.as_mut().expect("a part");
        part.file
            .write_all(line)
            .map_err(|e| BatchError::File(e.to_string()))?;
        part.requests += 1;
        part.bytes += line.len() as u64;
        part.calls.push(row.call_id);
        part.rows.push(row);
        if part.rows.len() >= ROWS_PER_INSERT {
            let rows = std::mem::take(&mut part.rows);
            if let Err(e) = self
                .prepared
                .store
                .add_batch_calls(part.id, self.run_id, &rows)
                .await
            {
                // Lines without their rows must never reach the gateway: the file is
                // dropped, and its batch (still `filling`) is given back by the next run.
                state.part = None;
                state.broken = true;
                return Err(e.into());
            }
        }
        Ok(true)
    }

    /// A new file, its batch's row recorded first.
    async fn open_part(&self) -> Result<Part, RunError> {
        let p = self.prepared;
        let tag = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let id = p
            .store
            .open_batch(&NewBatch {
                department_id: p.settings.department_id,
                day: self.day,
                run_id: self.run_id,
                canary_night: self.canary_night,
                tag: &tag,
                model: &p.settings.llm.model,
                checklist_version: &p.checklist_version,
                prompt_version: &p.prompt_version,
            })
            .await?;
        // Unnamed: the masked transcripts in it go with the process however it ends,
        // a SIGKILL included.
        let file = tempfile::tempfile().map_err(|e| BatchError::File(e.to_string()))?;
        Ok(Part {
            id,
            tag,
            file: std::io::BufWriter::with_capacity(256 * 1024, file),
            requests: 0,
            bytes: 0,
            rows: Vec::new(),
            calls: Vec::new(),
            created_unix: chrono::Utc::now().timestamp(),
        })
    }

    /// Uploads a full file and creates its batch, recording each step. A batch that
    /// certainly did not reach the gateway is given back; one that may have is left for
    /// the next run to find by its tag.
    async fn submit(&self, mut part: Part, state: &mut Filling) -> Result<(), RunError> {
        let p = self.prepared;
        let store = &p.store;
        let rows = std::mem::take(&mut part.rows);
        store.add_batch_calls(part.id, self.run_id, &rows).await?;
        let Part {
            file, calls, tag, ..
        } = part;
        let file = file
            .into_inner()
            .map_err(|e| BatchError::File(e.error().to_string()))?;
        let part = Sent {
            id: part.id,
            requests: part.requests,
            bytes: part.bytes,
            calls,
            tag,
            created_unix: part.created_unix,
        };
        // The intent: a run killed from here on leaves a row the next run resolves.
        store
            .batch_uploading(part.id, part.requests, part.bytes)
            .await?;
        let name = format!(
            "callq-{}-{}-{}.jsonl",
            p.settings.department_id, self.day, part.id
        );
        let file_id = match p.batch.upload(&file, &name).await {
            Ok(id) => id,
            Err(e) => return self.give_back(&part, e, state).await,
        };
        store.batch_uploaded(part.id, &file_id).await?;
        let mut metadata = Map::new();
        let (owner, id) = match (self.run_id, self.canary_night) {
            (Some(run), _) => ("run", run),
            (None, night) => ("canary_night", night.unwrap_or_default()),
        };
        for (k, v) in [
            ("callq", env!("CARGO_PKG_VERSION").to_string()),
            ("department", p.settings.department_id.to_string()),
            ("day", self.day.to_string()),
            (owner, id.to_string()),
            ("tag", part.tag.clone()),
        ] {
            metadata.insert(k.into(), Value::String(v));
        }
        // Batches listed since a little before the file was started are searched for the
        // tag, clocks being what they are.
        let since = part.created_unix - 3600;
        match p
            .batch
            .create_unique(&file_id, &metadata, &part.tag, since)
            .await
        {
            Ok(b) => {
                store.batch_submitted(part.id, &b.id, &b.status).await?;
                tracing::info!(
                    "batch {} ({} calls of {}) submitted to the gateway as {}",
                    part.id,
                    part.requests,
                    self.day,
                    b.id
                );
                state.done.batches += 1;
                state.done.calls += part.requests as u64;
                Ok(())
            }
            Err(e) if e.is_definite() => {
                p.batch.delete_file(&file_id).await;
                self.give_back(&part, e, state).await
            }
            Err(e) => {
                tracing::error!(
                    "batch {} ({} calls): the gateway's answer to its creation was lost ({e}); \
                     the next run looks for it by its tag and scores its calls either way",
                    part.id,
                    part.requests
                );
                state.done.unsure += part.requests as u64;
                state.done.error = Some(e);
                state.broken = true;
                Ok(())
            }
        }
    }

    async fn give_back(
        &self,
        part: &Sent,
        e: BatchError,
        state: &mut Filling,
    ) -> Result<(), RunError> {
        let why = format!("the batch could not be submitted: {e}");
        tracing::error!("batch {} ({} calls): {why}", part.id, part.requests);
        self.prepared
            .store
            .give_back_batch(part.id, "released", &why)
            .await?;
        state
            .done
            .given_back
            .extend(part.calls.iter().map(|id| (*id, why.clone())));
        state.done.error = Some(e);
        state.broken = true;
        Ok(())
    }

    /// Submits the last file. What the day submitted, however it went.
    pub async fn finish(&self) -> (Submitted, Option<RunError>) {
        let mut state = self.state.lock().await;
        let mut error = None;
        if let Some(part) = state.part.take()
            && part.requests > 0
            && let Err(e) = self.submit(part, &mut state).await
        {
            error = Some(e);
        }
        (std::mem::take(&mut state.done), error)
    }
}

/// One admitted call into the day's batch: transcript → mask → prompt → claim → its line.
/// `Ok(None)`: the day stopped before the call was looked at. `Err` only for what stops
/// the whole run.
pub(super) async fn stage_call(
    admitted: Admitted,
    day: &DayCalls<'_>,
    submitter: &Submitter<'_>,
) -> Result<Option<Finished>, RunError> {
    let Admitted { call, operator_id } = admitted;
    let p = day.prepared;
    let keep = Failures { day };
    let transcript = {
        let _permit = tokio::select! {
            biased;
            _ = day.halt.cancelled() => return Ok(None),
            permit = day.transcripts.acquire() => permit.expect("never closed"),
        };
        p.tbank.transcript(call.id).await
    };
    let transcript = match transcript {
        // Recorded as sync mode records it: a failure the nightly run comes back to.
        Ok(t) if t.is_empty() => {
            tracing::info!(
                "call {} has no transcript yet; a later run will pick it up",
                call.id
            );
            let none = Spent::default();
            return match keep
                .failure(call.id, "no_transcript", "not transcribed yet", &none)
                .await
            {
                Ok(()) => Ok(Some(Finished::done(Outcome::NoTranscript))),
                Err(e) if e.severity() > Severity::Call => Err(e.into()),
                Err(e) => {
                    tracing::error!("call {}: could not record its failure: {e}", call.id);
                    Ok(Some(Finished::done(Outcome::NoTranscript)))
                }
            };
        }
        Ok(t) => t,
        Err(e) => {
            return answer::failed(call.id, "transcript", e, Spent::default(), &keep)
                .await
                .map(Some);
        }
    };
    let raw = transcript.to_text();
    let (text, stored) = p.settings.privacy.apply(&raw);
    let prompt = p.prompt.render(&text);
    if day.halt.is_cancelled() {
        return Ok(None);
    }
    let run_id = day.run_id.expect("batch mode writes");
    if let Some(end) = call::claim(&p.store, call.id, run_id, day.opts.reanalyze, &keep).await {
        return end.map(Some);
    }
    let tz = p.settings.timezone;
    let custom = custom_id(call.id);
    let line = p.batch.input_line(&custom, &prompt, &p.schema);
    drop(prompt);
    if line.len() > p.settings.batch.max_bytes {
        release(p, call.id, run_id).await;
        let why = format!(
            "its request ({} bytes) is larger than LLM_BATCH_MAX_BYTES",
            line.len()
        );
        let e = LlmError::Rejected {
            status: 413,
            message: why,
        };
        return answer::failed(call.id, "llm", e, Spent::default(), &keep)
            .await
            .map(Some);
    }
    let row = BatchCall {
        call_id: call.id,
        custom_id: custom,
        operator_id,
        start_local: call.start.with_timezone(&tz).naive_local(),
        finish_local: call.finish.map(|f| f.with_timezone(&tz).naive_local()),
        duration_s: call.duration_s,
        direction: call.direction.clone(),
        phone: call
            .phone
            .as_deref()
            .and_then(|n| p.settings.privacy.phone_to_store(n)),
        transcript: text.into_owned(),
        stored_transcript: stored.map(|s| s.into_owned()),
    };
    match submitter.add(&line, row).await {
        Ok(true) => Ok(Some(Finished::done(Outcome::InBatch))),
        Ok(false) => {
            release(p, call.id, run_id).await;
            Ok(None)
        }
        Err(e) => {
            day.halt.cancel();
            Err(e)
        }
    }
}

/// A canary night's calls into a batch of their own: each stored transcript masked as the
/// run masks it, its prompt rendered with tonight's template, its line written. The calls
/// are scored, never saved: no claim is taken.
pub(crate) async fn submit_canary(
    p: &Prepared,
    night: NaiveDate,
    night_id: i64,
    calls: &[StoredCall],
) -> CanarySent {
    let submitter = Submitter::for_canary(p, night, night_id);
    let mut error = None;
    let mut left_out = Vec::new();
    // Where the night's batches broke, if they did: that call and the rest were not sent.
    let mut broke_at = None;
    for (i, call) in calls.iter().enumerate() {
        let text = p.settings.privacy.for_llm(&call.transcript);
        let custom = canary_custom_id(call.id);
        let line = p
            .batch
            .input_line(&custom, &p.prompt.render(&text), &p.schema);
        if line.len() > p.settings.batch.max_bytes {
            let why = format!(
                "its request ({} bytes) is larger than LLM_BATCH_MAX_BYTES",
                line.len()
            );
            left_out.push((call.id, why));
            continue;
        }
        // A canary line saves no call: the listing's columns are not read back.
        let row = BatchCall {
            call_id: call.id,
            custom_id: custom,
            operator_id: 0,
            start_local: night.and_time(chrono::NaiveTime::MIN),
            finish_local: None,
            duration_s: 0,
            direction: None,
            phone: None,
            transcript: text.into_owned(),
            stored_transcript: None,
        };
        match submitter.add(&line, row).await {
            Ok(true) => {}
            Ok(false) => {
                broke_at = Some(i);
                break;
            }
            Err(e) => {
                error = Some(e);
                broke_at = Some(i);
                break;
            }
        }
    }
    let (submitted, finished) = submitter.finish().await;
    let error = error
        .or(finished)
        .map(|e| e.to_string())
        .or_else(|| submitted.error.as_ref().map(|e| e.to_string()));
    if let Some(i) = broke_at {
        let why = error
            .as_deref()
            .unwrap_or("its batch could not be submitted");
        left_out.extend(
            calls[i..]
                .iter()
                .map(|c| (c.id, format!("not sent: {why}"))),
        );
    }
    CanarySent {
        calls: submitted.calls + submitted.unsure,
        left_out,
        error,
    }
}

/// What a canary night's submission did.
pub(crate) struct CanarySent {
    /// Calls in a batch that reached (or may have reached) the gateway.
    pub calls: u64,
    /// Calls that reached no batch, with why.
    pub left_out: Vec<(i64, String)>,
    pub error: Option<String>,
}

/// A call that does not go into a batch after all gives its claim back.
async fn release(p: &Prepared, call_id: i64, run_id: i64) {
    if let Err(e) = p.store.release_call(call_id, run_id).await {
        tracing::warn!("call {call_id}: could not release its claim: {e}");
    }
}

/// The failures of calls that never reach a batch (no transcript, a failed claim) are
/// recorded as sync mode records them.
struct Failures<'a> {
    day: &'a DayCalls<'a>,
}

impl Keep for Failures<'_> {
    async fn answer(&self, _call_id: i64, _analyzed: &Analyzed) -> Result<(), StoreError> {
        unreachable!("no answer is kept while submitting")
    }

    async fn failure(
        &self,
        call_id: i64,
        stage: &'static str,
        error: &str,
        _spent: &Spent,
    ) -> Result<(), StoreError> {
        let day = self.day;
        day.prepared
            .store
            .record_failure(&Failure {
                call_id,
                department_id: day.prepared.settings.department_id,
                day: day.day,
                run_id: day.run_id,
                stage,
                error,
            })
            .await
    }
}

/// What a collection did: the collected calls' outcomes and costs in a [`Summary`], and
/// the batches' counts.
#[derive(Debug, Default)]
pub struct Collected {
    pub outcomes: Summary,
    pub batches_collected: u64,
    /// Batches still being worked on at the gateway, and their calls.
    pub batches_open: u64,
    pub calls_in_flight: u64,
    /// Calls of batches that never reached the gateway, given back to be scored again.
    pub calls_given_back: u64,
    /// Lines that could not be read, named no call of the batch, or answered a call
    /// already collected: logged and counted, nothing else touched.
    pub bad_lines: u64,
    /// Lines for calls of the batch already collected (a repeated line, or a collection
    /// taken up again after a crash): counted, nothing touched.
    pub repeated_lines: u64,
    /// Batches another collector was collecting.
    pub skipped_locked: u64,
    pub errors: Vec<String>,
    /// Canary nights measured as their batches were collected (batch mode).
    pub canary: Vec<crate::canary::Night>,
}

impl Collected {
    /// A batch the gateway could not be asked about waits for the next collection. A
    /// canary batch's is only logged: the canary never changes a run's exit code.
    fn waits(&mut self, b: &BatchRow, error: String) {
        match b.canary_night {
            Some(_) => tracing::warn!("canary {error}"),
            None => self.errors.push(error),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.batches_collected == 0
            && self.batches_open == 0
            && self.calls_given_back == 0
            && self.bad_lines == 0
            && self.repeated_lines == 0
            && self.skipped_locked == 0
            && self.errors.is_empty()
            && self.canary.is_empty()
    }

    pub fn to_json(&self) -> Value {
        let s = &self.outcomes;
        serde_json::json!({
            "batches_collected": self.batches_collected,
            "batches_open": self.batches_open,
            "calls_in_flight": self.calls_in_flight,
            "calls_given_back": self.calls_given_back,
            "bad_lines": self.bad_lines,
            "repeated_lines": self.repeated_lines,
            "skipped_locked": self.skipped_locked,
            "scored": s.count(Outcome::Scored),
            "not_sales": s.count(Outcome::NotSales),
            "failed": s.count(Outcome::Failed),
            "prompt_tokens": s.usage.prompt_tokens,
            "completion_tokens": s.usage.completion_tokens,
            "cached_tokens": s.usage.cached_tokens,
            "cost_usd": s.cost_usd,
            "cost_source": s.cost_source().unwrap_or("none"),
            "errors": self.errors,
            "canary": self.canary.iter().map(|n| n.to_json()).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Collected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.outcomes;
        write!(
            f,
            "batches: {} collected ({} scored, {} not sales, {} failed",
            self.batches_collected,
            s.count(Outcome::Scored),
            s.count(Outcome::NotSales),
            s.count(Outcome::Failed),
        )?;
        if let Some(c) = s.cost_usd {
            write!(f, ", cost ${c:.4}")?;
        }
        write!(
            f,
            "), {} still at the gateway with {} calls",
            self.batches_open, self.calls_in_flight
        )?;
        if self.calls_given_back > 0 {
            write!(
                f,
                ", {} calls given back to be scored again",
                self.calls_given_back
            )?;
        }
        if self.bad_lines > 0 {
            write!(f, ", {} bad lines (see the log)", self.bad_lines)?;
        }
        if self.repeated_lines > 0 {
            write!(
                f,
                ", {} lines for calls already collected",
                self.repeated_lines
            )?;
        }
        if self.skipped_locked > 0 {
            write!(
                f,
                ", {} being collected by another run",
                self.skipped_locked
            )?;
        }
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Everything a collection needs: the database, the gateway's batch endpoints, and the
/// checklist and settings answers are judged and saved with.
pub struct Collector<'a> {
    store: &'a Store,
    client: &'a BatchClient,
    checklist: &'a Checklist,
    settings: &'a RunSettings,
}

/// What `callq batch` works with when there is no run: no T-Bank, no listing.
pub struct BatchDesk {
    store: Store,
    client: BatchClient,
    checklist: Checklist,
    settings: RunSettings,
}

impl BatchDesk {
    /// Loads the checklist, connects to the database (migrating it) and sets up the
    /// gateway's client.
    pub async fn open(settings: RunSettings) -> Result<BatchDesk, RunError> {
        let checklist = super::load_checklist(&settings.checklist).await?;
        let store = Store::connect(&settings.db, SAVE_CONCURRENCY + 2).await?;
        for name in store.migrate().await? {
            tracing::info!("applied migration {name}");
        }
        let client = BatchClient::new(&settings.llm, settings.batch.price_factor)?;
        Ok(BatchDesk {
            store,
            client,
            checklist,
            settings,
        })
    }

    pub fn collector(&self) -> Collector<'_> {
        Collector {
            store: &self.store,
            client: &self.client,
            checklist: &self.checklist,
            settings: &self.settings,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn client(&self) -> &BatchClient {
        &self.client
    }

    pub fn department(&self) -> i32 {
        self.settings.department_id
    }
}

impl Prepared {
    pub fn collector(&self) -> Collector<'_> {
        Collector {
            store: &self.store,
            client: &self.batch,
            checklist: &self.checklist,
            settings: &self.settings,
        }
    }
}

impl Collector<'_> {
    /// Collects the department's finished batches and resolves the intents of runs that
    /// died. With `wait`, polls (backing off) until no batch of the department is open,
    /// or `stop` says stop.
    pub async fn collect(&self, wait: bool, stop: &Stop) -> Result<Collected, RunError> {
        let mut report = Collected::default();
        let mut delay = POLL_FIRST;
        report.canary = crate::canary::measure_left(self.store, self.settings.department_id).await;
        loop {
            report.batches_open = 0;
            report.calls_in_flight = 0;
            report.skipped_locked = 0;
            let batches = self.store.open_batches(self.settings.department_id).await?;
            for b in batches {
                if stop.signal().is_some() {
                    break;
                }
                let (id, canary) = (b.id, b.canary_night.is_some());
                match self.visit(b, &mut report).await {
                    Ok(()) => {}
                    // The canary never changes the run's exit code, nor keeps the day
                    // batches after it from being collected.
                    Err(e) if canary => {
                        tracing::warn!("canary batch {id}: {e}; the next collection tries again");
                        report.batches_open += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !wait || report.batches_open + report.skipped_locked == 0 {
                return Ok(report);
            }
            tracing::info!(
                "{} batch(es) still at the gateway; asking again in {} s",
                report.batches_open + report.skipped_locked,
                delay.as_secs()
            );
            let admitting = stop.admitting();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = admitting.cancelled() => return Ok(report),
            }
            delay = (delay * 3 / 2).min(POLL_MAX);
        }
    }

    async fn visit(&self, b: BatchRow, report: &mut Collected) -> Result<(), RunError> {
        match b.state.as_str() {
            // Its run is still filling or uploading it.
            "filling" | "uploading" | "creating" if b.run_alive => {
                report.batches_open += 1;
                report.calls_in_flight += b.pending as u64;
                Ok(())
            }
            "filling" | "uploading" => {
                let n = self
                    .store
                    .give_back_batch(
                        b.id,
                        "released",
                        "its run stopped before the batch reached the gateway",
                    )
                    .await?;
                tracing::warn!(
                    "batch {} of {}: its run stopped before uploading it; {n} call(s) given back",
                    b.id,
                    b.day
                );
                self.given_back(&b, n, report).await
            }
            "creating" => {
                let since = b.created_at.timestamp() - 3600;
                match self.client.find_by_tag(&b.tag, since).await {
                    Ok(Some(found)) => {
                        tracing::warn!(
                            "batch {} of {}: its run stopped before recording it; found at the gateway as {}",
                            b.id,
                            b.day,
                            found.id
                        );
                        self.store
                            .batch_submitted(b.id, &found.id, &found.status)
                            .await?;
                        let b = BatchRow {
                            state: "submitted".into(),
                            batch_id: Some(found.id.clone()),
                            ..b
                        };
                        self.collect_batch(b, report).await
                    }
                    Ok(None) => {
                        let n = self
                            .store
                            .give_back_batch(
                                b.id,
                                "released",
                                "its run stopped before the gateway created the batch",
                            )
                            .await?;
                        tracing::warn!(
                            "batch {} of {}: never created at the gateway; {n} call(s) given back",
                            b.id,
                            b.day
                        );
                        self.given_back(&b, n, report).await
                    }
                    Err(e) => {
                        report.batches_open += 1;
                        report.calls_in_flight += b.pending as u64;
                        report.waits(
                            &b,
                            format!(
                                "batch {}: could not look for it at the gateway: {e}; it waits",
                                b.id
                            ),
                        );
                        Ok(())
                    }
                }
            }
            _ => self.collect_batch(b, report).await,
        }
    }

    /// A batch that never reached the gateway was given back: its `n` calls are scored
    /// again by the nightly run — or, for a canary batch, its night ends failed.
    async fn given_back(
        &self,
        b: &BatchRow,
        n: u64,
        report: &mut Collected,
    ) -> Result<(), RunError> {
        match b.canary_night {
            None => report.calls_given_back += n,
            Some(night) => self.canary_measured(night, &[], report).await?,
        }
        Ok(())
    }

    /// A canary batch is done: its night is measured (when no other batch of it is open).
    async fn canary_measured(
        &self,
        night: i64,
        models: &[String],
        report: &mut Collected,
    ) -> Result<(), RunError> {
        if let Some(n) = crate::canary::measure_collected(self.store, night, models).await? {
            report.canary.push(n);
        }
        Ok(())
    }

    /// One submitted batch: asked about, and collected when finished — by one collector
    /// at a time.
    async fn collect_batch(&self, b: BatchRow, report: &mut Collected) -> Result<(), RunError> {
        let Some(lock) = self.store.lock_batch(b.id).await? else {
            tracing::info!("batch {}: another run is collecting it", b.id);
            report.skipped_locked += 1;
            return Ok(());
        };
        let result = self.collect_locked(&b, report).await;
        lock.release().await;
        result
    }

    async fn collect_locked(&self, b: &BatchRow, report: &mut Collected) -> Result<(), RunError> {
        // Read again under the lock: a collector that held it may have finished it.
        let Some(b) = self.store.batch(&b.id.to_string()).await? else {
            return Ok(());
        };
        if b.state != "submitted" {
            return Ok(());
        }
        let gateway_id = b.batch_id.clone().unwrap_or_default();
        let g = match self.client.get(&gateway_id).await {
            Ok(g) => g,
            Err(e) => {
                report.batches_open += 1;
                report.calls_in_flight += b.pending as u64;
                report.waits(
                    &b,
                    format!(
                        "batch {} ({gateway_id}): the gateway did not say how it is: {e}; it waits",
                        b.id
                    ),
                );
                return Ok(());
            }
        };
        let error = g.error_text();
        self.store
            .batch_polled(b.id, &g.status, error.as_deref())
            .await?;
        if !g.is_finished() {
            report.batches_open += 1;
            report.calls_in_flight += b.pending as u64;
            return Ok(());
        }
        if b.checklist_version.as_deref() != Some(self.checklist_version().as_str()) {
            tracing::warn!(
                "batch {}: the checklist changed since it was submitted; its answers are read \
                 against today's checklist",
                b.id
            );
        }
        let canary = match b.canary_night {
            Some(night) => match self
                .store
                .canary_night(night)
                .await?
                .and_then(|r| r.experiment_id)
            {
                Some(experiment_id) => Some(CanaryLines {
                    experiment_id,
                    models: Default::default(),
                }),
                None => {
                    // Its night's experiment was removed: nothing to keep the answers in.
                    let why = "its canary night's experiment is gone";
                    self.store.give_back_batch(b.id, "collected", why).await?;
                    tracing::warn!("canary batch {}: {why}; not collected", b.id);
                    self.forget_files(&g).await;
                    return Ok(());
                }
            },
            None => None,
        };
        let before = report.outcomes.cost_usd;
        let bad_before = report.bad_lines + report.repeated_lines;
        for file in [&g.output_file_id, &g.error_file_id].into_iter().flatten() {
            self.read_file(&b, canary.as_ref(), file, report).await?;
        }
        let why = match g.status.as_str() {
            "expired" => "the batch expired before this call was answered".to_string(),
            "cancelled" => "the batch was cancelled before this call was answered".to_string(),
            "failed" => format!(
                "the gateway refused the batch: {}",
                error.as_deref().unwrap_or("no reason given")
            ),
            _ => "the batch's files held no answer for this call".to_string(),
        };
        let rest = self.store.give_back_batch(b.id, "collected", &why).await?;
        if let (Some(night), Some(canary)) = (b.canary_night, canary) {
            if rest > 0 {
                tracing::warn!(
                    "canary batch {} ({}): {rest} call(s) without an answer ({why})",
                    b.id,
                    g.status
                );
            }
            let bad = report.bad_lines + report.repeated_lines - bad_before;
            self.store.batch_collected(b.id, bad, None).await?;
            report.batches_collected += 1;
            tracing::info!(
                "canary batch {} ({gateway_id}, {}) collected",
                b.id,
                g.status
            );
            self.forget_files(&g).await;
            let models: Vec<String> = canary
                .models
                .into_inner()
                .expect("models")
                .into_iter()
                .collect();
            return self.canary_measured(night, &models, report).await;
        }
        if rest > 0 {
            tracing::warn!(
                "batch {} ({}): {rest} call(s) without an answer ({why}); the nightly run submits them again",
                b.id,
                g.status
            );
            report.outcomes.failures_total += rest;
            for _ in 0..rest {
                report.outcomes.add(Outcome::Failed);
            }
        }
        let cost = report
            .outcomes
            .cost_usd
            .map(|after| after - before.unwrap_or(0.0));
        self.store
            .batch_collected(
                b.id,
                report.bad_lines + report.repeated_lines - bad_before,
                cost,
            )
            .await?;
        report.batches_collected += 1;
        tracing::info!("batch {} ({gateway_id}, {}) collected", b.id, g.status);
        self.forget_files(&g).await;
        Ok(())
    }

    fn checklist_version(&self) -> String {
        self.checklist.version()
    }

    /// Files at the gateway hold masked transcripts; once collected they are removed.
    async fn forget_files(&self, g: &GatewayBatch) {
        for file in [&g.input_file_id, &g.output_file_id, &g.error_file_id]
            .into_iter()
            .flatten()
        {
            self.client.delete_file(file).await;
        }
    }

    /// A result file, line by line as it arrives, each line saved on its own, a few at
    /// a time.
    async fn read_file(
        &self,
        b: &BatchRow,
        canary: Option<&CanaryLines>,
        file_id: &str,
        report: &mut Collected,
    ) -> Result<(), RunError> {
        let reader = match self.client.file_content(file_id).await {
            Ok(r) => r,
            Err(e) => return Err(RunError::Batch(e)),
        };
        let lines = futures::stream::unfold(reader, next_line);
        // Boxed: the closures' borrowed types would otherwise leak into the run's future
        // and keep it from being spawned.
        let mut results = lines
            .map(|line| self.line(b, canary, line).boxed())
            .buffer_unordered(SAVE_CONCURRENCY)
            .boxed();
        let mut fatal = None;
        while let Some(result) = results.next().await {
            match result {
                Ok(Line::Finished(f)) => report.outcomes.record(&f),
                Ok(Line::Canary) => {}
                Ok(Line::Bad) => report.bad_lines += 1,
                Ok(Line::Repeated) => report.repeated_lines += 1,
                Ok(Line::Blank) => {}
                Err(e) => {
                    fatal.get_or_insert(e);
                }
            }
        }
        match fatal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn line(
        &self,
        b: &BatchRow,
        canary: Option<&CanaryLines>,
        line: std::io::Result<Vec<u8>>,
    ) -> Result<Line, RunError> {
        let line = line.map_err(|e| {
            RunError::Batch(BatchError::Unavailable {
                what: "a batch result file",
                attempts: 1,
                message: e.to_string(),
            })
        })?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            return Ok(Line::Blank);
        }
        let parsed = match parse_output_line(text) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(
                    "batch {}: a result line cannot be read ({e}); skipped",
                    b.id
                );
                return Ok(Line::Bad);
            }
        };
        let Some(found) = self.store.batch_call(b.id, &parsed.custom_id).await? else {
            tracing::warn!(
                "batch {}: a result line names {:?}, no call of this batch; skipped",
                b.id,
                parsed.custom_id
            );
            return Ok(Line::Bad);
        };
        if found.state != "pending" {
            // A repeated line, or a collection taken up again after a crash.
            tracing::debug!(
                "batch {}: a result line for call {}, already {}; skipped",
                b.id,
                found.call.call_id,
                found.state
            );
            return Ok(Line::Repeated);
        }
        let call = found.call;
        let judge = Judge {
            checklist: self.checklist,
            review_below_percent: self.settings.review_below_percent,
        };
        if let Some(canary) = canary {
            if let Some(model) = parsed.answer.model() {
                canary
                    .models
                    .lock()
                    .expect("models")
                    .insert(model.to_string());
            }
            let answer = self.client.analyzed(parsed.answer, self.checklist);
            let keep = KeepCanaryLine {
                store: self.store,
                batch: b.id,
                experiment_id: canary.experiment_id,
            };
            answer::handle::<RunError>(call.call_id, &call.transcript, answer, judge, &keep)
                .await?;
            return Ok(Line::Canary);
        }
        let answer = self.client.analyzed(parsed.answer, self.checklist);
        let keep = SaveCollected {
            c: self,
            batch: b,
            call: &call,
            lost: AtomicBool::new(false),
        };
        let finished: Finished =
            answer::handle::<RunError>(call.call_id, &call.transcript, answer, judge, &keep)
                .await?;
        if keep.lost.load(Ordering::Relaxed) {
            tracing::warn!(
                "batch {}: call {} was collected by another run first; skipped",
                b.id,
                call.call_id
            );
            return Ok(Line::Bad);
        }
        Ok(Line::Finished(finished))
    }
}

/// The next line of a result file, for `stream::unfold`.
async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(
    mut r: R,
) -> Option<(std::io::Result<Vec<u8>>, R)> {
    let mut buf = Vec::new();
    match r.read_until(b'\n', &mut buf).await {
        Ok(0) => None,
        Ok(_) => Some((Ok(buf), r)),
        Err(e) => Some((Err(e), r)),
    }
}

enum Line {
    Finished(Finished),
    /// A canary line, kept in its night's experiment.
    Canary,
    Bad,
    Repeated,
    Blank,
}

/// A collected answer is kept as a synchronous one is — the same save, one transaction —
/// with the call marked collected in its batch in the same commit; a failure marks it
/// failed, records it and releases its claim. `lost`: another collector had it first.
struct SaveCollected<'a> {
    c: &'a Collector<'a>,
    batch: &'a BatchRow,
    call: &'a BatchCall,
    lost: AtomicBool,
}

impl Keep for SaveCollected<'_> {
    async fn answer(&self, call_id: i64, analyzed: &Analyzed) -> Result<(), StoreError> {
        let b = self.batch;
        let s = self.c.settings;
        let call = self.call;
        let record = CallRecord {
            id: call_id,
            start_local: call.start_local,
            finish_local: call.finish_local,
            duration_s: call.duration_s,
            direction: call.direction.as_deref(),
            phone: call.phone.as_deref(),
            operator_id: call.operator_id,
            department_id: b.department_id,
            transcript: call.stored(),
            analysis: &analyzed.analysis,
            model: b.model.as_deref().unwrap_or(&s.llm.model),
            usage: analyzed.usage,
            cost: analyzed.cost,
            checklist_version: b.checklist_version.as_deref().unwrap_or_default(),
            prompt_version: b.prompt_version.as_deref().unwrap_or_default(),
            run_id: b.run_id,
        };
        if !self.c.store.save_batch_call(b.id, &record).await? {
            self.lost.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn failure(
        &self,
        call_id: i64,
        stage: &'static str,
        error: &str,
        _spent: &Spent,
    ) -> Result<(), StoreError> {
        if !self
            .c
            .store
            .fail_batch_call(self.batch.id, call_id, stage, error)
            .await?
        {
            self.lost.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A canary batch's collection: the experiment its lines are kept in, and the model names
/// its answers reported.
struct CanaryLines {
    experiment_id: i64,
    models: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// A canary line's answer or failure is its night's experiment row — as `compare` keeps
/// one — written with the line marked done in its batch, in one transaction. A line
/// another collector had first writes nothing.
struct KeepCanaryLine<'a> {
    store: &'a Store,
    batch: i64,
    experiment_id: i64,
}

impl Keep for KeepCanaryLine<'_> {
    async fn answer(&self, call_id: i64, analyzed: &Analyzed) -> Result<(), StoreError> {
        let row = experiment::answered_row(call_id, analyzed);
        self.store
            .keep_canary_line(self.batch, self.experiment_id, &row)
            .await?;
        Ok(())
    }

    async fn failure(
        &self,
        call_id: i64,
        _stage: &'static str,
        error: &str,
        spent: &Spent,
    ) -> Result<(), StoreError> {
        let row = experiment::failed_row(call_id, error, spent);
        self.store
            .keep_canary_line(self.batch, self.experiment_id, &row)
            .await?;
        Ok(())
    }
}

/// The ids of `ids` in a batch the gateway may have: not to be scored again meanwhile.
pub(super) async fn in_open_batches(
    store: &Store,
    ids: &[i64],
) -> Result<HashSet<i64>, StoreError> {
    Ok(store
        .calls_in_open_batches(ids)
        .await?
        .into_iter()
        .collect())
}
