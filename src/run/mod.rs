//! The run, top to bottom: `prepare` checks everything that costs nothing and connects
//! (this file), `day` runs one day as one stream of listed calls, and `call` is one
//! admitted call's whole life — transcript, analysis, save — ending in its outcome.
//! ARCHITECTURE.md has the map.

mod answer;
mod batch;
mod call;
mod day;
mod error;
pub mod stop;

use chrono::NaiveDate;

use crate::checklist;
use crate::config::RunSettings;
use crate::domain::Checklist;
use crate::llm::batch::BatchClient;
use crate::llm::{LlmClient, PromptBuilder, ResponseSchema, Template, response_schema};
use crate::operators::Directory;
use crate::store::{Revisit, Store};
use crate::summary::Summary;
use crate::tbank::{Group, TbankClient};

pub(crate) use answer::{Finished, Judge, Keep, Spent, handle as handle_answer};
pub(crate) use batch::submit_canary;
pub use batch::{BatchDesk, Collected, Collector};
pub use error::{PromptFileError, RunError, Signal};
pub use stop::Stop;

/// How far back the nightly run looks for days with failed or untranscribed calls.
pub const RETRY_WINDOW_DAYS: u64 = 14;
/// Runs after which a call that keeps failing is left to a person (`call_failures`).
pub const RETRY_MAX_NIGHTS: i32 = 5;

/// Calls saved at once; each save is one short transaction on its own connection.
const SAVE_CONCURRENCY: usize = 4;

#[derive(Clone, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    pub reanalyze: bool,
    pub limit: Option<usize>,
    pub show_progress: bool,
    /// SIGTERM/SIGINT (or a test) stopping the run.
    pub stop: Stop,
}

/// Everything a day's run needs, prepared and validated once before the first request
/// that costs anything.
pub struct Prepared {
    settings: RunSettings,
    store: Store,
    tbank: TbankClient,
    group: Group,
    llm: LlmClient,
    /// The gateway's Files and Batches API (batch mode, and collecting batches).
    batch: BatchClient,
    checklist: Checklist,
    prompt: PromptBuilder,
    schema: ResponseSchema,
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

    let llm = LlmClient::new(settings.llm.clone())?;
    let batch = BatchClient::new(&settings.llm, settings.batch.price_factor)?;
    let tbank = TbankClient::new(settings.tbank.clone())?;
    tbank.login().await?;
    let group = tbank.find_group().await?;
    tracing::info!("T-Bank work group {:?} (id {})", group.name, group.id);

    Ok(Prepared {
        settings,
        store,
        tbank,
        group,
        llm,
        batch,
        checklist,
        prompt,
        schema,
        checklist_version,
        prompt_version,
        directory,
    })
}

/// Reads and checks the department's prompt template (PROMPT_FILE).
pub fn load_template(path: &std::path::Path) -> Result<Template, PromptFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PromptFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    Template::parse(&text).map_err(|source| PromptFileError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

pub async fn load_checklist(
    source: &checklist::Source,
) -> Result<Checklist, checklist::ChecklistError> {
    checklist::load(source).await
}

impl Prepared {
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Earlier days the nightly run visits again after `day`, with why: calls still
    /// waiting (failed, or not transcribed yet, tried fewer than [`RETRY_MAX_NIGHTS`]
    /// times), or a last run that did not finish or did not list the whole day. At most
    /// [`RETRY_WINDOW_DAYS`] back.
    pub async fn days_to_revisit(
        &self,
        day: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Revisit)>, RunError> {
        let since = day - chrono::Days::new(RETRY_WINDOW_DAYS);
        let department = self.settings.department_id;
        let mut days = self
            .store
            .days_to_revisit(department, since, day, RETRY_MAX_NIGHTS)
            .await?;
        // A day with calls in a batch not collected yet is not done.
        for d in self
            .store
            .days_with_open_batches(department, since, day)
            .await?
        {
            if !days.iter().any(|(x, _)| *x == d) {
                days.push((d, Revisit::InBatch));
            }
        }
        days.sort_by_key(|(d, _)| *d);
        Ok(days)
    }

    /// Runs `days` in order, each with why it is visited again (if it is), and hands each
    /// day's summary and error to `done` as the day ends: what `callq run` does with its days
    /// and `callq demo` with its simulated ones. Stops on a signal, and after a day whose
    /// error the later days would meet too.
    pub async fn run_days(
        &self,
        days: Vec<(NaiveDate, Option<String>)>,
        opts: &RunOptions,
        mut done: impl FnMut(Summary, Option<RunError>),
    ) {
        for (day, why) in days {
            if opts.stop.signal().is_some() {
                break;
            }
            let (mut summary, result) = self.run_day(day, opts).await;
            summary.revisit = why;
            let error = result.err();
            if let Some(e) = &error {
                tracing::error!("day {day}: {e}");
            }
            let stop_here = error.as_ref().is_some_and(|e| !e.other_days_may_work());
            done(summary, error);
            if stop_here {
                break;
            }
        }
    }

    /// With RETENTION_DAYS set, which calls the run purges after scoring: this
    /// department's, of days more than RETENTION_DAYS before today in CALLS_TIMEZONE —
    /// the scope `callq purge` takes from the same env file.
    pub fn retention(&self) -> Option<(u32, crate::store::PurgeScope)> {
        let days = self.settings.privacy.retention_days?;
        let today = chrono::Utc::now()
            .with_timezone(&self.settings.timezone)
            .date_naive();
        Some((
            days,
            crate::store::PurgeScope::older_than(today, days, Some(self.settings.department_id)),
        ))
    }

    /// Removes the transcripts and phone numbers of the calls in `scope`, in the batches
    /// `callq purge` uses.
    pub async fn purge(
        &self,
        scope: crate::store::PurgeScope,
    ) -> Result<crate::store::PurgeCounts, crate::store::StoreError> {
        self.store.purge(scope, crate::store::PURGE_BATCH).await
    }

    /// Tonight's canary (CANARY_CALLS), scored with the night's prompt, checklist and model;
    /// `None` when it is off. Never fails: a canary that cannot run says why.
    pub(crate) async fn canary(&self) -> Option<crate::canary::Night> {
        crate::canary::night(crate::canary::Scoring {
            settings: &self.settings,
            store: &self.store,
            checklist: &self.checklist,
            prompt: &self.prompt,
            schema: &self.schema,
            batch: (self.settings.batch.mode == crate::config::LlmMode::Batch).then_some(self),
        })
        .await
    }

    /// The department's latest measured canary night, for the metrics of a run that
    /// measured none.
    pub(crate) async fn latest_canary(&self) -> Option<crate::canary::Night> {
        crate::canary::latest_final(&self.store, self.settings.department_id).await
    }

    pub fn default_day(&self) -> NaiveDate {
        let today = chrono::Utc::now()
            .with_timezone(&self.settings.timezone)
            .date_naive();
        today - chrono::Days::new(u64::from(self.settings.check_day_ago))
    }
}
