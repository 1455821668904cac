//! The fake gateway over real HTTP: auth, models, `response_format` rejection, markers,
//! usage accounting and the concurrency limit.

use super::*;
use reqwest::StatusCode as Status;

fn prompt(transcript: &str) -> String {
    format!(
        "Ты оцениваешь звонок.\n\nКАТЕГОРИЯ: Контакт\nКРИТЕРИЙ: Приветствие\nКОММЕНТАРИЙ: —\n\
         МАКСИМАЛЬНЫЙ БАЛЛ: 10\nУСЛОВИЯ ОЦЕНКИ: —\n\nКАТЕГОРИЯ: Контакт\nКРИТЕРИЙ: Имя\n\
         КОММЕНТАРИЙ: —\nМАКСИМАЛЬНЫЙ БАЛЛ: 2,5\nУСЛОВИЯ ОЦЕНКИ: —\n\n\
         Транскрипт:\n{transcript}\n"
    )
}

fn request(model: &str, prompt: &str, with_format: bool) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
    });
    if with_format {
        body["response_format"] = json!({"type": "json_schema",
            "json_schema": {"name": "call_analysis", "strict": true, "schema": {"type": "object"}}});
    }
    body
}

async fn send(llm: &FakeLlm, key: &str, body: &Value) -> reqwest::Response {
    crate::test_http()
        .post(format!("{}/chat/completions", llm.base_url()))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn content(llm: &FakeLlm, transcript: &str) -> String {
    let resp = send(
        llm,
        "sk-test",
        &request("gpt-test", &prompt(transcript), true),
    )
    .await;
    assert_eq!(resp.status(), Status::OK);
    let body: Value = resp.json().await.unwrap();
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_in_openai_shape_with_usage_and_cached_prefix() {
    let llm = FakeLlm::start(LlmConfig {
        record_prompts: true,
        ..LlmConfig::default()
    })
    .await;
    assert!(llm.base_url().ends_with("/v1"));
    let first = prompt("operator: Добрый день");
    let resp = send(&llm, "sk-test", &request("gpt-test", &first, true)).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], json!("chat.completion"));
    assert_eq!(body["model"], json!("gpt-test"));
    assert_eq!(body["choices"][0]["finish_reason"], json!("stop"));
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    let analysis: Value = serde_json::from_str(content).unwrap();
    assert_eq!(analysis, analysis_for_prompt(&first));
    assert_eq!(analysis["evaluations"][1]["score_given"], json!(1));
    let usage = &body["usage"];
    assert_eq!(usage["prompt_tokens"], json!(first.chars().count() / 4));
    assert_eq!(
        usage["completion_tokens"],
        json!(content.chars().count() / 4)
    );
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], json!(0));

    let second = prompt("operator: Алло");
    let body: Value = send(&llm, "sk-test", &request("gpt-test", &second, false))
        .await
        .json()
        .await
        .unwrap();
    let shared = common_prefix_chars(&first, &second);
    assert!(shared > 100);
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cached_tokens"],
        json!(shared / 4)
    );
    assert_eq!(llm.shared_prefix_chars(), shared);
    assert_eq!(
        llm.prompt_chars(),
        first.chars().count() + second.chars().count()
    );
    assert_eq!(llm.prompts(), [first, second]);
    assert_eq!((llm.requests(), llm.completions()), (2, 2));
    assert_eq!(llm.requests_with_response_format(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_key_unknown_model_and_rejected_format_are_4xx() {
    let llm = FakeLlm::start(LlmConfig {
        reject_response_format: true,
        ..LlmConfig::default()
    })
    .await;
    let ok_prompt = prompt("operator: Добрый день");
    let resp = send(&llm, "sk-wrong", &request("gpt-test", &ok_prompt, false)).await;
    assert_eq!(resp.status(), Status::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "Authentication Error, Invalid API key",
                         "type": "auth_error", "code": "401"}})
    );
    let resp = send(&llm, "sk-test", &request("gpt-x", &ok_prompt, false)).await;
    assert_eq!(resp.status(), Status::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], json!("model 'gpt-x' not found"));
    let resp = send(&llm, "sk-test", &request("gpt-test", &ok_prompt, true)).await;
    assert_eq!(resp.status(), Status::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("response_format json_schema is not supported")
    );
    let resp = send(&llm, "sk-test", &request("gpt-test", &ok_prompt, false)).await;
    assert_eq!(resp.status(), Status::OK);

    llm.set_token("sk-rotated");
    let resp = send(&llm, "sk-test", &request("gpt-test", &ok_prompt, false)).await;
    assert_eq!(resp.status(), Status::UNAUTHORIZED);
    assert_eq!(
        (llm.requests(), llm.completions(), llm.unauthorized()),
        (5, 1, 2)
    );
    assert_eq!(llm.requests_with_response_format(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn markers_steer_the_content() {
    let llm = FakeLlm::start(LlmConfig::default()).await;
    assert_eq!(content(&llm, "client: [invalid-once]").await, REFUSAL);
    let again = content(&llm, "client: [invalid-once]").await;
    assert!(serde_json::from_str::<Value>(&again).is_ok());
    assert_eq!(
        content(&llm, "client: [invalid-once] другое").await,
        REFUSAL
    );
    assert_eq!(content(&llm, "client: [invalid-always]").await, REFUSAL);
    assert_eq!(content(&llm, "client: [invalid-always]").await, REFUSAL);
    let fenced = content(&llm, "client: [fenced] [agreement:15000]").await;
    assert!(fenced.starts_with("Вот оценка:\n```json\n"));
    assert!(fenced.contains("Оформлен заказ на 15000 руб."));
    let not_sales: Value =
        serde_json::from_str(&content(&llm, "client: [not-sales]").await).unwrap();
    assert_eq!(not_sales["is_sales_call"], json!(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_above_the_limit_gets_429_with_retry_after() {
    let llm = Arc::new(
        FakeLlm::start(LlmConfig {
            max_concurrency: Some(2),
            retry_after_s: 0.5,
            ..LlmConfig::default()
        })
        .await,
    );
    let body = request("gpt-test", &prompt("operator: Добрый день"), true);
    let send_one = |llm: Arc<FakeLlm>, body: Value| async move {
        let resp = send(&llm, "sk-test", &body).await;
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (resp.status(), retry)
    };
    // Two requests held in flight, then three more: each of those is one too many.
    let gate = llm.hold();
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(send_one(Arc::clone(&llm), body.clone())))
        .collect();
    gate.arrived(2).await;
    for _ in 0..3 {
        assert_eq!(
            send_one(Arc::clone(&llm), body.clone()).await,
            (Status::TOO_MANY_REQUESTS, Some("0.5".to_string()))
        );
    }
    gate.release();
    let mut ok = 0;
    for task in held {
        assert_eq!(task.await.unwrap(), (Status::OK, None));
        ok += 1;
    }
    assert_eq!(ok, 2);
    assert_eq!((llm.served_429(), llm.completions()), (3, 2));
    assert!(llm.in_flight_max() >= 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn error_rate_serves_500s_and_latency_can_change() {
    let llm = FakeLlm::start(LlmConfig {
        error_rate: 1.0,
        ..LlmConfig::default()
    })
    .await;
    let body = request("gpt-test", &prompt("operator: Добрый день"), true);
    assert_eq!(
        send(&llm, "sk-test", &body).await.status(),
        Status::INTERNAL_SERVER_ERROR
    );
    llm.set_error_rate(0.0);
    llm.set_latency(Duration::from_millis(50));
    let started = std::time::Instant::now();
    assert_eq!(send(&llm, "sk-test", &body).await.status(), Status::OK);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!((llm.served_500(), llm.completions()), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_bursts_too_long_prompts_and_cost_headers() {
    let llm = FakeLlm::start(LlmConfig {
        response_cost_per_1m: Some((1.0, 2.0)),
        record_requests: true,
        ..LlmConfig::default()
    })
    .await;
    let ok = request("gpt-test", &prompt("operator: Добрый день"), true);

    llm.set_refusal(Some(Refusal::no_db()));
    let resp = send(&llm, "sk-whatever", &ok).await;
    assert_eq!(resp.status(), Status::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], json!("No connected db."));
    assert_eq!(body["error"]["type"], json!("no_db_connection"));
    llm.set_refusal(None);

    llm.fail_next(2, 429);
    for _ in 0..2 {
        let resp = send(&llm, "sk-test", &ok).await;
        assert_eq!(resp.status(), Status::TOO_MANY_REQUESTS);
        assert!(resp.headers().get("retry-after").is_none(), "no hint");
    }
    let resp = send(&llm, "sk-test", &ok).await;
    assert_eq!(resp.status(), Status::OK);
    let cost: f64 = resp.headers()["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let want = (body["usage"]["prompt_tokens"].as_f64().unwrap()
        + 2.0 * body["usage"]["completion_tokens"].as_f64().unwrap())
        / 1e6;
    assert!((cost - want).abs() < 1e-12, "{cost} vs {want}");

    let long = request("gpt-test", &prompt("client: [too-long]"), true);
    let resp = send(&llm, "sk-test", &long).await;
    assert_eq!(resp.status(), Status::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length")
    );
    assert_eq!(llm.request_bodies().len(), 5);
    assert_eq!(llm.request_bodies()[4], long);
    assert_eq!(llm.served_429(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_429s_can_carry_other_retry_headers() {
    let llm = Arc::new(
        FakeLlm::start(LlmConfig {
            max_concurrency: Some(1),
            retry_headers: Some(vec![("retry-after-ms".into(), "20".into())]),
            ..LlmConfig::default()
        })
        .await,
    );
    // The first request is held inside the one allowed slot, so the second meets the limit.
    let gate = llm.hold();
    let body = request("gpt-test", &prompt("operator: Добрый день"), true);
    let first = {
        let (llm, body) = (Arc::clone(&llm), body.clone());
        tokio::spawn(async move { send(&llm, "sk-test", &body).await.status() })
    };
    gate.arrived(1).await;
    let resp = send(&llm, "sk-test", &body).await;
    assert_eq!(resp.status(), Status::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after-ms"], "20");
    assert!(resp.headers().get("retry-after").is_none());
    gate.release();
    assert_eq!(first.await.unwrap(), Status::OK);
}

/// The scores of the two criteria in an answer's content.
fn scores(content: &str) -> Vec<f64> {
    let v: Value = serde_json::from_str(content).unwrap();
    v["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["score_given"].as_f64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scores_shift_from_a_point_on_and_noise_repeats_with_its_seed() {
    let llm = FakeLlm::start(LlmConfig {
        reported_model: Some("gpt-test-2025-08-06".into()),
        ..LlmConfig::default()
    })
    .await;
    // Full marks for the first criterion, half (rounded down) for the second.
    assert_eq!(
        scores(&content(&llm, "operator: Добрый день").await),
        [10.0, 1.0]
    );
    llm.set_score_shift(-2.0);
    assert_eq!(
        scores(&content(&llm, "operator: Добрый день").await),
        [8.0, 0.0]
    );
    let resp = send(&llm, "sk-test", &request("gpt-test", &prompt("x"), true)).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "gpt-test-2025-08-06");

    // Noise: the k-th answer to a prompt is the same for the same seed, and answers move.
    let passes = |seed: u64| async move {
        let llm = FakeLlm::start(LlmConfig {
            seed,
            score_noise: 0.5,
            ..LlmConfig::default()
        })
        .await;
        let mut all = Vec::new();
        for _ in 0..8 {
            all.push(scores(&content(&llm, "operator: Добрый день").await));
        }
        all
    };
    let a = passes(3).await;
    assert_eq!(a, passes(3).await);
    assert_ne!(a, passes(4).await);
    assert!(a.iter().any(|s| s != &[10.0, 1.0]), "{a:?}");
    assert!(a.iter().any(|s| s[0] == 9.0), "{a:?}");
    assert!(a.iter().flatten().all(|s| (0.0..=10.0).contains(s)));
}
