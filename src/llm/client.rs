//! The OpenAI-compatible chat-completions client (CONTRACTS.md §3): one analysis per
//! call, structured output when the model accepts it, the shared retry policy per HTTP
//! request, and up to three answers per call until one parses.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde_json::Value;

use crate::concurrency::{AdaptiveLimiter, Signal};
use crate::domain::{Analysis, Checklist, Usage};
use crate::llm::parse::parse_analysis_with_notes;
use crate::retry::{RetryPolicy, Transient, parse_retry_after};

/// Answers asked for per call before it is given up as failed (the old tool's rule).
pub const CONTENT_ATTEMPTS: u32 = 3;

/// Where the gateway is and how to talk to it.
#[derive(Clone)]
pub struct LlmSettings {
    /// Includes the version segment, e.g. `http://localhost:4000/v1`; a trailing slash is fine.
    pub base_url: String,
    pub token: String,
    pub model: String,
    /// For one HTTP request, reading the whole answer included.
    pub timeout: Duration,
    /// Per HTTP request: 429, 5xx, timeouts and connection errors.
    pub retry: RetryPolicy,
    pub price_input_per_1m: Option<f64>,
    pub price_output_per_1m: Option<f64>,
    /// The most requests in flight (LLM_CONCURRENCY); below it the limit adapts to the
    /// gateway's pushback and latency.
    pub max_concurrency: usize,
}

impl fmt::Debug for LlmSettings {
    // By hand, so the token never reaches a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmSettings")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("price_input_per_1m", &self.price_input_per_1m)
            .field("price_output_per_1m", &self.price_output_per_1m)
            .field("max_concurrency", &self.max_concurrency)
            .finish()
    }
}

/// One call's analysis and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Analyzed {
    pub analysis: Analysis,
    /// Summed over every answer asked for, the rejected ones included.
    pub usage: Usage,
    /// `None` unless both prices are configured.
    pub cost_usd: Option<f64>,
    /// Answers asked for (1 to [`CONTENT_ATTEMPTS`]); HTTP-level retries not counted.
    pub attempts: u32,
    /// What the parser dropped or defaulted, one line each, for the caller to log.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The settings cannot work (a malformed URL or token); nothing was sent.
    #[error("LLM client: {0}")]
    Setup(String),
    /// The gateway refused the key or the model (401, 403, 404, "invalid model"): every
    /// other call would be refused too, so the run stops.
    #[error("the LLM gateway refused the request (HTTP {status}): {message}")]
    Fatal { status: u16, message: String },
    /// The gateway refused this call's request (e.g. 400 context too long, 413): this call
    /// fails and the run goes on.
    #[error("the LLM gateway refused this call (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// Retries ran out on 429/5xx/timeouts; this call fails and the next run retries it.
    #[error("the LLM gateway is unavailable ({attempts} attempts): {last_error}")]
    Unavailable {
        attempts: u32,
        last_error: String,
        usage: Usage,
    },
    /// Every answer failed validation.
    #[error("no usable analysis in {attempts} answers; last: {last_error}")]
    InvalidContent {
        attempts: u32,
        last_error: String,
        usage: Usage,
    },
}

impl LlmError {
    /// Whether the whole run must stop (no other call could succeed either).
    pub fn is_fatal(&self) -> bool {
        matches!(self, LlmError::Setup(_) | LlmError::Fatal { .. })
    }

    /// Tokens spent on the call before it failed.
    pub fn usage(&self) -> Usage {
        match self {
            LlmError::Unavailable { usage, .. } | LlmError::InvalidContent { usage, .. } => *usage,
            LlmError::Setup(_) | LlmError::Fatal { .. } | LlmError::Rejected { .. } => {
                Usage::default()
            }
        }
    }
}

/// The gateway client. Cloning is cheap and clones share the prompt-only switch.
#[derive(Clone)]
pub struct LlmClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    url: String,
    auth: HeaderValue,
    token: String,
    model: String,
    retry: RetryPolicy,
    prices: Option<(f64, f64)>,
    /// Set once the gateway has rejected `response_format`; never unset during a run.
    prompt_only: AtomicBool,
    /// Requests in flight, shared by every clone.
    limiter: AdaptiveLimiter,
}

impl fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmClient")
            .field("url", &self.inner.url)
            .field("model", &self.inner.model)
            .field("prompt_only", &self.prompt_only())
            .finish_non_exhaustive()
    }
}

impl LlmClient {
    pub fn new(settings: LlmSettings) -> Result<LlmClient, LlmError> {
        let base = settings.base_url.trim().trim_end_matches('/');
        let parsed = url::Url::parse(base)
            .map_err(|e| LlmError::Setup(format!("base URL {base:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::Setup(format!(
                "base URL {base:?}: expected http:// or https://"
            )));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", settings.token.trim()))
            .map_err(|_| {
                LlmError::Setup("the token has characters an HTTP header cannot carry".into())
            })?;
        auth.set_sensitive(true);
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|e| LlmError::Setup(format!("HTTP client: {e}")))?;
        let prices = settings
            .price_input_per_1m
            .zip(settings.price_output_per_1m);
        Ok(LlmClient {
            inner: Arc::new(Inner {
                http,
                url: format!("{base}/chat/completions"),
                auth,
                token: settings.token.trim().to_string(),
                model: settings.model,
                retry: settings.retry,
                prices,
                prompt_only: AtomicBool::new(false),
                limiter: AdaptiveLimiter::new(settings.max_concurrency),
            }),
        })
    }

    /// The adaptive concurrency limit now, and the most requests that were in flight.
    pub fn concurrency(&self) -> (usize, usize) {
        (
            self.inner.limiter.limit(),
            self.inner.limiter.peak_in_flight(),
        )
    }

    /// One tiny request, without structured output, to see that the gateway answers for
    /// the model with this key (`callq check`). Returns the tokens it cost.
    pub async fn ping(&self) -> Result<Usage, LlmError> {
        let body = request_body(&self.inner.model, "Ответь одним словом: ok", None);
        self.send(body)
            .await
            .map(|c| c.usage)
            .map_err(|(e, attempts)| e.into_llm_error(attempts))
    }

    /// Whether the gateway rejected structured output and JSON is asked for by prompt only.
    pub fn prompt_only(&self) -> bool {
        self.inner.prompt_only.load(Ordering::Relaxed)
    }

    /// Cost of `usage` in USD, when both prices are configured.
    pub fn cost(&self, usage: &Usage) -> Option<f64> {
        self.inner.prices.map(|(input, output)| {
            usage.prompt_tokens as f64 / 1e6 * input + usage.completion_tokens as f64 / 1e6 * output
        })
    }

    /// Asks for one call's analysis until an answer passes [`parse_analysis_with_notes`],
    /// at most [`CONTENT_ATTEMPTS`] times.
    pub async fn analyze(
        &self,
        prompt: &str,
        schema: &Value,
        checklist: &Checklist,
    ) -> Result<Analyzed, LlmError> {
        let mut usage = Usage::default();
        let mut last_error = String::new();
        for attempt in 1..=CONTENT_ATTEMPTS {
            let completion = match self.complete(prompt, schema).await {
                Ok(c) => c,
                Err(LlmError::Unavailable {
                    attempts,
                    last_error,
                    ..
                }) => {
                    return Err(LlmError::Unavailable {
                        attempts,
                        last_error,
                        usage,
                    });
                }
                Err(e) => return Err(e),
            };
            usage += completion.usage;
            let verdict = completion.content.and_then(|content| {
                parse_analysis_with_notes(&content, checklist).map_err(|e| e.to_string())
            });
            match verdict {
                Ok(parsed) => {
                    return Ok(Analyzed {
                        analysis: parsed.analysis,
                        usage,
                        cost_usd: self.cost(&usage),
                        attempts: attempt,
                        notes: parsed.notes,
                    });
                }
                Err(e) => {
                    tracing::warn!("LLM answer {attempt} of {CONTENT_ATTEMPTS} unusable: {e}");
                    last_error = e;
                }
            }
        }
        Err(LlmError::InvalidContent {
            attempts: CONTENT_ATTEMPTS,
            last_error,
            usage,
        })
    }

    /// One answer, HTTP retries included. Falls back to prompt-only mode for good when
    /// the gateway says it cannot do structured output, and resends at once.
    async fn complete(&self, prompt: &str, schema: &Value) -> Result<Completion, LlmError> {
        if !self.prompt_only() {
            match self
                .send(request_body(&self.inner.model, prompt, Some(schema)))
                .await
            {
                Err((SendError::ResponseFormatRejected { message, .. }, _)) => {
                    if !self.inner.prompt_only.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            model = %self.inner.model,
                            "the LLM gateway rejected structured output ({message}); \
                             asking for JSON by prompt alone for the rest of the run"
                        );
                    }
                }
                other => return other.map_err(|(e, attempts)| e.into_llm_error(attempts)),
            }
        }
        self.send(request_body(&self.inner.model, prompt, None))
            .await
            .map_err(|(e, attempts)| e.into_llm_error(attempts))
    }

    /// Sends `body` under the retry policy; on failure also says how many requests were made.
    async fn send(&self, body: Vec<u8>) -> Result<Completion, (SendError, u32)> {
        let mut attempts = 0u32;
        let what = format!("LLM request ({})", self.inner.model);
        self.inner
            .retry
            .run(&what, || {
                attempts += 1;
                self.send_once(body.clone())
            })
            .await
            .map_err(|e| (e, attempts))
    }

    /// One HTTP request inside a slot of the adaptive limiter, which learns from its answer.
    async fn send_once(&self, body: Vec<u8>) -> Result<Completion, SendError> {
        let permit = self.inner.limiter.acquire().await;
        let response = self
            .inner
            .http
            .post(&self.inner.url)
            .header(AUTHORIZATION, self.inner.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                // A timeout is load; a refused connection says nothing about it.
                if e.is_timeout() {
                    permit.done(Signal::Overloaded);
                } else {
                    drop(permit);
                }
                return Err(self.transport_error(e));
            }
        };
        let status = response.status();
        let retry_after = parse_retry_after(
            response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let text = response.text().await;
        if status.as_u16() == 429 {
            permit.done(Signal::Rejected);
        } else if status.as_u16() == 503 || text.as_ref().is_err_and(|e| e.is_timeout()) {
            permit.done(Signal::Overloaded);
        } else {
            let rtt = permit.elapsed();
            permit.done(Signal::Answered(rtt));
        }
        let text = text.map_err(|e| self.transport_error(e))?;
        if status.is_success() {
            return parse_completion(&text).map_err(|message| SendError::Retryable {
                message,
                retry_after: None,
            });
        }
        let message = self.redact(&error_message(&text));
        let code = status.as_u16();
        Err(match code {
            // 408 is the server's own timeout: as transient as ours.
            408 | 429 | 500..=599 => SendError::Retryable {
                message: format!("HTTP {code}: {message}"),
                retry_after,
            },
            400 | 422 if mentions_structured_output(&text) => SendError::ResponseFormatRejected {
                status: code,
                message,
            },
            _ => SendError::Fatal {
                status: code,
                message,
            },
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> SendError {
        // The whole chain: reqwest's top line alone says "error sending request".
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        if e.is_timeout() {
            message.push_str(" (timed out)");
        }
        SendError::Retryable {
            message: self.redact(&message),
            retry_after: None,
        }
    }

    /// Gateways echo keys in error messages; ours never reaches a log line.
    fn redact(&self, message: &str) -> String {
        let token = &self.inner.token;
        if token.len() >= 4 {
            message.replace(token.as_str(), "<redacted>")
        } else {
            message.to_string()
        }
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [Message<'a>; 1],
    temperature: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'static str,
    strict: bool,
    schema: &'a Value,
}

fn request_body(model: &str, prompt: &str, schema: Option<&Value>) -> Vec<u8> {
    let request = ChatRequest {
        model,
        messages: [Message {
            role: "user",
            content: prompt,
        }],
        temperature: 0,
        response_format: schema.map(|schema| ResponseFormat {
            kind: "json_schema",
            json_schema: JsonSchema {
                name: "call_analysis",
                strict: true,
                schema,
            },
        }),
    };
    serde_json::to_vec(&request).expect("a request of strings and JSON values serialises")
}

/// A 200 answer: the content, or why there is none, and the tokens it cost.
struct Completion {
    content: Result<String, String>,
    usage: Usage,
}

/// Reads a 200 body tolerantly. A body that is not JSON is a gateway glitch (retried);
/// a JSON body without content is an unusable answer (asked for again, tokens counted).
fn parse_completion(text: &str) -> Result<Completion, String> {
    let body: Value = serde_json::from_str(text)
        .map_err(|e| format!("HTTP 200 with a body that is not JSON: {e}"))?;
    let usage = body.get("usage").map(parse_usage).unwrap_or_default();
    let choice = body.get("choices").and_then(|c| c.get(0));
    let message = choice.and_then(|c| c.get("message"));
    let content = match message.and_then(|m| m.get("content")) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        // Some providers send content as a list of typed parts.
        Some(Value::Array(parts)) => {
            let joined: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            if joined.trim().is_empty() {
                Err("empty content".to_string())
            } else {
                Ok(joined)
            }
        }
        _ => Err(
            match message
                .and_then(|m| m.get("refusal"))
                .and_then(Value::as_str)
            {
                Some(refusal) => format!("the model refused: {refusal}"),
                None if choice.is_none() => "no choices in the answer".to_string(),
                None => format!(
                    "empty content (finish_reason {})",
                    choice
                        .and_then(|c| c.get("finish_reason"))
                        .map_or("unknown".to_string(), Value::to_string)
                ),
            },
        ),
    };
    Ok(Completion { content, usage })
}

fn parse_usage(u: &Value) -> Usage {
    let count = |v: Option<&Value>| -> u64 {
        match v {
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|x| *x >= 0.0).map(|x| x as u64))
                .unwrap_or(0),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
            _ => 0,
        }
    };
    Usage {
        prompt_tokens: count(u.get("prompt_tokens")),
        completion_tokens: count(u.get("completion_tokens")),
        cached_tokens: count(
            u.get("prompt_tokens_details")
                .and_then(|d| d.get("cached_tokens")),
        ),
    }
}

/// The gateway's error message: OpenAI's `{"error": {"message": …}}`, LiteLLM's and
/// FastAPI's variants, or the raw body; one line, at most 500 characters.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            let e = v.get("error").or_else(|| v.get("detail"))?;
            match e {
                Value::String(s) => Some(s.clone()),
                _ => e
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| Some(e.to_string())),
            }
        })
        .unwrap_or_else(|| body.to_string());
    let one_line: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "(empty body)".to_string();
    }
    let mut out: String = one_line.chars().take(500).collect();
    if one_line.chars().count() > 500 {
        out.push('…');
    }
    out
}

/// Whether a 400 blames the structured-output request rather than the request as a whole.
fn mentions_structured_output(body: &str) -> bool {
    let lower = body.to_lowercase();
    [
        "response_format",
        "response format",
        "json_schema",
        "json schema",
        "structured output",
        "structured_output",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// What one HTTP request can end in, short of an answer.
#[derive(Debug)]
enum SendError {
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    ResponseFormatRejected {
        status: u16,
        message: String,
    },
    Fatal {
        status: u16,
        message: String,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Retryable { message, .. } => f.write_str(message),
            SendError::ResponseFormatRejected { status, message }
            | SendError::Fatal { status, message } => write!(f, "HTTP {status}: {message}"),
        }
    }
}

impl Transient for SendError {
    fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            SendError::Retryable { retry_after, .. } => Some(*retry_after),
            SendError::ResponseFormatRejected { .. } | SendError::Fatal { .. } => None,
        }
    }
}

impl SendError {
    fn into_llm_error(self, attempts: u32) -> LlmError {
        match self {
            SendError::Retryable { message, .. } => LlmError::Unavailable {
                attempts,
                last_error: message,
                usage: Usage::default(),
            },
            // Without response_format a complaint about it makes no sense: as any other 4xx.
            SendError::ResponseFormatRejected { status, message }
            | SendError::Fatal { status, message } => {
                if refuses_every_call(status, &message) {
                    LlmError::Fatal { status, message }
                } else {
                    LlmError::Rejected { status, message }
                }
            }
        }
    }
}

/// A bad key, a forbidden or unknown model: no call of the run can succeed. Other 4xx
/// (a transcript too long for the context, a payload too large) concern one call only.
fn refuses_every_call(status: u16, message: &str) -> bool {
    let m = message.to_lowercase();
    matches!(status, 401 | 403 | 404)
        || (m.contains("model")
            && ["invalid", "not found", "does not exist", "unknown"]
                .iter()
                .any(|w| m.contains(w)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_key_and_model_refusals_stop_the_run() {
        assert!(refuses_every_call(401, "Authentication Error"));
        assert!(refuses_every_call(404, "model 'x' not found"));
        assert!(refuses_every_call(
            400,
            "litellm.BadRequestError: Invalid model name passed in model=gpt-x"
        ));
        assert!(!refuses_every_call(
            400,
            "This model's maximum context length is 128000 tokens"
        ));
        assert!(!refuses_every_call(413, "Request Entity Too Large"));
    }

    #[test]
    fn request_body_has_the_contract_shape() {
        let schema = json!({"type": "object"});
        let body: Value =
            serde_json::from_slice(&request_body("gpt-x", "привет", Some(&schema))).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-x",
                "messages": [{"role": "user", "content": "привет"}],
                "temperature": 0,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "call_analysis", "strict": true, "schema": {"type": "object"}}}
            })
        );
        let body: Value = serde_json::from_slice(&request_body("m", "p", None)).unwrap();
        assert!(body.get("response_format").is_none());
    }

    #[test]
    fn completion_usage_is_read_tolerantly() {
        let c = parse_completion(
            r#"{"choices":[{"message":{"content":"{}"}}],
                "usage":{"prompt_tokens":120,"completion_tokens":"30",
                         "prompt_tokens_details":{"cached_tokens":100}}}"#,
        )
        .unwrap();
        assert_eq!(c.content.unwrap(), "{}");
        assert_eq!(
            c.usage,
            Usage {
                prompt_tokens: 120,
                completion_tokens: 30,
                cached_tokens: 100
            }
        );
        let c = parse_completion(
            r#"{"choices":[{"message":{"content":null,"refusal":"нет"}}],"usage":null}"#,
        )
        .unwrap();
        assert_eq!(c.content.unwrap_err(), "the model refused: нет");
        assert_eq!(c.usage, Usage::default());
        let c = parse_completion(
            r#"{"choices":[{"message":{"content":[{"type":"text","text":"{\"a\""},{"type":"text","text":":1}"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(c.content.unwrap(), "{\"a\":1}");
        assert!(parse_completion("<html>bad gateway</html>").is_err());
        assert_eq!(
            parse_completion(r#"{"choices":[]}"#)
                .unwrap()
                .content
                .unwrap_err(),
            "no choices in the answer"
        );
    }

    #[test]
    fn error_messages_are_one_line() {
        assert_eq!(
            error_message(r#"{"error":{"message":"Invalid key\nplease check","type":"auth"}}"#),
            "Invalid key please check"
        );
        assert_eq!(error_message(r#"{"detail":"Not found"}"#), "Not found");
        assert_eq!(error_message(r#"{"error":"quota"}"#), "quota");
        assert_eq!(error_message("  "), "(empty body)");
        assert_eq!(error_message(&"x".repeat(600)).chars().count(), 501);
    }

    #[test]
    fn structured_output_rejections_are_recognised() {
        assert!(mentions_structured_output(
            r#"{"error":{"message":"litellm.UnsupportedParamsError: does not support parameters: ['response_format']"}}"#
        ));
        assert!(mentions_structured_output(
            "Structured Outputs are not supported by this model"
        ));
        assert!(mentions_structured_output(
            "Invalid schema for json_schema 'call_analysis'"
        ));
        assert!(!mentions_structured_output(
            r#"{"error":{"message":"Invalid model name"}}"#
        ));
    }

    fn settings(base_url: &str, token: &str) -> LlmSettings {
        LlmSettings {
            base_url: base_url.into(),
            token: token.into(),
            model: "m".into(),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            price_input_per_1m: Some(2.0),
            price_output_per_1m: Some(8.0),
            max_concurrency: 8,
        }
    }

    #[test]
    fn settings_are_checked_and_never_show_the_token() {
        let s = settings("http://localhost:4000/v1/", "sk-secret-1234");
        assert!(!format!("{s:?}").contains("sk-secret"));
        let c = LlmClient::new(s).unwrap();
        assert_eq!(c.inner.url, "http://localhost:4000/v1/chat/completions");
        assert!(!format!("{c:?}").contains("sk-secret"));
        assert_eq!(c.redact("bad key sk-secret-1234!"), "bad key <redacted>!");
        let cost = c
            .cost(&Usage {
                prompt_tokens: 1_000_000,
                completion_tokens: 500_000,
                cached_tokens: 0,
            })
            .unwrap();
        assert!((cost - 6.0).abs() < 1e-9);
        let mut no_price = settings("http://localhost:4000/v1", "t");
        no_price.price_output_per_1m = None;
        assert_eq!(
            LlmClient::new(no_price).unwrap().cost(&Usage::default()),
            None
        );
        for bad in ["localhost:4000", "ftp://x/v1", "not a url"] {
            let e = LlmClient::new(settings(bad, "t")).unwrap_err();
            assert!(
                matches!(e, LlmError::Setup(_)) && e.is_fatal(),
                "{bad}: {e}"
            );
        }
        let e = LlmClient::new(settings("http://x/v1", "sk-bad\ntoken")).unwrap_err();
        assert!(!e.to_string().contains("sk-bad"));
    }
}
