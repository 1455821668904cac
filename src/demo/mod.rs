//! `callq demo`: a whole night with no credentials and no network. The simulated world of
//! the fakes crate (`callq_fakes::world`: T-Bank, Google Sheets and the LLM gateway on
//! loopback, an env file pointing at them) serves the demo's call centre (`world` here), and
//! the run users run (`run::prepare`, `Prepared::run_days`) scores the days into a real
//! database; then the HTML report is written.

pub mod postgres;
pub mod world;

use std::path::{Path, PathBuf};
use std::time::Duration;

use callq_fakes::world::{Directory, World};
use callq_fakes::{LlmConfig, TbankConfig};
use chrono::NaiveDate;

use crate::config::{ConfigError, Env, ReportLang, ReportSettings, parse_database_url};
use crate::report::{self, ReportRequest};
use crate::run::{self, RunOptions, Stop};
use crate::severity::{ExitCode, Severe, Severity};
use crate::store::{Store, StoreError};

use postgres::{Cluster, ClusterError};

const SHEET_ID: &str = "demo-checklist";
const MODEL: &str = "callq-demo-model";
/// Latency of the simulated model: slow enough to see the progress bar move.
const LLM_LATENCY: Duration = Duration::from_millis(150);

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Calls per simulated day.
    pub calls: usize,
    /// Days ending yesterday.
    pub days: u32,
    pub out: PathBuf,
    pub keep: bool,
    /// A database to write to (DATA_BASE); None starts a throwaway cluster.
    pub database: Option<String>,
    pub lang: ReportLang,
    /// Score the nights through the simulated gateway's Batch API (LLM_MODE=batch).
    pub batch: bool,
}

/// Why the demo stopped. Each source's severity passes through.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Cluster(#[from] ClusterError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("DATA_BASE: {0}")]
    DatabaseUrl(String),
    #[error("DATA_BASE: {0}")]
    Store(#[from] StoreError),
    /// Starting or stopping the throwaway cluster's thread failed.
    #[error("the cluster's task: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("report: {0}")]
    Report(#[from] report::ReportError),
}

impl Severe for DemoError {
    fn severity(&self) -> Severity {
        match self {
            DemoError::Cluster(e) => e.severity(),
            DemoError::Store(e) => e.severity(),
            DemoError::Report(e) => e.severity(),
            DemoError::Config(_) | DemoError::DatabaseUrl(_) | DemoError::Io { .. } => {
                Severity::Input
            }
            DemoError::Task(_) => Severity::Unavailable,
        }
    }
}

/// Why the demo ended early: its own error, or the run it drives stopping (exit 2 or 3),
/// whose exit code the demo keeps as it is.
#[derive(Debug, thiserror::Error)]
pub enum DemoStop {
    #[error(transparent)]
    Failed(#[from] DemoError),
    #[error("the run ended with exit code {}", .0.code())]
    Run(ExitCode),
}

impl DemoStop {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            DemoStop::Failed(e) => e.exit_code(),
            DemoStop::Run(code) => *code,
        }
    }
}

/// Where the demo left things.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    pub report: PathBuf,
    pub database_url: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// How to stop a kept throwaway cluster.
    pub stop_command: Option<String>,
    pub run_exit: ExitCode,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |error| DemoError::Io {
        path: path.to_path_buf(),
        error,
    }
}

pub async fn run(opts: &DemoOptions) -> Result<DemoOutcome, DemoStop> {
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let (url, cluster) = match &opts.database {
        Some(url) => (url.clone(), None),
        None => {
            println!("Starting a throwaway PostgreSQL cluster…");
            let cluster = tokio::task::spawn_blocking(Cluster::start)
                .await
                .map_err(DemoError::from)?
                .map_err(DemoError::from)?;
            create_database(&cluster.admin_url(), "calls")
                .await
                .map_err(DemoError::from)?;
            let url = cluster.url("calls");
            (url, Some(cluster))
        }
    };
    let last_day = chrono::Local::now().date_naive() - chrono::Days::new(1);
    let first_day = last_day - chrono::Days::new(u64::from(opts.days.max(1) - 1));
    let calls = world::calls(last_day, opts.days.max(1), opts.calls);
    println!(
        "Simulating {} call(s) on {first_day}…{last_day} with T-Bank, Google Sheets and the LLM gateway on loopback.",
        calls.len()
    );
    // The simulators stay up while `started` lives.
    let started = World {
        tbank: TbankConfig {
            calls,
            ..TbankConfig::default()
        },
        llm: LlmConfig {
            models: vec![MODEL.into()],
            latency: LLM_LATENCY,
            ..LlmConfig::default()
        },
        sheet_id: SHEET_ID.into(),
        checklist_rows: world::checklist_rows(),
        google_latency: Duration::from_millis(5),
        prompt: world::PROMPT.into(),
        prompt_file: "demo-prompt.txt".into(),
        key_file: "demo-service-account.json".into(),
        department: world::DEPARTMENT,
        env_file: ".env.demo".into(),
        env_comment: "Written by `callq demo`: the simulators' addresses of this one run.".into(),
        env_settings: format!(
            "LLM_CONCURRENCY=8\nLLM_PRICE_INPUT_PER_1M=0.15\nLLM_PRICE_OUTPUT_PER_1M=0.60\n\
             LLM_MODE={}\n",
            if opts.batch { "batch" } else { "sync" }
        ),
        ..World::default()
    }
    .start(&opts.out, &url)
    .await
    .map_err(|e| DemoError::Io {
        path: e.path,
        error: e.error,
    })?;
    let env = Env::load_with(&started.env_path, true, Vec::new());
    let db = env.database().map_err(DemoError::from)?;

    // The directory must know the operators before the run matches names against it.
    let store = Store::connect(&db, 2).await.map_err(DemoError::from)?;
    store.migrate().await.map_err(DemoError::from)?;
    let client = store.client().await.map_err(DemoError::from)?;
    directory()
        .fill(&client)
        .await
        .map_err(|e| DemoError::from(StoreError::from(e)))?;
    drop(client);

    // What `callq run --from … --to … --env-file .env.demo` does with the days.
    let run_exit = run_days(env, first_day, last_day, opts.batch).await?;
    // Worse than some calls failing: the run stopped, and there is nothing to report on.
    if run_exit > ExitCode::from(Severity::Call) {
        return Err(DemoStop::Run(run_exit));
    }

    let report_path = opts.out.join("report.html");
    let settings = ReportSettings {
        db: parse_database_url(&url).map_err(DemoError::DatabaseUrl)?,
        lang: opts.lang,
    };
    let request = ReportRequest {
        from: Some(first_day),
        to: Some(last_day),
        department: Some(world::DEPARTMENT),
        operator: None,
    };
    report::write(&settings, &request, &report_path)
        .await
        .map_err(DemoError::from)?;
    let stop_command = match cluster {
        Some(c) if opts.keep => Some(c.keep()),
        Some(c) => {
            drop(store);
            tokio::task::spawn_blocking(move || drop(c))
                .await
                .map_err(DemoError::from)?;
            None
        }
        None => None,
    };
    Ok(DemoOutcome {
        report: report_path,
        database_url: url,
        first_day,
        last_day,
        stop_command,
        run_exit,
    })
}

async fn create_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .map_err(|source| StoreError::Connect {
            target: "the throwaway cluster".into(),
            source,
        })?;
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// The demo's department and its operators, spelled the directory's way.
fn directory() -> Directory {
    Directory {
        department: world::DEPARTMENT,
        department_name: world::DEPARTMENT_NAME.into(),
        operators: world::OPERATORS
            .iter()
            .map(|(id, name, _, _)| (*id, name.to_string(), world::DEPARTMENT))
            .collect(),
    }
}

/// Scores `first..=last` as `callq run --from --to` does, each day's summary shown as it
/// ends; the exit code is the worst of the days.
async fn run_days(
    env: Env,
    first: NaiveDate,
    last: NaiveDate,
    batch: bool,
) -> Result<ExitCode, DemoError> {
    let settings = env.run()?;
    let opts = RunOptions {
        show_progress: true,
        stop: Stop::on_signals(settings.shutdown_grace),
        ..RunOptions::default()
    };
    let prepared = match run::prepare(settings, &opts).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return Ok(e.exit_code());
        }
    };
    let days = first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| (d, None))
        .collect();
    let mut worst = ExitCode::Ok;
    prepared
        .run_days(days, &opts, |summary, error| {
            summary.show(true);
            if summary.failures_total > 0 {
                worst = worst.max(ExitCode::SomeFailed);
            }
            if let Some(e) = error {
                worst = worst.max(e.exit_code());
            }
        })
        .await;
    if batch {
        // What the next night's run (or `callq batch collect --wait`) does: the simulated
        // gateway answers a batch at once, so it is collected now.
        println!("Collecting the nights' batches, as the next run would…");
        match prepared.collector().collect(true, &opts.stop).await {
            Ok(collected) => {
                println!("{collected}");
                worst = worst.max(crate::commands::batch::collected_code(&collected));
            }
            Err(e) => {
                tracing::error!("{e}");
                worst = worst.max(e.exit_code());
            }
        }
    }
    Ok(worst)
}
