//! The run, top to bottom. One stream per day: pages of calls are triaged as they arrive,
//! transcripts are fetched with bounded concurrency, analyses run with bounded concurrency,
//! and each call is saved in its own transaction the moment its analysis is valid. Every
//! listed call ends in exactly one `Outcome`; only what makes the whole run meaningless
//! (login refused, the gateway rejecting the key, the listing failing) stops the stream.

use std::collections::HashSet;
use std::time::Instant;

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt, stream};

use crate::checklist::{self, ChecklistError};
use crate::config::RunSettings;
use crate::domain::{Call, Checklist, Cost, Outcome, Transcript, Usage};
use crate::llm::{Analyzed, LlmClient, LlmError, PromptBuilder, Template, response_schema};
use crate::operators::Directory;
use crate::progress::Progress;
use crate::store::{CallRecord, Failure, RunFinish, RunStart, Store, StoreError};
use crate::summary::Summary;
use crate::tbank::{Group, Page, TbankClient, TbankError};

/// How far back the nightly run looks for days with failed or untranscribed calls.
pub const RETRY_WINDOW_DAYS: u64 = 14;
/// Runs after which a call that keeps failing is left to a person (`call_failures`).
pub const RETRY_MAX_NIGHTS: i32 = 5;

/// Calls saved at once; each save is one short transaction on its own connection.
const SAVE_CONCURRENCY: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    pub reanalyze: bool,
    pub limit: Option<usize>,
    pub show_progress: bool,
}

/// Why a run could not do its job; each maps to an exit code (DESIGN.md).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input the user must fix; nothing was spent.
    #[error("{0}")]
    Input(String),
    /// Could not run: lock held, login refused, database unreachable, gateway key rejected.
    #[error("{0}")]
    Unavailable(String),
    /// Another run holds this department's day.
    #[error("{0}")]
    Locked(String),
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        RunError::Unavailable(e.to_string())
    }
}

/// Everything a day's run needs, prepared and validated once before the first request
/// that costs anything.
pub struct Prepared {
    settings: RunSettings,
    store: Store,
    tbank: TbankClient,
    group: Group,
    llm: LlmClient,
    checklist: Checklist,
    prompt: PromptBuilder,
    schema: serde_json::Value,
    checklist_version: String,
    prompt_version: String,
    directory: Directory,
}

/// Loads and checks the template and the checklist, connects to the database, logs in to
/// T-Bank and finds the group. Input problems come first, so they cost nothing.
pub async fn prepare(settings: RunSettings, opts: &RunOptions) -> Result<Prepared, RunError> {
    let template = load_template(&settings.prompt_file)?;
    let checklist = load_checklist(&settings.checklist).await?;
    let prompt = PromptBuilder::new(template, &checklist).layout(settings.prompt_layout);
    let schema = response_schema(&checklist);
    let checklist_version = checklist.version();
    let prompt_version = prompt.version();
    tracing::info!(
        "checklist {checklist_version}: {} criteria in {} categories, max {}",
        checklist.criteria.len(),
        checklist.categories().len(),
        checklist.total_max()
    );

    let store = Store::connect(&settings.db, SAVE_CONCURRENCY + 2).await?;
    if opts.dry_run {
        store.ensure_migrated().await?;
    } else {
        for name in store.migrate().await? {
            tracing::info!("applied migration {name}");
        }
        if store.ensure_department(settings.department_id).await? {
            tracing::warn!(
                "department {} was not in `departments`; added it",
                settings.department_id
            );
        }
    }
    let directory = Directory::new(store.operators().await?, i64::from(settings.department_id));
    if directory.is_empty() {
        tracing::warn!(
            "the `operators` directory is empty: no call can be scored until it is filled"
        );
    }

    let llm =
        LlmClient::new(settings.llm.clone()).map_err(|e| RunError::Unavailable(e.to_string()))?;
    let tbank = TbankClient::new(settings.tbank.clone()).map_err(tbank_error)?;
    tbank.login().await.map_err(tbank_error)?;
    let group = tbank.find_group().await.map_err(tbank_error)?;
    tracing::info!("T-Bank work group {:?} (id {})", group.name, group.id);

    Ok(Prepared {
        settings,
        store,
        tbank,
        group,
        llm,
        checklist,
        prompt,
        schema,
        checklist_version,
        prompt_version,
        directory,
    })
}

/// Reads and checks the department's prompt template (PROMPT_FILE).
pub fn load_template(path: &std::path::Path) -> Result<Template, RunError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        RunError::Input(format!("PROMPT_FILE {}: cannot read: {e}", path.display()))
    })?;
    Template::parse(&text)
        .map_err(|e| RunError::Input(format!("PROMPT_FILE {}: {e}", path.display())))
}

pub async fn load_checklist(source: &checklist::Source) -> Result<Checklist, RunError> {
    checklist::load(source).await.map_err(|e: ChecklistError| {
        if e.is_input_error() {
            RunError::Input(e.to_string())
        } else {
            RunError::Unavailable(e.to_string())
        }
    })
}

fn tbank_error(e: TbankError) -> RunError {
    match e {
        TbankError::GroupNotFound { .. } => RunError::Input(format!("AGENT_GROUP_NAME: {e}")),
        other => RunError::Unavailable(other.to_string()),
    }
}

/// A listed call on its way through the stream.
enum Item {
    Done(Outcome),
    Failed {
        call: Call,
        stage: &'static str,
        error: String,
        spent: Spent,
    },
    /// Known operator, not scored yet: needs a transcript.
    Listed {
        call: Call,
        operator_id: i64,
    },
    /// Has its transcript: needs an analysis.
    Transcribed {
        call: Call,
        operator_id: i64,
        transcript: Transcript,
    },
    /// Has a valid analysis: needs saving.
    Analyzed {
        call: Call,
        operator_id: i64,
        transcript: Transcript,
        analyzed: Box<Analyzed>,
    },
}

impl Prepared {
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Earlier days with calls still waiting (failed, or not transcribed yet) that the
    /// nightly run should visit again after `day`: at most [`RETRY_WINDOW_DAYS`] back, and
    /// only calls that have waited fewer than [`RETRY_MAX_NIGHTS`] runs.
    pub async fn days_to_retry(&self, day: NaiveDate) -> Result<Vec<NaiveDate>, RunError> {
        let since = day - chrono::Days::new(RETRY_WINDOW_DAYS);
        Ok(self
            .store
            .days_with_waiting_calls(self.settings.department_id, since, day, RETRY_MAX_NIGHTS)
            .await?)
    }

    pub fn default_day(&self) -> NaiveDate {
        let today = chrono::Utc::now()
            .with_timezone(&self.settings.timezone)
            .date_naive();
        today - chrono::Days::new(u64::from(self.settings.check_day_ago))
    }

    /// Runs one day. `Ok` carries the summary whether or not some calls failed.
    pub async fn run_day(&self, day: NaiveDate, opts: &RunOptions) -> Result<Summary, RunError> {
        let started = Instant::now();
        let department = self.settings.department_id;
        let _lock = if opts.dry_run {
            None
        } else {
            Some(self.store.lock_day(department, day).await?.ok_or_else(|| {
                RunError::Locked(format!(
                    "another callq run is already working on department {department}, day {day}; \
                     wait for it to finish"
                ))
            })?)
        };
        let run_id = if opts.dry_run {
            None
        } else {
            Some(
                self.store
                    .start_run(&RunStart {
                        department_id: department,
                        day,
                        reanalyze: opts.reanalyze,
                        limit: opts.limit,
                        model: &self.settings.llm.model,
                        checklist_version: &self.checklist_version,
                        prompt_version: &self.prompt_version,
                    })
                    .await?,
            )
        };
        tracing::info!(
            "scoring department {department}, day {day}{}",
            if opts.dry_run { " (dry run)" } else { "" }
        );

        let mut summary = Summary {
            day: Some(day),
            dry_run: opts.dry_run,
            ..Summary::default()
        };
        let attempts_before = self.llm.http_attempts();
        let result = self.stream_day(day, opts, run_id, &mut summary).await;
        summary.wall = started.elapsed();
        summary.llm_attempts = self.llm.http_attempts() - attempts_before;
        let (limit, peak) = self.llm.concurrency();
        tracing::info!(
            "LLM concurrency: {peak} requests in flight at most, adaptive limit now {limit}"
        );

        if let Some(id) = run_id {
            let (status, error) = match &result {
                Ok(()) if summary.count(Outcome::Failed) > 0 => ("partial", None),
                Ok(()) => ("succeeded", None),
                Err(e) => ("failed", Some(e.to_string())),
            };
            let finish = RunFinish {
                status,
                error: error.as_deref(),
                counts: &summary.counts_list(),
                calls_listed: summary.calls_listed,
                items_unreadable: summary.items_unreadable,
                deferred_by_limit: summary.deferred_by_limit,
                llm_requests: summary.llm_requests,
                llm_attempts: summary.llm_attempts,
                usage: summary.usage,
                cost_usd: summary.cost_usd,
                cost_source: summary.cost_source(),
                wall_seconds: summary.wall.as_secs_f64(),
                unknown_operators: &summary.unknown_operator_names(),
            };
            if let Err(e) = self.store.finish_run(id, &finish).await {
                tracing::error!("could not record the end of run {id}: {e}");
            }
            // For `callq operators unknown`. A listing that broke off saw only part of the
            // day, so its counts may only raise the recorded ones.
            if let Err(e) = self
                .store
                .record_unknown_operators(
                    department,
                    day,
                    &summary.unknown_operators,
                    result.is_ok(),
                )
                .await
            {
                tracing::error!("could not record the unknown operators of {day}: {e}");
            }
        }
        result.map(|()| summary)
    }

    async fn stream_day(
        &self,
        day: NaiveDate,
        opts: &RunOptions,
        run_id: Option<i64>,
        summary: &mut Summary,
    ) -> Result<(), RunError> {
        let s = &self.settings;
        let progress = std::sync::Mutex::new(Progress::new(day, opts.show_progress));
        let min_duration = i64::from(s.min_call_duration_s);
        // Counters the triage step updates while the stream runs.
        let mut work_admitted = 0usize;
        let mut listed = 0u64;
        let mut unreadable = 0u64;
        let mut deferred = 0u64;
        let mut unknown: std::collections::BTreeMap<String, u64> = Default::default();
        let mut seen: HashSet<i64> = HashSet::new();

        let pages = self.tbank.calls_of_day(self.group.clone(), day, s.timezone);
        let mut outcomes = Box::pin(
            pages
                .map_err(|e| {
                    RunError::Unavailable(format!("listing the calls of {day} failed: {e}"))
                })
                // Triage a page as soon as it arrives: all three filters are decided from the
                // listing, so a filtered call costs no transcript and no LLM request.
                .and_then(|page: Page| async move {
                    let ids: Vec<i64> = page.calls.iter().map(|c| c.id).collect();
                    let scored: HashSet<i64> = if opts.reanalyze {
                        HashSet::new()
                    } else {
                        self.store.existing_calls(&ids).await?.into_iter().collect()
                    };
                    Ok::<_, RunError>((page, scored))
                })
                .map_ok(|(page, scored)| {
                    // Page-number paging over a changing list can repeat an item; a call
                    // gets one outcome however often it is listed.
                    let listed_now = page.calls.len();
                    let calls: Vec<Call> = page
                        .calls
                        .into_iter()
                        .filter(|c| seen.insert(c.id))
                        .collect();
                    if calls.len() < listed_now {
                        tracing::warn!(
                            "T-Bank listed {} call(s) twice; each is handled once",
                            listed_now - calls.len()
                        );
                    }
                    listed += calls.len() as u64;
                    unreadable += page.broken as u64;
                    progress
                        .lock()
                        .expect("progress")
                        .listed(calls.len() as u64);
                    let mut items = Vec::with_capacity(calls.len());
                    for call in calls {
                        let item = if call.duration_s < min_duration {
                            Item::Done(Outcome::SkippedShort)
                        } else if scored.contains(&call.id) {
                            Item::Done(Outcome::AlreadyScored)
                        } else {
                            match self.directory.lookup(&call.operator_name) {
                                None => {
                                    *unknown.entry(call.operator_name.clone()).or_default() += 1;
                                    Item::Done(Outcome::UnknownOperator)
                                }
                                Some(_) if opts.limit.is_some_and(|l| work_admitted >= l) => {
                                    deferred += 1;
                                    continue;
                                }
                                Some(operator_id) => {
                                    work_admitted += 1;
                                    Item::Listed { call, operator_id }
                                }
                            }
                        };
                        items.push(Ok::<_, RunError>(item));
                    }
                    stream::iter(items)
                })
                .try_flatten()
                .map_ok(|item| self.fetch_transcript(item, day, run_id, opts.dry_run))
                .try_buffer_unordered(s.tbank.concurrency)
                .map_ok(|item| self.analyze(item))
                .try_buffer_unordered(s.llm.max_concurrency)
                .map_ok(|item| self.save(item, day, run_id, opts.dry_run))
                .try_buffer_unordered(SAVE_CONCURRENCY),
        );

        let mut result = Ok(());
        while let Some(next) = outcomes.next().await {
            match next {
                Ok(Finished {
                    outcome,
                    spent,
                    failure,
                }) => {
                    summary.add(outcome);
                    summary.llm_requests += spent.llm_requests;
                    summary.usage += spent.usage;
                    summary.add_cost(spent.cost);
                    if let Some((id, error)) = failure {
                        summary.add_failure(id, error);
                    }
                    progress.lock().expect("progress").finished(
                        outcome,
                        summary.count(Outcome::Scored),
                        summary.count(Outcome::Failed),
                    );
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(outcomes);
        summary.calls_listed = listed;
        summary.items_unreadable = unreadable;
        summary.deferred_by_limit = deferred;
        summary.unknown_operators = unknown;
        result
    }

    async fn fetch_transcript(
        &self,
        item: Item,
        day: NaiveDate,
        run_id: Option<i64>,
        dry_run: bool,
    ) -> Result<Item, RunError> {
        let Item::Listed { call, operator_id } = item else {
            return Ok(item);
        };
        match self.tbank.transcript(call.id).await {
            Ok(t) if t.is_empty() => {
                tracing::info!(
                    "call {} has no transcript yet; a later run will pick it up",
                    call.id
                );
                // Recorded like a failure, so the nightly run comes back to this day.
                if !dry_run {
                    self.record_failure(
                        call.id,
                        day,
                        run_id,
                        "no_transcript",
                        "not transcribed yet",
                    )
                    .await;
                }
                Ok(Item::Done(Outcome::NoTranscript))
            }
            Ok(transcript) => Ok(Item::Transcribed {
                call,
                operator_id,
                transcript,
            }),
            Err(e) if e.is_fatal() => Err(tbank_error(e)),
            Err(e) => Ok(Item::Failed {
                call,
                stage: "transcript",
                error: e.to_string(),
                spent: Spent::default(),
            }),
        }
    }

    async fn analyze(&self, item: Item) -> Result<Item, RunError> {
        let Item::Transcribed {
            call,
            operator_id,
            transcript,
        } = item
        else {
            return Ok(item);
        };
        let prompt = self.prompt.render(&transcript.to_text());
        match self
            .llm
            .analyze(&prompt, &self.schema, &self.checklist)
            .await
        {
            Ok(analyzed) => {
                for note in &analyzed.notes {
                    tracing::debug!("call {}: {note}", call.id);
                }
                Ok(Item::Analyzed {
                    call,
                    operator_id,
                    transcript,
                    analyzed: Box::new(analyzed),
                })
            }
            Err(e) if e.is_fatal() => Err(RunError::Unavailable(format!("{e}; {}", e.fix()))),
            Err(e) => {
                let answers = match &e {
                    LlmError::InvalidContent { attempts, .. } => u64::from(*attempts),
                    _ => 0,
                };
                let spent = Spent {
                    llm_requests: answers,
                    usage: e.usage(),
                    cost: e.cost(),
                };
                Ok(Item::Failed {
                    call,
                    stage: "llm",
                    error: e.to_string(),
                    spent,
                })
            }
        }
    }

    async fn save(
        &self,
        item: Item,
        day: NaiveDate,
        run_id: Option<i64>,
        dry_run: bool,
    ) -> Result<Finished, RunError> {
        match item {
            Item::Done(outcome) => Ok(Finished {
                outcome,
                spent: Spent::default(),
                failure: None,
            }),
            Item::Listed { .. } | Item::Transcribed { .. } => unreachable!("every stage ran"),
            Item::Failed {
                call,
                stage,
                error,
                spent,
            } => {
                tracing::warn!("call {} failed at the {stage} stage: {error}", call.id);
                if !dry_run {
                    self.record_failure(call.id, day, run_id, stage, &error)
                        .await;
                }
                Ok(Finished {
                    outcome: Outcome::Failed,
                    spent,
                    failure: Some((call.id, error)),
                })
            }
            Item::Analyzed {
                call,
                operator_id,
                transcript,
                analyzed,
            } => {
                let outcome = if analyzed.analysis.is_sales_call {
                    Outcome::Scored
                } else {
                    Outcome::NotSales
                };
                let spent = Spent::of(&analyzed);
                if dry_run {
                    tracing::info!(
                        "call {}: {} ({}%)",
                        call.id,
                        outcome.as_str(),
                        analyzed.analysis.performance_percentage
                    );
                    return Ok(Finished {
                        outcome,
                        spent,
                        failure: None,
                    });
                }
                let tz = self.settings.timezone;
                let text = transcript.to_text();
                let record = CallRecord {
                    id: call.id,
                    start_local: call.start.with_timezone(&tz).naive_local(),
                    finish_local: call.finish.map(|f| f.with_timezone(&tz).naive_local()),
                    duration_s: call.duration_s,
                    direction: call.direction.as_deref(),
                    phone: call.phone.as_deref(),
                    operator_id,
                    department_id: self.settings.department_id,
                    transcript: &text,
                    analysis: &analyzed.analysis,
                    model: &self.settings.llm.model,
                    usage: analyzed.usage,
                    cost: analyzed.cost,
                    checklist_version: &self.checklist_version,
                    prompt_version: &self.prompt_version,
                    run_id,
                };
                match self.store.save_call(&record).await {
                    Ok(()) => Ok(Finished {
                        outcome,
                        spent,
                        failure: None,
                    }),
                    // Without the database nothing can be saved or even recorded as
                    // failed: stop the run rather than report failures that were not kept.
                    Err(e @ (StoreError::Connect { .. } | StoreError::Pool(_))) => Err(
                        RunError::Unavailable(format!("the database went away: {e}")),
                    ),
                    Err(e) => {
                        let error = format!("saving failed: {e}");
                        tracing::warn!("call {}: {error}", call.id);
                        self.record_failure(call.id, day, run_id, "save", &error)
                            .await;
                        Ok(Finished {
                            outcome: Outcome::Failed,
                            spent,
                            failure: Some((call.id, error)),
                        })
                    }
                }
            }
        }
    }

    async fn record_failure(
        &self,
        call_id: i64,
        day: NaiveDate,
        run_id: Option<i64>,
        stage: &str,
        error: &str,
    ) {
        let failure = Failure {
            call_id,
            department_id: self.settings.department_id,
            day,
            run_id,
            stage,
            error,
        };
        if let Err(e) = self.store.record_failure(&failure).await {
            tracing::error!("call {call_id}: could not record its failure: {e}");
        }
    }
}

/// What one call cost at the LLM, whether it ended scored or failed.
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    llm_requests: u64,
    usage: Usage,
    cost: Option<Cost>,
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

/// One call's end, as the collector sees it.
struct Finished {
    outcome: Outcome,
    spent: Spent,
    failure: Option<(i64, String)>,
}
