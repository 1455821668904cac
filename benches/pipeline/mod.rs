//! The pipeline benchmark's cases, their measurement and the report. `benches/pipeline.rs`
//! is the command line around it. `./scripts/test` runs the `smoke` case with the debug
//! binary (`cargo bench --profile dev`), so a broken benchmark shows up there.
//!
//! One case: a fresh database and the simulated world of the fakes crate
//! (`callq_fakes::world`: the fake T-Bank, Google and LLM servers in this process, the env
//! file pointing at them), then the real `callq run` binary as a child process whose peak RSS
//! is sampled from `/proc`. Afterwards the fakes' counters and the database say what was sent
//! and what was stored.
#![allow(dead_code)]

mod cpu;
mod dialogue;
mod save_only;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub use callq_fakes::world::Database as TestDb;
use callq_fakes::world::{Directory, World};
use callq_fakes::{LlmConfig, TbankConfig, TbankFaults, scenario};
use chrono::NaiveDate;
use tokio::io::AsyncReadExt;

pub use save_only::SaveRow;

/// Calls the `save-only` measurement saves unless `--save-calls` says otherwise.
pub const SAVE_CALLS: usize = 10_000;
/// Transcript requests in flight (`TBANK_CONCURRENCY`).
pub const TBANK_CONCURRENCY: usize = 8;
/// The department the benchmark's directory and env file name.
pub const DEPARTMENT: i32 = 1;

/// The day every case scores.
pub fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 8, 7).expect("a valid day")
}

/// How often the child's peak RSS and the first LLM request are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

pub const USAGE: &str = "\
usage: cargo bench --bench pipeline -- [--case NAME] [flags]   (or ./scripts/bench …)

cases (default smoke):
  smoke      N=60,    LLM 20 ms,  transcripts 5 ms,  C=8, page size 25 (a few seconds)
  target     N=1000,  LLM 500 ms, transcripts 50 ms, C=8
  memory     N=10000, LLM 1 ms,   transcripts 1 ms,  C=8, then save-only
  memory-100k  N=100000, LLM 1 ms, transcripts 1 ms, C=8 (about 75 s on 2 cores)
  gateway    N=1000,  LLM 500 ms, transcripts 50 ms, C=32 against a gateway limit of 8
  batch-smoke  N=60, transcripts 5 ms, LLM_MODE=batch: `run --batch`, then `batch collect`
  batch-100k   N=100000, transcripts 1 ms, LLM_MODE=batch (the fake's batch completes at once)
  save-only  Store::save_call of 10000 realistic analyses, 4 concurrent tasks
  all        target, memory, memory-100k, gateway, then save-only

flags (override the case's values):
  --calls N                  calls in the day
  --transcript-latency-ms X  fake T-Bank transcript latency
  --llm-latency-ms Y         fake LLM latency per request
  --concurrency C            LLM_CONCURRENCY of the run
  --gateway-limit G          the fake gateway answers 429 (Retry-After: 1) above G in flight; 0 = no limit
  --llm-error-rate R         share of LLM requests answered 500
  --tbank-error-rate R       share of T-Bank listing/transcript requests answered 500
  --page-size P              calls per T-Bank listing page
  --phrases K                phrases per transcript (default 12)
  --pii-masking on|off       on (default): PII_MASKING=on, TRANSCRIPT_STORE=masked; off: PII_MASKING=off,
                             TRANSCRIPT_STORE=raw, so the run masks nothing at all
  --save-calls N             calls the save-only measurement saves (default 10000)

Needs DATABASE_URL (a role that may create databases); ./scripts/bench provides one.";

/// One pipeline run's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub calls: usize,
    pub transcript_latency_ms: u64,
    pub llm_latency_ms: u64,
    pub concurrency: usize,
    pub gateway_limit: Option<usize>,
    pub llm_error_rate: f64,
    pub tbank_error_rate: f64,
    pub page_size: usize,
    pub phrases: usize,
    /// Whether the run masks transcripts. Off is PII_MASKING=off with TRANSCRIPT_STORE=raw:
    /// with the default TRANSCRIPT_STORE=masked the run would still mask once, to store.
    pub pii_masking: bool,
    /// LLM_MODE=batch: `callq run` submits the day as batches, then `callq batch collect`
    /// saves the answers; wall and peak RSS cover both.
    pub batch: bool,
}

impl Case {
    fn base(name: &str, calls: usize, transcript_ms: u64, llm_ms: u64, c: usize) -> Case {
        Case {
            name: name.to_string(),
            calls,
            transcript_latency_ms: transcript_ms,
            llm_latency_ms: llm_ms,
            concurrency: c,
            gateway_limit: None,
            llm_error_rate: 0.0,
            tbank_error_rate: 0.0,
            page_size: TbankConfig::default().page_size,
            phrases: 12,
            pii_masking: true,
            batch: false,
        }
    }

    /// A named pipeline preset (not `all` or `save-only`).
    pub fn preset(name: &str) -> Option<Case> {
        Some(match name {
            "smoke" => Case {
                page_size: 25,
                ..Case::base("smoke", 60, 5, 20, 8)
            },
            "target" => Case::base("target", 1000, 50, 500, 8),
            "memory" => Case::base("memory", 10_000, 1, 1, 8),
            // callq's own cost per call at scale: memory must stay flat, calls/s must hold.
            "memory-100k" => Case::base("memory-100k", 100_000, 1, 1, 8),
            "gateway" => Case {
                gateway_limit: Some(8),
                ..Case::base("gateway", 1000, 50, 500, 32)
            },
            // A batch has no request latency of callq's: what is measured is callq's own
            // time (listing, transcripts, the file, upload, collection, saves).
            "batch-smoke" => Case {
                page_size: 25,
                batch: true,
                ..Case::base("batch-smoke", 60, 5, 0, 8)
            },
            "batch-100k" => Case {
                batch: true,
                ..Case::base("batch-100k", 100_000, 1, 0, 8)
            },
            _ => return None,
        })
    }

    /// Requests the gateway serves at once: C, or the gateway's limit when lower.
    pub fn effective_concurrency(&self) -> usize {
        let c = self.concurrency.max(1);
        self.gateway_limit.map_or(c, |g| c.min(g.max(1)))
    }

    /// N·L/min(C, G): no run can finish its LLM work faster.
    pub fn bound(&self) -> Duration {
        Duration::from_secs_f64(
            self.llm_latency_ms as f64 / 1000.0 * self.calls as f64
                / self.effective_concurrency() as f64,
        )
    }
}

/// What to run: pipeline cases, then optionally the save-only measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub cases: Vec<Case>,
    pub save_only: Option<usize>,
    pub help: bool,
}

/// Parses the benchmark's arguments (`--flag value` or `--flag=value`). Cargo's own
/// `--bench` is ignored.
pub fn parse_args(args: &[String]) -> Result<Plan, String> {
    let mut case = "smoke".to_string();
    let mut overrides: Vec<(String, String)> = Vec::new();
    let mut save_calls = SAVE_CALLS;
    let mut help = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--bench" {
            continue;
        }
        if arg == "--help" || arg == "-h" {
            help = true;
            continue;
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (flag, value) = match flag.split_once('=') {
            Some((f, v)) => (f.to_string(), v.to_string()),
            None => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("--{flag} needs a value"))?
                    .clone();
                (flag.to_string(), v)
            }
        };
        match flag.as_str() {
            "case" => case = value,
            "save-calls" => save_calls = number(&flag, &value)?,
            _ => overrides.push((flag, value)),
        }
    }
    let (names, save_only): (&[&str], bool) = match case.as_str() {
        "all" => (&["target", "memory", "memory-100k", "gateway"], true),
        "memory" => (&["memory"], true),
        "save-only" => (&[], true),
        "smoke" | "target" | "memory-100k" | "gateway" | "batch-smoke" | "batch-100k" => {
            (&[], false)
        }
        other => {
            return Err(format!(
                "unknown case {other:?} (smoke, target, memory, memory-100k, gateway, \
                 batch-smoke, batch-100k, save-only, all)"
            ));
        }
    };
    let names: Vec<&str> = if names.is_empty() && !save_only {
        vec![case.as_str()]
    } else {
        names.to_vec()
    };
    let mut cases = Vec::new();
    for name in names {
        let mut c = Case::preset(name).expect("known preset");
        for (flag, value) in &overrides {
            apply(&mut c, flag, value)?;
        }
        if !overrides.is_empty() {
            c.name.push('*');
        }
        cases.push(c);
    }
    if cases.is_empty() && !overrides.is_empty() {
        return Err("flags other than --save-calls need a pipeline case".into());
    }
    Ok(Plan {
        cases,
        save_only: save_only.then_some(save_calls),
        help,
    })
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("--{flag}: {value:?} is not a valid number"))
}

fn rate(flag: &str, value: &str) -> Result<f64, String> {
    let r: f64 = number(flag, value)?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("--{flag}: {value} is not a share between 0 and 1"))
    }
}

fn apply(c: &mut Case, flag: &str, value: &str) -> Result<(), String> {
    match flag {
        "calls" => c.calls = number(flag, value)?,
        "transcript-latency-ms" => c.transcript_latency_ms = number(flag, value)?,
        "llm-latency-ms" => c.llm_latency_ms = number(flag, value)?,
        "concurrency" => c.concurrency = number::<usize>(flag, value)?.max(1),
        "gateway-limit" => {
            let g: usize = number(flag, value)?;
            c.gateway_limit = (g > 0).then_some(g);
        }
        "llm-error-rate" => c.llm_error_rate = rate(flag, value)?,
        "tbank-error-rate" => c.tbank_error_rate = rate(flag, value)?,
        "page-size" => c.page_size = number::<usize>(flag, value)?.max(1),
        "phrases" => c.phrases = number::<usize>(flag, value)?.max(1),
        "pii-masking" => {
            c.pii_masking = match value.trim().to_lowercase().as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(format!("--{flag}: {value:?} is not on or off")),
            }
        }
        _ => return Err(format!("unknown flag --{flag}")),
    }
    Ok(())
}

/// What one pipeline case measured.
#[derive(Debug, Clone)]
pub struct Row {
    pub case: Case,
    /// From spawning `callq run` to its exit.
    pub wall: Duration,
    /// From spawning `callq run` to the first request seen by the fake gateway (sampled
    /// every 20 ms): start-up, migrations, checklist, login, first page, first transcript.
    pub first_llm: Option<Duration>,
    pub peak_rss_kb: Option<u64>,
    /// CPU time of callq, of the fakes (this process) and of PostgreSQL over all phases.
    pub cpu: cpu::Spent,
    pub llm_requests: usize,
    pub in_flight_max: usize,
    pub served_429: usize,
    pub served_500: usize,
    pub transcript_requests: usize,
    pub listing_requests: usize,
    pub prompt_chars: usize,
    pub shared_prefix_chars: usize,
    /// Rows in `calls` afterwards; every call of the day should have one.
    pub rows: i64,
    pub failures: i64,
    /// USD per saved call at the case's prices (LLM_PRICE_*; batch: × LLM_PRICE_BATCH_FACTOR).
    pub cost_per_call: Option<f64>,
    /// `None`: killed by a signal or by the benchmark's timeout.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Row {
    pub fn wall_s(&self) -> f64 {
        self.wall.as_secs_f64()
    }

    /// bound / wall, in %.
    pub fn efficiency_pct(&self) -> f64 {
        100.0 * self.case.bound().as_secs_f64() / self.wall_s().max(1e-9)
    }

    /// Share of the prompt characters that repeat the previous prompt's beginning, in %.
    pub fn shared_prefix_pct(&self) -> f64 {
        if self.prompt_chars == 0 {
            0.0
        } else {
            100.0 * self.shared_prefix_chars as f64 / self.prompt_chars as f64
        }
    }

    /// Rows in `calls` per second of wall time.
    pub fn saved_per_s(&self) -> f64 {
        self.rows as f64 / self.wall_s().max(1e-9)
    }

    /// What is wrong with the result, if anything: the benchmark is not a test, but a wrong
    /// result must be visible next to its numbers.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.timed_out {
            p.push("timed out".to_string());
        }
        if self.exit_code != Some(0) {
            p.push(format!(
                "exit {}",
                self.exit_code.map_or("-".to_string(), |c| c.to_string())
            ));
        }
        if self.rows != self.case.calls as i64 {
            p.push(format!("calls rows {} ≠ N {}", self.rows, self.case.calls));
        }
        if self.failures > 0 {
            p.push(format!("{} failed", self.failures));
        }
        // What the measurement itself must have seen, so a broken benchmark is not mistaken
        // for a fast or slow run.
        let c = &self.case;
        let faultless =
            c.gateway_limit.is_none() && c.llm_error_rate == 0.0 && c.tbank_error_rate == 0.0;
        if c.batch {
            // Batch lines answered stand for requests; nothing is in flight synchronously.
            if faultless && self.llm_requests != c.calls {
                p.push(format!(
                    "{} batch lines answered for {} calls",
                    self.llm_requests, c.calls
                ));
            }
            if self.peak_rss_kb.is_none_or(|kb| kb == 0) {
                p.push("no peak RSS sampled".to_string());
            }
            return p;
        }
        if faultless && self.llm_requests != c.calls {
            p.push(format!(
                "{} LLM requests for {} calls",
                self.llm_requests, c.calls
            ));
        }
        if faultless && self.served_429 > 0 {
            p.push(format!(
                "{} refused with 429 without a gateway limit",
                self.served_429
            ));
        }
        if self.in_flight_max > c.concurrency || (c.calls > 0 && self.in_flight_max == 0) {
            p.push(format!(
                "{} in flight with C={}",
                self.in_flight_max, c.concurrency
            ));
        }
        if c.calls > 0 && self.first_llm.is_none_or(|f| f > self.wall) {
            p.push("no first LLM request seen".to_string());
        }
        if self.peak_rss_kb.is_none_or(|kb| kb == 0) {
            p.push("no peak RSS sampled".to_string());
        }
        let shared = self.shared_prefix_pct();
        if c.calls > 1 && !(shared > 0.0 && shared < 100.0) {
            p.push(format!("shared prompt prefix {shared:.1}%"));
        }
        p
    }
}

/// The `callq` binary cargo built with this benchmark's profile: the release one under
/// `cargo bench`, the debug one under `cargo bench --profile dev` (`./scripts/test`).
pub fn callq_binary() -> Result<PathBuf, String> {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_callq"));
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} is not built; run ./scripts/bench, which builds it",
            binary.display()
        ))
    }
}

/// Peak resident set size (`VmHWM`) of a running process, in kB.
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs one case: fresh database and fakes, `callq run` as a child process, counters and
/// database checked afterwards. The database is dropped when this returns.
pub async fn run_case(case: &Case, binary: &Path) -> Row {
    let day = day();
    callq::tls::install_crypto_provider();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let world = World {
        tbank: TbankConfig {
            calls: dialogue::calls(day, case.calls, case.phrases),
            page_size: case.page_size,
            transcript_latency: Duration::from_millis(case.transcript_latency_ms),
            faults: TbankFaults {
                error_rate: case.tbank_error_rate,
                ..TbankFaults::default()
            },
            seed: 7,
            ..TbankConfig::default()
        },
        llm: LlmConfig {
            latency: Duration::from_millis(case.llm_latency_ms),
            max_concurrency: case.gateway_limit,
            retry_after_s: 1.0,
            error_rate: case.llm_error_rate,
            record_prompts: false,
            seed: 7,
            ..LlmConfig::default()
        },
        department: DEPARTMENT,
        env_settings: format!(
            "LOGGING_NAME=department1\nLOGGING_LEVEL=WARNING\nLOGGING_DIR={logs}\nLOGGING_ON_CONSOLE=True\n\
             LOGGING_ON_FILE=False\nLOGGING_ON_DB=False\nAUTH_TYPE=tqm\nAUTH_SYSTEM=tqm\nCHECK_DAY_AGO=2\n\
             LLM_CONCURRENCY={}\nTBANK_CONCURRENCY={TBANK_CONCURRENCY}\nRETRY_BASE_DELAY_MS=200\n\
             LLM_PRICE_INPUT_PER_1M=0,5\nLLM_PRICE_OUTPUT_PER_1M=1.5\nLLM_MODE={}\n{}",
            case.concurrency,
            if case.batch { "batch" } else { "sync" },
            if case.pii_masking {
                "PII_MASKING=on\nTRANSCRIPT_STORE=masked\n"
            } else {
                "PII_MASKING=off\nTRANSCRIPT_STORE=raw\n"
            },
            logs = dir.path().join("logs").display(),
        ),
        ..World::default()
    };
    let h = world
        .start(dir.path(), &db.url)
        .await
        .expect("write the world's files");
    // Migrated before the clock starts, as a deployed database is.
    let env = callq::config::Env::load_with(&h.env_path, true, Vec::new());
    let store = callq::store::Store::connect(&env.database().expect("DATA_BASE"), 1)
        .await
        .expect("connect to the case's database");
    store.migrate().await.expect("migrate the case's database");
    drop(store);
    let client = db.client().await;
    Directory {
        department: DEPARTMENT,
        department_name: "Продажи".into(),
        operators: scenario::sample_operators()
            .into_iter()
            .map(|(id, _, name)| (id as i32, name, DEPARTMENT))
            .collect(),
    }
    .fill(&client)
    .await
    .expect("fill the operator directory");

    // A batch case has no LLM bound to scale from: its own generous limit.
    let timeout = if case.batch {
        Duration::from_secs(1800)
    } else {
        Duration::from_secs(300) + case.bound() * 5
    };
    let date = day.to_string();
    let mut phases: Vec<Vec<&str>> = vec![vec!["run", "--date", &date]];
    if case.batch {
        phases.push(vec!["batch", "collect"]);
    }
    let mut wall = Duration::ZERO;
    let mut peak_rss_kb = None;
    let mut first_llm = None;
    let mut timed_out = false;
    let mut exit_code = Some(0);
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let meter = cpu::Meter::new(&client).await;
    let cpu_before = meter.read();
    let api_requests = |h: &callq_fakes::world::Started| {
        if case.batch {
            h.llm.batch_api_requests()
        } else {
            h.llm.requests()
        }
    };
    for args in phases {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.args(&args)
            .arg("--env-file")
            .arg(&h.env_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The env file alone configures the run: the real environment would override it.
        for var in callq::config::KNOWN_VARS {
            cmd.env_remove(var);
        }
        cmd.env_remove("RUST_LOG");

        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let pid = child.id().expect("a just-started child has a pid");
        let out = read_all(child.stdout.take());
        let err = read_all(child.stderr.take());
        let status = {
            let wait = child.wait();
            tokio::pin!(wait);
            loop {
                if let Some(kb) = vm_hwm_kb(pid) {
                    peak_rss_kb = Some(peak_rss_kb.unwrap_or(0).max(kb));
                }
                if first_llm.is_none() && api_requests(&h) > 0 {
                    first_llm = Some(wall + started.elapsed());
                }
                if started.elapsed() > timeout {
                    timed_out = true;
                    break None;
                }
                tokio::select! {
                    status = &mut wait => break Some(status),
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                }
            }
        };
        wall += started.elapsed();
        let code = match status {
            Some(status) => status.expect("wait for callq").code(),
            None => {
                let _ = child.kill().await;
                None
            }
        };
        if exit_code == Some(0) {
            exit_code = code;
        }
        stdout.push_str(&out.await.unwrap_or_default());
        stderr.push_str(&err.await.unwrap_or_default());
        if timed_out {
            break;
        }
    }
    cpu::wait_for_sessions_to_end(&client).await;
    let cpu = meter.read().since(&cpu_before);
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            let row = client.query_one(sql, &[]).await.expect("count rows");
            row.get::<_, i64>(0)
        }
    };
    let rows = count("SELECT count(*) FROM calls").await;
    let failures = count("SELECT count(*) FROM call_failures").await;
    let cost_per_call: Option<f64> = client
        .query_one("SELECT sum(cost_usd) / nullif(count(*), 0) FROM calls", &[])
        .await
        .expect("the cost per call")
        .get(0);
    Row {
        case: case.clone(),
        wall,
        first_llm,
        peak_rss_kb,
        cpu,
        llm_requests: if case.batch {
            h.llm.batch_lines()
        } else {
            h.llm.requests()
        },
        in_flight_max: h.llm.in_flight_max(),
        served_429: h.llm.served_429(),
        served_500: h.llm.served_500(),
        transcript_requests: h.tbank.transcript_requests(),
        listing_requests: h.tbank.listing_requests(),
        prompt_chars: h.llm.prompt_chars(),
        shared_prefix_chars: h.llm.shared_prefix_chars(),
        rows,
        failures,
        cost_per_call,
        exit_code,
        timed_out,
        stdout,
        stderr,
    }
}

fn read_all<R>(pipe: Option<R>) -> tokio::task::JoinHandle<String>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf).await;
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Measures the save path alone (see `save_only`).
pub async fn run_save_only(calls: usize) -> SaveRow {
    save_only::run(calls).await
}

/// Machine, PostgreSQL and build, for pasting results next to their context.
pub async fn header(command: &str, binary: Option<&Path>) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or("unknown".to_string(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut out = String::new();
    let _ = writeln!(out, "callq pipeline benchmark");
    let _ = writeln!(out, "command:    {command}");
    let _ = writeln!(
        out,
        "machine:    {threads} CPUs (nproc), {model}, {mem_gib} RAM, Linux {kernel}"
    );
    let _ = writeln!(out, "postgresql: {}", postgres_info().await);
    let _ = writeln!(
        out,
        "load:       {} (before the first case)",
        load_average()
    );
    let _ = writeln!(
        out,
        "callq:      {} ({})",
        binary.map_or("-".to_string(), |b| b.display().to_string()),
        git_revision()
    );
    out
}

/// The 1, 5 and 15 minute load averages: whatever else ran on the machine shows here.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .map_or("unknown".to_string(), |l| format!("load average {l}"))
}

async fn postgres_info() -> String {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        return "DATABASE_URL not set".into();
    };
    let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else {
        return "unreachable".into();
    };
    tokio::spawn(conn);
    let mut parts = Vec::new();
    for q in [
        "SELECT current_setting('server_version')",
        "SELECT 'fsync=' || current_setting('fsync')",
        "SELECT 'synchronous_commit=' || current_setting('synchronous_commit')",
    ] {
        if let Ok(row) = client.query_one(q, &[]).await {
            parts.push(row.get::<_, String>(0));
        }
    }
    parts.join(", ")
}

fn git_revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!(
                "git {rev}{}",
                if dirty { " + uncommitted changes" } else { "" }
            )
        }
        None => "git revision unknown".into(),
    }
}

/// How to read the table.
pub const LEGEND: &str = "\
N calls in the day; C = LLM_CONCURRENCY; G = the fake gateway's concurrency limit (429 with
Retry-After: 1 above it). LLM = fake model latency per request. bound = N·LLM/min(C,G): the LLM
work alone, the fastest any run could be. 1st LLM = time from starting `callq run` to the first
request at the gateway (start-up, migrations, checklist, T-Bank login, first page, first
transcript; sampled every 20 ms); bound+1st is an honest floor for the whole run. eff =
bound / wall. RSS = peak resident memory (VmHWM) of the callq process. req = requests the
gateway received (retries included); max = most in flight at once; 429 = concurrency refusals;
kchars = prompt characters that reached the model, in thousands; shared = share of them equal
to the previous prompt's beginning (what a prefix cache could reuse). rows = rows in `calls`
afterwards (must be N); saved/s = rows / wall. PostgreSQL and the fakes share this machine
with callq. CPU ms/call = CPU time per call, from /proc, of the callq process, of PostgreSQL
(its postmaster and every process under it; \"-\" when the server is on another host) and of
this process (the fakes answering callq).";

pub fn table_header() -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| case | N | C | G | LLM ms | wall s | bound s | 1st LLM s | bound+1st s | eff % | RSS MB | req | max | 429 | kchars | shared % | rows | saved/s | CPU ms/call callq/PG/fakes | exit | check |"
    );
    let _ = write!(
        s,
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
    );
    s
}

pub fn table_row(r: &Row) -> String {
    let c = &r.case;
    let bound = c.bound().as_secs_f64();
    let first = r.first_llm.map(|d| d.as_secs_f64());
    let problems = r.problems();
    format!(
        "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {} | {:.0} | {} | {} | {} |",
        c.name,
        c.calls,
        c.concurrency,
        c.gateway_limit.map_or("-".to_string(), |g| g.to_string()),
        c.llm_latency_ms,
        r.wall_s(),
        bound,
        first.map_or("-".to_string(), |f| format!("{f:.2}")),
        first.map_or("-".to_string(), |f| format!("{:.2}", bound + f)),
        r.efficiency_pct(),
        r.peak_rss_kb
            .map_or("-".to_string(), |kb| format!("{:.1}", kb as f64 / 1024.0)),
        r.llm_requests,
        r.in_flight_max,
        r.served_429,
        (r.prompt_chars as f64 / 1000.0).round(),
        r.shared_prefix_pct(),
        r.rows,
        r.saved_per_s(),
        cpu_cell(&r.cpu, c.calls),
        r.exit_code.map_or("-".to_string(), |c| c.to_string()),
        if problems.is_empty() {
            "ok".to_string()
        } else {
            format!("**WRONG: {}**", problems.join("; "))
        },
    )
}

/// callq / PostgreSQL / fakes, milliseconds of CPU per call ("-" for PostgreSQL on another host).
fn cpu_cell(spent: &cpu::Spent, calls: usize) -> String {
    let (callq, fakes, postgres) = spent.per(calls);
    format!(
        "{callq:.2} / {} / {fakes:.2}",
        postgres.map_or("-".to_string(), |p| format!("{p:.2}"))
    )
}

/// client / PostgreSQL, milliseconds of CPU per save.
fn save_cpu_cell(s: &SaveRow) -> String {
    let (_, client, postgres) = s.cpu.per(s.calls);
    format!(
        "{client:.2} / {}",
        postgres.map_or("-".to_string(), |p| format!("{p:.2}"))
    )
}

/// `1234567` as `1,234,567`, as the README writes numbers.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The README's table: the cases in its columns and number format, then the save path
/// alone, so `./scripts/bench --case all` output can be pasted as it is.
pub fn readme_table(rows: &[Row], save: Option<&SaveRow>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| case | N | C | gateway limit | LLM latency | wall | calls/s | bound N·L/min(C,G) | wall / bound | peak RSS | LLM requests | max in flight | 429s | shared prompt prefix | rows saved | CPU per call: callq / PostgreSQL / fakes |"
    );
    let _ = writeln!(
        s,
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for r in rows {
        let c = &r.case;
        let bound = c.bound().as_secs_f64();
        // With a model answering in milliseconds the bound says nothing: callq's own cost is
        // the wall time.
        let ratio = if c.llm_latency_ms >= 100 {
            format!("{:.2}", r.wall_s() / bound.max(1e-9))
        } else {
            "—".to_string()
        };
        let problems = r.problems();
        let _ = writeln!(
            s,
            "| {} (transcripts {} ms) | {} | {} | {} | {} ms | {:.1} s | {} | {:.2} s | {} | {} | {} | {} | {} | {:.1} % | {}{} | {} ms |",
            c.name,
            c.transcript_latency_ms,
            thousands(c.calls as u64),
            c.concurrency,
            c.gateway_limit.map_or("—".to_string(), |g| g.to_string()),
            c.llm_latency_ms,
            r.wall_s(),
            thousands(r.saved_per_s().round() as u64),
            bound,
            ratio,
            r.peak_rss_kb.map_or("-".to_string(), |kb| format!(
                "{:.1} MB",
                kb as f64 / 1024.0
            )),
            thousands(r.llm_requests as u64),
            r.in_flight_max,
            r.served_429,
            r.shared_prefix_pct(),
            thousands(r.rows.max(0) as u64),
            if problems.is_empty() {
                String::new()
            } else {
                format!(" **WRONG: {}**", problems.join("; "))
            },
            cpu_cell(&r.cpu, c.calls),
        );
    }
    if let Some(save) = save {
        let _ = writeln!(
            s,
            "\nThe save path alone (`--case save-only`): {} calls, {} concurrent saves, {:.2} s: {} calls/s; \
             CPU per save: client / PostgreSQL {} ms.",
            thousands(save.calls as u64),
            save.tasks,
            save.seconds,
            thousands(save.per_second.round() as u64),
            save_cpu_cell(save),
        );
    }
    s
}

/// The case's other parameters, one line, printed under the table.
/// The LLM cost per saved call at the case's prices, sync or batch.
pub fn cost_line(r: &Row) -> String {
    let mode = if r.case.batch {
        "batch, LLM_PRICE_BATCH_FACTOR 0.5"
    } else {
        "sync"
    };
    match r.cost_per_call {
        Some(usd) => format!(
            "{}: LLM cost per saved call ${usd:.7} ({mode}; LLM_PRICE_INPUT_PER_1M 0.5, \
             LLM_PRICE_OUTPUT_PER_1M 1.5, cached prompt tokens at the input price)",
            r.case.name
        ),
        None => format!("{}: no cost (no call saved)", r.case.name),
    }
}

pub fn case_details(c: &Case) -> String {
    format!(
        "{}: transcripts {} ms, {} phrases, page size {}, TBANK_CONCURRENCY {TBANK_CONCURRENCY}, \
         LLM errors {:.1}%, T-Bank errors {:.1}%, masking {}",
        c.name,
        c.transcript_latency_ms,
        c.phrases,
        c.page_size,
        100.0 * c.llm_error_rate,
        100.0 * c.tbank_error_rate,
        if c.pii_masking {
            "on (PII_MASKING=on, TRANSCRIPT_STORE=masked)"
        } else {
            "off (PII_MASKING=off, TRANSCRIPT_STORE=raw)"
        }
    )
}

/// What masking the case's transcripts costs, measured in this process on the very texts
/// the run masks: the median over 5 passes, per call, and as a share of `wall`.
pub fn mask_line(c: &Case, wall: Duration) -> String {
    // The per-call cost from at most this many of them: enough for a stable median, and
    // the 100,000-call case does not spend minutes here.
    const MASK_SAMPLE: usize = 10_000;
    let sample = c.calls.min(MASK_SAMPLE);
    let texts: Vec<String> = (0..sample)
        .map(|i| dialogue::transcript_text(i, c.phrases))
        .collect();
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    let mut passes: Vec<Duration> = (0..6)
        .map(|_| {
            let started = Instant::now();
            let masked: usize = texts.iter().map(|t| callq::pii::mask(t).len()).sum();
            std::hint::black_box(masked);
            started.elapsed()
        })
        .skip(1)
        .collect();
    passes.sort();
    let median = passes[passes.len() / 2];
    format!(
        "{}: masking its {} transcripts ({:.0} characters each on average) takes {:.1} µs per call, \
         {:.3}% of its wall time; the run masked {}",
        c.name,
        c.calls,
        chars as f64 / sample.max(1) as f64,
        median.as_secs_f64() * 1e6 / sample.max(1) as f64,
        100.0 * median.as_secs_f64() * (c.calls as f64 / sample.max(1) as f64)
            / wall.as_secs_f64().max(1e-9),
        if c.pii_masking {
            "once per call"
        } else {
            "nothing"
        }
    )
}

pub fn save_line(s: &SaveRow) -> String {
    let mut line = format!(
        "save-only: {} calls ({} evaluations, {} recommendations, an agreement, a decline reason, a {:.1} KB \
         transcript each), {} concurrent tasks: {:.2} s, {:.0} scored calls/s; CPU per save: client / PostgreSQL {} ms",
        s.calls,
        save_only::analysis().evaluations.len(),
        save_only::analysis().recommendations.len(),
        s.transcript_bytes as f64 / 1024.0,
        s.tasks,
        s.seconds,
        s.per_second,
        save_cpu_cell(s)
    );
    if s.rows != s.calls as i64 || s.errors > 0 {
        let _ = write!(
            line,
            " — **WRONG: {} rows in calls, {} errors{}**",
            s.rows,
            s.errors,
            s.first_error
                .as_deref()
                .map_or(String::new(), |e| format!(", first: {e}"))
        );
    }
    line
}

/// The last `n` lines of a child's output, for a wrong result's diagnosis.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
