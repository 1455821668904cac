//! End-to-end harness: a fresh PostgreSQL database per test, the simulated world of the
//! fakes crate (`callq_fakes::world`: T-Bank, Google and LLM servers on loopback, an env file
//! written the way users write theirs), and the real `callq` command path run in-process.
#![allow(dead_code)]

use std::path::PathBuf;

use callq::cli::Cli;
use callq::config::Env;
use callq::severity::ExitCode;
use callq_fakes::world::Directory;
use callq_fakes::{FakeCall, FakeGoogle, FakeLlm, FakeTbank, LlmConfig, TbankConfig, scenario};
use chrono::{NaiveDate, NaiveTime};
use clap::Parser;

pub mod proxy;

pub const SHEET_ID: &str = "1AbCdEf-checklist";
pub const DEPARTMENT: i32 = 1;

pub fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 8, 7).unwrap()
}

/// A database of its own, created on the server `DATABASE_URL` names and dropped afterwards.
pub use callq_fakes::world::Database as TestDb;

/// What a test changes about the world before callq runs.
pub struct World {
    pub calls: Vec<FakeCall>,
    pub tbank: TbankConfig,
    pub llm: LlmConfig,
    pub checklist_rows: Vec<Vec<String>>,
    /// Directory rows: (id, full name, department).
    pub operators: Vec<(i32, String, i32)>,
    /// Extra lines appended to the env file.
    pub env_extra: String,
    /// SQL run on the fresh database before `callq migrate` (an old tool's tables, say).
    pub db_setup: String,
}

impl Default for World {
    fn default() -> Self {
        World {
            calls: scenario::sample_calls(day(), 6),
            tbank: TbankConfig::default(),
            llm: LlmConfig::default(),
            checklist_rows: scenario::sample_checklist_rows(),
            operators: vec![
                // The directory spells names its own way; matching must still find them.
                (5512, "Иванова Анна Сергеевна".into(), DEPARTMENT),
                (5513, "ПЕТРОВ ИВАН".into(), DEPARTMENT),
                (5514, "Сидорова Елена".into(), DEPARTMENT),
            ],
            env_extra: String::new(),
            db_setup: String::new(),
        }
    }
}

pub struct Harness {
    pub db: TestDb,
    pub tbank: FakeTbank,
    pub google: FakeGoogle,
    pub llm: FakeLlm,
    pub dir: tempfile::TempDir,
    pub env_path: PathBuf,
}

impl Harness {
    pub async fn start(world: World) -> Harness {
        callq::tls::install_crypto_provider();
        let db = TestDb::create().await;
        let dir = tempfile::tempdir().unwrap();
        let settings = format!(
            "LOGGING_NAME=department1\nLOGGING_LEVEL=INFO\nLOGGING_DIR={logs}\nLOGGING_ON_CONSOLE=True\nLOGGING_ON_FILE=False\nLOGGING_ON_DB=False\n\
             AUTH_TYPE=tqm\nAUTH_SYSTEM=tqm\nCHECK_DAY_AGO=2\n\
             RETRY_BASE_DELAY_MS=5\nLLM_CONCURRENCY=4\nTBANK_CONCURRENCY=4\n\
             LLM_PRICE_INPUT_PER_1M=0,5\nLLM_PRICE_OUTPUT_PER_1M=1.5\n{extra}",
            logs = dir.path().join("logs").display(),
            extra = world.env_extra,
        );
        let started = callq_fakes::world::World {
            tbank: TbankConfig {
                calls: world.calls,
                ..world.tbank
            },
            llm: world.llm,
            sheet_id: SHEET_ID.into(),
            checklist_rows: world.checklist_rows,
            department: DEPARTMENT,
            env_settings: settings,
            ..callq_fakes::world::World::default()
        }
        .start(dir.path(), &db.url)
        .await
        .expect("write the world's files");
        if !world.db_setup.is_empty() {
            db.client()
                .await
                .batch_execute(&world.db_setup)
                .await
                .expect("db_setup SQL");
        }
        let h = Harness {
            db,
            tbank: started.tbank,
            google: started.google,
            llm: started.llm,
            dir,
            env_path: started.env_path,
        };
        assert_eq!(h.callq(&["migrate"]).await, ExitCode::Ok);
        Directory {
            department: DEPARTMENT,
            department_name: "Продажи".into(),
            operators: world.operators,
        }
        .fill(&h.db.client().await)
        .await
        .expect("fill the operator directory");
        h
    }

    /// Runs `callq <args> --env-file <this test's file>` in-process, with no variables taken
    /// from the real environment, and returns its exit code.
    pub async fn callq(&self, args: &[&str]) -> ExitCode {
        let env_file = self.env_path.display().to_string();
        let mut argv = vec!["callq"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--env-file", &env_file]);
        let cli = Cli::try_parse_from(argv).expect("valid test arguments");
        let env_args = cli
            .command
            .env_args()
            .expect("a command that reads configuration");
        let env = Env::load_with(&env_args.path(), true, Vec::new());
        callq::commands::dispatch(cli.command, env).await
    }

    /// Appends `VAR=value` lines to the env file; a later line wins.
    pub fn set_env(&self, lines: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.env_path)
            .unwrap();
        writeln!(f, "\n{lines}").unwrap();
    }

    /// This test's database URL with its host and port replaced (a proxy, a dead port).
    pub fn db_url_via(&self, port: u16, query: &str) -> String {
        let mut url = url::Url::parse(&self.db.url).unwrap();
        url.set_port(Some(port)).unwrap();
        url.set_query(Some(query));
        url.to_string()
    }

    /// The test database's `host:port`.
    pub fn db_addr(&self) -> String {
        let url = url::Url::parse(&self.db.url).unwrap();
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
    }

    /// `callq run --date <the test day>` plus `extra`.
    pub async fn run(&self, extra: &[&str]) -> ExitCode {
        let date = day().to_string();
        let mut args = vec!["run", "--date", &date];
        args.extend_from_slice(extra);
        self.callq(&args).await
    }

    /// Every stored row of the call tables, as text, for comparing states of the database.
    pub async fn snapshot(&self) -> Vec<String> {
        let c = self.db.client().await;
        let mut out = Vec::new();
        for (table, order) in [
            ("calls", "id"),
            ("call_transcripts", "call_id"),
            ("call_evaluations", "call_id, criterion"),
            ("call_recommendations", "call_id, issue"),
            ("agreements", "call_id, agreement"),
            ("call_decline_reasons", "call_id, reason_description"),
            ("call_failures", "call_id"),
        ] {
            let rows = c
                .query(&format!("SELECT row_to_json(t)::text FROM (SELECT * FROM {table} ORDER BY {order}) t"), &[])
                .await
                .unwrap();
            out.extend(
                rows.iter()
                    .map(|r| format!("{table}: {}", r.get::<_, String>(0))),
            );
        }
        out
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let c = self.db.client().await;
        c.query_one(sql, &[]).await.unwrap().get(0)
    }
}

/// A call on `day` with the given id, operator name and transcript; long enough to score.
pub fn call(id: i64, operator: (i64, &str), phrases: &[(bool, &str)]) -> FakeCall {
    FakeCall {
        segment_id: id,
        start: day().and_time(NaiveTime::from_hms_opt(11, 0, 0).unwrap())
            + chrono::Duration::seconds(id % 1000),
        duration_s: 120,
        operator_id: operator.0,
        operator_login: format!("op{}", operator.0),
        operator_name: operator.1.to_string(),
        direction: "outbound".into(),
        phone: "79160000000".into(),
        phrases: phrases.iter().map(|(op, t)| (*op, t.to_string())).collect(),
    }
}

/// Total, max and percentage the fake model's default analysis yields after callq
/// recomputes them.
pub fn expected_totals() -> (f64, f64, i32) {
    let crit = scenario::sample_checklist_criteria();
    let total: f64 = crit
        .iter()
        .enumerate()
        .map(|(i, (_, _, m))| callq_fakes::expected_score(i, *m))
        .sum();
    let max: f64 = crit.iter().map(|(_, _, m)| m).sum();
    (total, max, (100.0 * total / max).floor() as i32)
}
