//! `callq demo`: a whole night with no credentials and no network. The simulators of
//! T-Bank, Google Sheets and the LLM gateway (the fakes crate) run in this process on
//! loopback, an env file pointing at them is written, and the same `run` command users
//! run scores the day into a real database; then the HTML report is written.

pub mod postgres;
pub mod world;

use std::path::{Path, PathBuf};
use std::time::Duration;

use callq_fakes::scenario::{CHECKLIST_SHEET, INSTRUCTIONS_SHEET};
use callq_fakes::{FakeGoogle, FakeLlm, FakeTbank, GoogleConfig, LlmConfig, TbankConfig, scenario};
use chrono::NaiveDate;

use crate::cli::{EnvArgs, RunArgs};
use crate::config::{ConfigError, Env, ReportLang, ReportSettings, parse_database_url};
use crate::report::{self, ReportRequest};
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
    let tbank = FakeTbank::start(TbankConfig {
        calls,
        ..TbankConfig::default()
    })
    .await;
    let google = FakeGoogle::start(GoogleConfig {
        spreadsheet_id: SHEET_ID.into(),
        sheets: vec![
            (CHECKLIST_SHEET.into(), world::checklist_rows()),
            (
                INSTRUCTIONS_SHEET.into(),
                scenario::sample_instructions_rows(),
            ),
        ],
        latency: Duration::from_millis(5),
    })
    .await;
    let llm = FakeLlm::start(LlmConfig {
        models: vec![MODEL.into()],
        latency: LLM_LATENCY,
        ..LlmConfig::default()
    })
    .await;

    let key_path = opts.out.join("demo-service-account.json");
    std::fs::write(&key_path, google.service_account_key_json()).map_err(io(&key_path))?;
    let prompt_path = opts.out.join("demo-prompt.txt");
    std::fs::write(&prompt_path, world::PROMPT).map_err(io(&prompt_path))?;
    let env_path = opts.out.join(".env.demo");
    let tb = TbankConfig::default();
    let env_text = format!(
        "# Written by `callq demo`: the simulators' addresses of this one run.\n\
         LOGIN={login}\nPASSWORD='{password}'\nAGENT_GROUP_NAME={group}\n\
         JSON_AUTH={key}\nREQUIREMENTS_SHEET_ID={SHEET_ID}\nREQUIREMENTS_SHEET_NAME_CHECK_LIST={checklist}\n\
         REQUIREMENTS_SHEET_NAME_PROMPT_FOR_AI={instructions}\n\
         TOKEN_LLM={token}\nMODEL={MODEL}\nDATA_BASE={url}\nDEPARTAMENT_ID={dept}\nPROMPT_FILE={prompt}\n\
         TBANK_BASE_URL={tbank}\nGOOGLE_SHEETS_BASE_URL={google}\nLLM_BASE_URL={llm}\n\
         LLM_CONCURRENCY=8\nLLM_PRICE_INPUT_PER_1M=0.15\nLLM_PRICE_OUTPUT_PER_1M=0.60\n",
        login = tb.login,
        password = tb.password,
        group = tb.groups[0].1,
        key = key_path.display(),
        checklist = CHECKLIST_SHEET,
        instructions = INSTRUCTIONS_SHEET,
        token = LlmConfig::default().token,
        dept = world::DEPARTMENT,
        prompt = prompt_path.display(),
        tbank = tbank.base_url(),
        google = google.base_url(),
        llm = llm.base_url(),
    );
    std::fs::write(&env_path, env_text).map_err(io(&env_path))?;
    let env = Env::load_with(&env_path, true, Vec::new());
    let db = env.database().map_err(DemoError::from)?;

    // The directory must know the operators before the run matches names against it.
    let store = Store::connect(&db, 2).await.map_err(DemoError::from)?;
    store.migrate().await.map_err(DemoError::from)?;
    fill_directory(&store).await.map_err(DemoError::from)?;

    // Exactly what `callq run --from … --to … --env-file .env.demo` does.
    let args = RunArgs {
        env: EnvArgs {
            env_file: Some(env_path.clone()),
        },
        date: None,
        days_ago: None,
        from: Some(first_day),
        to: Some(last_day),
        dry_run: false,
        reanalyze: false,
        limit: None,
        json: false,
        concurrency: None,
    };
    let run_exit = crate::commands::run::run(&args, env).await;
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

async fn fill_directory(store: &Store) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "INSERT INTO departments (id, name) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
            &[&world::DEPARTMENT, &world::DEPARTMENT_NAME],
        )
        .await?;
    for (id, name, _, _) in world::OPERATORS {
        client
            .execute(
                "INSERT INTO operators (id, full_name, department_id) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name,
                                                department_id = EXCLUDED.department_id",
                &[id, name, &world::DEPARTMENT],
            )
            .await?;
    }
    Ok(())
}
