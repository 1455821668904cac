//! The operations kit under deploy/, checked against callq itself: the Kubernetes CronJobs
//! against the settings callq reads and the compose files' mounts, the Prometheus rules, their
//! promtool test series and the Grafana dashboard against the metrics callq's renderer
//! publishes, the dashboard's SQL against the views the migrations create (run on a migrated
//! database). promtool runs the rules' own tests in scripts/test-deploy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use callq::config::Env;
use callq::domain::{Cost, CostSource, Outcome};
use callq::severity::ExitCode;
use callq::store::MIGRATIONS;
use callq::summary::Summary;
use regex::Regex;
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::common::TestDb;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `a.b.c` in a YAML tree, failing with the path when a key is missing.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, key| {
        v.get(key).unwrap_or_else(|| panic!("{path}: no `{key}`"))
    })
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn int_at(v: &Value, path: &str) -> i64 {
    at(v, path)
        .as_i64()
        .unwrap_or_else(|| panic!("{path} is not an integer"))
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a Vec<Value> {
    at(v, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("{path} is not a list"))
}

/// Label name → the values it takes, per metric.
type Metrics = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// What `callq run` publishes, taken from its renderer: a run with every outcome counted
/// and a cost (the one metric published only sometimes), and a canary night with every
/// figure and its trailing medians.
fn published() -> Metrics {
    let mut s = Summary::default();
    for o in Outcome::ALL {
        s.add(o);
    }
    s.add_cost(Some(Cost {
        usd: 0.5,
        source: CostSource::Prices,
    }));
    let mut text = callq::metrics::render(7, &[s], ExitCode::Ok, 1_700_000_000);
    let figures: Vec<(String, String, f64)> = ["human", "self"]
        .iter()
        .flat_map(|a| {
            ["exact", "within1", "qwk", "mae"]
                .iter()
                .map(move |s| (a.to_string(), s.to_string(), 0.5))
        })
        .collect();
    text.push_str(&callq::metrics::render_canary(
        7,
        &callq::metrics::CanaryFigures {
            ran: true,
            calls: 30,
            cost_usd: Some(0.05),
            margin: 0.1,
            agreement: figures.clone(),
            median: figures,
        },
    ));
    text.push_str(&callq::metrics::render_batches(7, &[], None));
    let sample = Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} \S+$").unwrap();
    let mut metrics = Metrics::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let c = sample
            .captures(line)
            .unwrap_or_else(|| panic!("unexpected metrics line {line:?}"));
        let metric = metrics.entry(c[1].to_string()).or_default();
        for (label, values) in labels(&c[2]) {
            metric.entry(label).or_default().extend(values);
        }
    }
    assert!(
        metrics.contains_key("callq_llm_cost_usd") && metrics.len() >= 10,
        "{text}"
    );
    metrics
}

/// `a="x",b="y"` → {a: {x}, b: {y}}.
fn labels(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let label = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!=|!~|=)\s*"([^"]*)""#).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in label.captures_iter(text) {
        out.entry(l[1].to_string())
            .or_default()
            .insert(l[2].to_string());
    }
    out
}

/// Labels Prometheus adds to what callq publishes: job and department from the
/// Pushgateway, or node_exporter's job and instance for the textfile.
const SCRAPE_LABELS: [&str; 2] = ["job", "instance"];

const PROMQL_WORDS: [&str; 13] = [
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// The series selectors of a PromQL expression: metric name and label matchers.
fn selectors(expr: &str) -> Vec<(String, BTreeMap<String, BTreeSet<String>>)> {
    // Grouping label lists and ranges name no metric.
    let grouping =
        Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)").unwrap();
    let range = Regex::new(r"\[[^\]]*\]").unwrap();
    let selector = Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}").unwrap();
    let string = Regex::new(r#""(?:[^"\\]|\\.)*""#).unwrap();
    let ident = Regex::new(r"[a-zA-Z_:][a-zA-Z0-9_:]*").unwrap();

    let text = grouping.replace_all(expr, " ");
    let text = range.replace_all(&text, " ");
    let mut found = Vec::new();
    for c in selector.captures_iter(&text) {
        let name = c
            .get(1)
            .unwrap_or_else(|| panic!("a selector without a metric name in {expr:?}"));
        found.push((name.as_str().to_string(), labels(&c[2])));
    }
    let text = selector.replace_all(&text, " ");
    let text = string.replace_all(&text, " ");
    for m in ident.find_iter(&text) {
        let before = text[..m.start()].chars().next_back();
        // Part of a number (1e3), a duration or a variable, not a name.
        if before.is_some_and(|c| c.is_alphanumeric() || "_:.$".contains(c)) {
            continue;
        }
        let after = text[m.end()..].trim_start().chars().next();
        if after == Some('(') || PROMQL_WORDS.contains(&m.as_str()) {
            continue;
        }
        found.push((m.as_str().to_string(), BTreeMap::new()));
    }
    found
}

/// Fails unless every selector of `expr` names a metric callq publishes (or one of
/// `recorded`), with label matchers on labels it has and values it writes.
fn check_expr(
    expr: &str,
    published: &Metrics,
    recorded: &BTreeSet<String>,
    used: &mut BTreeSet<String>,
) {
    let found = selectors(expr);
    assert!(!found.is_empty(), "no metric found in {expr:?}");
    for (name, matchers) in found {
        used.insert(name.clone());
        if recorded.contains(&name) {
            continue;
        }
        let Some(labels) = published.get(&name) else {
            panic!("{expr:?} selects {name}, which callq does not publish");
        };
        for (label, values) in matchers {
            assert!(
                labels.contains_key(&label) || SCRAPE_LABELS.contains(&label.as_str()),
                "{expr:?}: {name} has no label {label}"
            );
            // Values callq itself writes (outcome, kind); department comes from the env file.
            if let Some(written) = labels.get(&label).filter(|_| label != "department") {
                for value in values.iter().flat_map(|v| v.split('|')) {
                    assert!(
                        written.contains(value),
                        "{expr:?}: callq writes no {name}{{{label}=\"{value}\"}} (only {written:?})"
                    );
                }
            }
        }
    }
}

#[test]
fn the_selector_parser_finds_names_and_matchers() {
    let found = selectors(
        r#"sum without (outcome) (callq_calls{outcome=~"scored|not_sales",department=~"$department"}) + (callq_calls_listed - time()) > 26 * 3600 and on (department) max_over_time(up[14d]) > 1e3"#,
    );
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["callq_calls", "callq_calls_listed", "up"]);
    assert_eq!(
        found[0].1["outcome"],
        BTreeSet::from(["scored|not_sales".to_string()])
    );
}

#[test]
fn prometheus_rules_and_their_test_series_use_what_callq_publishes() {
    let published = published();
    let rules = yaml("deploy/prometheus/callq-rules.yml");
    let mut recorded = BTreeSet::new();
    let mut alerts = BTreeSet::new();
    let mut exprs = Vec::new();
    for group in seq(&rules, "groups") {
        for rule in seq(group, "rules") {
            match (rule.get("record"), rule.get("alert")) {
                (Some(r), None) => recorded.insert(r.as_str().unwrap().to_string()),
                (None, Some(a)) => alerts.insert(a.as_str().unwrap().to_string()),
                _ => panic!("a rule is either a record or an alert: {rule:?}"),
            };
            exprs.push(str_at(rule, "expr").to_string());
        }
    }
    let mut used = BTreeSet::new();
    for expr in &exprs {
        check_expr(expr, &published, &recorded, &mut used);
    }
    // What the issue asks to watch: the run's exit code and finish time, failed and
    // left-behind calls, cost and LLM requests per call.
    for name in [
        "callq_last_run_exit_code",
        "callq_last_run_timestamp_seconds",
        "callq_calls",
        "callq_calls_listed",
        "callq_llm_cost_usd",
        "callq_llm_attempts",
        "callq_canary_agreement",
        "callq_canary_agreement_median",
        "callq_canary_margin",
    ] {
        assert!(used.contains(name), "no rule reads {name}");
    }

    let tests = yaml("deploy/prometheus/callq-rules.test.yml");
    assert_eq!(seq(&tests, "rule_files"), &[Value::from("callq-rules.yml")]);
    let series = Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}$").unwrap();
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for test in seq(&tests, "tests") {
        for input in seq(test, "input_series") {
            let text = str_at(input, "series");
            let c = series
                .captures(text)
                .unwrap_or_else(|| panic!("series {text:?}"));
            let (name, got) = (&c[1], labels(&c[2]));
            if !name.starts_with("callq_") {
                // Prometheus' own series, for the case where callq never published.
                assert_eq!(name, "up", "{text}");
                continue;
            }
            let Some(wanted) = published.get(name) else {
                panic!("test series {text}: callq publishes no {name}");
            };
            for (label, values) in &got {
                match wanted.get(label) {
                    Some(written) if label != "department" => assert!(
                        values.is_subset(written),
                        "test series {text}: callq writes {label} only as {written:?}"
                    ),
                    Some(_) => {}
                    None => assert!(
                        SCRAPE_LABELS.contains(&label.as_str()),
                        "test series {text}: callq writes no label {label}"
                    ),
                }
            }
            for label in wanted.keys().map(String::as_str).chain(["job"]) {
                assert!(got.contains_key(label), "test series {text}: no {label}");
            }
        }
        for case in test
            .get("alert_rule_test")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let alert = str_at(case, "alertname");
            assert!(alerts.contains(alert), "the tests name no rule {alert}");
            let fires = case
                .get("exp_alerts")
                .and_then(Value::as_sequence)
                .is_some_and(|a| !a.is_empty());
            let seen = cases.entry(alert.to_string()).or_default();
            if fires {
                seen.0 = true;
            } else {
                seen.1 = true;
            }
        }
    }
    for alert in &alerts {
        assert_eq!(
            cases.get(alert),
            Some(&(true, true)),
            "{alert} needs a test case where it fires and one where it does not"
        );
    }
}

/// A manifest file's documents.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

/// The container paths a compose service mounts, short or long syntax.
fn compose_mounts(n: u32) -> BTreeSet<String> {
    let compose = yaml(&format!("docker-compose.department{n}.yml"));
    seq(&compose, "services.callq.volumes")
        .iter()
        .map(|v| match v.as_str() {
            Some(short) => short.split(':').nth(1).unwrap().to_string(),
            None => str_at(v, "target").to_string(),
        })
        .collect()
}

#[test]
fn kubernetes_cronjobs_stop_gracefully_retry_safely_and_log_to_the_console() {
    // PROMPT_FILE and CRITERIA_FILE below are relative to the repository, as in /app.
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let texts: Vec<String> = [1, 2]
        .iter()
        .map(|n| read(&format!("deploy/kubernetes/callq-department{n}.yaml")))
        .collect();
    // Department 2's file is department 1's with its names and start time: what is checked
    // below for each holds for both, and they cannot drift apart.
    let without_schedule = |t: &str| {
        t.lines()
            .filter(|l| !l.trim_start().starts_with("schedule:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        without_schedule(
            &texts[0]
                .replace("department1", "department2")
                .replace("department 1", "department 2")
        ),
        without_schedule(&texts[1]),
        "the two departments' CronJobs differ in more than names and schedule"
    );

    let mut schedules = BTreeSet::new();
    for (n, text) in [1u32, 2].into_iter().zip(&texts) {
        let docs = documents(text);
        assert_eq!(docs.len(), 1, "department {n}: one CronJob per file");
        let cron = &docs[0];
        assert_eq!(str_at(cron, "apiVersion"), "batch/v1");
        assert_eq!(str_at(cron, "kind"), "CronJob");
        assert_eq!(
            str_at(cron, "metadata.name"),
            format!("callq-department{n}")
        );
        let schedule = str_at(cron, "spec.schedule");
        assert_eq!(schedule.split_whitespace().count(), 5, "{schedule}");
        schedules.insert(schedule.to_string());
        str_at(cron, "spec.timeZone");
        assert_eq!(str_at(cron, "spec.concurrencyPolicy"), "Forbid");
        let deadline = int_at(cron, "spec.startingDeadlineSeconds");
        assert!((60..86_400).contains(&deadline), "{deadline}");
        assert!(int_at(cron, "spec.successfulJobsHistoryLimit") >= 1);
        assert!(int_at(cron, "spec.failedJobsHistoryLimit") >= 1);

        let job = at(cron, "spec.jobTemplate.spec");
        // Retried, a few times: safe, since a retry loses and repays nothing.
        let backoff = int_at(job, "backoffLimit");
        assert!((1..=3).contains(&backoff), "backoffLimit {backoff}");
        // Done (and stopped) before the next night starts.
        assert!(int_at(job, "activeDeadlineSeconds") < 86_400);
        let failure_rules = seq(job, "podFailurePolicy.rules");
        let fail_job_codes: BTreeSet<i64> = failure_rules
            .iter()
            .filter(|r| str_at(r, "action") == "FailJob")
            .filter(|r| str_at(r, "onExitCodes.containerName") == "callq")
            .filter(|r| str_at(r, "onExitCodes.operator") == "In")
            .flat_map(|r| {
                seq(r, "onExitCodes.values")
                    .iter()
                    .map(|v| v.as_i64().unwrap())
            })
            .collect();
        // Bad configuration is not retried; "could not run" (3) is.
        assert!(
            fail_job_codes.contains(&i64::from(ExitCode::BadInput.code()))
                && !fail_job_codes.contains(&i64::from(ExitCode::Unavailable.code())),
            "{fail_job_codes:?}"
        );
        assert!(failure_rules.iter().any(|r| {
            str_at(r, "action") == "Ignore"
                && seq(r, "onPodConditions")
                    .iter()
                    .any(|c| str_at(c, "type") == "DisruptionTarget")
        }));

        let pod = at(job, "template.spec");
        assert_eq!(str_at(pod, "restartPolicy"), "Never");
        assert_eq!(int_at(pod, "securityContext.runAsUser"), 65532);
        assert_eq!(
            at(pod, "securityContext.runAsNonRoot").as_bool(),
            Some(true)
        );
        let containers = seq(pod, "containers");
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        assert_eq!(str_at(c, "name"), "callq");
        assert_eq!(str_at(c, "image"), "callq:latest");
        assert_eq!(seq(c, "args"), &[Value::from("run")]);
        let env_from = seq(c, "envFrom");
        assert_eq!(env_from.len(), 1);
        assert_eq!(
            str_at(&env_from[0], "secretRef.name"),
            format!("callq-department{n}-env")
        );

        // callq with this container's `env` over an env file (.env.example, which logs to
        // files): Kubernetes gives `env` precedence over `envFrom` the same way.
        let env: Vec<(String, String)> = seq(c, "env")
            .iter()
            .map(|e| (str_at(e, "name").into(), str_at(e, "value").into()))
            .chain([(
                "CRITERIA_FILE".to_string(),
                "examples/criteria.sample.csv".to_string(),
            )])
            .collect();
        let settings = Env::load_with(&repo(".env.example"), true, env.clone());
        let logging = settings.logging();
        assert!(logging.on_console && !logging.on_file, "{env:?}");
        let run = settings
            .run()
            .unwrap_or_else(|e| panic!("department {n}: {e}"));
        assert!(run.metrics.pushgateway.is_some() && run.metrics.textfile.is_none());
        let grace = Duration::from_secs(int_at(pod, "terminationGracePeriodSeconds") as u64);
        assert!(
            grace > run.shutdown_grace,
            "terminationGracePeriodSeconds {grace:?} must exceed SHUTDOWN_GRACE_S {:?}",
            run.shutdown_grace
        );
        // Nothing to write to: logs and metrics leave through the console and the network.
        assert_eq!(
            at(c, "securityContext.readOnlyRootFilesystem").as_bool(),
            Some(true)
        );

        // Mounted where the compose files mount them (logs aside: they go to the console).
        let volumes: BTreeMap<&str, &Value> = seq(pod, "volumes")
            .iter()
            .map(|v| (str_at(v, "name"), v))
            .collect();
        let mut mounts = BTreeSet::new();
        for m in seq(c, "volumeMounts") {
            let path = str_at(m, "mountPath");
            assert_eq!(at(m, "readOnly").as_bool(), Some(true), "{path}");
            let volume = volumes[str_at(m, "name")];
            let kind = match path {
                "/app/prompts" => "configMap",
                "/app/acc_google_api" => "secret",
                other => panic!("unexpected mount {other}"),
            };
            assert!(volume.get(kind).is_some(), "{path} is not a {kind}");
            mounts.insert(path.to_string());
        }
        let mut compose = compose_mounts(n);
        compose.remove("/app/logs");
        assert_eq!(mounts, compose, "department {n}");
    }
    assert_eq!(
        schedules.len(),
        2,
        "the departments start at different times"
    );
}

/// Every `expr` and `rawSql` of the dashboard, with the title of its panel.
fn queries(v: &serde_json::Value, title: &str, out: &mut Vec<(String, String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            let title = map.get("title").and_then(|t| t.as_str()).unwrap_or(title);
            for key in ["expr", "rawSql"] {
                if let Some(q) = map.get(key).and_then(|q| q.as_str()) {
                    out.push((title.to_string(), key.to_string(), q.to_string()));
                }
            }
            for child in map.values() {
                queries(child, title, out);
            }
        }
        serde_json::Value::Array(items) => {
            for child in items {
                queries(child, title, out);
            }
        }
        _ => {}
    }
}

/// The views the migrations create.
fn views() -> BTreeSet<String> {
    let view = Regex::new(r"(?i)CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+([a-z_][a-z0-9_]*)").unwrap();
    MIGRATIONS
        .iter()
        .flat_map(|(_, _, sql)| view.captures_iter(sql).map(|c| c[1].to_string()))
        .collect()
}

#[tokio::test]
async fn grafana_dashboard_shows_published_metrics_and_existing_views() {
    let published = published();
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/callq.json")).expect("callq.json parses");

    // Its data sources are the dashboard's own variables, chosen on import.
    let variables: BTreeMap<&str, &serde_json::Value> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    assert_eq!(variables["DS_PROMETHEUS"]["query"], "prometheus");
    assert_eq!(
        variables["DS_POSTGRES"]["query"],
        "grafana-postgresql-datasource"
    );
    let department = variables["department"]["definition"].as_str().unwrap();

    let mut found = Vec::new();
    queries(&dashboard["panels"], "", &mut found);
    let mut used = BTreeSet::new();
    let label_values = Regex::new(r"^label_values\(([^,]+),").unwrap();
    check_expr(
        &label_values.captures(department).expect(department)[1],
        &published,
        &BTreeSet::new(),
        &mut used,
    );
    for (title, _, expr) in found.iter().filter(|(_, k, _)| k == "expr") {
        assert!(!expr.contains("${"), "{title}: {expr}");
        check_expr(expr, &published, &BTreeSet::new(), &mut used);
    }
    let unshown: Vec<&String> = published.keys().filter(|m| !used.contains(*m)).collect();
    assert!(unshown.is_empty(), "no panel shows {unshown:?}");

    // SQL panels read the BI views only, and their queries run on a migrated database with
    // Grafana's macros expanded as Grafana expands them.
    let views = views();
    assert!(views.contains("v_scored_calls") && views.contains("v_review_queue"));
    let relation = Regex::new(r"(?i)\b(?:from|join)\s+([a-z_][a-z0-9_.]*)").unwrap();
    let time_filter = Regex::new(r"\$__timeFilter\(([^)]+)\)").unwrap();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env.migrate");
    std::fs::write(&env_file, format!("DATA_BASE={}\n", db.url)).unwrap();
    let migrated =
        callq::commands::migrate::migrate(&Env::load_with(&env_file, true, Vec::new())).await;
    assert_eq!(migrated, ExitCode::Ok);
    let client = db.client().await;
    let mut read_views = BTreeSet::new();
    for (title, _, sql) in found.iter().filter(|(_, k, _)| k == "rawSql") {
        for c in relation.captures_iter(sql) {
            assert!(views.contains(&c[1]), "{title}: {} is not a BI view", &c[1]);
            read_views.insert(c[1].to_string());
        }
        let expanded = time_filter.replace_all(
            sql,
            "$1 BETWEEN '2025-07-01T00:00:00Z' AND '2025-08-31T23:59:59Z'",
        );
        let expanded = expanded.replace("${department:csv}", "1,2");
        assert!(
            !expanded.contains('$'),
            "{title}: a macro left in {expanded}"
        );
        client
            .query(expanded.as_str(), &[])
            .await
            .unwrap_or_else(|e| panic!("{title}: {e:?}\n{expanded}"));
    }
    assert!(read_views.len() >= 4, "{read_views:?}");
}
