//! Command-line definitions.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{ArgGroup, Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "callq",
    version,
    about = "Scores a call centre's sales calls: T-Bank TQM calls → LLM scores → PostgreSQL",
    long_about = "Scores a call centre's sales calls every night.\n\n\
        For one department and one day, callq reads the scoring checklist (Google Sheets or \
        CRITERIA_FILE), fetches the day's calls and transcripts from T-Bank TQM, has an LLM score \
        every call against the checklist, and upserts the results into PostgreSQL.\n\n\
        Configuration comes from an env file (--env-file, default .env), overridden by real \
        environment variables, overridden by flags.",
    after_help = "Examples:\n  \
        callq run --env-file .env.department1                 score the day CHECK_DAY_AGO days back\n  \
        callq run --env-file .env.department1 --date 2025-08-07\n  \
        callq run --env-file .env.department1 --from 2025-08-01 --to 2025-08-07\n  \
        callq run --env-file .env.department1 --dry-run --limit 5   try a prompt on 5 calls, write nothing\n  \
        callq criteria --env-file .env.department1            check the checklist sheet before the night\n  \
        callq migrate --env-file .env.department1             create or update the tables\n  \
        callq operators import operators.csv --env-file .env.department1   fill the operator directory\n  \
        callq operators unknown --env-file .env.department1   names T-Bank uses that the directory lacks\n  \
        callq calibrate import qa.csv --env-file .env.department1   import human QA scores\n  \
        callq calibrate report --env-file .env.department1    how well the model agrees with QA\n  \
        callq purge --older-than 90 --env-file .env.department1   drop transcripts and phone numbers of old calls\n  \
        callq report --out report.html --env-file .env.department1   the last 7 scored days as one HTML page\n  \
        callq export calls --out calls.csv --env-file .env.department1\n  \
        callq demo                                            a whole night on simulators, no credentials\n  \
        callq batch status --env-file .env.department1        batches at the gateway (LLM_MODE=batch)\n\n\
        Exit codes: 0 all calls reached a final outcome; 1 some calls failed (recorded, retried next run);\n\
        2 bad configuration or input (nothing spent); 3 could not run or had to stop (lock held or lost,\n\
        login refused, database unreachable or not answering, LLM key rejected); 130/143 stopped by\n\
        SIGINT/SIGTERM after the calls in flight finished."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score one day (or a range of days) of calls and store the results.
    #[command(after_help = "Examples:\n  \
        callq run --env-file .env.department1\n  \
        callq run --env-file .env.department1 --days-ago 1\n  \
        callq run --env-file .env.department2 --date 2025-08-07 --reanalyze\n  \
        callq run --env-file .env.department1 --from 2025-08-01 --to 2025-08-07 --concurrency 16\n  \
        callq run --env-file .env.department1 --dry-run --limit 3\n  \
        callq run --env-file .env.department1 --batch          through the Batch API, half the price")]
    Run(RunArgs),
    /// Apply the embedded database migrations (`run` applies them too). Needs only DATA_BASE.
    #[command(after_help = "Example:\n  callq migrate --env-file .env.department1")]
    Migrate(EnvArgs),
    /// Print the parsed checklist (categories, criteria, max scores, total) and its version hash.
    #[command(after_help = "Example:\n  callq criteria --env-file .env.department1")]
    Criteria(EnvArgs),
    /// Preflight before going live: configuration, database, checklist, prompt, T-Bank
    /// login and group, LLM gateway — one line each with ✓/✗ and how to fix it.
    #[command(after_help = "Example:\n  callq check --env-file .env.department1\n\n\
        Spends at most one tiny LLM request. Exits 0 when every line is ✓, 2 when configuration\n\
        or input needs fixing, 3 when a service does not answer.")]
    Check(EnvArgs),
    /// The operator directory: import it from a CSV file; list the names T-Bank uses that
    /// it lacks. Needs only DATA_BASE.
    #[command(subcommand)]
    Operators(OperatorsCommand),
    /// Calibration against human QA: import people's scores from a CSV file; report how
    /// well the model agrees with them (and they with each other).
    #[command(subcommand)]
    Calibrate(CalibrateCommand),
    /// The nightly canary: a fixed set of calls with human QA scores, scored again after
    /// every nightly run (CANARY_CALLS) to show when the model starts judging differently.
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Try a prompt (or checklist, or model) on calls already scored, without touching them:
    /// a seeded sample is scored again from the stored transcripts, the answers are stored
    /// under an experiment id, and agreement with the stored and human scores is reported.
    #[command(after_help = "Examples:\n  \
        callq compare --prompt-file prompts/department1_v2.txt --date 2025-08-07 --env-file .env.department1\n  \
        callq compare --prompt-file v2.txt --from 2025-08-01 --to 2025-08-07 --sample 100 --seed 42 --env-file .env.department1\n  \
        callq compare --prompt-file v2.txt --criteria-file criteria_v2.csv --model gpt-4o-mini --date 2025-08-07 --json --env-file .env.department1\n\n\
        Nothing in calls or its child tables changes. A broken template or checklist is reported\n\
        before the first request (exit 2). Calls whose transcript is not stored are counted and skipped.")]
    Compare(CompareArgs),
    /// Remove the transcripts and phone numbers of calls older than N days, keeping their
    /// scores, reasons, recommendations and agreements. Needs only DATA_BASE.
    #[command(after_help = "Examples:\n  \
        callq purge --older-than 90 --dry-run --env-file .env.department1   count, remove nothing\n  \
        callq purge --older-than 90 --env-file .env.department1\n  \
        callq purge --env-file .env.department1              older than RETENTION_DAYS\n  \
        callq purge --older-than 365 --all-departments --env-file .env.department1\n\n\
        A call's day is its start date in CALLS_TIMEZONE; \"older than 90 days\" is every day before\n\
        today minus 90. With DEPARTAMENT_ID set only that department's calls are purged, unless\n\
        --all-departments is given. Works in batches of 5,000 calls, each its own short\n\
        transaction; running it again removes nothing more.")]
    Purge(PurgeArgs),
    /// Print shell completions for bash, zsh, fish, elvish or PowerShell to stdout.
    #[command(after_help = "Examples:\n  \
        callq completions bash > /etc/bash_completion.d/callq\n  \
        callq completions zsh > \"${fpath[1]}/_callq\"\n  \
        callq completions fish > ~/.config/fish/completions/callq.fish")]
    Completions(CompletionsArgs),
    /// Write one self-contained HTML report (figures, trend, operators, criteria, review
    /// queue, open recommendations) read from the BI views. Needs only DATA_BASE.
    #[command(after_help = "Examples:\n  \
        callq report --out report.html --env-file .env.department1\n  \
        callq report --from 2025-08-01 --to 2025-08-31 --out august.html --env-file .env.department1\n  \
        callq report --department 2 --operator 5512 --out ivanova.html --env-file .env.department2\n  \
        REPORT_LANG=en callq report --out report-en.html --env-file .env.department1\n\n\
        Without --from/--to the report covers the last 7 days up to the latest scored day.\n\
        The file needs no network: send it by e-mail or open it offline. Link to an operator\n\
        with report.html#operator-ID.")]
    Report(ReportArgs),
    /// Export calls, evaluations, recommendations or the review queue as CSV (UTF-8 with a
    /// BOM, for Excel), streamed from the database. Needs only DATA_BASE.
    #[command(after_help = "Examples:\n  \
        callq export calls --out calls.csv --env-file .env.department1\n  \
        callq export evaluations --from 2025-08-01 --to 2025-08-07 --delimiter ';' --out evals.csv\n  \
        callq export calls --operator 5512 --max-percent 60 --env-file .env.department1 > weak.csv\n  \
        callq export review --department 1 --out review.csv --env-file .env.department1\n\n\
        Without --from/--to every day is exported. Without --out the CSV goes to stdout.\n\
        `review` needs the v_review_queue view.")]
    Export(ExportArgs),
    /// Show a whole night working with no credentials and no network: simulated T-Bank,
    /// Google Sheets and LLM gateway, a real database, the real run, and the HTML report.
    #[command(after_help = "Examples:\n  \
        callq demo\n  \
        callq demo --calls 200 --out /tmp/callq-demo --keep\n  \
        callq demo --batch                                   the same night through the Batch API\n  \
        DATA_BASE=postgresql://postgres@localhost/demo callq demo\n\n\
        The database is DATA_BASE when set, otherwise a throwaway PostgreSQL cluster started\n\
        from the server binaries on this machine (initdb, pg_ctl), removed at the end unless\n\
        --keep. Without either, start one with the compose files' local-db profile.")]
    Demo(DemoArgs),
    /// Batch mode's batches: list them, collect the finished ones, cancel one. Reads the
    /// env file `run` reads.
    #[command(subcommand)]
    Batch(BatchCommand),
}

impl Command {
    /// The env file options of commands that read configuration.
    pub fn env_args(&self) -> Option<&EnvArgs> {
        match self {
            Command::Run(a) => Some(&a.env),
            Command::Migrate(a) | Command::Criteria(a) | Command::Check(a) => Some(a),
            Command::Operators(o) => Some(o.env_args()),
            Command::Calibrate(c) => Some(c.env_args()),
            Command::Canary(c) => Some(c.env_args()),
            Command::Compare(a) => Some(&a.env),
            Command::Purge(a) => Some(&a.env),
            Command::Report(a) => Some(&a.env),
            Command::Export(a) => Some(&a.env),
            Command::Batch(b) => Some(b.env_args()),
            Command::Completions(_) | Command::Demo(_) => None,
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct EnvArgs {
    /// Env file with the department's settings [default: .env]; real environment variables
    /// override it.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

impl EnvArgs {
    pub fn path(&self) -> PathBuf {
        self.env_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(".env"))
    }

    /// A file the user named must exist; the default `.env` may be missing.
    pub fn explicit(&self) -> bool {
        self.env_file.is_some()
    }
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// Score this day (YYYY-MM-DD) instead of today minus CHECK_DAY_AGO.
    #[arg(long, value_name = "YYYY-MM-DD", conflicts_with_all = ["days_ago", "from", "to"])]
    pub date: Option<NaiveDate>,
    /// Score the day N days back (overrides CHECK_DAY_AGO).
    #[arg(long, value_name = "N", conflicts_with_all = ["from", "to"])]
    pub days_ago: Option<u32>,
    /// First day of a range; each day is its own run, one after another.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "to")]
    pub from: Option<NaiveDate>,
    /// Last day of a range (inclusive).
    #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
    pub to: Option<NaiveDate>,
    /// Do everything but write: no scores, no runs row, no failure records.
    #[arg(long)]
    pub dry_run: bool,
    /// Score calls again even if they were scored before; their rows are replaced.
    #[arg(long)]
    pub reanalyze: bool,
    /// Score at most N calls (to try a prompt cheaply).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Print the final summary as one JSON object on stdout (logs stay on stderr and files).
    #[arg(long)]
    pub json: bool,
    /// LLM requests in flight at most (overrides LLM_CONCURRENCY).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,
    /// Send the calls through the gateway's Batch API (overrides LLM_MODE): half the
    /// price, answers collected by a later run.
    #[arg(long, conflicts_with = "sync")]
    pub batch: bool,
    /// One request per call, answers by the end of the run (overrides LLM_MODE).
    #[arg(long)]
    pub sync: bool,
}

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// The department's batches: open ones and those of the last days — day, calls,
    /// state at the gateway, age, what was saved, cost so far.
    #[command(after_help = "Examples:\n  \
        callq batch status --env-file .env.department1\n  \
        callq batch status --days 30 --json --env-file .env.department1")]
    Status(BatchStatusArgs),
    /// Collect the department's finished batches now (every `run` does it first too).
    #[command(after_help = "Examples:\n  \
        callq batch collect --env-file .env.department1\n  \
        callq batch collect --wait --env-file .env.department1   poll until every batch is collected\n\n\
        Exits 0 when every answer collected was saved (batches still at the gateway wait for\n\
        the next collection), 1 when calls failed, 3 when the gateway or the database could\n\
        not be reached.")]
    Collect(BatchCollectArgs),
    /// Cancel a batch at the gateway (by callq's batch number or the gateway's id). Its
    /// finished lines are saved by the next collection, the rest scored again.
    #[command(
        after_help = "Example:\n  callq batch cancel batch_abc123 --env-file .env.department1"
    )]
    Cancel(BatchCancelArgs),
}

impl BatchCommand {
    pub fn env_args(&self) -> &EnvArgs {
        match self {
            BatchCommand::Status(a) => &a.env,
            BatchCommand::Collect(a) => &a.env,
            BatchCommand::Cancel(a) => &a.env,
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct BatchStatusArgs {
    /// Also list batches collected in the last N days.
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub days: u32,
    /// Print the list as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Args, Clone)]
pub struct BatchCollectArgs {
    /// Poll until every batch of the department is collected, backing off from 5 s to 5 min.
    #[arg(long)]
    pub wait: bool,
    /// Print what was collected as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Args, Clone)]
pub struct BatchCancelArgs {
    /// The batch: callq's number (`batch status`) or the gateway's id.
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Import the directory from a CSV file: insert new ids, update changed rows, all in one
    /// transaction; a file with any bad line changes nothing (exit code 2).
    #[command(
        after_help = "The file: a header row, then one operator per row. Columns: id, full_name,\n\
        department_id (required), office, supervisor (optional, names; found or created in\n\
        `offices` / `supervisors`). Delimiter , or ; (Excel), UTF-8 with or without a BOM.\n\n\
        Example file:\n  \
        id;full_name;department_id;office;supervisor\n  \
        5512;Иванова Анна Сергеевна;1;Москва;Орлова Ирина\n  \
        5513;Петров Иван;1;;\n\n\
        Example:\n  callq operators import operators.csv --env-file .env.department1"
    )]
    Import(OperatorsImportArgs),
    /// List operator names T-Bank listed over the last days that the directory does not
    /// know, most calls first (recorded by every run).
    #[command(after_help = "Examples:\n  \
        callq operators unknown --env-file .env.department1\n  \
        callq operators unknown --days 7 --env-file .env.department1\n\n\
        With DEPARTAMENT_ID set, only that department's names are listed. Names added to the\n\
        directory since are left out.")]
    Unknown(OperatorsUnknownArgs),
}

impl OperatorsCommand {
    pub fn env_args(&self) -> &EnvArgs {
        match self {
            OperatorsCommand::Import(a) => &a.env,
            OperatorsCommand::Unknown(a) => &a.env,
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct OperatorsImportArgs {
    /// The CSV file: id,full_name,department_id[,office][,supervisor].
    #[arg(value_name = "FILE.csv")]
    pub file: PathBuf,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Args, Clone)]
pub struct OperatorsUnknownArgs {
    /// Look at call days from N days before today (in CALLS_TIMEZONE) up to today.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub days: u32,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Subcommand)]
pub enum CalibrateCommand {
    /// Import human QA scores from a CSV file in one transaction; a file with any bad line
    /// changes nothing (exit code 2). Importing the same file again changes nothing.
    #[command(
        after_help = "The file: a header row, then one score per row. Columns: call_id, criterion,\n\
        score (required), category, reviewer, reviewed_at (optional; YYYY-MM-DD or DD.MM.YYYY).\n\
        Criteria are matched to the checklist's spelling as the model's answers are; a score must\n\
        lie within the criterion's 0..max. Delimiter , or ; (Excel), UTF-8 with or without a BOM.\n\
        Needs DATA_BASE and the checklist (sheet or CRITERIA_FILE).\n\n\
        Example file:\n  \
        call_id;category;criterion;score;reviewer;reviewed_at\n  \
        90000001;Установление контакта;Приветствие;10;Орлова;2025-08-08\n  \
        90000001;Выявление потребностей;Уточнение бюджета;2,5;Орлова;2025-08-08\n\n\
        Example:\n  callq calibrate import qa_august.csv --env-file .env.department1"
    )]
    Import(CalibrateImportArgs),
    /// Agreement of the model with human QA per criterion (exact, within one point, bias,
    /// MAE, quadratic-weighted kappa) and per call (MAE, Pearson, Spearman), and between
    /// reviewers where a call has two or more. Worst criteria first. Needs only DATA_BASE.
    #[command(after_help = "Examples:\n  \
        callq calibrate report --env-file .env.department1\n  \
        callq calibrate report --from 2025-08-01 --to 2025-08-31 --env-file .env.department1\n  \
        callq calibrate report --json --env-file .env.department1 > calibration.json\n\n\
        Kappa: 1 perfect, above 0.8 very good, 0.6-0.8 good, 0.4-0.6 moderate, below 0.4 poor.")]
    Report(CalibrateReportArgs),
}

impl CalibrateCommand {
    pub fn env_args(&self) -> &EnvArgs {
        match self {
            CalibrateCommand::Import(a) => &a.env,
            CalibrateCommand::Report(a) => &a.env,
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct CalibrateImportArgs {
    /// The CSV file: call_id,criterion,score[,category][,reviewer][,reviewed_at].
    #[arg(value_name = "FILE.csv")]
    pub file: PathBuf,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Args, Clone)]
pub struct CalibrateReportArgs {
    /// Only calls of this day or later (YYYY-MM-DD).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<NaiveDate>,
    /// Only calls of this day or earlier (YYYY-MM-DD).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<NaiveDate>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// The canary's trend, one night a line: agreement with human QA (exact, within one
    /// point, QWK, MAE) and with the model's own stored scores, the trailing median, the
    /// nights that fell by more than CANARY_MARGIN, and what changed (checklist, prompt,
    /// model the gateway reported, calls of the set). Needs DATA_BASE and DEPARTAMENT_ID.
    #[command(after_help = "Examples:\n  \
        callq canary report --env-file .env.department1\n  \
        callq canary report --nights 90 --env-file .env.department1\n  \
        callq canary report --json --env-file .env.department1 > canary.json")]
    Report(CanaryReportArgs),
    /// Forget the set of canary calls; the next nightly run chooses CANARY_CALLS calls again
    /// (with the same fixed seed, from the calls with human scores then). Earlier nights stay.
    #[command(
        after_help = "Example:\n  callq canary reset --env-file .env.department1\n\n\
        Reset after importing a new batch of human scores, so the set is drawn from them too.\n\
        The first night after a reset is marked in `callq canary report`."
    )]
    Reset(EnvArgs),
    /// The noise floor: score the canary's calls K times with nothing changed and print how
    /// far agreement moves between passes, with the CANARY_MARGIN that spread suggests.
    /// Spends K × the set's calls LLM requests; nothing in calls changes.
    #[command(after_help = "Examples:\n  \
        callq canary noise --repeat 5 --env-file .env.department1\n  \
        callq canary noise --repeat 10 --calls 50 --env-file .env.department1\n\n\
        Uses the canary set (chosen now when there is none yet). Each pass is stored as an\n\
        experiment, as `compare` stores its answers.")]
    Noise(CanaryNoiseArgs),
}

impl CanaryCommand {
    pub fn env_args(&self) -> &EnvArgs {
        match self {
            CanaryCommand::Report(a) => &a.env,
            CanaryCommand::Reset(a) => a,
            CanaryCommand::Noise(a) => &a.env,
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct CanaryReportArgs {
    /// The latest N nights.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub nights: u32,
    /// Print the trend as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Args, Clone)]
pub struct CanaryNoiseArgs {
    /// How many times to score the set.
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub repeat: u32,
    /// Calls in the set when it is chosen now (default CANARY_CALLS, or 30 when that is 0).
    #[arg(long, value_name = "N")]
    pub calls: Option<u32>,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Args, Clone)]
#[command(group(ArgGroup::new("days").required(true).args(["date", "from"])))]
pub struct CompareArgs {
    /// The variant prompt template (same format as PROMPT_FILE).
    #[arg(long, value_name = "FILE")]
    pub prompt_file: PathBuf,
    /// A variant checklist as CSV (default: the configured checklist).
    #[arg(long, value_name = "FILE")]
    pub criteria_file: Option<PathBuf>,
    /// Another model (default: MODEL).
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Sample calls scored on this day.
    #[arg(long, value_name = "YYYY-MM-DD", conflicts_with_all = ["from", "to"])]
    pub date: Option<NaiveDate>,
    /// First day of the range to sample from.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "to")]
    pub from: Option<NaiveDate>,
    /// Last day of the range (inclusive).
    #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
    pub to: Option<NaiveDate>,
    /// How many calls to score again.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub sample: u32,
    /// Seed of the sample: the same seed picks the same calls.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Print the comparison as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Args, Clone)]
pub struct PurgeArgs {
    /// Purge calls whose day is more than DAYS days before today [default: RETENTION_DAYS].
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub older_than: Option<u32>,
    /// Count what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Purge every department's calls, even with DEPARTAMENT_ID set.
    #[arg(long)]
    pub all_departments: bool,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell to print completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Which days, departments and operators `report` and `export` read.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// First day (YYYY-MM-DD, inclusive).
    #[arg(long, value_name = "YYYY-MM-DD", requires = "to")]
    pub from: Option<NaiveDate>,
    /// Last day (YYYY-MM-DD, inclusive).
    #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
    pub to: Option<NaiveDate>,
    /// Only this department (its id in `departments`).
    #[arg(long, value_name = "N")]
    pub department: Option<i32>,
    /// Only this operator (their id in `operators`).
    #[arg(long, value_name = "ID")]
    pub operator: Option<i32>,
}

#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Where to write the HTML file.
    #[arg(long, value_name = "FILE.html")]
    pub out: PathBuf,
    #[command(flatten)]
    pub env: EnvArgs,
}

/// What `callq export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportKind {
    /// One row per scored call (v_scored_calls).
    Calls,
    /// One row per criterion score of a scored call.
    Evaluations,
    /// One row per coaching recommendation of a scored call.
    Recommendations,
    /// The review queue (v_review_queue).
    Review,
}

#[derive(Debug, Args, Clone)]
pub struct ExportArgs {
    /// What to export.
    #[arg(value_enum)]
    pub kind: ExportKind,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only calls scored at least P percent.
    #[arg(long, value_name = "P")]
    pub min_percent: Option<f64>,
    /// Only calls scored at most P percent.
    #[arg(long, value_name = "P")]
    pub max_percent: Option<f64>,
    /// The CSV file [default: stdout].
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
    /// Field delimiter: , or ; (what Russian Excel expects).
    #[arg(long, value_name = "CHAR", default_value = ",", value_parser = ["," , ";"])]
    pub delimiter: String,
    #[command(flatten)]
    pub env: EnvArgs,
}

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// How many calls the simulated day has.
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub calls: u32,
    /// Simulated days ending yesterday, each with --calls calls.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=90))]
    pub days: u32,
    /// Folder for the report, the env file and the logs.
    #[arg(long, value_name = "DIR", default_value = "callq-demo")]
    pub out: PathBuf,
    /// Leave the throwaway PostgreSQL cluster running (prints how to stop it).
    #[arg(long)]
    pub keep: bool,
    /// Score the nights through the simulated gateway's Batch API, then collect the
    /// batches as the next run would.
    #[arg(long)]
    pub batch: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn range_and_single_day_flags_exclude_each_other() {
        assert!(
            Cli::try_parse_from([
                "callq",
                "run",
                "--date",
                "2025-08-07",
                "--from",
                "2025-08-01"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["callq", "run", "--from", "2025-08-01"]).is_err());
        let ok = Cli::try_parse_from([
            "callq",
            "run",
            "--from",
            "2025-08-01",
            "--to",
            "2025-08-03",
            "--limit",
            "5",
        ]);
        assert!(ok.is_ok());
        assert!(Cli::try_parse_from(["callq", "run", "--date", "07.08.2025"]).is_err());
    }
}
