//! One simulated world for the end-to-end tests, the pipeline benchmark and `callq demo`:
//! the fake T-Bank, Google and LLM gateway on loopback, the files a department's env file
//! names (service-account key, prompt template) and the env file itself, written the way
//! users write theirs. [`Directory`] fills the operator directory once callq has migrated
//! the database, and [`Database`] gives a test a database of its own on a real server.
//!
//! Migrations are callq's: a caller starts the world, migrates, then fills the directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::scenario::{self, CHECKLIST_SHEET, INSTRUCTIONS_SHEET};
use crate::{FakeGoogle, FakeLlm, FakeTbank, GoogleConfig, LlmConfig, TbankConfig};

/// The department prompt template callq ships in `prompts/`.
pub const PROMPT_TEMPLATE: &str = include_str!("../../prompts/department1.txt");

/// What the world serves and what its env file says.
#[derive(Clone, Debug)]
pub struct World {
    /// The T-Bank simulator; its `calls` are the calls it lists.
    pub tbank: TbankConfig,
    /// The gateway; `token` and the first of `models` go into the env file.
    pub llm: LlmConfig,
    pub sheet_id: String,
    pub checklist_rows: Vec<Vec<String>>,
    pub instructions_rows: Vec<Vec<String>>,
    pub google_latency: Duration,
    /// The prompt template, written beside the env file (PROMPT_FILE).
    pub prompt: String,
    /// The names of the prompt's and the service-account key's files in the directory.
    pub prompt_file: String,
    pub key_file: String,
    /// DEPARTAMENT_ID.
    pub department: i32,
    /// The env file's name in the world's directory.
    pub env_file: String,
    /// The comment the env file starts with.
    pub env_comment: String,
    /// Lines after the ones pointing at the world: the caller's settings (concurrency,
    /// logging, prices). A later line wins over an earlier one.
    pub env_settings: String,
}

impl Default for World {
    fn default() -> Self {
        World {
            tbank: TbankConfig::default(),
            llm: LlmConfig::default(),
            sheet_id: "1AbCdEf-checklist".into(),
            checklist_rows: scenario::sample_checklist_rows(),
            instructions_rows: scenario::sample_instructions_rows(),
            google_latency: Duration::from_millis(2),
            prompt: PROMPT_TEMPLATE.into(),
            prompt_file: "prompt.txt".into(),
            key_file: "service_account.json".into(),
            department: 1,
            env_file: ".env.department1".into(),
            env_comment: "written like the old tool's .env.department1".into(),
            env_settings: String::new(),
        }
    }
}

/// A world's servers, running for as long as this lives, and its env file.
pub struct Started {
    pub tbank: FakeTbank,
    pub google: FakeGoogle,
    pub llm: FakeLlm,
    pub env_path: PathBuf,
}

/// A file of the world that could not be written.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for WriteError {}

fn write(path: PathBuf, text: &str) -> Result<PathBuf, WriteError> {
    match std::fs::write(&path, text) {
        Ok(()) => Ok(path),
        Err(error) => Err(WriteError { path, error }),
    }
}

impl World {
    /// Starts the servers on the current tokio runtime and writes the key, the prompt and
    /// the env file (DATA_BASE = `database_url`) into `dir`.
    pub async fn start(self, dir: &Path, database_url: &str) -> Result<Started, WriteError> {
        let tbank = FakeTbank::start(self.tbank.clone()).await;
        let google = FakeGoogle::start(GoogleConfig {
            spreadsheet_id: self.sheet_id.clone(),
            sheets: vec![
                (CHECKLIST_SHEET.into(), self.checklist_rows.clone()),
                (INSTRUCTIONS_SHEET.into(), self.instructions_rows.clone()),
            ],
            latency: self.google_latency,
        })
        .await;
        let llm = FakeLlm::start(self.llm.clone()).await;
        let key = write(dir.join(&self.key_file), &google.service_account_key_json())?;
        let prompt = write(dir.join(&self.prompt_file), &self.prompt)?;
        let text = self.env_text(&EnvPaths {
            key: &key,
            prompt: &prompt,
            database_url,
            tbank: &tbank.base_url(),
            google: &google.base_url(),
            llm: &llm.base_url(),
        });
        let env_path = write(dir.join(&self.env_file), &text)?;
        Ok(Started {
            tbank,
            google,
            llm,
            env_path,
        })
    }

    fn env_text(&self, at: &EnvPaths<'_>) -> String {
        // Double-quoted as users quote a password: quotes and backslashes escaped.
        let password = self
            .tbank
            .password
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        let group = self.tbank.groups.first().map_or("", |(_, name)| name);
        let model = self.llm.models.first().map_or("", String::as_str);
        let mut text = String::new();
        let _ = write!(
            text,
            "# {comment}\n\
             LOGIN={login}\nPASSWORD=\"{password}\"\nAGENT_GROUP_NAME={group}\n\
             JSON_AUTH={key}\nREQUIREMENTS_SHEET_ID={sheet}\nREQUIREMENTS_SHEET_NAME_CHECK_LIST={checklist}\n\
             REQUIREMENTS_SHEET_NAME_PROMPT_FOR_AI='{instructions}'\n\
             TOKEN_LLM={token}\nMODEL={model}\nDATA_BASE={db}\nDEPARTAMENT_ID={dept}\nPROMPT_FILE={prompt}\n\
             TBANK_BASE_URL={tbank}/\nGOOGLE_SHEETS_BASE_URL={google}\nLLM_BASE_URL={llm}\n",
            comment = self.env_comment,
            login = self.tbank.login,
            key = at.key.display(),
            sheet = self.sheet_id,
            checklist = CHECKLIST_SHEET,
            instructions = INSTRUCTIONS_SHEET,
            token = self.llm.token,
            db = at.database_url,
            dept = self.department,
            prompt = at.prompt.display(),
            tbank = at.tbank,
            google = at.google,
            llm = at.llm,
        );
        text.push_str(&self.env_settings);
        text
    }
}

struct EnvPaths<'a> {
    key: &'a Path,
    prompt: &'a Path,
    database_url: &'a str,
    tbank: &'a str,
    google: &'a str,
    llm: &'a str,
}

/// The operator directory callq matches T-Bank's names against: a department and its
/// operators, spelled the directory's way.
#[derive(Clone, Debug)]
pub struct Directory {
    pub department: i32,
    pub department_name: String,
    /// (id, full name, department).
    pub operators: Vec<(i32, String, i32)>,
}

impl Directory {
    /// Upserts the department and the operators into a migrated database (a shared one
    /// keeps its other rows).
    pub async fn fill(&self, client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
        client
            .execute(
                "INSERT INTO departments (id, name) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
                &[&self.department, &self.department_name],
            )
            .await?;
        for (id, name, department) in &self.operators {
            client
                .execute(
                    "INSERT INTO operators (id, full_name, department_id) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name,
                                                    department_id = EXCLUDED.department_id",
                    &[id, name, department],
                )
                .await?;
        }
        Ok(())
    }
}

/// A database of its own, created on the server `DATABASE_URL` names and dropped (with
/// force) when this is dropped. Real PostgreSQL: the tests and the benchmark never mock it.
pub struct Database {
    pub name: String,
    pub url: String,
    admin_url: String,
}

static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Database {
    /// Panics when `DATABASE_URL` is unset or the server refuses: only for tests and
    /// benchmarks, whose scripts provide one.
    pub async fn create() -> Database {
        let admin_url = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL is not set: run the tests through ./scripts/test, which starts PostgreSQL",
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let name = format!(
            "callq_test_{}_{}_{}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst),
            nanos % 100_000
        );
        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let mut url = url::Url::parse(&admin_url).expect("DATABASE_URL must be a URL");
        url.set_path(&format!("/{name}"));
        Database {
            name,
            url: url.to_string(),
            admin_url,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop cannot await: a short-lived runtime on its own thread cleans up.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok((c, conn)) =
                    tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A plain connection to a test database; panics when it cannot connect.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(conn);
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_env_file_points_at_the_running_servers() {
        let dir = std::env::temp_dir().join(format!("callq-fakes-world-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let world = World {
            tbank: TbankConfig {
                password: r#"pa"ss\word"#.into(),
                ..TbankConfig::default()
            },
            env_settings: "LLM_CONCURRENCY=3\n".into(),
            ..World::default()
        };
        let started = world.start(&dir, "postgres://db/x").await.unwrap();
        let text = std::fs::read_to_string(&started.env_path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        for line in [
            format!("TBANK_BASE_URL={}/", started.tbank.base_url()),
            format!("GOOGLE_SHEETS_BASE_URL={}", started.google.base_url()),
            format!("LLM_BASE_URL={}", started.llm.base_url()),
            r#"PASSWORD="pa\"ss\\word""#.to_string(),
            "DATA_BASE=postgres://db/x".to_string(),
            "MODEL=gpt-test".to_string(),
            "DEPARTAMENT_ID=1".to_string(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        assert!(text.ends_with("LLM_CONCURRENCY=3\n"), "{text}");
        assert!(text.contains(&format!("PROMPT_FILE={}", dir.join("prompt.txt").display())));
    }
}
