//! The T-Bank TQM client (CONTRACTS.md §1). Its wire types stay private here; the rest of
//! callq sees `Call` and `Transcript`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
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

/// One page of the listing: the calls that parsed, and how many items did not.
#[derive(Debug, Default)]
pub struct Page {
    pub calls: Vec<Call>,
    pub broken: usize,
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
        let body = serde_json::json!({
            "filters": {
                "date": {
                    "min": format!("{} 00:00:00", day.format("%Y-%m-%d")),
                    "max": format!("{} 23:59:59", day.format("%Y-%m-%d")),
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
                    tracing::debug!(
                        "call {} starts {} — not on {day}; ignored",
                        call.id,
                        call.start
                    );
                }
                Err(e) => {
                    out.broken += 1;
                    tracing::warn!(
                        "{what}: skipping an item that cannot be read ({e}): {}",
                        short(item)
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

fn short(v: &Value) -> String {
    v.to_string().chars().take(200).collect()
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

/// Numbers may come as strings.
fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
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
    let id = v
        .get("segmentId")
        .or_else(|| v.get("id"))
        .and_then(as_i64)
        .ok_or("no segmentId")?;
    let start = v
        .get("startDate")
        .and_then(|s| s.as_str())
        .ok_or_else(|| format!("call {id}: no startDate"))
        .and_then(|s| parse_time(s, tz).map_err(|e| format!("call {id}: startDate {s:?}: {e}")))?;
    let finish = v
        .get("endDate")
        .and_then(|s| s.as_str())
        .and_then(|s| parse_time(s, tz).ok());
    let duration_s = v
        .get("duration")
        .and_then(as_i64)
        .or_else(|| finish.map(|f| (f - start).num_seconds()))
        .ok_or_else(|| format!("call {id}: no duration"))?;
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

fn parse_transcript(v: &Value) -> Result<Transcript, String> {
    let operator = v.get("firstOperatorId").and_then(as_i64);
    let parts = match v.get("transcriptionParts") {
        None | Some(Value::Null) => return Ok(Transcript::default()),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err("transcriptionParts is not a list".into()),
    };
    let mut phrases = Vec::new();
    for part in parts {
        let Some(list) = part.get("phrases").and_then(|p| p.as_array()) else {
            continue;
        };
        for p in list {
            let text = p
                .get("phraseText")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .trim();
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
    }
}
