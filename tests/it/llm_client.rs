//! The LLM client end to end against the fake gateway over HTTP: structured output and
//! its fallback, answers asked for again, retries and their hints, fatal refusals and the
//! circuit breaker, usage, cost and the count of HTTP requests.

use std::time::{Duration, Instant};

use callq::domain::{Checklist, Cost, CostSource, Criterion, Usage};
use callq::llm::{
    Analyzed, LlmClient, LlmError, LlmSettings, PromptBuilder, ResponseSchema, Template,
    response_schema,
};
use callq::retry::RetryPolicy;
use callq::severity::{Severe, Severity};
use callq_fakes::{FakeLlm, LlmConfig, Refusal, expected_score};

const TOKEN: &str = "sk-test-llm-key";
const MODEL: &str = "gpt-test";

fn crit(category: &str, indicator: &str, max: f64) -> Criterion {
    Criterion {
        category: category.into(),
        indicator: indicator.into(),
        comment: format!("что проверяем в «{indicator}»"),
        max_score: max,
        conditions: "полный балл, если сделано полностью".into(),
        critical: false,
    }
}

fn checklist() -> Checklist {
    Checklist {
        criteria: vec![
            crit("Установление контакта", "Приветствие", 10.0),
            crit("Установление контакта", "Представился и назвал банк", 5.0),
            crit("Работа с возражениями", "Отработка цены", 2.5),
            crit("Завершение", "Договорился о следующем шаге", 4.0),
        ],
        custom_instructions: "Оценивай строго по расшифровке.".into(),
    }
}

struct Setup {
    prompts: PromptBuilder,
    schema: ResponseSchema,
    checklist: Checklist,
}

fn setup() -> Setup {
    let checklist = checklist();
    let template = Template::parse(include_str!("../../prompts/department1.txt")).unwrap();
    Setup {
        prompts: PromptBuilder::new(template, &checklist),
        schema: response_schema(&checklist),
        checklist,
    }
}

impl Setup {
    fn prompt(&self, client_says: &str) -> String {
        self.prompts.render(&format!(
            "operator: Добрый день! Меня зовут Анна, банк «Пример».\nclient: {client_says}\n"
        ))
    }

    async fn analyze(&self, client: &LlmClient, client_says: &str) -> Result<Analyzed, LlmError> {
        client
            .analyze(&self.prompt(client_says), &self.schema, &self.checklist)
            .await
    }
}

fn fast_retry(max_attempts: usize) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    }
}

fn settings(base_url: String) -> LlmSettings {
    LlmSettings {
        base_url,
        token: TOKEN.into(),
        model: MODEL.into(),
        timeout: Duration::from_secs(10),
        retry: fast_retry(4),
        price_input_per_1m: Some(2.5),
        price_cached_input_per_1m: None,
        price_output_per_1m: Some(10.0),
        max_concurrency: 8,
        breaker_threshold: 5,
    }
}

fn fake_config() -> LlmConfig {
    LlmConfig {
        token: TOKEN.into(),
        models: vec![MODEL.into()],
        ..LlmConfig::default()
    }
}

fn client_for(fake: &FakeLlm) -> LlmClient {
    callq::tls::install_crypto_provider();
    LlmClient::new(settings(fake.base_url())).unwrap()
}

/// The fake's own token count for a prompt it accepted.
fn prompt_tokens(prompt: &str) -> u64 {
    (prompt.chars().count() / 4) as u64
}

#[tokio::test]
async fn scores_a_call_with_structured_output_and_counts_usage_and_cost() {
    let fake = FakeLlm::start(fake_config()).await;
    let client = client_for(&fake);
    let s = setup();

    let a = s.analyze(&client, "Интересно, расскажите.").await.unwrap();
    assert_eq!(a.attempts, 1);
    assert!(a.analysis.is_sales_call);
    let got: Vec<(&str, &str, f64, f64)> = a
        .analysis
        .evaluations
        .iter()
        .map(|e| {
            (
                e.category.as_str(),
                e.criterion.as_str(),
                e.score,
                e.max_score,
            )
        })
        .collect();
    let want: Vec<(&str, &str, f64, f64)> = s
        .checklist
        .criteria
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c.category.as_str(),
                c.indicator.as_str(),
                expected_score(i, c.max_score),
                c.max_score,
            )
        })
        .collect();
    assert_eq!(got, want);
    // The fake claims 999 of 1; callq recomputes: 10 + 2 + 2.5 + 2 of 21.5 → 76 %.
    assert_eq!(a.analysis.total_score, 16.5);
    assert_eq!(a.analysis.max_score, 21.5);
    assert_eq!(a.analysis.performance_percentage, 76);
    assert_eq!(a.analysis.recommendations.len(), 1);
    assert_eq!(a.analysis.recommendations[0].priority, "high");

    let tokens = prompt_tokens(&s.prompt("Интересно, расскажите."));
    assert_eq!(a.usage.prompt_tokens, tokens);
    assert!(a.usage.completion_tokens > 0);
    assert_eq!(a.usage.cached_tokens, 0, "nothing before the first prompt");
    let cost = a.cost.unwrap();
    assert_eq!(
        cost.source,
        CostSource::Prices,
        "the fake sent no cost header"
    );
    let cost = cost.usd;
    let want_cost = tokens as f64 / 1e6 * 2.5 + a.usage.completion_tokens as f64 / 1e6 * 10.0;
    assert!((cost - want_cost).abs() < 1e-12, "{cost} vs {want_cost}");

    // The second prompt shares the template's prefix with the first.
    let b = s.analyze(&client, "А какой лимит?").await.unwrap();
    assert!(b.usage.cached_tokens > 0, "{:?}", b.usage);

    assert_eq!(fake.requests(), 2);
    assert_eq!(fake.requests_with_response_format(), 2);
    assert!(!client.prompt_only());
}

#[tokio::test]
async fn fenced_answers_agreements_and_not_sales_calls() {
    let fake = FakeLlm::start(fake_config()).await;
    let client = client_for(&fake);
    let s = setup();

    let a = s
        .analyze(&client, "Оформляйте [fenced] [agreement:150000] [decline]")
        .await
        .unwrap();
    assert_eq!(a.attempts, 1);
    assert_eq!(a.analysis.evaluations.len(), 4);
    assert_eq!(a.analysis.agreements.len(), 1);
    assert_eq!(a.analysis.agreements[0].amount, Some(150000.0));
    assert_eq!(a.analysis.decline_reasons.len(), 1);

    let n = s
        .analyze(&client, "Вы ошиблись номером [not-sales]")
        .await
        .unwrap();
    assert!(!n.analysis.is_sales_call);
    assert!(n.analysis.evaluations.is_empty());
    assert_eq!(n.analysis.performance_percentage, 0);
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn an_unusable_answer_is_asked_for_again() {
    let fake = FakeLlm::start(fake_config()).await;
    let client = client_for(&fake);
    let s = setup();
    let says = "Не знаю [invalid-once]";

    let a = s.analyze(&client, says).await.unwrap();
    assert_eq!(a.attempts, 2);
    assert_eq!(a.analysis.evaluations.len(), 4);
    assert_eq!(a.usage.prompt_tokens, 2 * prompt_tokens(&s.prompt(says)));
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn three_unusable_answers_fail_the_call_but_not_the_run() {
    let fake = FakeLlm::start(fake_config()).await;
    let client = client_for(&fake);
    let s = setup();
    let says = "Нет [invalid-always]";

    let e = s.analyze(&client, says).await.unwrap_err();
    let LlmError::InvalidContent {
        attempts,
        ref last_error,
        usage,
        ..
    } = e
    else {
        panic!("expected InvalidContent, got {e:?}");
    };
    assert_eq!(attempts, 3);
    assert!(last_error.contains("no JSON analysis"), "{last_error}");
    assert_eq!(e.severity(), Severity::Call);
    assert_eq!(usage.prompt_tokens, 3 * prompt_tokens(&s.prompt(says)));
    assert_eq!(e.usage(), usage);
    assert_eq!(fake.requests(), 3);
}

#[tokio::test]
async fn a_rejected_response_format_switches_every_clone_to_prompt_only() {
    let fake = FakeLlm::start(LlmConfig {
        reject_response_format: true,
        ..fake_config()
    })
    .await;
    let client = client_for(&fake);
    let other = client.clone();
    let s = setup();

    let a = s.analyze(&client, "Да, интересно").await.unwrap();
    assert_eq!(a.attempts, 1, "the resend is not a new answer");
    assert_eq!(a.analysis.evaluations.len(), 4);
    assert!(client.prompt_only() && other.prompt_only());
    assert_eq!(fake.requests(), 2);
    assert_eq!(fake.requests_with_response_format(), 1);

    let b = s.analyze(&other, "Давайте").await.unwrap();
    assert_eq!(b.attempts, 1);
    assert_eq!(fake.requests(), 3);
    assert_eq!(fake.requests_with_response_format(), 1, "never asked again");
}

#[tokio::test]
async fn a_rejected_key_is_fatal_at_once() {
    let fake = FakeLlm::start(LlmConfig {
        token: "sk-another-key".into(),
        ..fake_config()
    })
    .await;
    let client = client_for(&fake);
    let s = setup();

    let e = s.analyze(&client, "Алло").await.unwrap_err();
    assert_eq!(e.severity(), Severity::Unavailable, "{e:?}");
    assert!(matches!(e, LlmError::Fatal { status: 401, .. }), "{e:?}");
    assert!(!e.to_string().contains(TOKEN));
    assert_eq!(fake.requests(), 1, "not retried");
    assert_eq!(fake.unauthorized(), 1);
}

#[tokio::test]
async fn an_unknown_model_is_fatal_at_once() {
    let fake = FakeLlm::start(fake_config()).await;
    callq::tls::install_crypto_provider();
    let client = LlmClient::new(LlmSettings {
        model: "gpt-missing".into(),
        ..settings(format!("{}/", fake.base_url()))
    })
    .unwrap();
    let e = setup().analyze(&client, "Алло").await.unwrap_err();
    assert!(
        matches!(e, LlmError::Fatal { status: 404, ref message } if message.contains("gpt-missing")),
        "{e:?}"
    );
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_and_then_give_up_without_stopping_the_run() {
    let fake = FakeLlm::start(LlmConfig {
        error_rate: 1.0,
        ..fake_config()
    })
    .await;
    let client = client_for(&fake);
    let s = setup();

    let e = s.analyze(&client, "Алло").await.unwrap_err();
    assert!(
        matches!(e, LlmError::Unavailable { attempts: 4, ref last_error, .. } if last_error.contains("500")),
        "{e:?}"
    );
    assert_eq!(e.severity(), Severity::Call);
    assert_eq!(fake.served_500(), 4);

    // Failures within the retry budget are invisible to the caller.
    fake.set_error_rate(0.5);
    let patient = LlmClient::new(LlmSettings {
        retry: fast_retry(20),
        ..settings(fake.base_url())
    })
    .unwrap();
    for i in 0..8 {
        let a = s.analyze(&patient, &format!("звонок {i}")).await.unwrap();
        assert_eq!(a.attempts, 1, "HTTP retries are not answers");
    }
    assert!(fake.served_500() > 4, "the fake did fail some requests");
    assert_eq!(fake.completions(), 8);
}

#[tokio::test]
async fn too_many_requests_are_retried_after_the_asked_delay() {
    let fake = FakeLlm::start(LlmConfig {
        max_concurrency: Some(1),
        retry_after_s: 0.01,
        latency: Duration::from_millis(30),
        ..fake_config()
    })
    .await;
    callq::tls::install_crypto_provider();
    let client = LlmClient::new(LlmSettings {
        retry: fast_retry(30),
        ..settings(fake.base_url())
    })
    .unwrap();
    let s = setup();

    let calls = (0..4).map(|i| {
        let client = client.clone();
        let s = &s;
        async move { s.analyze(&client, &format!("звонок {i}")).await }
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().analysis.evaluations.len(), 4);
    }
    assert!(fake.served_429() > 0, "the test did not provoke a 429");
    assert_eq!(fake.completions(), 4);
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_unavailable() {
    let fake = FakeLlm::start(LlmConfig {
        latency: Duration::from_secs(5),
        ..fake_config()
    })
    .await;
    callq::tls::install_crypto_provider();
    let client = LlmClient::new(LlmSettings {
        timeout: Duration::from_millis(150),
        retry: fast_retry(2),
        ..settings(fake.base_url())
    })
    .unwrap();
    let started = Instant::now();
    let e = setup().analyze(&client, "Алло").await.unwrap_err();
    assert!(
        matches!(e, LlmError::Unavailable { attempts: 2, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(fake.requests(), 2);

    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = LlmClient::new(LlmSettings {
        retry: fast_retry(3),
        ..settings(format!("http://127.0.0.1:{port}/v1"))
    })
    .unwrap();
    let e = setup().analyze(&client, "Алло").await.unwrap_err();
    assert!(
        matches!(e, LlmError::Unavailable { attempts: 3, .. }),
        "{e:?}"
    );
    assert_eq!(e.usage(), Usage::default());
}

/// `n` calls at once, as the run's analysis stage asks them.
async fn analyze_together(
    s: &Setup,
    client: &LlmClient,
    says: impl Fn(usize) -> String,
    n: usize,
) -> Vec<Result<Analyzed, LlmError>> {
    let calls = (0..n).map(|i| {
        let client = client.clone();
        let says = says(i);
        async move { s.analyze(&client, &says).await }
    });
    futures::future::join_all(calls).await
}

#[tokio::test]
async fn alike_refusals_of_every_request_trip_the_breaker() {
    let fake = FakeLlm::start(fake_config()).await;
    fake.set_refusal(Some(Refusal::no_db()));
    let client = client_for(&fake);
    let s = setup();

    let results = analyze_together(&s, &client, |i| format!("звонок {i}"), 8).await;
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert!(
            matches!(e, LlmError::Refusing { status: 400, message, count: 5 } if message == "No connected db."),
            "{e:?}"
        );
        assert_eq!(e.severity(), Severity::Unavailable);
        assert!(e.fix().contains("TOKEN_LLM"), "{}", e.fix());
    }
    assert_eq!(fake.requests(), 8, "one request per call, none retried");
    assert_eq!(client.http_attempts(), 8);
}

#[tokio::test]
async fn a_context_too_long_refusal_fails_that_call_only() {
    let fake = FakeLlm::start(fake_config()).await;
    let client = client_for(&fake);
    let s = setup();

    let results = analyze_together(
        &s,
        &client,
        |i| {
            if i == 2 {
                "Очень длинный звонок [too-long]".to_string()
            } else {
                format!("звонок {i}")
            }
        },
        6,
    )
    .await;
    for (i, r) in results.iter().enumerate() {
        if i == 2 {
            let e = r.as_ref().unwrap_err();
            assert!(
                matches!(e, LlmError::Rejected { status: 400, message } if message.contains("maximum context length")),
                "{e:?}"
            );
            assert_eq!(e.severity(), Severity::Call);
        } else {
            assert!(r.is_ok(), "call {i}: {r:?}");
        }
    }
    // Alike refusals with an answer in between never trip the breaker, however many.
    let client = LlmClient::new(LlmSettings {
        breaker_threshold: 2,
        ..settings(fake.base_url())
    })
    .unwrap();
    for _ in 0..2 {
        let e = s.analyze(&client, "[too-long] снова").await.unwrap_err();
        assert!(matches!(e, LlmError::Rejected { .. }), "{e:?}");
        s.analyze(&client, "обычный звонок").await.unwrap();
    }
}

#[tokio::test]
async fn queued_requests_switch_to_prompt_only_at_once() {
    let fake = FakeLlm::start(LlmConfig {
        reject_response_format: true,
        ..fake_config()
    })
    .await;
    callq::tls::install_crypto_provider();
    // One request in flight at a time: the other three queue behind the first.
    let client = LlmClient::new(LlmSettings {
        max_concurrency: 1,
        ..settings(fake.base_url())
    })
    .unwrap();
    let s = setup();

    for r in analyze_together(&s, &client, |i| format!("звонок {i}"), 4).await {
        assert_eq!(r.unwrap().attempts, 1);
    }
    assert_eq!(
        fake.requests_with_response_format(),
        1,
        "only the request that found out carried the schema"
    );
    assert_eq!(fake.requests(), 5);
    assert_eq!(client.http_attempts(), 5);
}

#[tokio::test]
async fn the_gateways_cost_wins_and_cached_tokens_have_their_price() {
    let fake = FakeLlm::start(LlmConfig {
        response_cost_per_1m: Some((3.0, 12.0)),
        ..fake_config()
    })
    .await;
    let client = client_for(&fake);
    let s = setup();
    let a = s.analyze(&client, "Первый").await.unwrap();
    let want = (a.usage.prompt_tokens as f64 * 3.0 + a.usage.completion_tokens as f64 * 12.0) / 1e6;
    let cost = a.cost.unwrap();
    assert_eq!(cost.source, CostSource::Gateway);
    assert!((cost.usd - want).abs() < 1e-12, "{cost:?} vs {want}");

    // Without the header: the prices, cached prompt tokens at their own.
    let fake = FakeLlm::start(fake_config()).await;
    let client = LlmClient::new(LlmSettings {
        price_cached_input_per_1m: Some(0.25),
        ..settings(fake.base_url())
    })
    .unwrap();
    s.analyze(&client, "Первый").await.unwrap();
    let b = s.analyze(&client, "Второй").await.unwrap();
    let u = b.usage;
    assert!(u.cached_tokens > 0);
    let want = ((u.prompt_tokens - u.cached_tokens) as f64 * 2.5
        + u.cached_tokens as f64 * 0.25
        + u.completion_tokens as f64 * 10.0)
        / 1e6;
    let Some(Cost { usd, source }) = b.cost else {
        panic!("no cost")
    };
    assert_eq!(source, CostSource::Prices);
    assert!((usd - want).abs() < 1e-12, "{usd} vs {want}");
}

#[tokio::test]
async fn every_http_attempt_is_counted_and_carries_the_timeout() {
    let fake = FakeLlm::start(LlmConfig {
        record_requests: true,
        ..fake_config()
    })
    .await;
    let client = client_for(&fake);
    let s = setup();
    fake.fail_next(2, 500);
    let a = s.analyze(&client, "Алло").await.unwrap();
    assert_eq!(a.attempts, 1, "one answer");
    assert_eq!(client.http_attempts(), 3, "in three HTTP requests");
    assert_eq!(fake.requests(), 3);
    for body in fake.request_bodies() {
        assert_eq!(body["timeout"], 10.0, "{body}");
    }
}

#[tokio::test]
async fn retry_hints_in_other_headers_are_honoured() {
    for headers in [
        vec![("retry-after-ms", "20")],
        vec![("llm_provider-retry-after", "0.02")],
        vec![("x-ratelimit-reset-requests", "20ms")],
    ] {
        let fake = FakeLlm::start(LlmConfig {
            max_concurrency: Some(1),
            latency: Duration::from_millis(30),
            retry_headers: Some(
                headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..fake_config()
        })
        .await;
        callq::tls::install_crypto_provider();
        // Without the hint every retry would wait 5 s.
        let client = LlmClient::new(LlmSettings {
            retry: RetryPolicy {
                max_attempts: 30,
                min_delay: Duration::from_secs(5),
                max_delay: Duration::from_secs(5),
            },
            ..settings(fake.base_url())
        })
        .unwrap();
        let s = setup();
        let started = Instant::now();
        for r in analyze_together(&s, &client, |i| format!("звонок {i}"), 3).await {
            r.unwrap();
        }
        assert!(fake.served_429() > 0, "{headers:?}: no 429 provoked");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{headers:?}: the hint was not honoured ({:?})",
            started.elapsed()
        );
    }
}
