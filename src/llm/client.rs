//! The OpenAI-compatible chat-completions client: one analysis per call, structured
//! output when the model accepts it, the shared retry policy per HTTP request, a circuit
//! breaker for refusals that repeat alike, and up to three answers per call until one
//! parses.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::breaker::{Breaker, Verdict};
use crate::concurrency::{AdaptiveLimiter, LoadSignal};
use crate::domain::{Analysis, Checklist, Cost, Usage};
use crate::llm::ResponseSchema;
use crate::llm::cost::{self, Prices, Tally};
use crate::llm::error::{LlmError, refuses_every_call};
use crate::llm::parse::parse_analysis_with_notes;
use crate::llm::wire::{
    Completion, error_message, mentions_structured_output, parse_completion, refuses_timeout_field,
    request_body,
};
use crate::retry::{RetryPolicy, Transient, retry_hint};

/// Answers asked for per call before it is given up as failed (the old tool's rule).
pub const CONTENT_ATTEMPTS: u32 = 3;

/// LiteLLM's figure for what one response cost, in USD.
const RESPONSE_COST_HEADER: &str = "x-litellm-response-cost";

/// Where the gateway is and how to talk to it.
#[derive(Clone)]
pub struct LlmSettings {
    /// Includes the version segment, e.g. `http://localhost:4000/v1`; a trailing slash is fine.
    pub base_url: String,
    pub token: String,
    pub model: String,
    /// For one HTTP request, reading the whole answer included; also sent to the gateway.
    pub timeout: Duration,
    /// Per HTTP request: 429, 5xx, timeouts and connection errors.
    pub retry: RetryPolicy,
    pub price_input_per_1m: Option<f64>,
    /// Cached prompt tokens; `None`: as `price_input_per_1m`.
    pub price_cached_input_per_1m: Option<f64>,
    pub price_output_per_1m: Option<f64>,
    /// The most requests in flight (LLM_CONCURRENCY); below it the limit adapts to the
    /// gateway's pushback and latency.
    pub max_concurrency: usize,
    /// Alike refusals in a row that stop the run (LLM_BREAKER_THRESHOLD).
    pub breaker_threshold: usize,
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
            .field("price_cached_input_per_1m", &self.price_cached_input_per_1m)
            .field("price_output_per_1m", &self.price_output_per_1m)
            .field("max_concurrency", &self.max_concurrency)
            .field("breaker_threshold", &self.breaker_threshold)
            .finish()
    }
}

/// One call's analysis and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Analyzed {
    pub analysis: Analysis,
    /// Summed over every answer asked for, the rejected ones included.
    pub usage: Usage,
    /// The gateway's figure, else the configured prices; `None` without either.
    pub cost: Option<Cost>,
    /// Answers asked for (1 to [`CONTENT_ATTEMPTS`]); HTTP-level retries not counted.
    pub attempts: u32,
    /// What the parser dropped or defaulted, one line each, for the caller to log.
    pub notes: Vec<String>,
}

/// What `callq check`'s probe found out about structured output.
#[derive(Debug, Clone, PartialEq)]
pub enum StructuredOutput {
    /// The answer followed the response schema.
    Honoured,
    /// The gateway refused `response_format`; runs ask for JSON by prompt alone.
    RefusedByGateway,
    /// Accepted, but the answer did not follow the schema (why).
    NotFollowed(String),
}

/// The probe's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub structured: StructuredOutput,
    pub usage: Usage,
}

/// The gateway client. Cloning is cheap and clones share the switches, the limiter, the
/// breaker and the request count.
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
    timeout_s: f64,
    prices: Option<Prices>,
    /// Set once the gateway has rejected `response_format`; never unset during a run.
    /// Read right before each send, so requests queued behind the limiter switch too.
    prompt_only: AtomicBool,
    /// Set once the gateway has rejected the `timeout` field (an API that is not LiteLLM).
    no_timeout_field: AtomicBool,
    /// Requests in flight, shared by every clone.
    limiter: AdaptiveLimiter,
    breaker: Breaker,
    /// HTTP requests sent, retries and refused ones included.
    http_attempts: AtomicU64,
    /// The model names the gateway's answers reported.
    reported_models: std::sync::Mutex<std::collections::BTreeSet<String>>,
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

impl LlmSettings {
    /// The `Authorization` header for TOKEN_LLM, marked sensitive so it never reaches a log.
    pub(super) fn authorization(&self) -> Result<HeaderValue, LlmError> {
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", self.token.trim())).map_err(|_| {
                LlmError::Setup("the token has characters an HTTP header cannot carry".into())
            })?;
        auth.set_sensitive(true);
        Ok(auth)
    }

    /// LLM_PRICE_*, when both the input and the output price are set.
    pub(super) fn prices(&self) -> Option<Prices> {
        match (self.price_input_per_1m, self.price_output_per_1m) {
            (Some(input), Some(output)) => Some(Prices {
                input,
                cached_input: self.price_cached_input_per_1m.unwrap_or(input),
                output,
            }),
            _ => None,
        }
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
        let auth = settings.authorization()?;
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|e| LlmError::Setup(format!("HTTP client: {e}")))?;
        let prices = settings.prices();
        let max_concurrency = settings.max_concurrency.max(1);
        Ok(LlmClient {
            inner: Arc::new(Inner {
                http,
                url: format!("{base}/chat/completions"),
                auth,
                token: settings.token.trim().to_string(),
                model: settings.model,
                retry: settings.retry,
                timeout_s: settings.timeout.as_secs_f64(),
                prices,
                prompt_only: AtomicBool::new(false),
                no_timeout_field: AtomicBool::new(false),
                limiter: AdaptiveLimiter::new(max_concurrency),
                // The run asks for at most max_concurrency analyses at once.
                breaker: Breaker::new(settings.breaker_threshold, max_concurrency),
                http_attempts: AtomicU64::new(0),
                reported_models: Default::default(),
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

    /// HTTP requests sent so far by this client and its clones, every retry included.
    pub fn http_attempts(&self) -> u64 {
        self.inner.http_attempts.load(Ordering::Relaxed)
    }

    /// The model names the gateway's answers to this client and its clones reported, in
    /// order; empty when no answer named one.
    pub fn reported_models(&self) -> Vec<String> {
        let seen = self.inner.reported_models.lock().expect("reported models");
        seen.iter().cloned().collect()
    }

    /// Whether the gateway rejected structured output and JSON is asked for by prompt only.
    pub fn prompt_only(&self) -> bool {
        self.inner.prompt_only.load(Ordering::Relaxed)
    }

    /// Cost of `usage` at the configured prices, when both are set.
    pub fn price(&self, usage: &Usage) -> Option<f64> {
        self.inner.prices.map(|p| p.cost(usage))
    }

    /// One answer to `prompt` with `schema` as `response_format`, for `callq check`: does
    /// the gateway answer for the model with this key, and does the model follow the schema?
    pub async fn probe(
        &self,
        prompt: &str,
        schema: &ResponseSchema,
        checklist: &Checklist,
    ) -> Result<Probe, LlmError> {
        let _inside = self.inner.breaker.enter();
        let completion = self.complete(prompt, schema).await?;
        let structured = if self.prompt_only() {
            StructuredOutput::RefusedByGateway
        } else {
            match completion.content.and_then(|content| {
                parse_analysis_with_notes(&content, checklist).map_err(|e| e.to_string())
            }) {
                Ok(_) => StructuredOutput::Honoured,
                Err(e) => StructuredOutput::NotFollowed(e),
            }
        };
        Ok(Probe {
            structured,
            usage: completion.usage,
        })
    }

    /// Asks for one call's analysis until an answer passes [`parse_analysis_with_notes`],
    /// at most [`CONTENT_ATTEMPTS`] times.
    pub async fn analyze(
        &self,
        prompt: &str,
        schema: &ResponseSchema,
        checklist: &Checklist,
    ) -> Result<Analyzed, LlmError> {
        let _inside = self.inner.breaker.enter();
        let prices = self.inner.prices.as_ref();
        let mut tally = Tally::default();
        let mut last_error = String::new();
        for attempt in 1..=CONTENT_ATTEMPTS {
            let completion = match self.complete(prompt, schema).await {
                Ok(c) => c,
                Err(LlmError::Unavailable {
                    attempts,
                    last_error,
                    last_status,
                    ..
                }) => {
                    return Err(LlmError::Unavailable {
                        attempts,
                        last_error,
                        last_status,
                        usage: tally.usage,
                        cost: tally.cost(prices),
                    });
                }
                Err(e) => return Err(e),
            };
            tally.add(completion.usage, completion.gateway_cost);
            if let Some(m) = &completion.model {
                let mut seen = self.inner.reported_models.lock().expect("reported models");
                if !seen.contains(m) {
                    seen.insert(m.clone());
                }
            }
            let verdict = completion.content.and_then(|content| {
                parse_analysis_with_notes(&content, checklist).map_err(|e| e.to_string())
            });
            match verdict {
                Ok(parsed) => {
                    return Ok(Analyzed {
                        analysis: parsed.analysis,
                        usage: tally.usage,
                        cost: tally.cost(prices),
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
            usage: tally.usage,
            cost: tally.cost(prices),
        })
    }

    /// One answer, HTTP retries included. Drops `response_format` (or the `timeout`
    /// field) for good when the gateway says it cannot take it, and resends at once; a
    /// refusal goes before the breaker.
    async fn complete(
        &self,
        prompt: &str,
        schema: &ResponseSchema,
    ) -> Result<Completion, LlmError> {
        loop {
            match self.send(prompt, schema).await {
                Ok(c) => {
                    self.inner.breaker.success();
                    return Ok(c);
                }
                Err((SendError::ResponseFormatRejected { message, .. }, _)) => {
                    if !self.inner.prompt_only.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            model = %self.inner.model,
                            "the LLM gateway rejected structured output ({message}); \
                             asking for JSON by prompt alone for the rest of the run"
                        );
                    }
                }
                Err((SendError::TimeoutFieldRejected { message }, _)) => {
                    if !self.inner.no_timeout_field.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "the LLM gateway rejected the request's `timeout` field \
                             ({message}); not sending it for the rest of the run"
                        );
                    }
                }
                Err((e, attempts)) => return Err(self.judge(e.into_llm_error(attempts)).await),
            }
        }
    }

    /// A refusal of this call alone, unless the breaker finds it is every call's.
    async fn judge(&self, e: LlmError) -> LlmError {
        let LlmError::Rejected { status, message } = e else {
            return e;
        };
        match self
            .inner
            .breaker
            .refused(&format!("{status} {message}"))
            .await
        {
            Verdict::Tripped { count } => LlmError::Refusing {
                status,
                message,
                count,
            },
            Verdict::Alone => LlmError::Rejected { status, message },
        }
    }

    /// Sends under the retry policy; on failure also says how many requests were made.
    async fn send(
        &self,
        prompt: &str,
        schema: &ResponseSchema,
    ) -> Result<Completion, (SendError, u32)> {
        let mut attempts = 0u32;
        let what = format!("LLM request ({})", self.inner.model);
        self.inner
            .retry
            .run(&what, || {
                attempts += 1;
                self.send_once(prompt, schema)
            })
            .await
            .map_err(|e| (e, attempts))
    }

    /// One HTTP request inside a slot of the adaptive limiter, which learns from its answer.
    async fn send_once(
        &self,
        prompt: &str,
        schema: &ResponseSchema,
    ) -> Result<Completion, SendError> {
        let permit = self.inner.limiter.acquire().await;
        // Decided now, not when the request was queued: a switch another request made
        // meanwhile applies to this one.
        let schema = (!self.prompt_only()).then_some(schema);
        let timeout_s =
            (!self.inner.no_timeout_field.load(Ordering::Relaxed)).then_some(self.inner.timeout_s);
        let body = request_body(&self.inner.model, prompt, schema, timeout_s);
        self.inner.http_attempts.fetch_add(1, Ordering::Relaxed);
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
                    permit.done(LoadSignal::Overloaded);
                } else {
                    drop(permit);
                }
                return Err(self.transport_error(e));
            }
        };
        let status = response.status();
        let headers = response.headers();
        let retry_after = retry_hint(headers);
        let gateway_cost = cost::gateway_cost(
            headers
                .get(RESPONSE_COST_HEADER)
                .and_then(|v| v.to_str().ok()),
            self.inner.prices.is_some(),
        );
        let text = response.text().await;
        let code = status.as_u16();
        if code == 429 {
            permit.done(LoadSignal::Rejected);
        } else if code == 503 || text.as_ref().is_err_and(|e| e.is_timeout()) {
            permit.done(LoadSignal::Overloaded);
        } else {
            let rtt = permit.elapsed();
            permit.done(LoadSignal::Answered(rtt));
        }
        let text = text.map_err(|e| self.transport_error(e))?;
        if status.is_success() {
            return parse_completion(&text)
                .map(|c| Completion { gateway_cost, ..c })
                .map_err(|message| SendError::Retryable {
                    message,
                    status: None,
                    retry_after: None,
                });
        }
        let message = self.redact(&error_message(&text));
        Err(match code {
            // 408 is the server's own timeout: as transient as ours.
            408 | 429 | 500..=599 => SendError::Retryable {
                message: format!("HTTP {code}: {message}"),
                status: Some(code),
                retry_after,
            },
            400 | 422 if schema.is_some() && mentions_structured_output(&text) => {
                SendError::ResponseFormatRejected {
                    status: code,
                    message,
                }
            }
            400 | 422 if timeout_s.is_some() && refuses_timeout_field(&text) => {
                SendError::TimeoutFieldRejected { message }
            }
            _ => SendError::Refused {
                status: code,
                message,
            },
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> SendError {
        let mut message = error_chain(&e);
        if e.is_timeout() {
            message.push_str(" (timed out)");
        }
        SendError::Retryable {
            message: self.redact(&message),
            status: None,
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

/// What one HTTP request can end in, short of an answer.
#[derive(Debug)]
enum SendError {
    Retryable {
        message: String,
        /// The gateway's answer, when there was one (408, 429, 5xx).
        status: Option<u16>,
        retry_after: Option<Duration>,
    },
    ResponseFormatRejected {
        status: u16,
        message: String,
    },
    TimeoutFieldRejected {
        message: String,
    },
    /// Any other 4xx: not worth retrying.
    Refused {
        status: u16,
        message: String,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Retryable { message, .. } | SendError::TimeoutFieldRejected { message } => {
                f.write_str(message)
            }
            SendError::ResponseFormatRejected { status, message }
            | SendError::Refused { status, message } => write!(f, "HTTP {status}: {message}"),
        }
    }
}

impl Transient for SendError {
    fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            SendError::Retryable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl SendError {
    fn into_llm_error(self, attempts: u32) -> LlmError {
        match self {
            SendError::Retryable {
                message, status, ..
            } => LlmError::Unavailable {
                attempts,
                last_error: message,
                last_status: status,
                usage: Usage::default(),
                cost: None,
            },
            SendError::TimeoutFieldRejected { message } => LlmError::Rejected {
                status: 400,
                message,
            },
            SendError::ResponseFormatRejected { status, message }
            | SendError::Refused { status, message } => {
                if refuses_every_call(status, &message) {
                    LlmError::Fatal { status, message }
                } else {
                    LlmError::Rejected { status, message }
                }
            }
        }
    }
}

/// A transport error with its whole chain: reqwest's top line alone says "error sending
/// request".
pub(super) fn error_chain(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::severity::{Severe, Severity};

    fn settings(base_url: &str, token: &str) -> LlmSettings {
        LlmSettings {
            base_url: base_url.into(),
            token: token.into(),
            model: "m".into(),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            price_input_per_1m: Some(2.0),
            price_cached_input_per_1m: None,
            price_output_per_1m: Some(8.0),
            max_concurrency: 8,
            breaker_threshold: 5,
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
            .price(&Usage {
                prompt_tokens: 1_000_000,
                completion_tokens: 500_000,
                cached_tokens: 0,
            })
            .unwrap();
        assert!((cost - 6.0).abs() < 1e-9);
        let mut no_price = settings("http://localhost:4000/v1", "t");
        no_price.price_output_per_1m = None;
        assert_eq!(
            LlmClient::new(no_price).unwrap().price(&Usage::default()),
            None
        );
        for bad in ["localhost:4000", "ftp://x/v1", "not a url"] {
            let e = LlmClient::new(settings(bad, "t")).unwrap_err();
            assert!(
                matches!(e, LlmError::Setup(_)) && e.severity() == Severity::Unavailable,
                "{bad}: {e}"
            );
        }
        let e = LlmClient::new(settings("http://x/v1", "sk-bad\ntoken")).unwrap_err();
        assert!(!e.to_string().contains("sk-bad"));
    }

    #[test]
    fn cached_tokens_default_to_the_input_price() {
        let mut s = settings("http://localhost:4000/v1", "t");
        let usage = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 0,
            cached_tokens: 1_000_000,
        };
        let c = LlmClient::new(s.clone()).unwrap();
        assert!((c.price(&usage).unwrap() - 2.0).abs() < 1e-9);
        s.price_cached_input_per_1m = Some(0.5);
        let c = LlmClient::new(s).unwrap();
        assert!((c.price(&usage).unwrap() - 0.5).abs() < 1e-9);
    }
}
