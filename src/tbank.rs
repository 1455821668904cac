//! The T-Bank TQM client. Its wire types stay private here; the rest of
//! callq sees `Call` and `Transcript`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;
use futures::Stream;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use crate::breaker::{Breaker, Verdict};
use crate::domain::{Call, Phrase, Speaker, Transcript};
use crate::retry::{RetryPolicy, Transient, retry_hint};

#[derive(Clone)]
pub struct TbankSettings {
    pub base_url: String,
    pub login: String,
    pub password: String,
    pub auth_type: String,
    pub auth_system: String,
    pub group_name: String,
    pub tqm_version: String,
    pub timeout: Duration,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// Transcript requests failing alike in a row (after retries) that stop the run.
    pub breaker_threshold: usize,
}

impl std::fmt::Debug for TbankSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of every debug print.
        f.debug_struct("TbankSettings")
            .field("base_url", &self.base_url)
            .field("login", &self.login)
            .field("group_name", &self.group_name)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TbankError {
    #[error(
        "T-Bank login refused for {login:?} (HTTP {status}); check LOGIN, PASSWORD, AUTH_TYPE, AUTH_SYSTEM"
    )]
    LoginRefused { login: String, status: u16 },
    #[error("T-Bank work group {wanted:?} not found; the search returned: {found}")]
    GroupNotFound { wanted: String, found: String },
    #[error("T-Bank {what}: HTTP {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("T-Bank {what}: {source}")]
    Transport {
        what: String,
        source: reqwest::Error,
    },
    #[error("T-Bank {what}: unexpected response: {message}")]
    Decode { what: String, message: String },
    #[error("T-Bank {what}: still unauthorized after logging in again")]
    Unauthorized { what: String },
    /// `count` transcript requests in a row failed alike after their retries, none
    /// succeeded since: T-Bank would fail every other one too.
    #[error("T-Bank failed {count} transcript requests in a row alike: {error}")]
    Refusing { error: String, count: usize },
}

impl TbankError {
    /// Errors that make the whole run meaningless (as opposed to one call failing).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            TbankError::LoginRefused { .. }
                | TbankError::GroupNotFound { .. }
                | TbankError::Refusing { .. }
        )
    }
}

impl crate::error::Severe for TbankError {
    fn severity(&self) -> crate::error::Severity {
        use crate::error::Severity;
        match self {
            TbankError::GroupNotFound { .. } => Severity::Input,
            e if e.is_fatal() => Severity::Unavailable,
            _ => Severity::Call,
        }
    }
}

impl Transient for TbankError {
    fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            TbankError::Status {
                status,
                retry_after,
                ..
            } if *status == 429 || *status >= 500 => Some(*retry_after),
            TbankError::Transport { source, .. }
                if source.is_timeout()
                    || source.is_connect()
                    || source.is_request()
                    || source.is_body() =>
            {
                Some(None)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub kind: String,
}

/// One page of the listing: the day's calls that parsed, how many items did not, and how
/// many were calls of a neighbouring day (the listing asks with a margin, see
/// `listing_window`); only `calls` count as listed.
#[derive(Debug, Default)]
pub struct Page {
    pub calls: Vec<Call>,
    pub broken: usize,
    /// The unreadable items, with their id when one could be read: recorded like failed
    /// calls, so the day is listed again.
    pub unreadable: Vec<(Option<i64>, String)>,
    pub other_days: usize,
}

#[derive(Clone)]
pub struct TbankClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    settings: TbankSettings,
    /// The access token and a generation counter, so concurrent 401s log in once.
    token: RwLock<(String, u64)>,
    /// Judges transcript failures that repeat alike (see `breaker`).
    breaker: Breaker,
}

const PAGE_SIZE: u32 = 1000;
/// How the listing filter's bounds are written.
const FILTER_DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
const LOGIN_PATHS: [&str; 2] = [
    "/v2/bff-core-app/auth/session-start",
    "/rest/auth/session-start",
];

impl TbankClient {
    pub fn new(settings: TbankSettings) -> Result<Self, TbankError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(settings.concurrency.max(1) * 2)
            .build()
            .map_err(|source| TbankError::Transport {
                what: "client setup".into(),
                source,
            })?;
        // The run fetches at most `concurrency` transcripts at once.
        let breaker = Breaker::new(settings.breaker_threshold, settings.concurrency.max(1));
        Ok(TbankClient {
            inner: Arc::new(Inner {
                http,
                settings,
                token: RwLock::new((String::new(), 0)),
                breaker,
            }),
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.inner.settings.base_url.trim_end_matches('/'),
            path
        )
    }

    /// Starts a session. Retries transient trouble; a refusal is final.
    pub async fn login(&self) -> Result<(), TbankError> {
        let generation = self.inner.token.read().await.1;
        self.login_if_stale(generation).await
    }

    /// Logs in unless another task already did since `seen_generation`.
    async fn login_if_stale(&self, seen_generation: u64) -> Result<(), TbankError> {
        let mut guard = self.inner.token.write().await;
        if guard.1 != seen_generation {
            return Ok(());
        }
        // Older TQM installations only know the older path: fall back to it on a 404.
        let resp = match self.start_session(LOGIN_PATHS[0]).await {
            Err(TbankError::LoginRefused { status: 404, .. }) => {
                self.start_session(LOGIN_PATHS[1]).await?
            }
            other => other?,
        };
        guard.0 = resp.access_token;
        guard.1 += 1;
        tracing::info!("T-Bank session started for {}", self.inner.settings.login);
        Ok(())
    }

    /// One login at `path`, retrying transient trouble; a refusal is final.
    async fn start_session(&self, path: &str) -> Result<SessionStart, TbankError> {
        let s = &self.inner.settings;
        let body = serde_json::json!({
            "login": s.login,
            "password": s.password,
            "authentificationType": s.auth_type,
            "authSystem": s.auth_system,
        });
        let url = self.url(path);
        s.retry
            .run("T-Bank login", || async {
                let r = self
                    .browser_headers(self.inner.http.post(&url))
                    .json(&body)
                    .send()
                    .await
                    .map_err(|source| TbankError::Transport {
                        what: "login".into(),
                        source,
                    })?;
                let status = r.status();
                if status.is_success() {
                    return r
                        .json::<SessionStart>()
                        .await
                        .map_err(|e| TbankError::Decode {
                            what: "login".into(),
                            message: e.to_string(),
                        });
                }
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    return Err(status_error("login", r).await);
                }
                Err(TbankError::LoginRefused {
                    login: s.login.clone(),
                    status: status.as_u16(),
                })
            })
            .await
    }

    fn browser_headers(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let base = self.inner.settings.base_url.trim_end_matches('/');
        rb.header("Origin", base)
            .header("Referer", format!("{base}/v2/transcription/segment/"))
            .header("X-TQM-Version", &self.inner.settings.tqm_version)
    }

    /// Sends an authorized request with retries; on 401 logs in again once and retries.
    async fn authorized<T, F>(&self, what: &str, build: F) -> Result<T, TbankError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let mut relogged = false;
        loop {
            let (token, generation) = self.inner.token.read().await.clone();
            let result = self
                .inner
                .settings
                .retry
                .run(what, || async {
                    let r = self
                        .browser_headers(build(&self.inner.http))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .map_err(|source| TbankError::Transport {
                            what: what.to_string(),
                            source,
                        })?;
                    if !r.status().is_success() {
                        return Err(status_error(what, r).await);
                    }
                    let bytes = r.bytes().await.map_err(|source| TbankError::Transport {
                        what: what.to_string(),
                        source,
                    })?;
                    serde_json::from_slice::<T>(&bytes).map_err(|e| TbankError::Decode {
                        what: what.to_string(),
                        message: e.to_string(),
                    })
                })
                .await;
            match result {
                Err(TbankError::Status { status: 401, .. }) if !relogged => {
                    tracing::info!("T-Bank {what}: token expired, logging in again");
                    self.login_if_stale(generation).await?;
                    relogged = true;
                }
                Err(TbankError::Status { status: 401, .. }) => {
                    return Err(TbankError::Unauthorized {
                        what: what.to_string(),
                    });
                }
                other => return other,
            }
        }
    }

    /// The work group named exactly `AGENT_GROUP_NAME` (case and outer spaces aside).
    pub async fn find_group(&self) -> Result<Group, TbankError> {
        let wanted = self.inner.settings.group_name.clone();
        let url = self.url("/v2/bff-core-app/organizational-structures/autocomplete-search");
        let items: Vec<Value> = self
            .authorized("group search", |http| {
                http.get(&url).query(&[
                    ("term", wanted.as_str()),
                    ("type", ""),
                    ("parentFolderId", ""),
                ])
            })
            .await?;
        let groups: Vec<Group> = items.iter().filter_map(parse_group).collect();
        let key = wanted.trim().to_lowercase();
        groups
            .iter()
            .find(|g| g.name.trim().to_lowercase() == key)
            .cloned()
            .ok_or_else(|| {
                let found = if groups.is_empty() {
                    "nothing".to_string()
                } else {
                    groups
                        .iter()
                        .map(|g| format!("{:?}", g.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                TbankError::GroupNotFound { wanted, found }
            })
    }

    /// The day's calls, page by page, as they arrive: the first page can be worked on
    /// while later ones are still being fetched.
    pub fn calls_of_day(
        &self,
        group: Group,
        day: NaiveDate,
        tz: Tz,
    ) -> impl Stream<Item = Result<Page, TbankError>> + Send + 'static {
        let client = self.clone();
        futures::stream::try_unfold(Some(1u64), move |page| {
            let client = client.clone();
            let group = group.clone();
            async move {
                let Some(page) = page else { return Ok(None) };
                let (parsed, next) = client.list_page(&group, day, tz, page).await?;
                // A server that repeats a page number would loop forever; stop instead.
                let next = next.filter(|n| *n > page);
                Ok(Some((parsed, next)))
            }
        })
    }

    async fn list_page(
        &self,
        group: &Group,
        day: NaiveDate,
        tz: Tz,
        page: u64,
    ) -> Result<(Page, Option<u64>), TbankError> {
        let (min, max) = listing_window(day, tz);
        let body = serde_json::json!({
            "filters": {
                "date": {
                    "min": min.format(FILTER_DATE_FORMAT).to_string(),
                    "max": max.format(FILTER_DATE_FORMAT).to_string(),
                },
                "agent": [{"id": group.id, "type": group.kind, "title": group.name}],
                "isNGramSearch": false,
            },
            "paging": {"page": page, "itemsPerPage": PAGE_SIZE, "itemsCount": 0},
        });
        let url = self.url("/v2/bff-communication-search/callsessions");
        let what = format!("call listing page {page}");
        let resp: CallSessions = self
            .authorized(&what, |http| http.post(&url).json(&body))
            .await?;
        let mut out = Page::default();
        for item in &resp.items {
            match parse_call(item, tz) {
                Ok(call) if on_day(&call, day, tz) => out.calls.push(call),
                Ok(call) => {
                    out.other_days += 1;
                    tracing::debug!(
                        "call {} starts {} — not on {day}; ignored",
                        call.id,
                        call.start
                    );
                }
                Err(e) => {
                    out.broken += 1;
                    let id = int_field(item, "segmentId")
                        .ok()
                        .flatten()
                        .or_else(|| int_field(item, "id").ok().flatten());
                    out.unreadable.push((id, e.clone()));
                    // The item's field names, never its values: it carries the
                    // customer's phone number.
                    tracing::warn!(
                        "{what}: skipping an item that cannot be read ({e}); its fields: {}",
                        field_names(item)
                    );
                }
            }
        }
        Ok((
            out,
            resp.next_page.as_ref().and_then(as_i64).map(|n| n as u64),
        ))
    }

    /// One call's transcript; empty when T-Bank has not transcribed it yet. A failure
    /// after retries goes before the breaker: alike ones in a row stop the run.
    pub async fn transcript(&self, segment_id: i64) -> Result<Transcript, TbankError> {
        let breaker = &self.inner.breaker;
        let _inside = breaker.enter();
        let url = self.url("/v2/bff-core-app/transcription/segment?token=");
        let what = format!("transcript of call {segment_id}");
        let body = serde_json::json!({ "segmentId": segment_id });
        let result: Result<Value, TbankError> = self
            .authorized(&what, |http| http.post(&url).json(&body))
            .await;
        let signature = match &result {
            Ok(_) => {
                breaker.success();
                None
            }
            // Never the call's id: alike failures of different calls must match.
            Err(TbankError::Status { status, body, .. }) => Some(format!("HTTP {status}: {body}")),
            Err(TbankError::Unauthorized { .. }) => {
                Some("still unauthorized after logging in again".to_string())
            }
            Err(_) => None,
        };
        if let Some(signature) = signature
            && let Verdict::Tripped { count } = breaker.refused(&signature).await
        {
            return Err(TbankError::Refusing {
                error: signature,
                count,
            });
        }
        parse_transcript(&result?).map_err(|message| TbankError::Decode { what, message })
    }
}

async fn status_error(what: &str, r: reqwest::Response) -> TbankError {
    let status = r.status().as_u16();
    let retry_after = retry_hint(r.headers());
    let body = r.text().await.unwrap_or_default();
    TbankError::Status {
        what: what.to_string(),
        status,
        body: body.chars().take(300).collect(),
        retry_after,
    }
}

/// A numeric field's value for a message (ids and durations only, never free text).
fn short(v: &Value) -> String {
    v.to_string().chars().take(40).collect()
}

/// An item's field names, for a log line that must not show its values.
fn field_names(v: &Value) -> String {
    match v {
        Value::Object(o) if o.is_empty() => "none".to_string(),
        Value::Object(o) => o
            .keys()
            .map(|k| k.chars().take(40).collect::<String>())
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(_) => "none (a list)".to_string(),
        _ => "none (not an object)".to_string(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionStart {
    access_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallSessions {
    #[serde(default)]
    items: Vec<Value>,
    #[serde(default)]
    next_page: Option<Value>,
}

/// Numbers may come as strings, or as floats without a fraction. Out of range is `None`,
/// never a saturated value.
fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An integer field: absent (or null) is `Ok(None)`; present but not an integer that fits
/// an i64 is an error naming the field, so the item is counted unreadable instead of
/// stored with a wrong or missing value.
fn int_field(v: &Value, name: &str) -> Result<Option<i64>, String> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => as_i64(x)
            .map(Some)
            .ok_or_else(|| format!("{name} {} is not an integer in range", short(x))),
    }
}

/// Trimmed, non-empty text, cleaned of what PostgreSQL's text refuses (NUL).
fn as_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => {
            let s = crate::text::clean(s);
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_group(v: &Value) -> Option<Group> {
    Some(Group {
        id: as_i64(v.get("id")?)?,
        name: as_text(v.get("name"))?,
        kind: as_text(v.get("type")).unwrap_or_else(|| "workGroup".into()),
    })
}

fn parse_call(v: &Value, tz: Tz) -> Result<Call, String> {
    let id = match int_field(v, "segmentId")? {
        Some(id) => id,
        None => int_field(v, "id")?.ok_or("no segmentId")?,
    };
    let start = v
        .get("startDate")
        .and_then(|s| s.as_str())
        .ok_or_else(|| format!("call {id}: no startDate"))
        .and_then(|s| parse_time(s, tz).map_err(|e| format!("call {id}: startDate {s:?}: {e}")))?;
    let finish = v
        .get("endDate")
        .and_then(|s| s.as_str())
        .and_then(|s| parse_time(s, tz).ok());
    let duration_s = int_field(v, "duration")
        .map_err(|e| format!("call {id}: {e}"))?
        .or_else(|| finish.map(|f| (f - start).num_seconds()))
        .ok_or_else(|| format!("call {id}: no duration"))?;
    // calls.duration_s is an integer column: a value beyond it would be stored as NULL.
    if i32::try_from(duration_s).is_err() {
        return Err(format!(
            "call {id}: duration {duration_s} s is out of range"
        ));
    }
    Ok(Call {
        id,
        start,
        finish,
        duration_s,
        operator_user_id: v.get("operatorUserId").and_then(as_i64),
        operator_login: as_text(v.get("operatorUserLogin")),
        operator_name: as_text(v.get("operatorUserFullName")).unwrap_or_default(),
        direction: as_text(v.get("callDirection")),
        phone: as_text(v.get("clientPhoneNumber")),
    })
}

/// The range the listing asks for, wider than the day. TQM reads the bounds as wall-clock
/// time in CALLS_TIMEZONE and to the second, so `00:00:00–23:59:59` would lose a call
/// starting in the day's last second, and a server reading them as UTC would lose the
/// day's first hours (east of Greenwich) or last hours (west). The range covers the day
/// under both readings, plus an hour for a daylight-saving change; `on_day` then keeps
/// exactly the day's calls.
fn listing_window(day: NaiveDate, tz: Tz) -> (NaiveDateTime, NaiveDateTime) {
    let start = day.and_time(NaiveTime::MIN);
    let end = start + Days::new(1);
    // The same moment written as UTC wall-clock time.
    let as_utc = |local: NaiveDateTime| local - tz.offset_from_utc_datetime(&local).fix();
    let margin = chrono::Duration::hours(1);
    (
        start.min(as_utc(start)) - margin,
        end.max(as_utc(end)) + margin,
    )
}

/// The day is the day in CALLS_TIMEZONE, also for times sent with an offset or `Z`.
fn on_day(call: &Call, day: NaiveDate, tz: Tz) -> bool {
    call.start.with_timezone(&tz).date_naive() == day
}

/// Local wall-clock time in `tz` unless the string carries an offset or `Z`.
fn parse_time(s: &str, tz: Tz) -> Result<DateTime<FixedOffset>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .map_err(|e| e.to_string())?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.fixed_offset())
        .ok_or_else(|| format!("does not exist in {tz}"))
}

/// Keys of TQM's error objects; a transcript answer carrying one is an error, not "not
/// transcribed yet" (which is an answer without parts).
const ERROR_KEYS: [&str; 4] = ["errorCode", "errorMessage", "error", "errors"];

fn parse_transcript(v: &Value) -> Result<Transcript, String> {
    let operator = v.get("firstOperatorId").and_then(as_i64);
    let parts = match v.get("transcriptionParts") {
        None | Some(Value::Null) => {
            let is_error = match v {
                Value::Object(o) => ERROR_KEYS
                    .iter()
                    .any(|k| o.get(*k).is_some_and(|e| !e.is_null())),
                _ => true,
            };
            if is_error {
                // Only the error code: the rest of such a body may quote the call.
                let code = v
                    .get("errorCode")
                    .map(|c| match c {
                        Value::String(s) => s.chars().take(60).collect(),
                        other => other.to_string().chars().take(60).collect(),
                    })
                    .unwrap_or_else(|| "none".to_string());
                let chars = v.to_string().chars().count();
                return Err(format!(
                    "answered with an error instead of a transcript (errorCode {code}; \
                     {chars}-character body not shown)"
                ));
            }
            return Ok(Transcript::default());
        }
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err("transcriptionParts is not a list".into()),
    };
    let mut phrases = Vec::new();
    for part in parts {
        let Some(list) = part.get("phrases").and_then(|p| p.as_array()) else {
            continue;
        };
        for p in list {
            let text =
                crate::text::clean(p.get("phraseText").and_then(|t| t.as_str()).unwrap_or(""));
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let contact = p.get("contactId").and_then(as_i64);
            let speaker = if operator.is_some() && contact == operator {
                Speaker::Operator
            } else {
                Speaker::Client
            };
            phrases.push(Phrase {
                speaker,
                text: text.to_string(),
            });
        }
    }
    Ok(Transcript { phrases })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn moscow() -> Tz {
        "Europe/Moscow".parse().unwrap()
    }

    #[test]
    fn call_items_tolerate_strings_ids_and_offsets() {
        let c = parse_call(
            &json!({"id": "90817263", "startDate": "2025-08-07T10:15:03", "endDate": "2025-08-07T10:19:44",
                    "duration": "281", "operatorUserId": "5512", "operatorUserFullName": "Иванова Анна", "extra": 1}),
            moscow(),
        )
        .unwrap();
        assert_eq!(c.id, 90817263);
        assert_eq!(c.duration_s, 281);
        assert_eq!(c.operator_user_id, Some(5512));
        assert_eq!(c.start.to_rfc3339(), "2025-08-07T10:15:03+03:00");
        let z = parse_call(
            &json!({"segmentId": 1, "startDate": "2025-08-07T07:15:03Z", "duration": 5}),
            moscow(),
        )
        .unwrap();
        assert_eq!(z.start.to_rfc3339(), "2025-08-07T07:15:03+00:00");
        assert!(parse_call(&json!({"startDate": "2025-08-07T10:15:03"}), moscow()).is_err());
        assert!(
            parse_call(
                &json!({"segmentId": 1, "startDate": "yesterday", "duration": 1}),
                moscow()
            )
            .is_err()
        );
    }

    #[test]
    fn the_listing_asks_for_the_day_under_both_readings_with_an_hour_to_spare() {
        let day = NaiveDate::from_ymd_opt(2025, 8, 7).unwrap();
        let text = |(a, b): (NaiveDateTime, NaiveDateTime)| (a.to_string(), b.to_string());
        assert_eq!(
            text(listing_window(day, moscow())),
            ("2025-08-06 20:00:00".into(), "2025-08-08 01:00:00".into())
        );
        let new_york: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            text(listing_window(day, new_york)),
            ("2025-08-06 23:00:00".into(), "2025-08-08 05:00:00".into())
        );
        assert_eq!(
            text(listing_window(day, chrono_tz::UTC)),
            ("2025-08-06 23:00:00".into(), "2025-08-08 01:00:00".into())
        );
    }

    #[test]
    fn ids_and_durations_out_of_range_make_the_item_unreadable() {
        let item = |id: Value, duration: Value| {
            parse_call(
                &json!({"segmentId": id, "startDate": "2025-08-07T10:00:00", "duration": duration}),
                moscow(),
            )
        };
        let err = item(json!(99999999999999999999u128 as f64), json!(60)).unwrap_err();
        assert!(err.contains("segmentId"), "{err}");
        assert!(item(json!("99999999999999999999"), json!(60)).is_err());
        let err = item(json!(1), json!(3_000_000_000i64)).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
        assert!(item(json!(1), json!("-3000000000")).is_err());
        assert!(item(json!(1), json!(1.5)).is_err());
        let ok = item(json!(9_007_199_254_740_000i64), json!(60.0)).unwrap();
        assert_eq!((ok.id, ok.duration_s), (9_007_199_254_740_000, 60));
        assert!(item(json!(1), json!(i64::from(i32::MAX))).is_ok());
    }

    #[test]
    fn a_call_belongs_to_its_day_in_calls_timezone() {
        let late = parse_call(
            &json!({"segmentId": 1, "startDate": "2025-08-07T22:30:00Z", "duration": 60}),
            moscow(),
        )
        .unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2025, 8, d).unwrap();
        assert!(
            on_day(&late, day(8), moscow()),
            "01:30 on the 8th in Moscow"
        );
        assert!(!on_day(&late, day(7), moscow()));
        let local = parse_call(
            &json!({"segmentId": 2, "startDate": "2025-08-07T23:59:59", "duration": 60}),
            moscow(),
        )
        .unwrap();
        assert!(on_day(&local, day(7), moscow()));
    }

    #[test]
    fn nul_characters_are_removed_from_wire_text() {
        let c = parse_call(
            &json!({"segmentId": 1, "startDate": "2025-08-07T10:15:03", "duration": 60,
                    "operatorUserFullName": "Ива\0нова Анна\0", "callDirection": "out\0bound",
                    "operatorUserLogin": "\0"}),
            moscow(),
        )
        .unwrap();
        assert_eq!(c.operator_name, "Иванова Анна");
        assert_eq!(c.direction.as_deref(), Some("outbound"));
        assert_eq!(c.operator_login, None, "nothing but NUL is no login");
        let t = parse_transcript(&json!({"firstOperatorId": 1, "transcriptionParts": [
            {"phrases": [{"contactId": 1, "phraseText": "Добрый\0 день"}, {"contactId": 0, "phraseText": "\0"}]}
        ]}))
        .unwrap();
        assert_eq!(t.to_text(), "operator: Добрый день\n");
        let g = parse_group(&json!({"id": 1, "name": "Группа\0"})).unwrap();
        assert_eq!(g.name, "Группа");
    }

    #[test]
    fn transcript_keeps_order_and_speakers() {
        let t = parse_transcript(&json!({"firstOperatorId": 5512, "transcriptionParts": [
            {"phrases": [{"contactId": 5512, "phraseText": "Добрый день!"}, {"contactId": 0, "phraseText": "Здравствуйте."}]},
            {"phrases": [{"contactId": "5512", "phraseText": "Чем помочь?"}]}
        ]}))
        .unwrap();
        assert_eq!(
            t.to_text(),
            "operator: Добрый день!\nclient: Здравствуйте.\noperator: Чем помочь?\n"
        );
        assert!(
            parse_transcript(&json!({"firstOperatorId": 1, "transcriptionParts": []}))
                .unwrap()
                .is_empty()
        );
        assert!(
            parse_transcript(&json!({"segmentId": 1, "transcriptionParts": null}))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_error_object_is_a_failure_not_an_untranscribed_call() {
        let err = parse_transcript(&json!({"errorCode": "TRANSCRIPTION_FAILED",
                                           "errorMessage": "Сегмент повреждён", "status": 200}))
        .unwrap_err();
        assert!(err.contains("TRANSCRIPTION_FAILED"), "{err}");
        // The message may quote the call: only its length is told.
        assert!(!err.contains("Сегмент"), "{err}");
        let long = "x".repeat(1000);
        let err =
            parse_transcript(&json!({"error": long, "errorCode": "y".repeat(500)})).unwrap_err();
        assert!(err.len() < 200 && !err.contains("xx"), "{err}");
        assert!(parse_transcript(&json!("oops")).is_err());
    }
}
