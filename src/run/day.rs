//! One day, top to bottom: take the day's lock, list the calls page by page, triage each
//! page as it arrives (outcomes decided from the listing cost nothing), hand every admitted
//! call to [`process_call`](super::call::process_call), count what comes back, and record the run's end —
//! however it ends.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures::{FutureExt, StreamExt, stream};
use tokio::sync::Semaphore;

use super::answer::Finished;
use super::batch::{Submitter, stage_call};
use super::call::{Admitted, DayCalls, process_call};
use super::{Prepared, RunError, RunOptions, SAVE_CONCURRENCY};
use crate::config::LlmMode;
use crate::domain::{Call, Outcome};
use crate::progress::Progress;
use crate::store::{RunFinish, RunStart};
use crate::summary::Summary;
use crate::tbank::{Page, TbankError};

/// How often the collector looks up even when no call finishes (progress lines, a frozen
/// database noticed by the per-operation timeouts).
const TICK: Duration = Duration::from_secs(1);

/// What the listing decided for one call.
enum Triaged {
    Done(Outcome),
    Admit(Admitted),
}

/// Counters of the listing, updated by the triage step.
#[derive(Default)]
struct Listing {
    listed: u64,
    unreadable: u64,
    /// Unreadable items with what could be read of them, recorded at the end of the day.
    unreadable_items: Vec<(Option<i64>, String)>,
    deferred: u64,
    admitted: usize,
    unknown: BTreeMap<String, u64>,
    seen: HashSet<i64>,
    /// Set when the listing broke off.
    error: Option<TbankError>,
    complete: bool,
}

impl Prepared {
    /// Runs one day. The summary of what was done comes back however the day ended (an
    /// interrupted run still prints it); `Err` says why the day could not run to its end.
    /// Some calls failing is not an error: the summary counts them.
    pub async fn run_day(
        &self,
        day: NaiveDate,
        opts: &RunOptions,
    ) -> (Summary, Result<(), RunError>) {
        let started = Instant::now();
        let mut summary = Summary {
            day: Some(day),
            dry_run: opts.dry_run,
            ..Summary::default()
        };
        let result = self.run_locked_day(day, opts, &mut summary).await;
        summary.wall = started.elapsed();
        (summary, result)
    }

    /// Open (the lock, the run row), stream the calls, close (the run row's end) — the
    /// run row gets its end however the stream ended.
    async fn run_locked_day(
        &self,
        day: NaiveDate,
        opts: &RunOptions,
        summary: &mut Summary,
    ) -> Result<(), RunError> {
        let mut open = self.open_day(day, opts).await?;
        tracing::info!(
            "scoring department {}, day {day}{}",
            self.settings.department_id,
            if opts.dry_run { " (dry run)" } else { "" }
        );
        // Admission stops on a signal or when the day's lock is lost.
        let admit = opts.stop.admitting().child_token();
        let lock_watch = open.lock.as_ref().map(|l| {
            let (lost, admit) = (l.lost(), admit.clone());
            tokio::spawn(async move {
                lost.cancelled().await;
                admit.cancel();
            })
        });
        let calls = DayCalls {
            prepared: self,
            day,
            run_id: open.run_id,
            opts,
            transcripts: Semaphore::new(self.settings.tbank.concurrency),
            llm_slots: Semaphore::new(self.settings.llm.max_concurrency),
            saves: Semaphore::new(SAVE_CONCURRENCY),
            halt: admit,
        };
        // Batch mode puts the admitted calls into batches; a dry run writes nothing, so it
        // asks synchronously.
        let submitter = match (self.settings.batch.mode, open.run_id) {
            (LlmMode::Batch, Some(run_id)) if !opts.dry_run => {
                Some(Submitter::new(self, day, run_id))
            }
            _ => None,
        };
        let attempts_before = self.llm.http_attempts();
        let (listing, mut fatal) = stream(&calls, summary, submitter.as_ref()).await;
        if let Some(submitter) = &submitter {
            let error = self.finish_batches(submitter, summary).await;
            if fatal.is_none() {
                fatal = error;
            }
        }
        summary.llm_attempts = self.llm.http_attempts() - attempts_before;
        let (limit, peak) = self.llm.concurrency();
        tracing::info!(
            "LLM concurrency: {peak} requests in flight at most, adaptive limit now {limit}"
        );

        let error = self
            .close_day(day, opts, &open, listing, fatal, summary)
            .await;
        if let Some(task) = lock_watch {
            task.abort();
        }
        drop(open.lock.take());
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Takes the day's lock, marks the day's dead runs abandoned, starts the run row and the
    /// lock's watcher (its heartbeat). A dry run takes nothing and writes nothing.
    async fn open_day(&self, day: NaiveDate, opts: &RunOptions) -> Result<OpenDay, RunError> {
        if opts.dry_run {
            return Ok(OpenDay {
                lock: None,
                run_id: None,
            });
        }
        let department = self.settings.department_id;
        let mut lock = self
            .store
            .lock_day(department, day)
            .await?
            .ok_or(RunError::Locked { department, day })?;
        for id in self.store.abandon_dead_runs(department, day).await? {
            tracing::warn!("run {id} of {day} stopped without recording its end; marked abandoned");
        }
        let run_id = self
            .store
            .start_run(&RunStart {
                department_id: department,
                day,
                reanalyze: opts.reanalyze,
                limit: opts.limit,
                model: &self.settings.llm.model,
                checklist_version: &self.checklist_version,
                prompt_version: &self.prompt_version,
            })
            .await?;
        lock.watch(Some(run_id));
        Ok(OpenDay {
            lock: Some(lock),
            run_id: Some(run_id),
        })
    }

    /// Counts the listing into the summary, records its unreadable items, decides why the
    /// day stopped (worst first: a fatal error, the listing breaking off, the lock lost, a
    /// signal) and records the run row's end and the day's unknown operators.
    async fn close_day(
        &self,
        day: NaiveDate,
        opts: &RunOptions,
        open: &OpenDay,
        listing: Listing,
        fatal: Option<RunError>,
        summary: &mut Summary,
    ) -> Option<RunError> {
        let department = self.settings.department_id;
        summary.calls_listed = listing.listed;
        summary.items_unreadable = listing.unreadable;
        summary.deferred_by_limit = listing.deferred;
        summary.unknown_operators = listing.unknown;
        self.record_unreadable(day, open.run_id, opts, &listing.unreadable_items, summary)
            .await;

        let error = if let Some(e) = fatal {
            Some(e)
        } else if let Some(source) = listing.error {
            Some(RunError::Listing { day, source })
        } else if let Some(reason) = open.lock.as_ref().and_then(|l| l.lost_reason()) {
            Some(RunError::LockLost {
                department,
                day,
                reason,
            })
        } else {
            opts.stop.signal().map(RunError::Interrupted)
        };
        let Some(id) = open.run_id else {
            return error;
        };
        let complete = listing.complete && error.is_none();
        let status = match &error {
            Some(RunError::Interrupted(_)) => "interrupted",
            Some(_) => "failed",
            // Calls left to another run have no final outcome from this one either.
            None if summary.count(Outcome::Failed) > 0
                || summary.count(Outcome::ClaimedElsewhere) > 0 =>
            {
                "partial"
            }
            None => "succeeded",
        };
        let error_text = error.as_ref().map(|e| e.to_string());
        let finish = RunFinish {
            status,
            error: error_text.as_deref(),
            counts: &summary.counts_list(),
            calls_listed: summary.calls_listed,
            items_unreadable: summary.items_unreadable,
            deferred_by_limit: summary.deferred_by_limit,
            llm_requests: summary.llm_requests,
            llm_attempts: summary.llm_attempts,
            cost_source: summary.cost_source(),
            usage: summary.usage,
            cost_usd: summary.cost_usd,
            wall_seconds: summary.wall.as_secs_f64(),
            unknown_operators: &summary.unknown_operator_names(),
            listing_complete: complete,
        };
        if let Err(e) = self.store.finish_run(id, &finish).await {
            tracing::error!(
                "could not record the end of run {id}: {e}; the next run of {day} marks it abandoned"
            );
        }
        if let Err(e) = self
            .store
            .record_run_batches(
                id,
                summary.count(Outcome::InBatch),
                summary.batches_submitted,
            )
            .await
        {
            tracing::error!("could not record the batches of run {id}: {e}");
        }
        // For `callq operators unknown`. A listing that broke off saw only part of the
        // day, so its counts may only raise the recorded ones.
        if let Err(e) = self
            .store
            .record_unknown_operators(department, day, &summary.unknown_operators, complete)
            .await
        {
            tracing::error!("could not record the unknown operators of {day}: {e}");
        }
        error
    }
}

/// What a day holds while it runs: the lock (with its watcher) and the run row, neither in
/// a dry run.
struct OpenDay {
    lock: Option<crate::store::DayLock>,
    run_id: Option<i64>,
}

impl Prepared {
    /// Submits the day's last batch and counts what the day submitted; calls whose batch
    /// could not be submitted were given back and count as failed.
    async fn finish_batches(
        &self,
        submitter: &Submitter<'_>,
        summary: &mut Summary,
    ) -> Option<RunError> {
        let (done, error) = submitter.finish().await;
        summary.batches_submitted = done.batches;
        let given = done.given_back.len() as u64;
        if given > 0 {
            let in_batch = summary.counts.entry(Outcome::InBatch).or_default();
            *in_batch = in_batch.saturating_sub(given);
            for (call_id, why) in done.given_back {
                summary.add(Outcome::Failed);
                summary.add_failure(call_id, why);
            }
        }
        error.or(done.error.map(RunError::Batch))
    }

    /// Listing items that could not be read count as failed calls: recorded in
    /// `call_failures` when their id could be read (so the nightly run lists the day
    /// again), and the day ends with exit 1.
    async fn record_unreadable(
        &self,
        day: NaiveDate,
        run_id: Option<i64>,
        opts: &RunOptions,
        items: &[(Option<i64>, String)],
        summary: &mut Summary,
    ) {
        for (id, error) in items {
            let error = format!("unreadable in the listing: {error}");
            match id {
                Some(call_id) => {
                    if !opts.dry_run {
                        let failure = crate::store::Failure {
                            call_id: *call_id,
                            department_id: self.settings.department_id,
                            day,
                            run_id,
                            stage: "listing",
                            error: &error,
                        };
                        if let Err(e) = self.store.record_failure(&failure).await {
                            tracing::error!("call {call_id}: could not record its failure: {e}");
                        }
                    }
                    summary.add_failure(*call_id, error);
                }
                // Nothing to record it by; it still counts, so the day does not pass as clean.
                None => summary.failures_total += 1,
            }
        }
    }
}

/// The day's stream: listing → triage → one [`process_call`] per admitted call,
/// `in_flight` at a time. Stops admitting when `halt` is cancelled or on the first
/// fatal error, and then lets the calls in flight finish (unless told to stop at once).
async fn stream(
    day: &DayCalls<'_>,
    summary: &mut Summary,
    submitter: Option<&Submitter<'_>>,
) -> (Listing, Option<RunError>) {
    let p = day.prepared;
    let s = &p.settings;
    let opts = day.opts;
    let progress = Mutex::new(Progress::new(day.day, opts.show_progress));
    let listing = Mutex::new(Listing::default());
    let in_flight = s.tbank.concurrency + s.llm.max_concurrency + SAVE_CONCURRENCY;

    let pages = p.tbank.calls_of_day(p.group.clone(), day.day, s.timezone);
    let calls = pages
        // A listing error ends the listing; the calls admitted so far still finish.
        .scan((), |_, page| {
            futures::future::ready(match page {
                Ok(page) => Some(Some(page)),
                Err(e) => {
                    listing.lock().expect("listing").error = Some(e);
                    None
                }
            })
        })
        .chain(stream::once(async {
            let mut l = listing.lock().expect("listing");
            l.complete = l.error.is_none();
            None
        }))
        .filter_map(futures::future::ready)
        .then(move |page: Page| stored_of(p, opts.reanalyze, page))
        .flat_map(|(page, stored)| {
            let items: Vec<Result<Triaged, RunError>> = match stored {
                Ok((stored, in_batch)) => {
                    triage(day, page, &stored, &in_batch, &listing, &progress)
                        .into_iter()
                        .map(Ok)
                        .collect()
                }
                Err(e) => vec![Err(e.into())],
            };
            stream::iter(items)
        })
        .take_until(day.halt.clone().cancelled_owned())
        // Boxed: the closures' borrowed types would otherwise leak into the run's
        // future and keep it from being spawned.
        .boxed();
    let mut outcomes = calls
        .map(move |item| handle(day, item, submitter).boxed())
        .buffer_unordered(in_flight)
        .boxed();

    let immediate = opts.stop.immediate();
    let mut fatal: Option<RunError> = None;
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            biased;
            _ = immediate.cancelled() => {
                tracing::warn!("stopped with calls still in flight; they are retried by the next run");
                break;
            }
            next = outcomes.next() => match next {
                None => break,
                Some(Ok(None)) => summary.left_for_later += 1,
                Some(Ok(Some(finished))) => {
                    summary.record(&finished);
                    progress.lock().expect("progress").finished(
                        finished.outcome,
                        summary.count(Outcome::Scored),
                        summary.count(Outcome::Failed),
                    );
                }
                Some(Err(e)) => {
                    if fatal.is_none() {
                        tracing::error!("day {}: {e}; admitting no more calls", day.day);
                        day.halt.cancel();
                        fatal = Some(e);
                    }
                }
            },
            _ = tick.tick() => progress.lock().expect("progress").tick(
                summary.count(Outcome::Scored),
                summary.count(Outcome::Failed),
            ),
        }
    }
    drop(outcomes);
    let listing = std::mem::take(&mut *listing.lock().expect("listing"));
    (listing, fatal)
}

async fn handle(
    day: &DayCalls<'_>,
    item: Result<Triaged, RunError>,
    submitter: Option<&Submitter<'_>>,
) -> Result<Option<Finished>, RunError> {
    match (item?, submitter) {
        (Triaged::Done(outcome), _) => Ok(Some(Finished::done(outcome))),
        (Triaged::Admit(call), Some(submitter)) => stage_call(call, day, submitter).await,
        (Triaged::Admit(call), None) => process_call(call, day).await,
    }
}

/// Decides from the listing what needs no request at all: short calls, stored calls,
/// unknown operators, calls beyond `--limit`; the rest are admitted.
fn triage(
    day: &DayCalls<'_>,
    page: Page,
    stored: &HashSet<i64>,
    in_batch: &HashSet<i64>,
    listing: &Mutex<Listing>,
    progress: &Mutex<Progress>,
) -> Vec<Triaged> {
    let settings = &day.prepared.settings;
    let min_duration = i64::from(settings.min_call_duration_s);
    let mut l = listing.lock().expect("listing");
    // Page-number paging over a changing list can repeat an item; a call gets one
    // outcome however often it is listed.
    let listed_now = page.calls.len();
    let calls: Vec<Call> = page
        .calls
        .into_iter()
        .filter(|c| l.seen.insert(c.id))
        .collect();
    if calls.len() < listed_now {
        tracing::warn!(
            "T-Bank listed {} call(s) twice; each is handled once",
            listed_now - calls.len()
        );
    }
    l.listed += calls.len() as u64;
    l.unreadable += page.broken as u64;
    l.unreadable_items.extend(page.unreadable);
    progress
        .lock()
        .expect("progress")
        .listed(calls.len() as u64);
    let mut items = Vec::with_capacity(calls.len());
    for call in calls {
        let item = if call.duration_s < min_duration {
            Triaged::Done(Outcome::SkippedShort)
        } else if stored.contains(&call.id) {
            Triaged::Done(Outcome::AlreadyScored)
        } else if in_batch.contains(&call.id) {
            // Its answer is on its way in a batch: not paid for twice.
            Triaged::Done(Outcome::InBatch)
        } else {
            match day.prepared.directory.lookup(&call.operator_name) {
                None => {
                    *l.unknown.entry(call.operator_name.clone()).or_default() += 1;
                    Triaged::Done(Outcome::UnknownOperator)
                }
                Some(_) if day.opts.limit.is_some_and(|max| l.admitted >= max) => {
                    l.deferred += 1;
                    continue;
                }
                Some(operator_id) => {
                    l.admitted += 1;
                    Triaged::Admit(Admitted { call, operator_id })
                }
            }
        };
        items.push(item);
    }
    items
}

/// The ids of a page's calls.
type Ids = HashSet<i64>;

/// A page with the ids of its calls already stored (none asked for when re-analysing) and
/// of those in a batch not collected yet.
async fn stored_of(
    p: &Prepared,
    reanalyze: bool,
    page: Page,
) -> (Page, Result<(Ids, Ids), crate::store::StoreError>) {
    let ids: Vec<i64> = page.calls.iter().map(|c| c.id).collect();
    let in_batch = match super::batch::in_open_batches(&p.store, &ids).await {
        Ok(b) => b,
        Err(e) => return (page, Err(e)),
    };
    if reanalyze {
        return (page, Ok((HashSet::new(), in_batch)));
    }
    let stored = p
        .store
        .existing_calls(&ids)
        .await
        .map(|v| (v.into_iter().collect(), in_batch));
    (page, stored)
}
