//! Fake OpenAI-compatible LLM gateway, LiteLLM-flavoured: bearer key,
//! model list, `response_format` rejection, concurrency-limit 429s, random 500s, bursts
//! of errors, a refusal of every request, per-response cost headers, latency, token usage
//! with prompt-prefix caching, and answers chosen by the prompt.

mod analysis;
mod batch;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{Value, json};

pub use analysis::{
    FORMULA_RECOMMENDATION, INVENTED_QUOTE, PromptCriterion, REFUSAL, analysis_for_prompt,
    analysis_for_request, evidence_for, expected_score, markers, parse_criteria, quality_score,
    transcript_phrases,
};
pub use batch::BatchHold;

use crate::server::{Counter, Dice, Gate, GateSlot, LatencyKnob, RateKnob, Running, bearer};

/// How the fake gateway behaves.
#[derive(Clone, Debug)]
pub struct LlmConfig {
    /// The only accepted API key (`TOKEN_LLM`).
    pub token: String,
    /// Known models; any other gets 404.
    pub models: Vec<String>,
    /// Time the "model" takes for each accepted request.
    pub latency: Duration,
    /// Above this many requests in flight, answer 429 with `Retry-After`.
    pub max_concurrency: Option<usize>,
    /// The `Retry-After` value of those 429s, in seconds.
    pub retry_after_s: f64,
    /// When set, those 429s carry exactly these headers instead of `Retry-After`
    /// (e.g. `retry-after-ms`, `x-ratelimit-reset-requests`, or none at all).
    pub retry_headers: Option<Vec<(String, String)>>,
    /// USD per 1M prompt and completion tokens: answers carry LiteLLM's
    /// `x-litellm-response-cost` header.
    pub response_cost_per_1m: Option<(f64, f64)>,
    /// Keep every request body for `request_bodies()`.
    pub record_requests: bool,
    /// Share of accepted requests answered 500 at random.
    pub error_rate: f64,
    /// Answer 400 to any request with `response_format`, like models without
    /// structured output behind LiteLLM.
    pub reject_response_format: bool,
    /// Report `usage.prompt_tokens_details.cached_tokens`.
    pub report_cached_tokens: bool,
    /// Keep every accepted prompt for `prompts()`.
    pub record_prompts: bool,
    /// Seed of the random 500 draws.
    pub seed: u64,
    /// Share of criterion scores moved one point up or down (within 0..max), drawn from
    /// `seed`, the prompt and how many times that prompt was answered before: the k-th
    /// answer to a call is the same whatever order the requests arrive in, and differs from
    /// its (k−1)-th as a real model's would.
    pub score_noise: f64,
    /// The model name answers report instead of the one asked for (a dated version behind
    /// an alias).
    pub reported_model: Option<String>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            token: "sk-test".into(),
            models: vec!["gpt-test".into()],
            latency: Duration::ZERO,
            max_concurrency: None,
            retry_after_s: 1.0,
            retry_headers: None,
            response_cost_per_1m: None,
            record_requests: false,
            error_rate: 0.0,
            reject_response_format: false,
            report_cached_tokens: true,
            record_prompts: false,
            seed: 0,
            score_noise: 0.0,
            reported_model: None,
        }
    }
}

/// A running fake gateway. Dropping it stops the server.
pub struct FakeLlm {
    running: Running,
    state: Arc<Llm>,
}

impl FakeLlm {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start(config: LlmConfig) -> Self {
        let retry_after = if config.retry_after_s.fract() == 0.0 {
            format!("{}", config.retry_after_s.max(0.0) as u64)
        } else {
            format!("{}", config.retry_after_s)
        };
        let retry_headers = config.retry_headers.map_or_else(
            || {
                vec![(
                    RETRY_AFTER,
                    HeaderValue::from_str(&retry_after).expect("a number"),
                )]
            },
            |list| {
                list.iter()
                    .map(|(k, v)| {
                        (
                            HeaderName::try_from(k.as_str()).expect("a header name"),
                            HeaderValue::from_str(v).expect("a header value"),
                        )
                    })
                    .collect()
            },
        );
        let state = Arc::new(Llm {
            token: Mutex::new(config.token),
            models: config.models,
            latency: LatencyKnob::new(config.latency),
            max_concurrency: config.max_concurrency,
            retry_headers,
            response_cost_per_1m: config.response_cost_per_1m,
            record_requests: config.record_requests,
            request_bodies: Mutex::new(Vec::new()),
            refusal: Mutex::new(None),
            bursts: Mutex::new(VecDeque::new()),
            error_rate: RateKnob::new(config.error_rate),
            reject_response_format: config.reject_response_format,
            report_cached_tokens: config.report_cached_tokens,
            record_prompts: config.record_prompts,
            dice: Dice::new(config.seed),
            seed: config.seed,
            score_noise: Mutex::new(config.score_noise),
            score_shift: Mutex::new(0.0),
            sightings: Mutex::new(HashMap::new()),
            reported_model: Mutex::new(config.reported_model),
            refuse_all: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            in_flight_max: AtomicUsize::new(0),
            requests: Counter::default(),
            completions: Counter::default(),
            unauthorized: Counter::default(),
            served_429: Counter::default(),
            served_500: Counter::default(),
            with_response_format: Counter::default(),
            prompt_chars: Counter::default(),
            shared_prefix_chars: Counter::default(),
            previous_prompt: Mutex::new(String::new()),
            invalid_once_seen: Mutex::new(HashSet::new()),
            prompts: Mutex::new(Vec::new()),
            gate: GateSlot::default(),
            batch: batch::Batches::new(),
        });
        let router =
            batch::routes(Router::new().route("/v1/chat/completions", post(chat_completions)))
                .with_state(Arc::clone(&state));
        FakeLlm {
            running: Running::start(router).await,
            state,
        }
    }

    /// `http://127.0.0.1:PORT/v1`: the `LLM_BASE_URL` for callq (version segment included).
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.running.origin())
    }

    /// Every request, whatever its answer.
    pub fn requests(&self) -> usize {
        self.state.requests.get()
    }

    /// Requests answered 200.
    pub fn completions(&self) -> usize {
        self.state.completions.get()
    }

    /// Most requests in flight at once (all requests count, refused ones too).
    pub fn in_flight_max(&self) -> usize {
        self.state.in_flight_max.load(Ordering::Relaxed)
    }

    /// 401s served (wrong or missing key).
    pub fn unauthorized(&self) -> usize {
        self.state.unauthorized.get()
    }

    pub fn served_429(&self) -> usize {
        self.state.served_429.get()
    }

    pub fn served_500(&self) -> usize {
        self.state.served_500.get()
    }

    /// Characters of all accepted prompts (those that reached the "model").
    pub fn prompt_chars(&self) -> usize {
        self.state.prompt_chars.get()
    }

    /// Sum over accepted prompts of the common prefix (in characters) with the accepted
    /// prompt before it: how much a prefix cache could have saved.
    pub fn shared_prefix_chars(&self) -> usize {
        self.state.shared_prefix_chars.get()
    }

    /// Requests that carried a `response_format`, refused ones included.
    pub fn requests_with_response_format(&self) -> usize {
        self.state.with_response_format.get()
    }

    /// The accepted prompts in arrival order (empty unless `record_prompts`).
    pub fn prompts(&self) -> Vec<String> {
        self.state.prompts.lock().clone()
    }

    /// Holds every accepted completion request from now on (after the key, model and
    /// concurrency checks, where the model would think) until the returned gate admits it.
    pub fn hold(&self) -> Gate {
        self.state.gate.install()
    }

    /// Changes the model latency for the rest of the run.
    pub fn set_latency(&self, latency: Duration) {
        self.state.latency.set(latency);
    }

    /// Changes the accepted key, e.g. to revoke the one callq uses mid-run.
    pub fn set_token(&self, token: impl Into<String>) {
        *self.state.token.lock() = token.into();
    }

    /// Changes the random 500 share for the rest of the run.
    pub fn set_error_rate(&self, rate: f64) {
        self.state.error_rate.set(rate);
    }

    /// While on, every completion is the non-JSON refusal, as if every prompt carried
    /// `[invalid-always]`: a model that went bad for one night and recovered the next.
    pub fn set_refuse_all(&self, on: bool) {
        self.state.refuse_all.store(on, Ordering::SeqCst);
    }

    /// While set, every request is answered with this error, before anything else is
    /// looked at — as LiteLLM without its database answers any key but the master key.
    pub fn set_refusal(&self, refusal: Option<Refusal>) {
        *self.state.refusal.lock() = refusal;
    }

    /// The next `n` accepted requests are answered `status` (429 without a retry hint,
    /// or 5xx): a burst upstream. Bursts queue up behind the ones not served yet.
    pub fn fail_next(&self, n: usize, status: u16) {
        let status = StatusCode::from_u16(status).expect("a status code");
        self.state.bursts.lock().push_back((n, status));
    }

    /// From now on every criterion score is moved by `points` (kept within 0..max): a
    /// model that began judging differently.
    pub fn set_score_shift(&self, points: f64) {
        *self.state.score_shift.lock() = points;
    }

    /// Changes the share of scores moved by seeded noise (see [`LlmConfig::score_noise`]).
    pub fn set_score_noise(&self, share: f64) {
        *self.state.score_noise.lock() = share;
    }

    /// From now on answers report this model name (`None`: the one asked for).
    pub fn set_reported_model(&self, model: Option<&str>) {
        *self.state.reported_model.lock() = model.map(str::to_string);
    }

    /// Every request body in arrival order (empty unless `record_requests`).
    pub fn request_bodies(&self) -> Vec<Value> {
        self.state.request_bodies.lock().clone()
    }
}

/// An error answered to every request (see [`FakeLlm::set_refusal`]).
#[derive(Clone, Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    pub kind: String,
}

impl Refusal {
    /// What LiteLLM without a database answers a key that is not its master key.
    pub fn no_db() -> Refusal {
        Refusal {
            status: 400,
            message: "No connected db.".into(),
            kind: "no_db_connection".into(),
        }
    }
}

/// Shared state of the handler.
struct Llm {
    token: Mutex<String>,
    models: Vec<String>,
    latency: LatencyKnob,
    max_concurrency: Option<usize>,
    retry_headers: Vec<(HeaderName, HeaderValue)>,
    response_cost_per_1m: Option<(f64, f64)>,
    record_requests: bool,
    request_bodies: Mutex<Vec<Value>>,
    refusal: Mutex<Option<Refusal>>,
    /// Requests still to fail, and with what, burst by burst.
    bursts: Mutex<VecDeque<(usize, StatusCode)>>,
    error_rate: RateKnob,
    reject_response_format: bool,
    report_cached_tokens: bool,
    record_prompts: bool,
    dice: Dice,
    seed: u64,
    score_noise: Mutex<f64>,
    score_shift: Mutex<f64>,
    /// Answers given per prompt (by hash), for the noise of the next one.
    sightings: Mutex<HashMap<u64, u64>>,
    reported_model: Mutex<Option<String>>,
    refuse_all: AtomicBool,
    in_flight: AtomicUsize,
    in_flight_max: AtomicUsize,
    requests: Counter,
    completions: Counter,
    unauthorized: Counter,
    served_429: Counter,
    served_500: Counter,
    with_response_format: Counter,
    prompt_chars: Counter,
    shared_prefix_chars: Counter,
    previous_prompt: Mutex<String>,
    /// Hashes of `[invalid-once]` messages already answered with a refusal.
    invalid_once_seen: Mutex<HashSet<u64>>,
    prompts: Mutex<Vec<String>>,
    gate: GateSlot,
    /// The Files and Batches API.
    batch: batch::Batches,
}

/// Counts a request in flight for as long as its handler runs, even when the client
/// hangs up and the handler future is dropped mid-sleep.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    /// Enters and returns the guard and the number now in flight.
    fn enter(st: &'a Llm) -> (Self, usize) {
        let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        st.in_flight_max.fetch_max(now, Ordering::SeqCst);
        (InFlight(&st.in_flight), now)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// LiteLLM's error shape.
fn error(status: StatusCode, message: &str, kind: &str) -> Response {
    (status, Json(error_body(status, message, kind))).into_response()
}

fn error_body(status: StatusCode, message: &str, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "code": status.as_u16().to_string()}})
}

/// The texts of `messages[*].content`, whether plain strings or OpenAI content parts.
fn message_texts(body: &Value) -> Option<Vec<String>> {
    let messages = body.get("messages")?.as_array().filter(|m| !m.is_empty())?;
    Some(
        messages
            .iter()
            .map(|m| match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            })
            .collect(),
    )
}

fn common_prefix_chars(a: &str, b: &str) -> usize {
    // Bytes compared, then the characters of the shared part counted: the same figure as
    // comparing characters, at a fraction of the cost on every request.
    let mut bytes = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !a.is_char_boundary(bytes) {
        bytes -= 1;
    }
    a[..bytes].chars().count()
}

impl Llm {
    /// Accounts an accepted prompt; returns its common prefix with the previous one.
    fn account_prompt(&self, prompt: &str) -> usize {
        let chars = prompt.chars().count();
        let shared = {
            let mut previous = self.previous_prompt.lock();
            let shared = common_prefix_chars(&previous, prompt);
            prompt.clone_into(&mut previous);
            shared
        };
        self.prompt_chars.add(chars);
        self.shared_prefix_chars.add(shared);
        if self.record_prompts {
            self.prompts.lock().push(prompt.to_string());
        }
        shared
    }

    /// How this answer moves each criterion's score (index, score, max → score): the shift,
    /// then the seeded noise of this prompt's next answer.
    fn score_adjustment(&self, prompt: &str) -> impl Fn(usize, f64, f64) -> f64 + use<> {
        let shift = *self.score_shift.lock();
        let noise = *self.score_noise.lock();
        let mut hasher = DefaultHasher::new();
        (self.seed, prompt).hash(&mut hasher);
        let prompt_key = hasher.finish();
        let sighting = if noise > 0.0 {
            let mut seen = self.sightings.lock();
            let n = seen.entry(prompt_key).or_insert(0);
            *n += 1;
            *n
        } else {
            0
        };
        move |index: usize, score: f64, max: f64| {
            let mut score = (score + shift).clamp(0.0, max);
            if noise > 0.0 {
                let mut h = DefaultHasher::new();
                (prompt_key, sighting, index).hash(&mut h);
                let draw = h.finish();
                // The low 32 bits decide whether it moves, one more bit which way.
                let u = (draw & 0xffff_ffff) as f64 / 4_294_967_296.0;
                if u < noise {
                    let step = max.min(1.0);
                    let up = (draw >> 32) & 1 == 1;
                    score = if (up && score + step <= max) || score - step < 0.0 {
                        score + step
                    } else {
                        score - step
                    };
                }
            }
            score
        }
    }

    /// Whether this is the first sighting of an `[invalid-once]` prompt. Keyed by the
    /// message carrying the marker, so a retry that appends a "JSON only, please"
    /// message to the same conversation counts as the same prompt.
    fn first_invalid_once(&self, messages: &[String]) -> bool {
        let Some(carrier) = messages.iter().find(|m| m.contains(markers::INVALID_ONCE)) else {
            return false;
        };
        let mut hasher = DefaultHasher::new();
        carrier.hash(&mut hasher);
        self.invalid_once_seen.lock().insert(hasher.finish())
    }
}

/// `POST /v1/chat/completions`.
async fn chat_completions(State(st): State<Arc<Llm>>, headers: HeaderMap, body: Bytes) -> Response {
    st.requests.bump();
    let (_in_flight, now_in_flight) = InFlight::enter(&st);
    if st.record_requests {
        let logged = serde_json::from_slice(&body).unwrap_or(Value::Null);
        st.request_bodies.lock().push(logged);
    }
    if let Some(r) = st.refusal.lock().clone() {
        let status = StatusCode::from_u16(r.status).expect("a status code");
        return error(status, &r.message, &r.kind);
    }
    let key_ok = bearer(&headers).is_some_and(|t| *st.token.lock() == t);
    if !key_ok {
        st.unauthorized.bump();
        return error(
            StatusCode::UNAUTHORIZED,
            "Authentication Error, Invalid API key",
            "auth_error",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "litellm.BadRequestError: request body is not valid JSON",
            "invalid_request_error",
        );
    };
    let Vetted {
        model,
        messages,
        with_evidence,
    } = match vet(&st, &body) {
        Ok(v) => v,
        Err(f) => return f.response(),
    };
    if st.max_concurrency.is_some_and(|max| now_in_flight > max) {
        st.served_429.bump();
        let mut resp = error(
            StatusCode::TOO_MANY_REQUESTS,
            "litellm.RateLimitError: too many concurrent requests",
            "rate_limit_error",
        );
        for (k, v) in &st.retry_headers {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
        return resp;
    }
    let burst = {
        let mut bursts = st.bursts.lock();
        while bursts.front().is_some_and(|(n, _)| *n == 0) {
            bursts.pop_front();
        }
        bursts.front_mut().map(|(n, status)| {
            *n -= 1;
            *status
        })
    };
    if let Some(status) = burst {
        if status == StatusCode::TOO_MANY_REQUESTS {
            st.served_429.bump();
        } else {
            st.served_500.bump();
        }
        return error(status, "upstream burst: please try again", "upstream_error");
    }
    if let Err(f) = context_window(&messages) {
        return f.response();
    }
    st.gate.pass().await;
    st.latency.wait().await;
    let answer = match think(&st, &model, &messages, with_evidence, Caller::Sync) {
        Ok(a) => a,
        Err(f) => {
            st.served_500.bump();
            return f.response();
        }
    };
    let cost = st.response_cost_per_1m.map(|(input, output)| {
        (answer.prompt_tokens as f64 * input + answer.completion_tokens as f64 * output) / 1e6
    });
    let mut resp = Json(answer.body).into_response();
    if let Some(cost) = cost {
        resp.headers_mut().insert(
            "x-litellm-response-cost",
            HeaderValue::from_str(&cost.to_string()).expect("a number"),
        );
    }
    resp
}

/// An error answer: status, message and LiteLLM's error type.
struct Failure {
    status: StatusCode,
    message: String,
    kind: &'static str,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>, kind: &'static str) -> Self {
        Failure {
            status,
            message: message.into(),
            kind,
        }
    }

    fn response(&self) -> Response {
        error(self.status, &self.message, self.kind)
    }

    /// The JSON body of [`Failure::response`].
    fn body(&self) -> Value {
        error_body(self.status, &self.message, self.kind)
    }
}

/// A request body that passed the model's checks.
struct Vetted {
    model: String,
    messages: Vec<String>,
    with_evidence: bool,
}

/// The checks of a request body that a batch line shares with a synchronous request:
/// known model, messages, `response_format`.
fn vet(st: &Llm, body: &Value) -> Result<Vetted, Failure> {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    if !st.models.iter().any(|m| m == model) {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("model '{model}' not found"),
            "invalid_request_error",
        ));
    }
    let Some(messages) = message_texts(body) else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "litellm.BadRequestError: `messages` must be a non-empty array",
            "invalid_request_error",
        ));
    };
    let schema_given = body.get("response_format").is_some_and(|f| !f.is_null());
    let with_evidence = if schema_given {
        names_evidence(&body["response_format"])
    } else {
        messages.iter().any(|m| m.contains("\"evidence\""))
    };
    if schema_given {
        st.with_response_format.bump();
        if st.reject_response_format {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "litellm.BadRequestError: response_format json_schema is not supported for this model",
                "invalid_request_error",
            ));
        }
    }
    Ok(Vetted {
        model: model.to_string(),
        messages,
        with_evidence,
    })
}

/// Whether a JSON value names `evidence` (a key, or a string such as a `required` entry):
/// the schema asks for quotes. Walked rather than written out, once per request.
fn names_evidence(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "evidence",
        Value::Array(items) => items.iter().any(names_evidence),
        Value::Object(m) => m.iter().any(|(k, v)| k == "evidence" || names_evidence(v)),
        _ => false,
    }
}

/// A prompt beyond the context window is refused.
fn context_window(messages: &[String]) -> Result<(), Failure> {
    match messages.iter().find_map(|m| too_long(m)) {
        Some(tokens) => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!(
                "litellm.ContextWindowExceededError: This model's maximum context length is 128000 tokens. However, your messages resulted in {tokens} tokens."
            ),
            "invalid_request_error",
        )),
        None => Ok(()),
    }
}

/// Who asked: completions are numbered per kind, so batch lines leave `completions()`
/// to synchronous requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    Sync,
    Batch,
}

/// A chat completion and its token counts.
struct Answer {
    body: Value,
    prompt_tokens: usize,
    completion_tokens: usize,
}

/// What the "model" answers an accepted request: the random 500s, then the analysis the
/// prompt asks for, with usage and cached tokens.
fn think(
    st: &Llm,
    model: &str,
    messages: &[String],
    with_evidence: bool,
    caller: Caller,
) -> Result<Answer, Failure> {
    let prompt: std::borrow::Cow<str> = match messages {
        [one] => one.as_str().into(),
        _ => messages.join("\n").into(),
    };
    let shared = st.account_prompt(&prompt);
    if st.dice.roll(st.error_rate.get()) {
        return Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "litellm.InternalServerError: upstream model failed",
            "internal_server_error",
        ));
    }
    let content = if st.refuse_all.load(Ordering::SeqCst) {
        analysis::REFUSAL.to_string()
    } else {
        let adjust = st.score_adjustment(&prompt);
        analysis::content_for(
            &prompt,
            st.first_invalid_once(messages),
            with_evidence,
            &adjust,
        )
    };
    let prompt_tokens = prompt.chars().count() / 4;
    let completion_tokens = content.chars().count() / 4;
    let mut usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    if st.report_cached_tokens {
        usage["prompt_tokens_details"] = json!({"cached_tokens": shared / 4});
    }
    let id = match caller {
        Caller::Sync => format!("chatcmpl-fake-{}", st.completions.bump()),
        Caller::Batch => format!("chatcmpl-fake-batch-{}", st.batch.completions.bump()),
    };
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": st.reported_model.lock().clone().unwrap_or_else(|| model.to_string()),
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }],
        "usage": usage,
    });
    Ok(Answer {
        body,
        prompt_tokens,
        completion_tokens,
    })
}

/// `[too-long]` in a message: a prompt beyond the context window (its size in "tokens").
fn too_long(message: &str) -> Option<usize> {
    message
        .contains(analysis::markers::TOO_LONG)
        .then(|| 128_000 + message.chars().count() / 4)
}

#[cfg(test)]
mod tests;
