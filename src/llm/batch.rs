//! The gateway's Files and Batches API, as OpenAI's reference describes it and LiteLLM
//! passes it through: an input file of request lines uploaded (`POST /files`, streamed
//! multipart), a batch created from it (`POST /batches`), polled (`GET /batches/{id}`),
//! listed (`GET /batches`), cancelled, and its output and error files read line by line.
//! Each request line is the very body a synchronous request would send, less the
//! `timeout` field only LiteLLM's synchronous path understands; each answer line is read
//! exactly as a synchronous answer is.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncSeekExt};

use crate::domain::{Checklist, Cost, CostSource};
use crate::llm::ResponseSchema;
use crate::llm::client::{Analyzed, LlmSettings};
use crate::llm::cost::Prices;
use crate::llm::error::LlmError;
use crate::llm::parse::parse_analysis_with_notes;
use crate::llm::wire::{completion_of, error_message, request_body};
use crate::retry::{RetryPolicy, Transient, retry_hint};
use crate::severity::{Severe, Severity};

/// The endpoint every line of callq's batches asks for.
pub const BATCH_ENDPOINT: &str = "/v1/chat/completions";

/// Batches finished at the gateway; anything else is still being worked on.
pub const FINISHED_STATUSES: [&str; 4] = ["completed", "failed", "expired", "cancelled"];

/// Batches listed per page when looking for one by its tag.
const LIST_PAGE: usize = 100;

/// Why a Files or Batches request did not do its job.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// Retries ran out on 429/5xx/timeouts/connection errors.
    #[error("the LLM gateway did not answer {what} ({attempts} attempts): {message}")]
    Unavailable {
        what: &'static str,
        attempts: u32,
        message: String,
    },
    /// A 4xx: the gateway will not do this (a wrong key, no files_settings, a bad file).
    #[error("the LLM gateway refused {what} (HTTP {status}): {message}")]
    Refused {
        what: &'static str,
        status: u16,
        message: String,
    },
    /// An answer callq cannot read.
    #[error("the LLM gateway's answer to {what} cannot be read: {message}")]
    Unreadable { what: &'static str, message: String },
    #[error("the batch input file: {0}")]
    File(String),
}

impl Severe for BatchError {
    /// Whatever goes wrong with the batch endpoints, no other batch of the run would fare
    /// better: the run stops submitting. The calls involved are given back, not lost.
    fn severity(&self) -> Severity {
        Severity::Unavailable
    }
}

impl BatchError {
    /// A refusal that says the batch was certainly not created (a 4xx); anything else
    /// leaves open whether the gateway acted on the request before its answer was lost.
    pub fn is_definite(&self) -> bool {
        matches!(self, BatchError::Refused { .. } | BatchError::File(_))
    }
}

/// A batch as the gateway describes it (the fields callq reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GatewayBatch {
    pub id: String,
    pub status: String,
    pub input_file_id: Option<String>,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub created_at: Option<i64>,
    pub metadata: Option<Map<String, Value>>,
    pub request_counts: Option<RequestCounts>,
    pub errors: Option<Value>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct RequestCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

impl GatewayBatch {
    pub fn is_finished(&self) -> bool {
        FINISHED_STATUSES.contains(&self.status.as_str())
    }

    /// A metadata value, when it is a string.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key)?.as_str()
    }

    /// What the gateway said about a batch that failed validation, in one line.
    pub fn error_text(&self) -> Option<String> {
        let data = self.errors.as_ref()?.get("data")?.as_array()?;
        let parts: Vec<String> = data
            .iter()
            .take(3)
            .map(|e| {
                let message = e.get("message").and_then(Value::as_str).unwrap_or("?");
                match e.get("line").and_then(Value::as_u64) {
                    Some(line) => format!("line {line}: {message}"),
                    None => message.to_string(),
                }
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

#[derive(Deserialize)]
struct FileObject {
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BatchList {
    data: Vec<GatewayBatch>,
    has_more: bool,
    last_id: Option<String>,
}

/// One line of a batch's output or error file.
#[derive(Debug, Clone)]
pub struct OutputLine {
    pub custom_id: String,
    pub answer: LineAnswer,
}

/// What the gateway answered for one line.
#[derive(Debug, Clone)]
pub enum LineAnswer {
    /// The HTTP answer the request got: a chat completion (200) or an error body.
    Response { status: u16, body: Value },
    /// No answer at all (the line expired, or failed before reaching the model).
    Error { code: String, message: String },
}

impl LineAnswer {
    /// The model the gateway says answered, when it says.
    pub fn model(&self) -> Option<&str> {
        match self {
            LineAnswer::Response { body, .. } => body.get("model").and_then(Value::as_str),
            LineAnswer::Error { .. } => None,
        }
    }
}

/// Reads one output or error line; `Err` says why it cannot be read.
pub fn parse_output_line(line: &str) -> Result<OutputLine, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let custom_id = v
        .get("custom_id")
        .and_then(Value::as_str)
        .ok_or("no custom_id")?
        .to_string();
    let response = v.get("response").filter(|r| !r.is_null());
    let answer = match response {
        Some(r) => LineAnswer::Response {
            status: r
                .get("status_code")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .ok_or("a response without status_code")?,
            body: r.get("body").cloned().unwrap_or(Value::Null),
        },
        None => {
            let e = v
                .get("error")
                .filter(|e| !e.is_null())
                .ok_or("neither response nor error")?;
            LineAnswer::Error {
                code: e
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string(),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            }
        }
    };
    Ok(OutputLine { custom_id, answer })
}

/// The Files and Batches client. Cloning is cheap.
#[derive(Clone)]
pub struct BatchClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
    token: String,
    model: String,
    retry: RetryPolicy,
    prices: Option<Prices>,
    price_factor: f64,
}

impl fmt::Debug for BatchClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchClient")
            .field("base", &self.inner.base)
            .field("model", &self.inner.model)
            .finish_non_exhaustive()
    }
}

impl BatchClient {
    pub fn new(settings: &LlmSettings, price_factor: f64) -> Result<BatchClient, LlmError> {
        let base = settings.base_url.trim().trim_end_matches('/').to_string();
        url::Url::parse(&base).map_err(|e| LlmError::Setup(format!("base URL {base:?}: {e}")))?;
        let auth = settings.authorization()?;
        crate::tls::install_crypto_provider();
        // No bound on a whole request: an input file of 190 MB takes its time. A read that
        // stalls for LLM_TIMEOUT_S is given up.
        let http = reqwest::Client::builder()
            .read_timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|e| LlmError::Setup(format!("HTTP client: {e}")))?;
        let prices = settings.prices();
        Ok(BatchClient {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                token: settings.token.trim().to_string(),
                model: settings.model.clone(),
                retry: settings.retry,
                prices,
                price_factor,
            }),
        })
    }

    /// One line of an input file: `custom_id`, the endpoint, and the body a synchronous
    /// request would send with structured output, without `timeout` (a provider would
    /// refuse it as an unknown argument inside a batch).
    pub fn input_line(&self, custom_id: &str, prompt: &str, schema: &ResponseSchema) -> Vec<u8> {
        let body = request_body(&self.inner.model, prompt, Some(schema), None);
        let id = serde_json::to_string(custom_id).expect("a string serialises");
        let mut line = Vec::with_capacity(body.len() + id.len() + 80);
        line.extend_from_slice(b"{\"custom_id\":");
        line.extend_from_slice(id.as_bytes());
        line.extend_from_slice(b",\"method\":\"POST\",\"url\":\"");
        line.extend_from_slice(BATCH_ENDPOINT.as_bytes());
        line.extend_from_slice(b"\",\"body\":");
        line.extend_from_slice(&body);
        line.extend_from_slice(b"}\n");
        line
    }

    /// Uploads an input file (`purpose=batch`), streamed from disk from its start;
    /// returns its id. The file may have no name (an unnamed temporary file): each
    /// attempt reads it through a handle of its own, rewound.
    pub async fn upload(
        &self,
        source: &std::fs::File,
        filename: &str,
    ) -> Result<String, BatchError> {
        let url = format!("{}/files", self.inner.base);
        let what = "the batch file's upload";
        let fatal = |e: std::io::Error| Attempt::Fatal(BatchError::File(e.to_string()));
        let file: FileObject = self
            .call(what, || async {
                let mut file = tokio::fs::File::from_std(source.try_clone().map_err(fatal)?);
                // A clone shares the offset: an earlier attempt may have read it all.
                file.rewind().await.map_err(fatal)?;
                let len = file.metadata().await.map_err(fatal)?.len();
                let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
                let part = reqwest::multipart::Part::stream_with_length(body, len)
                    .file_name(filename.to_string())
                    .mime_str("application/jsonl")
                    .expect("a valid MIME type");
                let form = reqwest::multipart::Form::new()
                    .text("purpose", "batch")
                    .part("file", part);
                Ok(self.inner.http.post(&url).multipart(form))
            })
            .await?;
        Ok(file.id)
    }

    /// Creates a batch from an uploaded file, once: a create whose answer was lost may
    /// have created it, so it is never simply sent again — see [`Self::create_unique`].
    async fn create_once(
        &self,
        file_id: &str,
        metadata: &Map<String, Value>,
    ) -> Result<GatewayBatch, BatchError> {
        let url = format!("{}/batches", self.inner.base);
        let body = serde_json::json!({
            "input_file_id": file_id,
            "endpoint": BATCH_ENDPOINT,
            "completion_window": "24h",
            "metadata": metadata,
        });
        let once = RetryPolicy {
            max_attempts: 1,
            ..self.inner.retry
        };
        self.call_with(&once, "the batch's creation", || {
            let request = self.inner.http.post(&url).json(&body);
            async move { Ok(request) }
        })
        .await
    }

    /// Creates the batch whose metadata carries `tag`, exactly once: after a create that
    /// may or may not have reached the gateway, the gateway's batches are searched for the
    /// tag before trying again.
    pub async fn create_unique(
        &self,
        file_id: &str,
        metadata: &Map<String, Value>,
        tag: &str,
        not_before_unix: i64,
    ) -> Result<GatewayBatch, BatchError> {
        let attempts = self.inner.retry.max_attempts.max(1);
        let mut delay = self.inner.retry.min_delay;
        let mut last = None;
        for attempt in 1..=attempts {
            match self.create_once(file_id, metadata).await {
                Ok(b) => return Ok(b),
                Err(e) if e.is_definite() => return Err(e),
                Err(e) => {
                    tracing::warn!("creating the batch failed ({e}); looking for it by its tag");
                    if let Some(found) = self.find_by_tag(tag, not_before_unix).await? {
                        return Ok(found);
                    }
                    last = Some(e);
                }
            }
            if attempt < attempts {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(self.inner.retry.max_delay);
            }
        }
        Err(last.expect("at least one attempt"))
    }

    pub async fn get(&self, batch_id: &str) -> Result<GatewayBatch, BatchError> {
        let url = format!("{}/batches/{batch_id}", self.inner.base);
        self.call("the batch's status", || {
            let request = self.inner.http.get(&url);
            async move { Ok(request) }
        })
        .await
    }

    pub async fn cancel(&self, batch_id: &str) -> Result<GatewayBatch, BatchError> {
        let url = format!("{}/batches/{batch_id}/cancel", self.inner.base);
        self.call("the batch's cancellation", || {
            let request = self.inner.http.post(&url);
            async move { Ok(request) }
        })
        .await
    }

    /// The batch whose metadata `tag` is `tag`, among the gateway's batches created since
    /// `not_before_unix` (the list is newest first, so the search stops there).
    pub async fn find_by_tag(
        &self,
        tag: &str,
        not_before_unix: i64,
    ) -> Result<Option<GatewayBatch>, BatchError> {
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{}/batches?limit={LIST_PAGE}", self.inner.base);
            if let Some(a) = &after {
                url.push_str("&after=");
                url.push_str(a);
            }
            let page: BatchList = self
                .call("the list of batches", || {
                    let request = self.inner.http.get(&url);
                    async move { Ok(request) }
                })
                .await?;
            let mut older = false;
            for b in &page.data {
                if b.meta("tag") == Some(tag) {
                    return Ok(Some(b.clone()));
                }
                older |= b.created_at.is_some_and(|t| t < not_before_unix);
            }
            let next = page
                .last_id
                .or_else(|| page.data.last().map(|b| b.id.clone()));
            match next {
                Some(n) if page.has_more && !older && !page.data.is_empty() => after = Some(n),
                _ => return Ok(None),
            }
        }
    }

    /// `callq check`'s probe: does the gateway pass the Batches API through? Lists one
    /// batch (spends nothing) and says how many the page held.
    pub async fn probe(&self) -> Result<usize, BatchError> {
        let url = format!("{}/batches?limit=1", self.inner.base);
        let page: BatchList = self
            .call("the list of batches", || {
                let request = self.inner.http.get(&url);
                async move { Ok(request) }
            })
            .await?;
        Ok(page.data.len())
    }

    /// A file's content, to be read line by line as it arrives.
    pub async fn file_content(
        &self,
        file_id: &str,
    ) -> Result<impl AsyncBufRead + Send + Unpin + use<>, BatchError> {
        let url = format!("{}/files/{file_id}/content", self.inner.base);
        let what = "a batch result file";
        let response = self
            .inner
            .retry
            .run(what, || self.send(what, self.inner.http.get(&url)))
            .await
            .map_err(|e| e.finish(what))?;
        let stream = response.bytes_stream().map_err(std::io::Error::other);
        Ok(tokio::io::BufReader::with_capacity(
            64 * 1024,
            tokio_util::io::StreamReader::new(stream),
        ))
    }

    /// Removes a file at the gateway (best effort: files expire there anyway).
    pub async fn delete_file(&self, file_id: &str) {
        let url = format!("{}/files/{file_id}", self.inner.base);
        let result = self
            .inner
            .http
            .delete(&url)
            .header(AUTHORIZATION, self.inner.auth.clone())
            .send()
            .await;
        if let Err(e) = result {
            tracing::debug!(
                "could not delete file {file_id}: {}",
                self.redact(&e.to_string())
            );
        }
    }

    /// One line's answer, read exactly as a synchronous answer is: the content validated
    /// against the checklist, the usage counted, the cost at LLM_PRICE_BATCH_FACTOR × the
    /// prices. Every refusal is this call's alone: a batch line never stops the run.
    pub fn analyzed(
        &self,
        answer: LineAnswer,
        checklist: &Checklist,
    ) -> Result<Analyzed, LlmError> {
        let (status, body) = match answer {
            LineAnswer::Response { status, body } => (status, body),
            LineAnswer::Error { code, message } => {
                return Err(LlmError::Unavailable {
                    attempts: 1,
                    last_error: self.redact(&format!("batch line {code}: {message}")),
                    last_status: None,
                    usage: Default::default(),
                    cost: None,
                });
            }
        };
        if status != 200 {
            let message = self.redact(&error_message(&body.to_string()));
            return Err(match status {
                408 | 429 | 500..=599 => LlmError::Unavailable {
                    attempts: 1,
                    last_error: format!("HTTP {status}: {message}"),
                    last_status: Some(status),
                    usage: Default::default(),
                    cost: None,
                },
                _ => LlmError::Rejected { status, message },
            });
        }
        let completion = completion_of(&body);
        let usage = completion.usage;
        let cost = self.inner.prices.map(|p| Cost {
            usd: p.cost(&usage) * self.inner.price_factor,
            source: CostSource::Batch,
        });
        let verdict = completion.content.and_then(|content| {
            parse_analysis_with_notes(&content, checklist).map_err(|e| e.to_string())
        });
        match verdict {
            Ok(parsed) => Ok(Analyzed {
                analysis: parsed.analysis,
                usage,
                cost,
                attempts: 1,
                notes: parsed.notes,
            }),
            Err(last_error) => Err(LlmError::InvalidContent {
                attempts: 1,
                last_error,
                usage,
                cost,
            }),
        }
    }

    async fn call<T, F, Fut>(&self, what: &'static str, build: F) -> Result<T, BatchError>
    where
        T: serde::de::DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<reqwest::RequestBuilder, Attempt>>,
    {
        let retry = self.inner.retry;
        self.call_with(&retry, what, build).await
    }

    /// Sends the request `build` makes under `retry` and reads its JSON answer.
    async fn call_with<T, F, Fut>(
        &self,
        retry: &RetryPolicy,
        what: &'static str,
        mut build: F,
    ) -> Result<T, BatchError>
    where
        T: serde::de::DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<reqwest::RequestBuilder, Attempt>>,
    {
        let mut attempts = 0u32;
        let text = retry
            .run(what, || {
                attempts += 1;
                let request = build();
                async move {
                    let response = self.send(what, request.await?).await?;
                    response
                        .text()
                        .await
                        .map_err(|e| Attempt::Retry(self.transport(e), None))
                }
            })
            .await
            .map_err(|e| e.finish_after(what, attempts))?;
        serde_json::from_str(&text).map_err(|e| BatchError::Unreadable {
            what,
            message: format!("{e}"),
        })
    }

    /// One HTTP request: a 2xx answer, or what to do about it.
    async fn send(
        &self,
        what: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Attempt> {
        let response = request
            .header(AUTHORIZATION, self.inner.auth.clone())
            .send()
            .await
            .map_err(|e| Attempt::Retry(self.transport(e), None))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let hint = retry_hint(response.headers());
        let code = status.as_u16();
        let message = self.redact(&error_message(&response.text().await.unwrap_or_default()));
        Err(match code {
            408 | 429 | 500..=599 => Attempt::Retry(format!("HTTP {code}: {message}"), hint),
            _ => Attempt::Fatal(BatchError::Refused {
                what,
                status: code,
                message,
            }),
        })
    }

    fn transport(&self, e: reqwest::Error) -> String {
        self.redact(&crate::llm::client::error_chain(&e))
    }

    fn redact(&self, message: &str) -> String {
        let token = &self.inner.token;
        if token.len() >= 4 {
            message.replace(token.as_str(), "<redacted>")
        } else {
            message.to_string()
        }
    }
}

/// One attempt's failure: worth retrying (with the server's hint), or not.
#[derive(Debug)]
enum Attempt {
    Retry(String, Option<Duration>),
    Fatal(BatchError),
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attempt::Retry(m, _) => f.write_str(m),
            Attempt::Fatal(e) => write!(f, "{e}"),
        }
    }
}

impl Transient for Attempt {
    fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            Attempt::Retry(_, hint) => Some(*hint),
            Attempt::Fatal(_) => None,
        }
    }
}

impl Attempt {
    fn finish(self, what: &'static str) -> BatchError {
        self.finish_after(what, 0)
    }

    fn finish_after(self, what: &'static str, attempts: u32) -> BatchError {
        match self {
            Attempt::Retry(message, _) => BatchError::Unavailable {
                what,
                attempts,
                message,
            },
            Attempt::Fatal(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> BatchClient {
        BatchClient::new(
            &LlmSettings {
                base_url: "http://localhost:4000/v1/".into(),
                token: "sk-secret-1234".into(),
                model: "gpt-x".into(),
                timeout: Duration::from_secs(5),
                retry: RetryPolicy::default(),
                price_input_per_1m: Some(2.0),
                price_cached_input_per_1m: None,
                price_output_per_1m: Some(8.0),
                max_concurrency: 8,
                breaker_threshold: 5,
            },
            0.5,
        )
        .unwrap()
    }

    #[test]
    fn an_input_line_is_the_sync_body_without_timeout() {
        let schema = ResponseSchema::new(&serde_json::json!({"type": "object"}));
        let line = client().input_line("call-7", "привет", &schema);
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["custom_id"], "call-7");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["url"], "/v1/chat/completions");
        assert_eq!(v["body"]["model"], "gpt-x");
        assert_eq!(v["body"]["messages"][0]["content"], "привет");
        assert_eq!(v["body"]["response_format"]["json_schema"]["strict"], true);
        assert!(v["body"].get("timeout").is_none(), "{v}");
    }

    #[test]
    fn output_lines_are_read_or_refused() {
        let ok = parse_output_line(
            r#"{"id":"r1","custom_id":"call-1","response":{"status_code":200,"body":{"choices":[]}},"error":null}"#,
        )
        .unwrap();
        assert_eq!(ok.custom_id, "call-1");
        assert!(matches!(
            ok.answer,
            LineAnswer::Response { status: 200, .. }
        ));
        let err = parse_output_line(
            r#"{"id":"r2","custom_id":"call-2","response":null,"error":{"code":"batch_expired","message":"expired"}}"#,
        )
        .unwrap();
        assert!(
            matches!(err.answer, LineAnswer::Error { ref code, .. } if code == "batch_expired")
        );
        assert!(parse_output_line("{not json").is_err());
        assert!(parse_output_line(r#"{"response":{"status_code":200}}"#).is_err());
        assert!(parse_output_line(r#"{"custom_id":"x"}"#).is_err());
    }

    #[test]
    fn a_line_answer_is_priced_at_the_batch_factor_and_never_stops_the_run() {
        let c = client();
        let checklist = Checklist {
            criteria: vec![crate::domain::Criterion::new(
                "Приветствие",
                "Назвал имя",
                5.0,
            )],
            custom_instructions: String::new(),
        };
        let body = serde_json::json!({
            "choices": [{"message": {"content": "not an analysis"}}],
            "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 0}
        });
        let e = c
            .analyzed(LineAnswer::Response { status: 200, body }, &checklist)
            .unwrap_err();
        let LlmError::InvalidContent { cost, .. } = &e else {
            panic!("{e}")
        };
        let cost = cost.unwrap();
        assert_eq!(cost.source, CostSource::Batch);
        assert!((cost.usd - 1.0).abs() < 1e-9, "{}", cost.usd);
        for status in [401, 404, 400, 500] {
            let e = c
                .analyzed(
                    LineAnswer::Response {
                        status,
                        body: serde_json::json!({"error": {"message": "bad sk-secret-1234"}}),
                    },
                    &checklist,
                )
                .unwrap_err();
            assert_eq!(e.severity(), Severity::Call, "{status}: {e}");
            assert!(!e.to_string().contains("sk-secret"), "{e}");
        }
    }
}
