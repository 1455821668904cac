//! The deployment files users copy: the compose file per department and crontab.example.
//! Neither docker nor cron runs here, so these check what each file must say for the image
//! (Dockerfile) and the binary: they parse, name the image, run `run`, mount what callq
//! reads, give a stopped run time to save, and the crontab calls files that exist.

use std::path::{Path, PathBuf};
use std::time::Duration;

use callq::config::Env;
use serde_yaml_ng::Value;

const DEPARTMENTS: [&str; 2] = ["department1", "department2"];
/// Time after the grace period for the run to record its end and close its connections.
const STOP_MARGIN: Duration = Duration::from_secs(10);

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn compose(department: &str) -> Value {
    let file = format!("docker-compose.{department}.yml");
    serde_yaml_ng::from_str(&read(&file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn callq_service(department: &str) -> Value {
    compose(department)["services"]["callq"].clone()
}

/// A string, or the one-element list compose also accepts for `command`.
fn words(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(String::from).collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| i.as_str().expect("a string").to_string())
            .collect(),
        other => panic!("not a command: {other:?}"),
    }
}

/// Compose's durations: Go's `1m30s`, `60s`, `500ms`.
fn go_duration(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    assert!(!rest.is_empty(), "an empty duration");
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or_else(|| panic!("{text}: a number without a unit"));
        let number: f64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("{text}: not a duration"));
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            unit => panic!("{text}: unknown unit {unit:?}"),
        };
        total += Duration::from_secs_f64(number * seconds);
        rest = &rest[unit_len..];
    }
    total
}

/// SHUTDOWN_GRACE_S as callq reads it when the env file does not set it: .env.example's
/// values with the Google key and prompt supplied, and its SHUTDOWN_GRACE_S line dropped.
fn default_shutdown_grace() -> Duration {
    let example: String = read(".env.example")
        .lines()
        .filter(|l| !l.contains("SHUTDOWN_GRACE_S"))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    std::fs::write(&path, example).unwrap();
    let prompt = repo("prompts/department1.txt").display().to_string();
    let env = Env::load_with(
        &path,
        true,
        [
            ("JSON_AUTH".to_string(), "{}".to_string()),
            ("PROMPT_FILE".to_string(), prompt),
        ],
    );
    env.run().unwrap_or_else(|e| panic!("{e:?}")).shutdown_grace
}

/// The runtime stage's last `WORKDIR`: relative paths in the env file start there.
fn image_workdir() -> String {
    let dockerfile = read("Dockerfile");
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .expect("a multi-stage Dockerfile")
        .1;
    runtime
        .lines()
        .filter_map(|l| l.trim().strip_prefix("WORKDIR "))
        .next_back()
        .expect("the runtime stage sets WORKDIR")
        .trim()
        .to_string()
}

#[test]
fn compose_files_run_the_image_the_dockerfile_builds() {
    for department in DEPARTMENTS {
        let file = compose(department);
        assert_eq!(file["name"], "callq", "{department}: compose project name");
        let callq = &file["services"]["callq"];
        assert_eq!(callq["image"], "callq:latest", "{department}");
        // `build: .` builds the Dockerfile beside the compose file.
        let context = callq["build"]
            .as_str()
            .or_else(|| callq["build"]["context"].as_str())
            .unwrap_or_else(|| panic!("{department}: no build context"));
        assert!(
            repo(context).join("Dockerfile").is_file(),
            "{department}: build context {context} has no Dockerfile"
        );
        assert_eq!(words(&callq["command"]), ["run"], "{department}: command");
        assert!(
            callq.get("entrypoint").is_none(),
            "{department}: the image's entrypoint (callq) is kept"
        );
        assert_eq!(
            callq["env_file"].as_str(),
            Some(format!(".env.{department}").as_str()),
            "{department}: its own env file"
        );
        assert_eq!(
            callq["restart"], "no",
            "{department}: one-shot, cron starts it"
        );
    }
}

#[test]
fn compose_files_mount_what_callq_reads() {
    let workdir = image_workdir();
    assert_eq!(workdir, "/app", "the compose files' comments say /app");
    // The folders the env file's relative paths point into (PROMPT_FILE=prompts/…,
    // JSON_AUTH=acc_google_api/key.json) and the default LOGGING_DIR, which callq writes.
    let env = Env::load_with(Path::new("/nonexistent/.env"), false, Vec::new());
    let logs = env.logging().dir.display().to_string();
    let wanted = [
        ("./prompts", "prompts", true),
        ("./acc_google_api", "acc_google_api", true),
        ("./logs", logs.as_str(), false),
    ];
    for department in DEPARTMENTS {
        let callq = callq_service(department);
        let volumes: Vec<String> = callq["volumes"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{department}: no volumes"))
            .iter()
            .map(|v| v.as_str().expect("short volume syntax").to_string())
            .collect();
        for (host, in_app, read_only) in wanted {
            let target = format!("{workdir}/{in_app}");
            let found = volumes
                .iter()
                .find(|v| v.split(':').nth(1) == Some(target.as_str()))
                .unwrap_or_else(|| {
                    panic!("{department}: nothing mounted at {target}: {volumes:?}")
                });
            let parts: Vec<&str> = found.split(':').collect();
            assert_eq!(parts[0], host, "{department}: {found}");
            // What callq reads ships with the repository; logs/ is made on the host.
            assert!(
                !read_only || repo(host).is_dir(),
                "{department}: {host} is not in the repository"
            );
            assert_eq!(
                parts.get(2) == Some(&"ro"),
                read_only,
                "{department}: {found} should be {}",
                if read_only { "read-only" } else { "writable" }
            );
        }
        // The prompt the file's comments tell users to set.
        assert!(
            read(&format!("docker-compose.{department}.yml"))
                .contains(&format!("PROMPT_FILE=prompts/{department}.txt")),
            "{department}: the comments name its prompt"
        );
        assert!(repo(&format!("prompts/{department}.txt")).is_file());
    }
}

#[test]
fn compose_files_give_a_stopped_run_time_to_save() {
    let grace = default_shutdown_grace();
    assert!(grace > Duration::ZERO);
    for department in DEPARTMENTS {
        let callq = callq_service(department);
        let stop = callq["stop_grace_period"]
            .as_str()
            .unwrap_or_else(|| panic!("{department}: no stop_grace_period (docker's is 10 s)"));
        assert!(
            go_duration(stop) >= grace + STOP_MARGIN,
            "{department}: stop_grace_period {stop} is shorter than SHUTDOWN_GRACE_S ({grace:?}) \
             + {STOP_MARGIN:?}: docker would kill calls already at the LLM"
        );
    }
}

#[test]
fn both_departments_share_one_database_service() {
    let [a, b] = DEPARTMENTS.map(compose);
    assert_eq!(a["services"]["db"], b["services"]["db"]);
    assert_eq!(a["volumes"], b["volumes"]);
    // callq waits for the local database only when its profile is on.
    for file in [&a, &b] {
        let depends = &file["services"]["callq"]["depends_on"]["db"];
        assert_eq!(depends["required"], false);
        assert_eq!(depends["condition"], "service_healthy");
        assert!(file["services"]["db"]["healthcheck"].is_mapping());
    }
}

#[test]
fn go_durations_read_like_compose() {
    assert_eq!(go_duration("60s"), Duration::from_secs(60));
    assert_eq!(go_duration("1m30s"), Duration::from_secs(90));
    assert_eq!(go_duration("1h"), Duration::from_secs(3600));
    assert_eq!(go_duration("1500ms"), Duration::from_millis(1500));
}

/// A crontab entry: five time fields and a command.
struct CronLine {
    line_no: usize,
    fields: Vec<String>,
    command: String,
    commented_out: bool,
}

/// Every entry of crontab.example, including the commented-out variant (a comment line
/// that starts with a time field), so either variant works once uncommented.
fn cron_lines() -> Vec<CronLine> {
    let text = read("crontab.example");
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let (body, commented_out) = match line.strip_prefix('#') {
            Some(rest) => (rest.trim(), true),
            None => (line, false),
        };
        if body.is_empty() {
            continue;
        }
        let time_like = |w: &str| {
            w.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '*' | ',' | '-' | '/'))
        };
        let words: Vec<&str> = body.split_whitespace().collect();
        let is_entry = words.len() > 5 && words[..5].iter().all(|w| time_like(w));
        if commented_out && !is_entry {
            continue; // prose
        }
        if !commented_out && !is_entry {
            // SHELL=, PATH=, MAILTO=: a variable assignment.
            let (name, _) = body
                .split_once('=')
                .unwrap_or_else(|| panic!("crontab.example:{}: {raw}", i + 1));
            assert!(
                name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "crontab.example:{}: {raw}",
                i + 1
            );
            continue;
        }
        let mut parts = body.split_whitespace();
        let fields: Vec<String> = parts.by_ref().take(5).map(String::from).collect();
        let command = parts.collect::<Vec<_>>().join(" ");
        out.push(CronLine {
            line_no: i + 1,
            fields,
            command,
            commented_out,
        });
    }
    out
}

/// One crontab time field: `*`, numbers, ranges, lists and steps within `min..=max`.
fn cron_field_ok(field: &str, min: u32, max: u32) -> bool {
    field.split(',').all(|item| {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let step_ok = step.is_none_or(|s| s.parse::<u32>().is_ok_and(|n| n >= 1));
        let in_range = |s: &str| s.parse::<u32>().is_ok_and(|n| (min..=max).contains(&n));
        let range_ok = match range.split_once('-') {
            _ if range == "*" => true,
            Some((a, b)) => {
                in_range(a) && in_range(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok()
            }
            None => in_range(range),
        };
        step_ok && range_ok
    })
}

#[test]
fn crontab_lines_are_five_time_fields_and_a_command() {
    let lines = cron_lines();
    assert!(
        lines.iter().filter(|l| !l.commented_out).count() >= DEPARTMENTS.len(),
        "one active line per department"
    );
    let limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for l in &lines {
        assert_eq!(l.fields.len(), 5, "crontab.example:{}", l.line_no);
        for (field, (min, max)) in l.fields.iter().zip(limits) {
            assert!(
                cron_field_ok(field, min, max),
                "crontab.example:{}: time field {field:?} outside {min}..{max}",
                l.line_no
            );
        }
        assert!(!l.command.is_empty(), "crontab.example:{}", l.line_no);
        // cron turns an unescaped % into a newline.
        assert!(
            !l.command.replace("\\%", "").contains('%'),
            "crontab.example:{}: unescaped % in the command",
            l.line_no
        );
    }
    assert!(!cron_field_ok("60", 0, 59) && !cron_field_ok("5-2", 0, 23));
    assert!(cron_field_ok("*/15", 0, 59) && cron_field_ok("1,3-5", 0, 6));
}

#[test]
fn crontab_runs_each_department_from_its_own_files() {
    let lines = cron_lines();
    for department in DEPARTMENTS {
        // Variant A: docker compose with the department's file, as the file's own usage says.
        let docker: Vec<&CronLine> = lines
            .iter()
            .filter(|l| l.command.contains("docker compose") && l.command.contains(department))
            .collect();
        assert_eq!(docker.len(), 1, "{department}: one docker compose line");
        let command = &docker[0].command;
        assert!(
            !docker[0].commented_out,
            "{department}: the docker variant is active"
        );
        let file = format!("docker-compose.{department}.yml");
        assert!(command.contains(&format!("-f {file}")), "{command}");
        assert!(repo(&file).is_file(), "{file} does not exist");
        // `run --rm -T callq`: the service the compose file defines, its command (`run`) kept.
        let after_run = command
            .split("docker compose")
            .nth(1)
            .and_then(|rest| rest.split(" run ").nth(1))
            .unwrap_or_else(|| panic!("{department}: `docker compose … run …`: {command}"));
        let words: Vec<&str> = after_run.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| !w.starts_with('-'))
            .unwrap_or_else(|| panic!("{department}: no service: {command}"));
        assert_eq!(words[at], "callq", "{command}");
        assert!(callq_service(department).is_mapping());
        assert!(
            matches!(
                words.get(at + 1),
                None | Some(&">>") | Some(&">") | Some(&"||")
            ),
            "{department}: no arguments after the service, so the image runs `run`: {command}"
        );
        assert!(
            command.contains(&format!("flock -n -E 75 /tmp/callq-{department}.lock")),
            "{department}: guarded by its own lock: {command}"
        );

        // Variant B: the bare binary with the department's env file.
        let bare: Vec<&CronLine> = lines
            .iter()
            .filter(|l| l.command.contains("/callq run") && l.command.contains(department))
            .collect();
        assert_eq!(bare.len(), 1, "{department}: one bare-binary line");
        assert!(
            bare[0]
                .command
                .contains(&format!("--env-file /opt/callq/.env.{department}")),
            "{}",
            bare[0].command
        );
    }
    // Staggered: the departments do not start together.
    let starts: Vec<(&String, &String)> = lines
        .iter()
        .filter(|l| !l.commented_out)
        .map(|l| (&l.fields[0], &l.fields[1]))
        .collect();
    let distinct: std::collections::BTreeSet<_> = starts.iter().collect();
    assert_eq!(distinct.len(), starts.len(), "{starts:?}");
}
