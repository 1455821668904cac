//! Fake T-Bank TQM: login, work-group search, paged call listing and
//! transcripts, with token expiry, 5xx/429 bursts, random errors and latency.

mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDateTime;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::server::{
    Counter, Dice, Gate, GateSlot, LatencyKnob, RateKnob, Running, bearer, random_hex,
};

/// One call of the fake's day listing.
#[derive(Clone, Debug, Default)]
pub struct FakeCall {
    pub segment_id: i64,
    /// Local wall-clock time, as TQM reports it (no offset).
    pub start: NaiveDateTime,
    pub duration_s: i64,
    pub operator_id: i64,
    pub operator_login: String,
    pub operator_name: String,
    /// `inbound` / `outbound`.
    pub direction: String,
    pub phone: String,
    /// (is_operator, text); empty = "not transcribed yet".
    pub phrases: Vec<(bool, String)>,
}

/// Everything the fake T-Bank knows and how badly it behaves.
#[derive(Clone, Debug)]
pub struct TbankConfig {
    pub login: String,
    pub password: String,
    /// Expected `authentificationType` (sic) of the login body.
    pub auth_type: String,
    /// Expected `authSystem` of the login body.
    pub auth_system: String,
    /// (id, name) of the work groups the autocomplete search knows. All calls belong to
    /// the FIRST group: listing with any other group's id yields no calls, so a client
    /// that picks the wrong group is caught.
    pub groups: Vec<(i64, String)>,
    pub calls: Vec<FakeCall>,
    /// Items per listing page (the client's `itemsPerPage` can only make pages smaller).
    pub page_size: usize,
    /// Applied to login, group search and listing requests.
    pub listing_latency: Duration,
    pub transcript_latency: Duration,
    pub faults: TbankFaults,
    /// Seed of the random error draws.
    pub seed: u64,
    /// When set, the listing's date range is read as UTC, the calls' local times being at
    /// this offset from UTC: a server that ignores the client's time zone.
    pub range_in_utc: Option<chrono::FixedOffset>,
    /// Only the older login path (`/rest/auth/session-start`) exists; the newer one is 404,
    /// as on older TQM installations.
    pub old_login_path_only: bool,
}

impl Default for TbankConfig {
    fn default() -> Self {
        TbankConfig {
            login: "operator-bot".into(),
            password: "secret".into(),
            auth_type: "tqm".into(),
            auth_system: "tqm".into(),
            groups: vec![(4711, "Торговые представители".into())],
            calls: Vec::new(),
            page_size: 1000,
            listing_latency: Duration::ZERO,
            transcript_latency: Duration::ZERO,
            faults: TbankFaults::default(),
            seed: 0,
            range_in_utc: None,
            old_login_path_only: false,
        }
    }
}

/// Injected failures.
#[derive(Clone, Debug, Default)]
pub struct TbankFaults {
    /// Share of authorized listing and transcript requests answered 500 at random.
    pub error_rate: f64,
    /// The first N authorized transcript requests answer 500.
    pub burst_500: usize,
    /// The next N authorized transcript requests answer 429 with `Retry-After: 0`.
    pub burst_429: usize,
    /// After this many authorized requests the tokens issued so far become invalid (401
    /// until a new login). Happens once.
    pub expire_token_after: Option<u64>,
    /// Unparseable items appended to page 1 of every listing.
    pub broken_items_on_first_page: Vec<Value>,
    /// The first N login requests answer 503 with the request body echoed back, password
    /// and all, as some gateways do.
    pub login_echo_5xx: usize,
    /// Segments whose transcript request answers 200 with an error object instead of a
    /// transcript.
    pub transcript_error_object: Vec<i64>,
    /// Listing pages from this one on always answer 500: a listing that breaks part-way.
    pub listing_fails_from_page: Option<usize>,
}

/// A running fake TQM. Dropping it stops the server.
pub struct FakeTbank {
    running: Running,
    state: Arc<Tbank>,
}

impl FakeTbank {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start(config: TbankConfig) -> Self {
        let old_login_path_only = config.old_login_path_only;
        let state = Arc::new(Tbank::new(config));
        let mut router = Router::new();
        if !old_login_path_only {
            router = router.route("/v2/bff-core-app/auth/session-start", post(login));
        }
        let router = router
            .route("/rest/auth/session-start", post(login))
            .route(
                "/v2/bff-core-app/organizational-structures/autocomplete-search",
                get(search_groups),
            )
            .route(
                "/v2/bff-communication-search/callsessions",
                post(list_calls),
            )
            .route("/v2/bff-core-app/transcription/segment", post(transcript))
            .with_state(Arc::clone(&state));
        FakeTbank {
            running: Running::start(router).await,
            state,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): the `TBANK_BASE_URL` for callq.
    pub fn base_url(&self) -> String {
        self.running.origin()
    }

    /// Login attempts on either login path, successful or not.
    pub fn logins(&self) -> usize {
        self.state.logins.get()
    }

    /// `callsessions` requests, including refused and faulted ones.
    pub fn listing_requests(&self) -> usize {
        self.state.listings.get()
    }

    /// Work-group autocomplete searches.
    pub fn group_searches(&self) -> usize {
        self.state.group_searches.get()
    }

    /// Transcript requests, including refused and faulted ones.
    pub fn transcript_requests(&self) -> usize {
        self.state.transcripts.get()
    }

    /// Transcript requests (all attempts) for one segment.
    pub fn transcript_requests_for(&self, segment_id: i64) -> usize {
        self.state
            .per_segment
            .lock()
            .get(&segment_id)
            .copied()
            .unwrap_or(0)
    }

    /// 401s served: failed logins and requests without a valid token.
    pub fn unauthorized(&self) -> usize {
        self.state.unauthorized.get()
    }

    pub fn served_500(&self) -> usize {
        self.state.served_500.get()
    }

    pub fn served_429(&self) -> usize {
        self.state.served_429.get()
    }

    /// Invalidates every token issued so far; requests get 401 until the next login.
    pub fn expire_token_now(&self) {
        self.state.sessions.lock().valid.clear();
    }

    /// Whether the last authorized request carried `Origin`, `Referer` and
    /// `X-TQM-Version` (false before any authorized request).
    pub fn last_headers_ok(&self) -> bool {
        self.state.last_headers_ok.load(Ordering::Relaxed)
    }

    /// Changes the random 500 share for the rest of the run.
    pub fn set_error_rate(&self, rate: f64) {
        self.state.error_rate.set(rate);
    }

    /// Changes the transcript latency for the rest of the run.
    pub fn set_transcript_latency(&self, latency: Duration) {
        self.state.transcript_latency.set(latency);
    }

    /// Holds every authorized listing request from now on until the returned gate admits
    /// it (`admit(n)`, `release()`, or dropping the gate).
    pub fn hold_listing(&self) -> Gate {
        self.state.listing_gate.install()
    }
}

/// Shared state of the handlers.
struct Tbank {
    login: String,
    password: String,
    auth_type: String,
    auth_system: String,
    groups: Vec<(i64, String)>,
    /// Sorted by (start, segment id): the listing order.
    calls: Vec<FakeCall>,
    by_segment: HashMap<i64, usize>,
    page_size: usize,
    range_in_utc: Option<chrono::FixedOffset>,
    listing_latency: LatencyKnob,
    transcript_latency: LatencyKnob,
    error_rate: RateKnob,
    burst_500: usize,
    burst_429: usize,
    expire_token_after: Option<u64>,
    broken_items: Vec<Value>,
    login_echo_5xx: usize,
    transcript_error_object: Vec<i64>,
    listing_fails_from_page: Option<usize>,
    listing_gate: GateSlot,
    dice: Dice,
    sessions: Mutex<Sessions>,
    logins: Counter,
    listings: Counter,
    group_searches: Counter,
    transcripts: Counter,
    /// Authorized transcript requests so far: the position in the 500/429 bursts.
    transcripts_authorized: Counter,
    per_segment: Mutex<HashMap<i64, usize>>,
    unauthorized: Counter,
    served_500: Counter,
    served_429: Counter,
    last_headers_ok: AtomicBool,
}

/// Valid tokens (several logins may be alive at once, as with the real server's
/// sessions) and the bookkeeping of the one-time expiry.
#[derive(Default)]
struct Sessions {
    valid: HashSet<String>,
    authorized: u64,
    expired_once: bool,
}

impl Tbank {
    fn new(config: TbankConfig) -> Self {
        let mut calls = config.calls;
        calls.sort_by_key(|c| (c.start, c.segment_id));
        let by_segment = calls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.segment_id, i))
            .collect();
        Tbank {
            login: config.login,
            password: config.password,
            auth_type: config.auth_type,
            auth_system: config.auth_system,
            groups: config.groups,
            calls,
            by_segment,
            page_size: config.page_size.max(1),
            range_in_utc: config.range_in_utc,
            listing_latency: LatencyKnob::new(config.listing_latency),
            transcript_latency: LatencyKnob::new(config.transcript_latency),
            error_rate: RateKnob::new(config.faults.error_rate),
            burst_500: config.faults.burst_500,
            burst_429: config.faults.burst_429,
            expire_token_after: config.faults.expire_token_after,
            broken_items: config.faults.broken_items_on_first_page,
            login_echo_5xx: config.faults.login_echo_5xx,
            transcript_error_object: config.faults.transcript_error_object,
            listing_fails_from_page: config.faults.listing_fails_from_page,
            listing_gate: GateSlot::default(),
            dice: Dice::new(config.seed),
            sessions: Mutex::new(Sessions::default()),
            logins: Counter::default(),
            listings: Counter::default(),
            group_searches: Counter::default(),
            transcripts: Counter::default(),
            transcripts_authorized: Counter::default(),
            per_segment: Mutex::new(HashMap::new()),
            unauthorized: Counter::default(),
            served_500: Counter::default(),
            served_429: Counter::default(),
            last_headers_ok: AtomicBool::new(false),
        }
    }

    /// Checks the bearer token, applying the one-time expiry: the 401 to send, or None
    /// after recording whether the browser-like headers were sent.
    fn refuse_unauthorized(&self, headers: &HeaderMap) -> Option<Response> {
        let mut sessions = self.sessions.lock();
        let mut ok = bearer(headers).is_some_and(|t| sessions.valid.contains(t));
        if ok
            && let Some(limit) = self.expire_token_after
            && !sessions.expired_once
            && sessions.authorized >= limit
        {
            sessions.expired_once = true;
            sessions.valid.clear();
            ok = false;
        }
        if !ok {
            drop(sessions);
            self.unauthorized.bump();
            return Some(error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "Access token is missing, invalid or expired",
            ));
        }
        sessions.authorized += 1;
        drop(sessions);
        let present = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| !v.trim().is_empty())
        };
        let browser_like = present("origin") && present("referer") && present("x-tqm-version");
        self.last_headers_ok.store(browser_like, Ordering::Relaxed);
        None
    }

    /// The random 500 of `error_rate`, if drawn.
    fn random_fault(&self) -> Option<Response> {
        self.dice
            .roll(self.error_rate.get())
            .then(|| self.internal_error())
    }

    fn internal_error(&self) -> Response {
        self.served_500.bump();
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "Internal server error",
        )
    }
}

/// TQM-style error body; the real shape is undocumented, callq only needs the status.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errorCode": code, "errorMessage": message, "status": status.as_u16()});
    (status, axum::Json(body)).into_response()
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

fn parse_json(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("request body is not JSON: {e}"))
}

/// §1.1: both login paths share this handler.
async fn login(State(st): State<Arc<Tbank>>, body: Bytes) -> Response {
    let attempt = st.logins.bump();
    st.listing_latency.wait().await;
    if attempt < st.login_echo_5xx {
        st.served_500.bump();
        let echoed = String::from_utf8_lossy(&body);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("upstream unavailable; request was: {echoed}"),
        )
            .into_response();
    }
    let body = match parse_json(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(&e),
    };
    let field = |name: &str| body.get(name).and_then(Value::as_str);
    let accepted = field("login") == Some(st.login.as_str())
        && field("password") == Some(st.password.as_str())
        && field("authentificationType") == Some(st.auth_type.as_str())
        && field("authSystem") == Some(st.auth_system.as_str());
    if !accepted {
        st.unauthorized.bump();
        return error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_FAILED",
            "Неверный логин или пароль",
        );
    }
    let token = random_hex(24);
    st.sessions.lock().valid.insert(token.clone());
    let expires = chrono::Local::now().naive_local() + chrono::Duration::hours(12);
    axum::Json(json!({
        "userId": "7c1e9a52-0f4b-4d8e-9a33-5b2f6d1c0e77",
        "accessToken": token,
        "refreshToken": random_hex(24),
        "userLogin": st.login,
        "accessTokenExpiredDate": expires.format("%Y-%m-%dT%H:%M:%S").to_string(),
    }))
    .into_response()
}

/// §1.2: groups whose name contains the term, case-insensitively.
async fn search_groups(
    State(st): State<Arc<Tbank>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    st.group_searches.bump();
    if let Some(resp) = st.refuse_unauthorized(&headers) {
        return resp;
    }
    st.listing_latency.wait().await;
    let term = query
        .get("term")
        .map(|t| t.trim().to_lowercase())
        .unwrap_or_default();
    let found: Vec<Value> = st
        .groups
        .iter()
        .filter(|(_, name)| name.to_lowercase().contains(&term))
        .map(|(id, name)| {
            json!({
                "id": id,
                "name": name,
                "externalId": null,
                "breadCrumbs": "Компания / Продажи",
                "type": "workGroup",
            })
        })
        .collect();
    axum::Json(Value::Array(found)).into_response()
}

/// §1.3: one page of the day's calls of the first configured group.
async fn list_calls(State(st): State<Arc<Tbank>>, headers: HeaderMap, body: Bytes) -> Response {
    st.listings.bump();
    if let Some(resp) = st.refuse_unauthorized(&headers) {
        return resp;
    }
    st.listing_gate.pass().await;
    st.listing_latency.wait().await;
    if let Some(resp) = st.random_fault() {
        return resp;
    }
    let request = match parse_json(&body).and_then(|v| wire::parse_listing_request(&v)) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    if st
        .listing_fails_from_page
        .is_some_and(|from| request.page >= from)
    {
        return st.internal_error();
    }
    let our_group = st.groups.first().map(|(id, _)| *id);
    let matching: Vec<&FakeCall> = if our_group.is_some_and(|g| request.agent_ids.contains(&g)) {
        st.calls
            .iter()
            .filter(|c| {
                let start = match st.range_in_utc {
                    Some(offset) => c.start - offset,
                    None => c.start,
                };
                (request.min..=request.max).contains(&start)
            })
            .collect()
    } else {
        Vec::new()
    };
    let per_page = request
        .items_per_page
        .map_or(st.page_size, |n| n.min(st.page_size));
    let first = (request.page - 1).saturating_mul(per_page);
    let mut items: Vec<Value> = matching
        .iter()
        .enumerate()
        .skip(first)
        .take(per_page)
        .map(|(index, call)| wire::call_item(call, index))
        .collect();
    if request.page == 1 {
        items.extend(st.broken_items.iter().cloned());
    }
    let next_page = (first.saturating_add(per_page) < matching.len()).then_some(request.page + 1);
    axum::Json(json!({"items": items, "nextPage": next_page, "totalCount": matching.len()}))
        .into_response()
}

/// §1.4: one call's transcript, behind the 500/429 bursts and random errors.
async fn transcript(State(st): State<Arc<Tbank>>, headers: HeaderMap, body: Bytes) -> Response {
    st.transcripts.bump();
    let segment = parse_json(&body).map(|v| v.get("segmentId").and_then(wire::lenient_i64));
    if let Ok(Some(id)) = segment {
        *st.per_segment.lock().entry(id).or_default() += 1;
    }
    if let Some(resp) = st.refuse_unauthorized(&headers) {
        return resp;
    }
    st.transcript_latency.wait().await;
    let position = st.transcripts_authorized.bump();
    if position < st.burst_500 {
        return st.internal_error();
    }
    if position < st.burst_500.saturating_add(st.burst_429) {
        st.served_429.bump();
        let mut resp = error(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "Too many requests",
        );
        resp.headers_mut()
            .insert(RETRY_AFTER, axum::http::HeaderValue::from_static("0"));
        return resp;
    }
    if let Some(resp) = st.random_fault() {
        return resp;
    }
    let id = match segment {
        Ok(Some(id)) => id,
        Ok(None) => return bad_request("`segmentId` is required"),
        Err(e) => return bad_request(&e),
    };
    if st.transcript_error_object.contains(&id) {
        let body = json!({
            "errorCode": "TRANSCRIPTION_FAILED",
            "errorMessage": format!("Сегмент {id} не удалось распознать"),
            "status": 200,
        });
        return axum::Json(body).into_response();
    }
    match st.by_segment.get(&id) {
        Some(&i) => axum::Json(wire::transcript_body(&st.calls[i])).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Segment {id} not found"),
        ),
    }
}

#[cfg(test)]
mod tests;
