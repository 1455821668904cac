//! The real `callq` binary as cron runs it: flags, env file, exit codes, what it prints and
//! what it writes to its log files.

use std::path::Path;
use std::process::Output;

use crate::common::{Harness, World, day};

pub(crate) fn callq() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_callq"));
    // Only what the test passes: nothing of the machine's own configuration.
    for var in callq::config::KNOWN_VARS {
        c.env_remove(var);
    }
    c.env_remove("RUST_LOG");
    c
}

pub(crate) async fn output(cmd: &mut tokio::process::Command) -> Output {
    cmd.output().await.expect("run the callq binary")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn missing_variables_are_all_reported_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env.department9");
    std::fs::write(
        &env,
        "LOGIN=bot\nAGENT_GROUP_NAME=Торговые представители\nMIN_CALL_DURATION_S=тридцать\n",
    )
    .unwrap();
    let out = output(
        callq()
            .args(["run", "--env-file"])
            .arg(&env)
            .env("LOGGING_ON_FILE", "False"),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    for var in [
        "PASSWORD",
        "JSON_AUTH",
        "REQUIREMENTS_SHEET_ID",
        "REQUIREMENTS_SHEET_NAME_CHECK_LIST",
        "TOKEN_LLM",
        "MODEL",
        "DATA_BASE",
        "DEPARTAMENT_ID",
        "PROMPT_FILE",
        "MIN_CALL_DURATION_S",
    ] {
        assert!(err.contains(var), "{var} not reported:\n{err}");
    }
    assert!(
        err.contains(".env.department9"),
        "the file is named:\n{err}"
    );
    assert!(!err.contains("LOGIN:"), "LOGIN is set:\n{err}");
}

#[tokio::test]
async fn migrate_asks_only_for_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    std::fs::write(&env, "DATA_BASE=\n").unwrap();
    let out = output(
        callq()
            .args(["migrate", "--env-file"])
            .arg(&env)
            .env("LOGGING_ON_FILE", "False"),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("DATA_BASE"), "{err}");
    assert!(!err.contains("LOGIN") && !err.contains("MODEL"), "{err}");
}

#[tokio::test]
async fn criteria_prints_the_checklist_from_a_csv_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/criteria.sample.csv");
    std::fs::write(
        &env,
        format!(
            "CRITERIA_FILE=\"{}\"\nLOGGING_ON_FILE=False\n",
            csv.display()
        ),
    )
    .unwrap();
    let out = output(callq().args(["criteria", "--env-file"]).arg(&env)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let expected = callq::checklist::load_file(&csv).unwrap();
    assert!(
        listing.contains(&expected.version()),
        "version hash printed:\n{listing}"
    );
    for c in &expected.criteria {
        assert!(
            listing.contains(&c.indicator),
            "{} missing:\n{listing}",
            c.indicator
        );
    }
}

#[tokio::test]
async fn help_has_examples() {
    let out = output(callq().args(["run", "--help"])).await;
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("Examples:")
            && help.contains("--date 2025-08-07")
            && help.contains("--dry-run"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nightly_run_logs_to_files_without_secrets() {
    let world = World {
        env_extra: "LOGGING_ON_FILE=True\nLOGGING_LEVEL=DEBUG\n".into(),
        ..World::default()
    };
    let h = Harness::start(world).await;
    // A password in DATA_BASE (trust auth ignores it) must not reach the logs either.
    let mut db_url = url::Url::parse(&h.db.url).unwrap();
    let db_password = db_url
        .password()
        .map(str::to_string)
        .unwrap_or_else(|| "dbsecret-7d1f".to_string());
    db_url.set_password(Some(&db_password)).unwrap();
    let mut env_text = std::fs::read_to_string(&h.env_path).unwrap();
    env_text.push_str(&format!("DATA_BASE={db_url}\n"));
    std::fs::write(&h.env_path, env_text).unwrap();
    let date = day().to_string();
    let out = output(
        callq()
            .args(["run", "--date", &date, "--env-file"])
            .arg(&h.env_path),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("scored            6"),
        "summary on stdout:\n{stdout}"
    );
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 6);

    let logs = h.dir.path().join("logs");
    let mut all = text(&out.stderr);
    for entry in std::fs::read_dir(&logs).expect("LOGGING_DIR was created") {
        let path = entry.unwrap().path();
        assert!(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("department1.log"),
            "{path:?}"
        );
        all.push_str(&std::fs::read_to_string(&path).unwrap());
    }
    assert!(all.contains("scored"), "the log has the run:\n{all}");
    let key = h.google.service_account_key_json();
    let private_key_line = key
        .lines()
        .find(|l| l.contains("PRIVATE KEY"))
        .unwrap_or("PRIVATE KEY");
    for secret in [
        callq_fakes::TbankConfig::default().password.as_str(),
        callq_fakes::LlmConfig::default().token.as_str(),
        "ya29.",
        private_key_line,
        db_password.as_str(),
    ] {
        assert!(!all.contains(secret), "{secret:?} leaked into the logs");
    }
}

/// Accepts one HTTP request on loopback and hands back its request line and body.
async fn one_request_server() -> (String, tokio::task::JoinHandle<(String, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .unwrap();
                    let head = text.lines().next().unwrap().to_string();
                    return (head, text[end + 4..].to_string());
                }
            }
            if n == 0 {
                panic!("connection closed early");
            }
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_summary_and_metrics_for_monitoring() {
    let (push_url, pushed) = one_request_server().await;
    let metrics_dir = tempfile::tempdir().unwrap();
    let textfile = metrics_dir.path().join("callq_department1.prom");
    let world = World {
        env_extra: format!(
            "METRICS_TEXTFILE={}\nPUSHGATEWAY_URL={push_url}/\n",
            textfile.display()
        ),
        ..World::default()
    };
    let h = Harness::start(world).await;
    let date = day().to_string();
    let out = output(
        callq()
            .args(["run", "--json", "--date", &date, "--env-file"])
            .arg(&h.env_path),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["days"][0]["day"], date);
    assert_eq!(report["days"][0]["outcomes"]["scored"], 6);
    assert!(report["days"][0]["prompt_tokens"].as_u64().unwrap() > 0);

    let prom = std::fs::read_to_string(&textfile).unwrap();
    assert!(
        prom.contains("callq_calls{department=\"1\",outcome=\"scored\"} 6\n"),
        "{prom}"
    );
    let (head, body) = pushed.await.unwrap();
    assert_eq!(head, "PUT /metrics/job/callq/department/1 HTTP/1.1");
    assert_eq!(body, prom, "the same numbers are pushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_system_and_spends_one_tiny_llm_request() {
    let h = Harness::start(World::default()).await;
    let out = output(callq().args(["check", "--env-file"]).arg(&h.env_path)).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for line in [
        "✓ configuration",
        "✓ database",
        "✓ operators",
        "✓ checklist: 7 criteria",
        "✓ prompt template",
        "✓ T-Bank",
        "✓ LLM gateway",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
    assert_eq!(h.llm.requests(), 1);
    assert_eq!(h.tbank.transcript_requests(), 0);

    h.llm.set_token("sk-rotated");
    let out = output(callq().args(["check", "--env-file"]).arg(&h.env_path)).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("✗ LLM gateway") && stdout.contains("check TOKEN_LLM"),
        "{stdout}"
    );
    assert_eq!(h.llm.requests(), 2, "a rejected key is not retried");
}

type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>;

pub(crate) fn stderr_lines(child: &mut tokio::process::Child) -> Lines {
    let stderr = child.stderr.take().expect("stderr piped");
    tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr))
}

/// Reads the child's stderr until a line contains `marker`; the rest keeps draining in the
/// background so the child never blocks on a full pipe.
pub(crate) async fn wait_for_line(mut lines: Lines, marker: &str) {
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains(marker) {
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return;
        }
    }
    panic!("the run never logged {marker:?}");
}

/// Sends `signal` (e.g. "TERM") to a running child.
pub(crate) fn kill(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("the child is running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_calls_in_flight_finish_records_the_run_interrupted_and_exits_143() {
    let h = Harness::start(World {
        calls: callq_fakes::scenario::sample_calls(day(), 12),
        ..World::default()
    })
    .await;
    let gate = h.llm.hold();
    let date = day().to_string();
    let child = callq()
        .args(["run", "--json", "--date", &date, "--env-file"])
        .arg(&h.env_path)
        .env("LOGGING_ON_FILE", "False")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    gate.arrived(1).await;
    kill(&child, "TERM");
    // The held answers are released only once the run has taken the signal.
    let mut child = child;
    let lines = stderr_lines(&mut child);
    wait_for_line(lines, "SIGTERM: admitting no more calls").await;
    let in_flight = gate.arrivals();
    gate.release();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(143));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(report["exit_code"], 143);
    let saved = h.count("SELECT count(*) FROM calls").await;
    assert!(
        saved >= in_flight as i64 && saved < 12,
        "the calls in flight are saved ({saved} saved, {in_flight} were in flight), no new ones admitted"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM runs WHERE status = 'interrupted'")
            .await,
        1
    );
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once() {
    let h = Harness::start(World::default()).await;
    let gate = h.llm.hold();
    let date = day().to_string();
    let child = callq()
        .args(["run", "--date", &date, "--env-file"])
        .arg(&h.env_path)
        .env("LOGGING_ON_FILE", "False")
        .env("SHUTDOWN_GRACE_S", "3600")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    gate.arrived(1).await;
    kill(&child, "INT");
    let mut child = child;
    // The second signal goes once the run has taken the first.
    let lines = stderr_lines(&mut child);
    wait_for_line(lines, "SIGINT: admitting no more calls").await;
    kill(&child, "INT");
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("the second signal stops the run at once")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 0);
    assert_eq!(
        h.count("SELECT count(*) FROM runs WHERE status = 'interrupted'")
            .await,
        1
    );
}

#[tokio::test]
async fn json_is_printed_when_the_run_fails_before_its_first_day() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    std::fs::write(&env, "LOGIN=bot\n").unwrap();
    let out = output(
        callq()
            .args(["run", "--json", "--env-file"])
            .arg(&env)
            .env("LOGGING_ON_FILE", "False"),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(report["exit_code"], 2);
    assert!(
        report["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("DATA_BASE")
    );
}

/// The T-Bank login answers 503 and echoes its request body — the password, JSON-escaped —
/// into every retry warning. The log writers mask it on the console and in the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_echoed_by_a_failing_login_is_masked_in_every_log_line() {
    let password = r#"Pa"ss\wörd-7d1f/ключ"#;
    let mut world = World {
        env_extra: "LOGGING_ON_FILE=True\nLOGGING_LEVEL=DEBUG\n".into(),
        ..World::default()
    };
    world.tbank.password = password.into();
    world.tbank.faults.login_echo_5xx = 3;
    let h = Harness::start(world).await;
    let date = day().to_string();
    let out = output(
        callq()
            .args(["run", "--date", &date, "--env-file"])
            .arg(&h.env_path),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(h.tbank.logins(), 4, "three echoed 503s, then a session");

    let stderr = text(&out.stderr);
    let mut files = String::new();
    for entry in std::fs::read_dir(h.dir.path().join("logs")).expect("LOGGING_DIR was created") {
        files.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let escaped = serde_json::to_string(password).unwrap();
    let escaped = &escaped[1..escaped.len() - 1];
    for (name, log) in [("stderr", &stderr), ("log files", &files)] {
        assert!(
            log.contains("request was:"),
            "the echoed body is logged ({name}):\n{log}"
        );
        assert!(
            log.contains(r#""password":"***""#),
            "the password is masked in {name}:\n{log}"
        );
        for form in [password, escaped, "Pa\\\"ss", "7d1f/ключ"] {
            assert!(!log.contains(form), "{form:?} leaked into {name}:\n{log}");
        }
    }
}

#[tokio::test]
async fn a_loud_logging_level_and_a_zero_llm_timeout_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    std::fs::write(
        &env,
        "LOGGING_LEVEL=LOUD\nLLM_TIMEOUT_S=0\nLOGGING_ON_FILE=False\n",
    )
    .unwrap();
    let out = output(callq().args(["run", "--env-file"]).arg(&env)).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("LOGGING_LEVEL: \"LOUD\" is not a level: use DEBUG, INFO, WARNING or ERROR"),
        "{err}"
    );
    assert!(
        err.contains("LLM_TIMEOUT_S: \"0\" is not a timeout"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_published_when_a_run_cannot_start() {
    let metrics_dir = tempfile::tempdir().unwrap();
    let textfile = metrics_dir.path().join("callq_department1.prom");
    let h = Harness::start(World {
        env_extra: format!("METRICS_TEXTFILE={}\n", textfile.display()),
        ..World::default()
    })
    .await;
    // The LLM key is refused: exit 3, and monitoring still hears of it.
    h.llm.set_token("sk-rotated");
    let date = day().to_string();
    let out = output(
        callq()
            .args(["run", "--date", &date, "--env-file"])
            .arg(&h.env_path)
            .env("LOGGING_ON_FILE", "False"),
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    let prom = std::fs::read_to_string(&textfile).expect("metrics written on exit 3");
    assert!(
        prom.contains("callq_last_run_exit_code{department=\"1\"} 3\n"),
        "{prom}"
    );
    // Bad configuration too (exit 2), as long as the department is known.
    std::fs::remove_file(&textfile).unwrap();
    let out = output(
        callq()
            .args(["run", "--date", &date, "--env-file"])
            .arg(&h.env_path)
            .env("LOGGING_ON_FILE", "False")
            .env("LLM_TIMEOUT_S", "0"),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let prom = std::fs::read_to_string(&textfile).expect("metrics written on exit 2");
    assert!(
        prom.contains("callq_last_run_exit_code{department=\"1\"} 2\n"),
        "{prom}"
    );
}
