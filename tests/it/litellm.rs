//! Nights through a real LiteLLM proxy in front of the fake LLM. Ignored unless
//! `CALLQ_LITELLM_BIN` names the proxy's `litellm` command: `scripts/test-litellm` installs
//! a pinned LiteLLM into target/litellm-venv and runs these with `--ignored`.
//!
//! Each test starts its own proxy (master-key mode, no database) on a free loopback port
//! from a config.yaml written under target/litellm-tests/, and waits for its liveliness
//! endpoint; dropping the proxy kills it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Harness, World, call, day};
use callq::severity::ExitCode;
use callq_fakes::{LlmConfig, scenario};
use serde_json::Value;

const MASTER_KEY: &str = "sk-callq-master";
/// What the proxy charges per token, so it sends `x-litellm-response-cost`.
const INPUT_COST_PER_TOKEN: f64 = 0.000_002;
const OUTPUT_COST_PER_TOKEN: f64 = 0.000_008;

/// One model name the proxy routes to a fake LLM.
struct Route {
    name: &'static str,
    fake_base_url: String,
    max_parallel_requests: Option<usize>,
}

struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    async fn start(routes: &[Route]) -> Proxy {
        let bin = std::env::var("CALLQ_LITELLM_BIN")
            .expect("CALLQ_LITELLM_BIN is not set: run these through scripts/test-litellm");
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/litellm-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join(format!("config-{port}.yaml"));
        std::fs::write(&config, config_yaml(routes)).unwrap();
        let log = std::fs::File::create(dir.join(format!("proxy-{port}.log"))).unwrap();
        let child = Command::new(bin)
            .args(["--config", config.to_str().unwrap()])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--num_workers", "1"])
            // No database: LiteLLM would take callq's test server for its own.
            .env_remove("DATABASE_URL")
            // Offline: the bundled model price map, no telemetry.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY", "False")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the litellm proxy");
        let mut proxy = Proxy { child, port };
        proxy.wait_until_live().await;
        proxy
    }

    /// The proxy takes several seconds to import and start.
    async fn wait_until_live(&mut self) {
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/health/liveliness", self.port);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the litellm proxy exited early ({status}); see target/litellm-tests/");
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the litellm proxy did not come up"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The configuration the README recommends, routed to the fakes.
fn config_yaml(routes: &[Route]) -> String {
    let mut yaml = String::from("model_list:\n");
    for r in routes {
        yaml.push_str(&format!(
            "  - model_name: {name}\n    litellm_params:\n      model: openai/gpt-test\n      \
             api_base: {base}\n      api_key: {key}\n      \
             input_cost_per_token: {INPUT_COST_PER_TOKEN}\n      \
             output_cost_per_token: {OUTPUT_COST_PER_TOKEN}\n",
            name = r.name,
            base = r.fake_base_url,
            key = LlmConfig::default().token,
        ));
        if let Some(n) = r.max_parallel_requests {
            yaml.push_str(&format!("      max_parallel_requests: {n}\n"));
        }
    }
    // Where `/v1/files` and `/v1/batches` go: without it LiteLLM answers them 500. The
    // first route's provider serves batch nights.
    if let Some(first) = routes.first() {
        yaml.push_str(&format!(
            "files_settings:\n  - custom_llm_provider: openai\n    api_base: {base}\n    \
             api_key: {key}\n",
            base = first.fake_base_url,
            key = LlmConfig::default().token,
        ));
    }
    yaml.push_str(&format!(
        "litellm_settings:\n  num_retries: 0\n  request_timeout: 600\n\
         router_settings:\n  num_retries: 0\n\
         general_settings:\n  master_key: {MASTER_KEY}\n"
    ));
    yaml
}

/// Points the harness's env file at the proxy (later lines win).
fn through(h: &Harness, proxy: &Proxy, model: &str, key: &str, extra: &str) {
    let mut text = std::fs::read_to_string(&h.env_path).unwrap();
    text.push_str(&format!(
        "LLM_BASE_URL={}\nMODEL={model}\nTOKEN_LLM={key}\n{extra}",
        proxy.base_url()
    ));
    std::fs::write(&h.env_path, text).unwrap();
}

/// The stored rows less what legitimately differs between two runs: when, by which
/// run, what the cost was and where it came from, and the cached tokens (the fake counts
/// the prefix shared with whichever prompt arrived before, an order concurrency decides).
async fn comparable(h: &Harness) -> Vec<String> {
    h.snapshot()
        .await
        .into_iter()
        .map(|line| {
            let (table, json) = line.split_once(": ").unwrap();
            let mut row: Value = serde_json::from_str(json).unwrap();
            if let Some(o) = row.as_object_mut() {
                for volatile in [
                    "analyzed_at",
                    "run_id",
                    "cost_usd",
                    "cost_source",
                    "cached_tokens",
                ] {
                    o.remove(volatile);
                }
                // Identity columns count insertions, whose order concurrency decides.
                if table != "calls" {
                    o.remove("id");
                }
            }
            format!("{table}: {row}")
        })
        .collect()
}

fn night() -> World {
    let mut calls = scenario::sample_calls(day(), 12);
    calls[1]
        .phrases
        .push((false, "Я просто уточнить баланс. [not-sales]".into()));
    calls[3].phrases.push((
        false,
        "Беру за 15000. Но страховку не надо. [agreement:15000] [decline]".into(),
    ));
    World {
        calls,
        llm: LlmConfig {
            record_requests: true,
            ..LlmConfig::default()
        },
        ..World::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a LiteLLM proxy: scripts/test-litellm"]
async fn litellm_a_night_is_stored_as_without_the_proxy_and_refusals_stop_it() {
    let h = Harness::start(night()).await;
    let proxy = Proxy::start(&[Route {
        name: "gpt-test",
        fake_base_url: h.llm.base_url(),
        max_parallel_requests: None,
    }])
    .await;
    through(&h, &proxy, "gpt-test", MASTER_KEY, "");

    // `callq check` through the proxy: structured output honoured.
    let env = callq::config::Env::load_with(&h.env_path, true, Vec::new());
    let (code, lines) = callq::commands::check::check_lines(&env).await;
    let out = lines.join("\n");
    assert_eq!(code, ExitCode::Ok, "{out}");
    assert!(out.contains("✓ structured output"), "{out}");
    let after_check = h.llm.requests();

    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    let direct = Harness::start(night()).await;
    assert_eq!(direct.run(&[]).await, ExitCode::Ok);
    assert_eq!(comparable(&h).await, comparable(&direct).await);
    assert!(
        h.count("SELECT sum(cached_tokens)::bigint FROM calls")
            .await
            > 0,
        "cached tokens pass through the proxy"
    );

    // The schema reached the model as callq sent it: not downgraded by the proxy.
    let sent = h.llm.request_bodies();
    let direct_sent = direct.llm.request_bodies();
    assert_eq!(
        sent.len() - after_check,
        direct_sent.len(),
        "as many requests as without the proxy"
    );
    for body in &sent[after_check..] {
        assert_eq!(body["response_format"]["type"], "json_schema", "{body}");
        assert_eq!(
            body["response_format"]["json_schema"]["schema"],
            direct_sent[0]["response_format"]["json_schema"]["schema"]
        );
    }
    // The proxy reports what each answer cost; callq stores that.
    assert_eq!(
        h.count("SELECT count(*) FROM calls WHERE cost_source = 'gateway' AND cost_usd > 0")
            .await,
        h.count("SELECT count(*) FROM calls").await
    );
    let c = h.db.client().await;
    let run = c
        .query_one(
            "SELECT cost_source, llm_attempts, llm_requests FROM runs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(run.get::<_, Option<String>>(0).as_deref(), Some("gateway"));
    assert_eq!(run.get::<_, i32>(1), run.get::<_, i32>(2));

    // A wrong key: LiteLLM without its database answers 400 "No connected db.".
    let wrong = Harness::start(night()).await;
    through(&wrong, &proxy, "gpt-test", "sk-not-the-master-key", "");
    assert_eq!(wrong.run(&[]).await, ExitCode::Unavailable);
    assert_eq!(wrong.count("SELECT count(*) FROM call_failures").await, 0);
    let attempts = wrong.count("SELECT llm_attempts::bigint FROM runs").await;
    assert!(attempts <= 8, "{attempts} requests before stopping");
    let env = callq::config::Env::load_with(&wrong.env_path, true, Vec::new());
    let (code, lines) = callq::commands::check::check_lines(&env).await;
    let out = lines.join("\n");
    assert_eq!(code, ExitCode::Unavailable, "{out}");
    assert!(out.contains("fix: check TOKEN_LLM"), "{out}");

    // An unknown model: refused at once.
    let unknown = Harness::start(night()).await;
    through(&unknown, &proxy, "no-such-model", MASTER_KEY, "");
    assert_eq!(unknown.run(&[]).await, ExitCode::Unavailable);
    assert_eq!(unknown.count("SELECT count(*) FROM call_failures").await, 0);
    let env = callq::config::Env::load_with(&unknown.env_path, true, Vec::new());
    let (code, lines) = callq::commands::check::check_lines(&env).await;
    let out = lines.join("\n");
    assert_eq!(code, ExitCode::Unavailable, "{out}");
    assert!(out.contains("fix: check MODEL"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a LiteLLM proxy: scripts/test-litellm"]
async fn litellm_upstream_429_and_500_bursts_leave_the_night_complete() {
    let h = Harness::start(World {
        calls: scenario::sample_calls(day(), 16),
        ..World::default()
    })
    .await;
    let proxy = Proxy::start(&[Route {
        name: "gpt-test",
        fake_base_url: h.llm.base_url(),
        max_parallel_requests: None,
    }])
    .await;
    through(&h, &proxy, "gpt-test", MASTER_KEY, "");
    h.llm.fail_next(6, 429);
    h.llm.fail_next(6, 500);
    h.llm.fail_next(3, 503);
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 16);
    assert_eq!(h.count("SELECT count(*) FROM call_failures").await, 0);
    assert!(h.llm.served_429() >= 6 && h.llm.served_500() >= 9);
    let attempts = h.count("SELECT llm_attempts::bigint FROM runs").await;
    assert!(
        attempts >= 16 + 15,
        "{attempts}: the bursts' requests are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a LiteLLM proxy: scripts/test-litellm"]
async fn litellm_a_max_parallel_requests_limit_costs_no_call_and_little_time() {
    const LIMIT: usize = 4;
    let world = || World {
        calls: (0..60)
            .map(|i| {
                call(
                    93_000_000 + i,
                    (5512, "Иванова Анна"),
                    &[(true, "Добрый день"), (false, "Здравствуйте")],
                )
            })
            .collect(),
        llm: LlmConfig {
            latency: Duration::from_millis(400),
            ..LlmConfig::default()
        },
        ..World::default()
    };
    let above = Harness::start(world()).await;
    let at = Harness::start(world()).await;
    let proxy = Proxy::start(&[
        Route {
            name: "limited-a",
            fake_base_url: above.llm.base_url(),
            max_parallel_requests: Some(LIMIT),
        },
        Route {
            name: "limited-b",
            fake_base_url: at.llm.base_url(),
            max_parallel_requests: Some(LIMIT),
        },
    ])
    .await;
    through(
        &above,
        &proxy,
        "limited-a",
        MASTER_KEY,
        "LLM_CONCURRENCY=32\n",
    );
    through(
        &at,
        &proxy,
        "limited-b",
        MASTER_KEY,
        &format!("LLM_CONCURRENCY={LIMIT}\n"),
    );

    let started = Instant::now();
    assert_eq!(at.run(&[]).await, ExitCode::Ok);
    let wall_at = started.elapsed();
    let started = Instant::now();
    assert_eq!(above.run(&[]).await, ExitCode::Ok);
    let wall_above = started.elapsed();

    assert_eq!(above.count("SELECT count(*) FROM calls").await, 60);
    assert_eq!(above.count("SELECT count(*) FROM call_failures").await, 0);
    assert!(
        above.llm.in_flight_max() <= LIMIT,
        "the proxy held its limit"
    );
    assert!(
        wall_above.as_secs_f64() <= wall_at.as_secs_f64() * 1.10,
        "{wall_above:?} with LLM_CONCURRENCY=32 vs {wall_at:?} at the proxy's limit of {LIMIT}"
    );
    let refused = above
        .count("SELECT (llm_attempts - llm_requests)::bigint FROM runs")
        .await;
    eprintln!(
        "max_parallel_requests={LIMIT}: {wall_above:?} at LLM_CONCURRENCY=32 ({refused} refused), {wall_at:?} at {LIMIT}"
    );
}

/// A multipart `purpose=batch` upload, written out by hand: callq's reqwest has no
/// multipart feature.
fn batch_upload(jsonl: &str) -> (String, Vec<u8>) {
    let boundary = "callq-batch-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"night.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\r\n{jsonl}\r\n--{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a LiteLLM proxy: scripts/test-litellm"]
async fn litellm_passes_files_and_batches_through_to_the_provider() {
    let llm = callq_fakes::FakeLlm::start(LlmConfig::default()).await;
    let proxy = Proxy::start(&[Route {
        name: "gpt-test",
        fake_base_url: llm.base_url(),
        max_parallel_requests: None,
    }])
    .await;
    let http = reqwest::Client::new();
    let base = proxy.base_url();
    let jsonl: String = (0..4)
        .map(|i| {
            serde_json::json!({"custom_id": format!("call-{i}"), "method": "POST",
                "url": "/v1/chat/completions", "body": {"model": "gpt-test",
                "messages": [{"role": "user", "content": format!("Транскрипт:\noperator: звонок {i}")}]}})
            .to_string()
                + "\n"
        })
        .collect();
    let (content_type, body) = batch_upload(&jsonl);
    let file: Value = http
        .post(format!("{base}/files"))
        .bearer_auth(MASTER_KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file_id = file["id"].as_str().expect("a file id").to_string();
    assert_eq!(file["purpose"], "batch");
    assert_eq!(llm.files_uploaded(), 1, "the upload reached the provider");

    let hold = llm.hold_batches();
    let mut ids = Vec::new();
    for run in ["1", "2"] {
        let created: Value = http
            .post(format!("{base}/batches"))
            .bearer_auth(MASTER_KEY)
            .json(
                &serde_json::json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                "completion_window": "24h", "metadata": {"callq": "1", "run": run}}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(created["metadata"]["run"], run, "{created}");
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    let get = |path: String| {
        let http = http.clone();
        async move {
            let resp = http.get(path).bearer_auth(MASTER_KEY).send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            resp
        }
    };
    let held: Value = get(format!("{base}/batches/{}", ids[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(held["status"], "in_progress");
    // Paging: newest first, `after` the last id of the page before.
    let page: Value = get(format!("{base}/batches?limit=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"][0]["id"], ids[1].as_str());
    assert_eq!(page["has_more"], true);
    let next: Value = get(format!("{base}/batches?limit=1&after={}", ids[1]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["data"][0]["id"], ids[0].as_str());
    assert_eq!(next["data"][0]["metadata"]["callq"], "1");

    hold.expire(0.5);
    let expired: Value = get(format!("{base}/batches/{}", ids[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(expired["status"], "expired");
    assert_eq!(expired["request_counts"]["completed"], 2);
    let output = get(format!(
        "{base}/files/{}/content",
        expired["output_file_id"].as_str().unwrap()
    ))
    .await
    .text()
    .await
    .unwrap();
    let answered: Vec<Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answered.len(), 2);
    assert_eq!(answered[0]["custom_id"], "call-0");
    assert_eq!(answered[0]["response"]["status_code"], 200);
    assert_eq!(llm.batch_lines(), 4, "half of each of the two batches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a LiteLLM proxy: scripts/test-litellm"]
async fn litellm_a_batch_night_through_the_proxy_is_stored_as_a_sync_night() {
    let h = Harness::start(night()).await;
    let proxy = Proxy::start(&[Route {
        name: "gpt-test",
        fake_base_url: h.llm.base_url(),
        max_parallel_requests: None,
    }])
    .await;
    through(&h, &proxy, "gpt-test", MASTER_KEY, "LLM_MODE=batch\n");

    let env = callq::config::Env::load_with(&h.env_path, true, Vec::new());
    let (code, lines) = callq::commands::check::check_lines(&env).await;
    let out = lines.join("\n");
    assert_eq!(code, ExitCode::Ok, "{out}");
    assert!(out.contains("✓ LLM batches"), "{out}");
    let probes = h.llm.completions();

    // Submitted through the proxy, then collected by the next run through it too.
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.llm.batches_created(), 1);
    assert_eq!(h.count("SELECT count(*) FROM calls").await, 0);
    assert_eq!(h.run(&[]).await, ExitCode::Ok);
    assert_eq!(h.llm.completions(), probes, "no synchronous request");
    let direct = Harness::start(night()).await;
    assert_eq!(direct.run(&[]).await, ExitCode::Ok);
    assert_eq!(comparable(&h).await, comparable(&direct).await);
    assert_eq!(
        h.count("SELECT count(*) FROM calls WHERE cost_source = 'batch'")
            .await,
        h.count("SELECT count(*) FROM calls").await
    );
    let ids = h.llm.batch_custom_ids();
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");

    // The canary goes through the proxy's Batch API too: sent by a nightly run, measured
    // by the next one when it collects the batch.
    crate::canary::import_humans(&h, 12).await;
    h.set_env("CANARY_CALLS=5");
    let (code, r) = crate::canary::nightly(&h).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["canary"]["status"], "in_batch", "{r}");
    h.llm.batch_lines();
    let (code, r) = crate::canary::nightly(&h).await;
    assert_eq!(code, 0, "{r}");
    let measured = &r["batches"]["canary"][0];
    assert_eq!(measured["status"], "ok", "{r}");
    assert_eq!(measured["calls"], 5, "{r}");
    assert!(measured["human"]["exact"].as_f64().unwrap() > 0.7, "{r}");
    assert_eq!(h.llm.completions(), probes, "no synchronous request");
}
