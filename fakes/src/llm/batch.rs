//! The fake gateway's Files and Batches API, with OpenAI's reference semantics: a JSONL
//! input file uploaded with `purpose=batch`, a batch over it that goes
//! `validating → in_progress → finalizing → completed` (or `failed`, `expired`,
//! `cancelling → cancelled`), and output and error files of one JSON line per request.
//!
//! Each input line is answered as `POST /v1/chat/completions` would answer its `body`
//! (same checks, analysis, usage and cached tokens, random 500s), without the synchronous
//! path's latency, concurrency limit, bursts and gate: a batch is not rate limited.
//!
//! Files live on disk in a temporary directory, and lines are read and answered one at a
//! time on a thread of their own, so a 100,000-call night costs the fake little memory.
//! By default a batch runs to its end as soon as it is created and every request about
//! it waits for that, so the first poll sees it finished; [`FakeLlm::hold_batches`] lets
//! a test decide when it finishes, expires or how far it has got when cancelled.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::{Condvar, Mutex};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{Caller, Failure, FakeLlm, Llm, context_window, error, think, vet};
use crate::server::{Counter, Gate, GateSlot, bearer, random_hex};

/// The only endpoint batches are accepted for.
const ENDPOINT: &str = "/v1/chat/completions";
/// OpenAI's limit of requests in one input file.
const MAX_LINES: usize = 50_000;
/// OpenAI's limit of one uploaded file.
const MAX_FILE_BYTES: usize = 512 * 1024 * 1024;
/// The purposes OpenAI accepts for an upload.
const PURPOSES: &[&str] = &[
    "batch",
    "assistants",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];

/// The routes of the Files and Batches API, beside chat completions.
pub(super) fn routes(router: Router<Arc<Llm>>) -> Router<Arc<Llm>> {
    router
        .route(
            "/v1/files",
            // The batch input files callq uploads reach 190 MB.
            post(upload).layer(DefaultBodyLimit::max(MAX_FILE_BYTES)),
        )
        .route("/v1/files/{id}", get(file).delete(delete_file))
        .route("/v1/files/{id}/content", get(file_content))
        .route("/v1/batches", post(create).get(list))
        .route("/v1/batches/{id}", get(batch))
        .route("/v1/batches/{id}/cancel", post(cancel))
}

/// The Files and Batches state of one fake gateway.
pub(super) struct Batches {
    /// Numbers the chat completions answered in batches.
    pub(super) completions: Counter,
    dir: tempfile::TempDir,
    state: Mutex<BatchState>,
    /// Signalled whenever a batch's worker stops, for async and blocking waiters.
    settled: tokio::sync::Notify,
    settled_sync: Condvar,
    unavailable: AtomicBool,
    upload_gate: GateSlot,
    creation_gate: GateSlot,
    api_requests: Counter,
    files_uploaded: Counter,
    batches_created: Counter,
    lines: Counter,
    custom_ids: Mutex<Vec<String>>,
}

impl Batches {
    pub(super) fn new() -> Self {
        Batches {
            completions: Counter::default(),
            dir: tempfile::Builder::new()
                .prefix("callq-fake-llm-files")
                .tempdir()
                .expect("a temporary directory for the fake LLM's files"),
            state: Mutex::new(BatchState::default()),
            settled: tokio::sync::Notify::new(),
            settled_sync: Condvar::new(),
            unavailable: AtomicBool::new(false),
            upload_gate: GateSlot::default(),
            creation_gate: GateSlot::default(),
            api_requests: Counter::default(),
            files_uploaded: Counter::default(),
            batches_created: Counter::default(),
            lines: Counter::default(),
            custom_ids: Mutex::new(Vec::new()),
        }
    }

    fn temp_path(&self, what: &str) -> PathBuf {
        self.dir.path().join(format!("{what}-{}", random_hex(12)))
    }

    /// Waits until no batch has work under way.
    async fn settle(&self) {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            // Registered before the check, so a worker stopping in between is not missed.
            notified.as_mut().enable();
            if !self.state.lock().busy() {
                return;
            }
            notified.await;
        }
    }

    /// [`Batches::settle`] for the test's synchronous accessors.
    fn settle_blocking(&self) -> parking_lot::MutexGuard<'_, BatchState> {
        let mut state = self.state.lock();
        while state.busy() {
            self.settled_sync.wait(&mut state);
        }
        state
    }
}

#[derive(Default)]
struct BatchState {
    files: HashMap<String, Arc<StoredFile>>,
    /// In creation order.
    batches: Vec<Batch>,
    /// The hold new batches are created under, if any.
    hold: Option<u64>,
    holds_made: u64,
    /// Batches still to be refused at validation; see [`FakeLlm::fail_next_batches`].
    fail_next: usize,
    /// Output lines still to be spoiled, by `custom_id`; see
    /// [`FakeLlm::corrupt_batch_output`].
    corrupt: HashMap<String, BadLine>,
}

impl BatchState {
    fn busy(&self) -> bool {
        self.batches.iter().any(|b| b.busy)
    }

    fn batch(&mut self, id: &str) -> Option<&mut Batch> {
        self.batches.iter_mut().find(|b| b.id == id)
    }
}

/// An uploaded or generated file; its bytes are on disk until the last holder lets go
/// (a deleted input file is still read by the batch over it).
struct StoredFile {
    id: String,
    bytes: u64,
    created_at: i64,
    filename: String,
    purpose: String,
    path: PathBuf,
}

impl StoredFile {
    fn object(&self) -> Value {
        json!({
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": null,
        })
    }
}

impl Drop for StoredFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Validating,
    Failed,
    InProgress,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Validating => "validating",
            Status::Failed => "failed",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Expired => "expired",
            Status::Cancelling => "cancelling",
            Status::Cancelled => "cancelled",
        }
    }
}

/// How a batch ends once its answered lines are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Complete,
    Expire,
    Cancel,
}

struct Batch {
    id: String,
    input: Arc<StoredFile>,
    completion_window: String,
    metadata: Value,
    created_at: i64,
    status: Status,
    in_progress_at: Option<i64>,
    finalizing_at: Option<i64>,
    completed_at: Option<i64>,
    failed_at: Option<i64>,
    expired_at: Option<i64>,
    cancelling_at: Option<i64>,
    cancelled_at: Option<i64>,
    errors: Option<Value>,
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    /// Lines of the input, once validated.
    total: usize,
    /// Lines answered so far, and where the next one starts in the input.
    answered: usize,
    input_offset: u64,
    completed: usize,
    failed: usize,
    /// The output and error lines written so far.
    output: Part,
    errors_part: Part,
    /// The hold this batch was created under: it stays `in_progress` until that hold
    /// finishes or expires it.
    held_by: Option<u64>,
    /// Share of the lines a hold lets be answered before the batch ends.
    allowed: f64,
    end: Option<End>,
    /// A worker thread is moving this batch on; requests about it wait.
    busy: bool,
    /// Refused at validation whatever its file holds ([`FakeLlm::fail_next_batches`]).
    refuse: bool,
}

/// An output or error file being written.
struct Part {
    path: PathBuf,
    lines: usize,
}

impl Batch {
    fn object(&self) -> Value {
        json!({
            "id": self.id,
            "object": "batch",
            "endpoint": ENDPOINT,
            "errors": self.errors,
            "input_file_id": self.input.id,
            "completion_window": self.completion_window,
            "status": self.status.name(),
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.in_progress_at,
            "expires_at": self.created_at + 24 * 3600,
            "finalizing_at": self.finalizing_at,
            "completed_at": self.completed_at,
            "failed_at": self.failed_at,
            "expired_at": self.expired_at,
            "cancelling_at": self.cancelling_at,
            "cancelled_at": self.cancelled_at,
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        })
    }

    /// How many lines may be answered by now.
    fn target(&self) -> usize {
        match (self.end, self.held_by) {
            (Some(End::Complete), _) | (None, None) => self.total,
            _ => ((self.allowed.clamp(0.0, 1.0) * self.total as f64).floor() as usize)
                .max(self.answered),
        }
    }

    /// How the batch ends now that `target()` lines are answered; `None` while held.
    fn ending(&self) -> Option<End> {
        match (self.end, self.held_by) {
            (Some(end), _) => Some(end),
            (None, None) => Some(End::Complete),
            (None, Some(_)) => None,
        }
    }
}

/// Keeps batches created while it lives `in_progress`; see [`FakeLlm::hold_batches`].
/// Dropping it finishes them.
pub struct BatchHold {
    st: Arc<Llm>,
    id: u64,
}

impl BatchHold {
    /// Completes every batch created under this hold (later ones stay held while it lives).
    /// Returns once they are completed.
    pub fn finish(&self) {
        self.end(Some(End::Complete), None);
    }

    /// Expires every batch created under this hold, with the first `done` share of each
    /// one's lines answered (in its output or error file) and the rest in its error file
    /// as `batch_expired`, as OpenAI does. Returns once they are expired.
    pub fn expire(&self, done: f64) {
        self.end(Some(End::Expire), Some(done));
    }

    /// Answers the first `done` share of the lines of every batch held here, which stay
    /// `in_progress` (`request_counts` tell): what a cancel then keeps. Returns once the
    /// lines are answered.
    pub fn advance(&self, done: f64) {
        self.end(None, Some(done));
    }

    fn end(&self, end: Option<End>, done: Option<f64>) {
        let b = &self.st.batch;
        let mut wake = Vec::new();
        {
            let mut state = b.state.lock();
            for batch in state.batches.iter_mut() {
                let open = matches!(batch.status, Status::Validating | Status::InProgress);
                if batch.held_by != Some(self.id) || !open || batch.end.is_some() {
                    continue;
                }
                if let Some(done) = done {
                    batch.allowed = batch.allowed.max(done);
                }
                batch.end = end;
                if !batch.busy {
                    batch.busy = true;
                    wake.push(batch.id.clone());
                }
            }
        }
        for id in wake {
            spawn_worker(&self.st, id);
        }
        drop(b.settle_blocking());
    }
}

impl Drop for BatchHold {
    fn drop(&mut self) {
        {
            let mut state = self.st.batch.state.lock();
            if state.hold == Some(self.id) {
                state.hold = None;
            }
        }
        self.finish();
    }
}

/// How a line of a batch's output file is spoiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BadLine {
    /// [`FakeLlm::corrupt_batch_output`]: the line is cut off half-way, not JSON.
    NotJson,
    /// [`FakeLlm::misanswer_batch_line`]: a well-formed line whose `body` is not a chat
    /// completion.
    NotACompletion,
}

impl FakeLlm {
    /// The next `n` batches created fail validation at once, as a provider refusing their
    /// input file does: status `failed` with an `errors.data` entry, no line answered,
    /// nothing billed, no output or error file.
    pub fn fail_next_batches(&self, n: usize) {
        self.state.batch.state.lock().fail_next = n;
    }

    /// The next time a batch answers the line of `custom_id`, its result line is cut off
    /// half-way: not JSON. The line is still answered and billed (it counts in
    /// [`FakeLlm::batch_lines`]); later answers for the same `custom_id` are sound.
    pub fn corrupt_batch_output(&self, custom_id: &str) {
        self.spoil(custom_id, BadLine::NotJson);
    }

    /// As [`FakeLlm::corrupt_batch_output`], but the line is well-formed JSON whose
    /// `response.body` is not a chat completion (a Responses API object, no `choices`),
    /// as a gateway mixing up its endpoints might answer.
    pub fn misanswer_batch_line(&self, custom_id: &str) {
        self.spoil(custom_id, BadLine::NotACompletion);
    }

    fn spoil(&self, custom_id: &str, how: BadLine) {
        self.state
            .batch
            .state
            .lock()
            .corrupt
            .insert(custom_id.to_string(), how);
    }

    /// From now until the returned hold is dropped, batches created stay `in_progress`
    /// (after validation: a malformed file still fails at once) until the hold finishes
    /// or expires them. A new hold replaces an earlier one for batches created after it.
    pub fn hold_batches(&self) -> BatchHold {
        let mut state = self.state.batch.state.lock();
        state.holds_made += 1;
        let id = state.holds_made;
        state.hold = Some(id);
        BatchHold {
            st: Arc::clone(&self.state),
            id,
        }
    }

    /// Holds every `POST /v1/files` once its body is received, before the file is stored
    /// and answered, until the gate admits it.
    pub fn hold_uploads(&self) -> Gate {
        self.state.batch.upload_gate.install()
    }

    /// Holds every `POST /v1/batches` after the batch is created (and listed), before the
    /// answer is sent, until the gate admits it.
    pub fn hold_batch_creation(&self) -> Gate {
        self.state.batch.creation_gate.install()
    }

    /// While on, every `/v1/files` and `/v1/batches` request is answered 503.
    pub fn set_batches_unavailable(&self, on: bool) {
        self.state.batch.unavailable.store(on, Ordering::SeqCst);
    }

    /// Requests to `/v1/files` and `/v1/batches`, whatever their answer.
    pub fn batch_api_requests(&self) -> usize {
        self.state.batch.api_requests.get()
    }

    /// Files stored by `POST /v1/files`.
    pub fn files_uploaded(&self) -> usize {
        self.state.batch.files_uploaded.get()
    }

    /// Batches created by `POST /v1/batches` (failed ones too).
    pub fn batches_created(&self) -> usize {
        self.state.batch.batches_created.get()
    }

    /// Batch lines answered, successes and errors: what a provider bills. Lines left
    /// unanswered by an expired or cancelled batch are not counted.
    pub fn batch_lines(&self) -> usize {
        drop(self.state.batch.settle_blocking());
        self.state.batch.lines.get()
    }

    /// The `custom_id` of every batch line answered, in order, repeats kept.
    pub fn batch_custom_ids(&self) -> Vec<String> {
        drop(self.state.batch.settle_blocking());
        self.state.batch.custom_ids.lock().clone()
    }

    /// Every batch as `GET /v1/batches/{id}` shows it now, oldest first.
    pub fn batches(&self) -> Vec<Value> {
        let state = self.state.batch.settle_blocking();
        state.batches.iter().map(Batch::object).collect()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn invalid(message: impl Into<String>) -> Response {
    Failure::new(StatusCode::BAD_REQUEST, message, "invalid_request_error").response()
}

fn not_found(message: impl Into<String>) -> Response {
    Failure::new(StatusCode::NOT_FOUND, message, "invalid_request_error").response()
}

/// What every Files and Batches request goes through first: the gateway-wide refusal,
/// the unavailability knob and the key. `Some` is the refusal to answer.
fn refused(st: &Llm, headers: &HeaderMap) -> Option<Response> {
    st.batch.api_requests.bump();
    if let Some(r) = st.refusal.lock().clone() {
        let status = StatusCode::from_u16(r.status).expect("a status code");
        return Some(error(status, &r.message, &r.kind));
    }
    if st.batch.unavailable.load(Ordering::SeqCst) {
        return Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "files and batches are unavailable",
            "service_unavailable",
        ));
    }
    if bearer(headers).is_none_or(|t| *st.token.lock() != t) {
        st.unauthorized.bump();
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "Authentication Error, Invalid API key",
            "auth_error",
        ));
    }
    None
}

/// `POST /v1/files`: multipart `purpose` and `file`, the file streamed to disk.
async fn upload(State(st): State<Arc<Llm>>, headers: HeaderMap, mut form: Multipart) -> Response {
    if let Some(resp) = refused(&st, &headers) {
        return resp;
    }
    let mut purpose = None;
    let mut received = None;
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return invalid(format!("malformed multipart body: {e}")),
        };
        match field.name() {
            Some("purpose") => match field.text().await {
                Ok(text) => purpose = Some(text),
                Err(e) => return invalid(format!("malformed multipart body: {e}")),
            },
            Some("file") => {
                // OpenAI and LiteLLM (422 "Expected UploadFile") want a file, not a value.
                let Some(filename) = field.file_name().map(str::to_string) else {
                    return invalid("'file' must be a file upload, with a filename.");
                };
                let path = st.batch.temp_path("upload");
                let mut out = tokio::fs::File::create(&path)
                    .await
                    .expect("create a file in the fake's temporary directory");
                let mut bytes = 0u64;
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            bytes += chunk.len() as u64;
                            out.write_all(&chunk).await.expect("write an uploaded file");
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tokio::fs::remove_file(&path).await;
                            return invalid(format!("malformed multipart body: {e}"));
                        }
                    }
                }
                out.flush().await.expect("write an uploaded file");
                // Owns the bytes on disk from here, so an early return removes them.
                received = Some(StoredFile {
                    id: format!("file-{}", random_hex(12)),
                    bytes,
                    created_at: now(),
                    filename,
                    purpose: String::new(),
                    path,
                });
            }
            _ => {}
        }
    }
    let Some(mut file) = received else {
        return invalid("Missing required parameter: 'file'.");
    };
    let Some(purpose) = purpose else {
        return invalid("Missing required parameter: 'purpose'.");
    };
    if !PURPOSES.contains(&purpose.as_str()) {
        return invalid(format!("Invalid value for 'purpose': '{purpose}'."));
    }
    file.purpose = purpose;
    st.batch.upload_gate.pass().await;
    let object = file.object();
    st.batch
        .state
        .lock()
        .files
        .insert(file.id.clone(), Arc::new(file));
    st.batch.files_uploaded.bump();
    axum::Json(object).into_response()
}

fn stored(st: &Llm, id: &str) -> Result<Arc<StoredFile>, Failure> {
    st.batch.state.lock().files.get(id).cloned().ok_or_else(|| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("No such File object: {id}"),
            "invalid_request_error",
        )
    })
}

/// `GET /v1/files/{id}`.
async fn file(State(st): State<Arc<Llm>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(resp) = refused(&st, &headers) {
        return resp;
    }
    match stored(&st, &id) {
        Ok(f) => axum::Json(f.object()).into_response(),
        Err(f) => f.response(),
    }
}

/// `GET /v1/files/{id}/content`: the raw bytes, streamed from disk.
async fn file_content(
    State(st): State<Arc<Llm>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(resp) = refused(&st, &headers) {
        return resp;
    }
    let f = match stored(&st, &id) {
        Ok(f) => f,
        Err(f) => return f.response(),
    };
    // Once open, the bytes stay readable even if the file is deleted meanwhile.
    let opened = tokio::fs::File::open(&f.path)
        .await
        .expect("open a stored file");
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(opened));
    ([(CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

/// `DELETE /v1/files/{id}`.
async fn delete_file(
    State(st): State<Arc<Llm>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(resp) = refused(&st, &headers) {
        return resp;
    }
    match st.batch.state.lock().files.remove(&id) {
        Some(_) => axum::Json(json!({"id": id, "object": "file", "deleted": true})).into_response(),
        None => not_found(format!("No such File object: {id}")),
    }
}

/// OpenAI's limits on `metadata`: up to 16 string pairs, keys up to 64 characters,
/// values up to 512.
fn check_metadata(metadata: &Value) -> Result<(), String> {
    let Some(map) = metadata.as_object() else {
        return Err("Invalid type for 'metadata': expected an object.".into());
    };
    if map.len() > 16 {
        return Err("Invalid 'metadata': too many keys (at most 16).".into());
    }
    for (k, v) in map {
        if k.chars().count() > 64 {
            return Err(format!("Invalid 'metadata': key '{k}' is longer than 64."));
        }
        match v.as_str() {
            Some(s) if s.chars().count() <= 512 => {}
            Some(_) => return Err(format!("Invalid 'metadata.{k}': longer than 512.")),
            None => {
                return Err(format!(
                    "Invalid type for 'metadata.{k}': expected a string."
                ));
            }
        }
    }
    Ok(())
}

/// `POST /v1/batches`.
async fn create(State(st): State<Arc<Llm>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(resp) = refused(&st, &headers) {
        return resp;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid("We could not parse the JSON body of your request.");
    };
    let Some(input_file_id) = body.get("input_file_id").and_then(Value::as_str) else {
        return invalid("Missing required parameter: 'input_file_id'.");
    };
    match body.get("endpoint").and_then(Value::as_str) {
        Some(ENDPOINT) => {}
        Some(other) => return invalid(format!("Invalid value for 'endpoint': '{other}'.")),
        None => return invalid("Missing required parameter: 'endpoint'."),
    }
    match body.get("completion_window").and_then(Value::as_str) {
        Some("24h") => {}
        Some(other) => {
            return invalid(format!(
                "Invalid value for 'completion_window': '{other}'. Supported values are: '24h'."
            ));
        }
        None => return invalid("Missing required parameter: 'completion_window'."),
    }
    let metadata = body.get("metadata").cloned().unwrap_or(Value::Null);
    if !metadata.is_null()
        && let Err(message) = check_metadata(&metadata)
    {
        return invalid(message);
    }
    let input = match stored(&st, input_file_id) {
        Ok(f) => f,
        Err(f) => return f.response(),
    };
    if input.purpose != "batch" {
        return invalid(format!(
            "The input file {input_file_id} must have purpose 'batch', not '{}'.",
            input.purpose
        ));
    }
    let id = format!("batch_{}", random_hex(16));
    let object = {
        let mut state = st.batch.state.lock();
        let batch = Batch {
            id: id.clone(),
            input,
            completion_window: "24h".into(),
            metadata,
            created_at: now(),
            status: Status::Validating,
            in_progress_at: None,
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            errors: None,
            output_file_id: None,
            error_file_id: None,
            total: 0,
            answered: 0,
            input_offset: 0,
            completed: 0,
            failed: 0,
            output: Part {
                path: st.batch.temp_path("output"),
                lines: 0,
            },
            errors_part: Part {
                path: st.batch.temp_path("errors"),
                lines: 0,
            },
            held_by: state.hold,
            allowed: 0.0,
            end: None,
            busy: true,
            refuse: state.fail_next > 0,
        };
        state.fail_next = state.fail_next.saturating_sub(1);
        let object = batch.object();
        state.batches.push(batch);
        object
    };
    st.batch.batches_created.bump();
    spawn_worker(&st, id);
    st.batch.creation_gate.pass().await;
    axum::Json(object).into_response()
}

/// `GET /v1/batches/{id}`.
async fn batch(State(st): State<Arc<Llm>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(resp) = refused(&st, &headers) {
        return resp;
    }
    st.batch.settle().await;
    match st.batch.state.lock().batch(&id) {
        Some(b) => axum::Json(b.object()).into_response(),
        None => not_found(format!("No such batch: {id}")),
    }
}

/// `GET /v1/batches?limit=N&after=ID`: newest first, `after` the last id of a page.
async fn list(
    State(st): State<Arc<Llm>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(resp) = refused(&st, &headers) {
        return resp;
    }
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return invalid("Invalid 'limit': expected an integer from 1 to 100."),
    };
    st.batch.settle().await;
    let state = st.batch.state.lock();
    let newest_first: Vec<&Batch> = state.batches.iter().rev().collect();
    let start = match query.get("after") {
        None => 0,
        Some(after) => match newest_first.iter().position(|b| b.id == *after) {
            Some(i) => i + 1,
            None => return invalid(format!("Invalid 'after': no batch {after}.")),
        },
    };
    let page: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(limit)
        .map(|b| b.object())
        .collect();
    let has_more = newest_first.len() > start + page.len();
    axum::Json(json!({
        "object": "list",
        "first_id": page.first().map(|b| b["id"].clone()),
        "last_id": page.last().map(|b| b["id"].clone()),
        "has_more": has_more,
        "data": page,
    }))
    .into_response()
}

/// `POST /v1/batches/{id}/cancel`: answers `cancelling`; the batch is `cancelled`, with
/// the lines answered so far, by the next request about it.
async fn cancel(
    State(st): State<Arc<Llm>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(resp) = refused(&st, &headers) {
        return resp;
    }
    st.batch.settle().await;
    let object = {
        let mut state = st.batch.state.lock();
        let Some(b) = state.batch(&id) else {
            return not_found(format!("No such batch: {id}"));
        };
        match b.status {
            Status::Validating | Status::InProgress => {
                b.status = Status::Cancelling;
                b.cancelling_at = Some(now());
                b.end = Some(End::Cancel);
                b.busy = true;
            }
            Status::Cancelling => return axum::Json(b.object()).into_response(),
            other => {
                return Failure::new(
                    StatusCode::CONFLICT,
                    format!("Cannot cancel a batch with status '{}'.", other.name()),
                    "invalid_request_error",
                )
                .response();
            }
        }
        b.object()
    };
    spawn_worker(&st, id);
    axum::Json(object).into_response()
}

/// Moves a batch (marked busy by the caller) on as far as it may go, on a thread of its
/// own: answering lines is CPU work, and tests and handlers wait on `busy` meanwhile.
fn spawn_worker(st: &Arc<Llm>, id: String) {
    let st = Arc::clone(st);
    std::thread::Builder::new()
        .name("fake-llm-batch".into())
        .spawn(move || {
            let guard = Worker { st: &st, id: &id };
            guard.run();
        })
        .expect("spawn a batch worker thread");
}

struct Worker<'a> {
    st: &'a Llm,
    id: &'a str,
}

/// One step of a worker, decided under the lock and done outside it.
enum Step {
    Validate(Arc<StoredFile>, bool),
    Answer {
        input: Arc<StoredFile>,
        from: u64,
        lines: usize,
        output: PathBuf,
        errors: PathBuf,
    },
    End {
        end: End,
        input: Arc<StoredFile>,
        from: u64,
        errors: PathBuf,
    },
}

impl Worker<'_> {
    fn run(&self) {
        while let Some(step) = self.next_step() {
            match step {
                Step::Validate(input, refuse) => {
                    let outcome = if refuse {
                        Err(vec![refusal()])
                    } else {
                        validate(&input)
                    };
                    let mut state = self.st.batch.state.lock();
                    let b = state.batch(self.id).expect("a batch is never removed");
                    match outcome {
                        Ok(total) => {
                            b.total = total;
                            // A batch cancelled while validating stays cancelling.
                            if b.status == Status::Validating {
                                b.status = Status::InProgress;
                            }
                            b.in_progress_at = Some(now());
                        }
                        Err(errors) => {
                            b.status = Status::Failed;
                            b.failed_at = Some(now());
                            b.errors = Some(json!({"object": "list", "data": errors}));
                        }
                    }
                }
                Step::Answer {
                    input,
                    from,
                    lines,
                    output,
                    errors,
                } => {
                    let done = answer_lines(self.st, &input, from, lines, &output, &errors);
                    let mut state = self.st.batch.state.lock();
                    let b = state.batch(self.id).expect("a batch is never removed");
                    b.answered += lines;
                    b.input_offset = done.offset;
                    b.completed += done.ok;
                    b.failed += done.failed;
                    b.output.lines += done.ok;
                    b.errors_part.lines += done.failed;
                }
                Step::End {
                    end,
                    input,
                    from,
                    errors,
                } => {
                    let code = match end {
                        End::Complete => None,
                        End::Expire => Some((
                            "batch_expired",
                            "This request could not be executed before the completion window expired.",
                        )),
                        End::Cancel => Some((
                            "batch_cancelled",
                            "This request was not executed because the batch was cancelled.",
                        )),
                    };
                    let unanswered = match code {
                        Some(code) => write_unanswered(&input, from, &errors, code),
                        None => 0,
                    };
                    self.finish(end, unanswered);
                }
            }
        }
    }

    /// What to do next, or `None` (the batch no longer busy) when it must wait or is done.
    fn next_step(&self) -> Option<Step> {
        let mut state = self.st.batch.state.lock();
        let b = state.batch(self.id).expect("a batch is never removed");
        let step = match b.status {
            Status::Validating => Some(Step::Validate(Arc::clone(&b.input), b.refuse)),
            Status::InProgress | Status::Cancelling if b.errors.is_none() => {
                let target = b.target();
                if b.answered < target {
                    Some(Step::Answer {
                        input: Arc::clone(&b.input),
                        from: b.input_offset,
                        lines: target - b.answered,
                        output: b.output.path.clone(),
                        errors: b.errors_part.path.clone(),
                    })
                } else {
                    b.ending().map(|end| Step::End {
                        end,
                        input: Arc::clone(&b.input),
                        from: b.input_offset,
                        errors: b.errors_part.path.clone(),
                    })
                }
            }
            _ => None,
        };
        if step.is_none() {
            b.busy = false;
            drop(state);
            self.st.batch.settled.notify_waiters();
            self.st.batch.settled_sync.notify_all();
        }
        step
    }

    /// The final status, with the output and error files stored as files.
    fn finish(&self, end: End, unanswered: usize) {
        let b = &self.st.batch;
        let mut state = b.state.lock();
        let batch = state.batch(self.id).expect("a batch is never removed");
        let t = now();
        batch.errors_part.lines += unanswered;
        match end {
            End::Complete => {
                // Finalizing is over before anyone can look: requests wait for the worker.
                batch.finalizing_at = Some(t);
                batch.completed_at = Some(t);
                batch.status = Status::Completed;
            }
            End::Expire => {
                batch.expired_at = Some(t);
                batch.status = Status::Expired;
            }
            End::Cancel => {
                batch.cancelling_at.get_or_insert(t);
                batch.cancelled_at = Some(t);
                batch.status = Status::Cancelled;
            }
        }
        let mut files = Vec::new();
        for (part, kind) in [(&batch.output, "output"), (&batch.errors_part, "error")] {
            if part.lines == 0 {
                let _ = std::fs::remove_file(&part.path);
                continue;
            }
            let bytes = std::fs::metadata(&part.path).map_or(0, |m| m.len());
            files.push(StoredFile {
                id: format!("file-{}", random_hex(12)),
                bytes,
                created_at: t,
                filename: format!("{}_{kind}.jsonl", batch.id),
                purpose: "batch_output".into(),
                path: part.path.clone(),
            });
        }
        for f in &files {
            if f.filename.ends_with("_output.jsonl") {
                batch.output_file_id = Some(f.id.clone());
            } else {
                batch.error_file_id = Some(f.id.clone());
            }
        }
        for f in files {
            state.files.insert(f.id.clone(), Arc::new(f));
        }
    }
}

impl Drop for Worker<'_> {
    /// A worker that panicked (a full disk, say) fails its batch rather than leaving
    /// every request about it waiting forever.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut state = self.st.batch.state.lock();
        if let Some(b) = state.batch(self.id) {
            b.status = Status::Failed;
            b.failed_at = Some(now());
            b.errors = Some(json!({"object": "list", "data": [
                {"code": "server_error", "message": "the fake's batch worker panicked", "param": null, "line": null}
            ]}));
            b.busy = false;
        }
        drop(state);
        self.st.batch.settled.notify_waiters();
        self.st.batch.settled_sync.notify_all();
    }
}

fn line_error(code: &str, message: String, param: Option<&str>, line: usize) -> Value {
    json!({"code": code, "message": message, "param": param, "line": line})
}

/// Why a batch of [`FakeLlm::fail_next_batches`] is refused: what OpenAI answers for a
/// well-formed file it will not take, its organisation's queue of batch tokens being full.
fn refusal() -> Value {
    json!({
        "code": "token_limit_exceeded",
        "message": "Enqueued token limit reached for this model in your organization. \
                    Please try again once some in_progress batches have been completed.",
        "param": null,
        "line": null,
    })
}

/// Checks every line of an input file; returns the number of lines, or the errors.
fn validate(input: &StoredFile) -> Result<usize, Vec<Value>> {
    let reader = BufReader::new(File::open(&input.path).expect("open a stored file"));
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut total = 0;
    for (i, line) in reader.split(b'\n').enumerate() {
        let n = i + 1;
        let line = line.expect("read a stored file");
        total = n;
        let Ok(value) = serde_json::from_slice::<Value>(&line) else {
            errors.push(line_error(
                "invalid_json_line",
                format!("Line {n} is not valid JSON."),
                None,
                n,
            ));
            continue;
        };
        match value.get("custom_id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => {
                if !seen.insert(id.to_string()) {
                    errors.push(line_error(
                        "duplicate_custom_id",
                        format!("The custom_id '{id}' on line {n} is not unique in the file."),
                        Some("custom_id"),
                        n,
                    ));
                }
            }
            _ => errors.push(line_error(
                "missing_required_parameter",
                format!("Line {n} has no custom_id."),
                Some("custom_id"),
                n,
            )),
        }
        if value.get("method").and_then(Value::as_str) != Some("POST") {
            errors.push(line_error(
                "invalid_method",
                format!("Line {n}: the method must be POST."),
                Some("method"),
                n,
            ));
        }
        if value.get("url").and_then(Value::as_str) != Some(ENDPOINT) {
            errors.push(line_error(
                "invalid_url",
                format!("Line {n}: the url must be {ENDPOINT}, the batch's endpoint."),
                Some("url"),
                n,
            ));
        }
        if !value.get("body").is_some_and(Value::is_object) {
            errors.push(line_error(
                "missing_required_parameter",
                format!("Line {n} has no body."),
                Some("body"),
                n,
            ));
        }
    }
    if total == 0 {
        errors.push(json!({"code": "empty_file", "message": "The input file is empty.", "param": null, "line": null}));
    }
    if total > MAX_LINES {
        errors.push(json!({"code": "too_many_requests",
            "message": format!("The input file has {total} requests; at most {MAX_LINES} are allowed."),
            "param": null, "line": null}));
    }
    if errors.is_empty() {
        Ok(total)
    } else {
        Err(errors)
    }
}

/// What answering a run of lines did.
struct Answered {
    ok: usize,
    failed: usize,
    offset: u64,
}

/// Opens a stored file for reading from `offset`.
fn read_from(input: &StoredFile, offset: u64) -> BufReader<File> {
    let mut file = File::open(&input.path).expect("open a stored file");
    file.seek(SeekFrom::Start(offset))
        .expect("seek in a stored file");
    BufReader::new(file)
}

fn append(path: &PathBuf) -> BufWriter<File> {
    BufWriter::new(
        File::options()
            .create(true)
            .append(true)
            .open(path)
            .expect("open a batch's output"),
    )
}

/// Answers `lines` lines of a validated input file from byte `from`, appending each
/// answer to the output or the error file.
fn answer_lines(
    st: &Llm,
    input: &StoredFile,
    from: u64,
    lines: usize,
    output: &PathBuf,
    errors: &PathBuf,
) -> Answered {
    let mut reader = read_from(input, from);
    let (mut out, mut err) = (append(output), append(errors));
    let mut done = Answered {
        ok: 0,
        failed: 0,
        offset: from,
    };
    let mut line = Vec::new();
    for _ in 0..lines {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .expect("read a stored file");
        done.offset += n as u64;
        let request: Value = serde_json::from_slice(&line).expect("a validated line");
        let custom_id = request["custom_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let result = answer(st, &request["body"]);
        let (status, body) = match result {
            Ok(body) => (StatusCode::OK, body),
            Err(f) => (f.status, f.body()),
        };
        let record = json!({
            "id": format!("batch_req_{}", random_hex(16)),
            "custom_id": custom_id,
            "response": {
                "status_code": status.as_u16(),
                "request_id": random_hex(16),
                "body": body,
            },
            "error": null,
        });
        let sink = if status == StatusCode::OK {
            done.ok += 1;
            &mut out
        } else {
            done.failed += 1;
            &mut err
        };
        let spoil = st.batch.state.lock().corrupt.remove(&custom_id);
        let written = match spoil {
            None => record.to_string().into_bytes(),
            Some(how) => spoiled(record, how),
        };
        sink.write_all(&written).expect("write a batch's output");
        sink.write_all(b"\n").expect("write a batch's output");
        st.batch.lines.bump();
        st.batch.custom_ids.lock().push(custom_id);
    }
    out.flush().expect("write a batch's output");
    err.flush().expect("write a batch's output");
    done
}

/// A result line spoiled as `how` says; see [`FakeLlm::corrupt_batch_output`].
fn spoiled(mut record: Value, how: BadLine) -> Vec<u8> {
    match how {
        BadLine::NotJson => {
            // Cut as a broken stream would: mid-character, if that is where half falls.
            let mut bytes = record.to_string().into_bytes();
            bytes.truncate(bytes.len() / 2);
            bytes
        }
        BadLine::NotACompletion => {
            record["response"]["body"] = json!({
                "id": format!("resp_{}", random_hex(12)),
                "object": "response",
                "status": "completed",
                "output": [],
            });
            record.to_string().into_bytes()
        }
    }
}

/// One line's answer: a chat completion, or the error `/v1/chat/completions` would give.
fn answer(st: &Llm, body: &Value) -> Result<Value, Failure> {
    // Only LiteLLM's synchronous path understands `timeout`; a provider refuses it.
    if body.get("timeout").is_some() {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "Unrecognized request argument supplied: timeout",
            "invalid_request_error",
        ));
    }
    let v = vet(st, body)?;
    context_window(&v.messages)?;
    think(st, &v.model, &v.messages, v.with_evidence, Caller::Batch).map(|a| a.body)
}

/// Writes an error line with `code` for every line of the input from byte `from`: the
/// requests an expired or cancelled batch never ran. Returns how many.
fn write_unanswered(
    input: &StoredFile,
    from: u64,
    errors: &PathBuf,
    (code, message): (&str, &str),
) -> usize {
    let reader = read_from(input, from);
    let mut err = append(errors);
    let mut n = 0;
    for line in reader.split(b'\n') {
        let line = line.expect("read a stored file");
        let request: Value = serde_json::from_slice(&line).expect("a validated line");
        let record = json!({
            "id": format!("batch_req_{}", random_hex(16)),
            "custom_id": request["custom_id"],
            "response": null,
            "error": {"code": code, "message": message},
        });
        serde_json::to_writer(&mut err, &record).expect("write a batch's output");
        err.write_all(b"\n").expect("write a batch's output");
        n += 1;
    }
    err.flush().expect("write a batch's output");
    n
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
