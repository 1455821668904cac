//! The HTTP side: one session shared by every request (logged in again once on 401),
//! retries, the listing's paging and the transcripts' circuit breaker.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;
use futures::Stream;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::RwLock;

use super::error::{Request, TbankError};
use super::wire::{self, CallSessions, GroupSearch, LoginRequest, SessionStart, TranscriptAnswer};
use super::{Group, Page, TbankSettings};
use crate::breaker::{Breaker, Verdict};
use crate::domain::{Call, Transcript};
use crate::retry::retry_hint;

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
                what: Request::ClientSetup,
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
        let body = LoginRequest {
            login: &s.login,
            password: &s.password,
            authentification_type: &s.auth_type,
            auth_system: &s.auth_system,
        };
        let url = self.url(path);
        s.retry
            .run("T-Bank login", || async {
                let r = self
                    .browser_headers(self.inner.http.post(&url))
                    .json(&body)
                    .send()
                    .await
                    .map_err(|source| TbankError::Transport {
                        what: Request::Login,
                        source,
                    })?;
                let status = r.status();
                if status.is_success() {
                    return r
                        .json::<SessionStart>()
                        .await
                        .map_err(|e| TbankError::Decode {
                            what: Request::Login,
                            message: e.to_string(),
                        });
                }
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    return Err(status_error(Request::Login, r).await);
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
    async fn authorized<T, F>(&self, what: Request, build: F) -> Result<T, TbankError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let label = what.to_string();
        let mut relogged = false;
        loop {
            let (token, generation) = self.inner.token.read().await.clone();
            let result = self
                .inner
                .settings
                .retry
                .run(&label, || async {
                    let r = self
                        .browser_headers(build(&self.inner.http))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .map_err(|source| TbankError::Transport {
                            what: what.clone(),
                            source,
                        })?;
                    if !r.status().is_success() {
                        return Err(status_error(what.clone(), r).await);
                    }
                    let bytes = r.bytes().await.map_err(|source| TbankError::Transport {
                        what: what.clone(),
                        source,
                    })?;
                    serde_json::from_slice::<T>(&bytes).map_err(|e| TbankError::Decode {
                        what: what.clone(),
                        message: e.to_string(),
                    })
                })
                .await;
            match result {
                Err(TbankError::Status { status: 401, .. }) if !relogged => {
                    tracing::info!("T-Bank {label}: token expired, logging in again");
                    self.login_if_stale(generation).await?;
                    relogged = true;
                }
                Err(TbankError::Status { status: 401, .. }) => {
                    return Err(TbankError::Unauthorized { what });
                }
                other => return other,
            }
        }
    }

    /// The work group named exactly `AGENT_GROUP_NAME` (case and outer spaces aside).
    pub async fn find_group(&self) -> Result<Group, TbankError> {
        let wanted = self.inner.settings.group_name.clone();
        let url = self.url("/v2/bff-core-app/organizational-structures/autocomplete-search");
        let items: GroupSearch = self
            .authorized(Request::GroupSearch, |http| {
                http.get(&url).query(&[
                    ("term", wanted.as_str()),
                    ("type", ""),
                    ("parentFolderId", ""),
                ])
            })
            .await?;
        let groups: Vec<Group> = items.iter().filter_map(wire::group).collect();
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
        let what = Request::Listing { page };
        let resp: CallSessions = self
            .authorized(what.clone(), |http| http.post(&url).json(&body))
            .await?;
        let mut out = Page::default();
        for item in &resp.items {
            match wire::call(item, tz) {
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
                    out.unreadable.push((wire::item_id(item), e.clone()));
                    // The item's field names, never its values: it carries the
                    // customer's phone number.
                    tracing::warn!(
                        "{what}: skipping an item that cannot be read ({e}); its fields: {}",
                        field_names(item)
                    );
                }
            }
        }
        Ok((out, resp.next_page()))
    }

    /// One call's transcript; empty when T-Bank has not transcribed it yet. A failure
    /// after retries goes before the breaker: alike ones in a row stop the run.
    pub async fn transcript(&self, segment_id: i64) -> Result<Transcript, TbankError> {
        let breaker = &self.inner.breaker;
        let _inside = breaker.enter();
        let url = self.url("/v2/bff-core-app/transcription/segment?token=");
        let what = Request::Transcript { segment_id };
        let body = serde_json::json!({ "segmentId": segment_id });
        let result: Result<TranscriptAnswer, TbankError> = self
            .authorized(what.clone(), |http| http.post(&url).json(&body))
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
        wire::transcript(&result?).map_err(|message| TbankError::Decode { what, message })
    }
}

async fn status_error(what: Request, r: reqwest::Response) -> TbankError {
    let status = r.status().as_u16();
    let retry_after = retry_hint(r.headers());
    let body = r.text().await.unwrap_or_default();
    TbankError::Status {
        what,
        status,
        body: body.chars().take(300).collect(),
        retry_after,
    }
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

#[cfg(test)]
mod tests {
    use super::wire::call;
    use super::*;
    use serde_json::json;

    fn moscow() -> Tz {
        "Europe/Moscow".parse().unwrap()
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
    fn a_call_belongs_to_its_day_in_calls_timezone() {
        let late = call(
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
        let local = call(
            &json!({"segmentId": 2, "startDate": "2025-08-07T23:59:59", "duration": 60}),
            moscow(),
        )
        .unwrap();
        assert!(on_day(&local, day(7), moscow()));
    }
}
