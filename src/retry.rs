//! The one retry mechanism every HTTP client shares: capped exponential backoff with
//! jitter, the server's retry hints honoured, and a log line per retry.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::HeaderMap;

/// What an error says about trying again.
pub trait Transient {
    /// `None`: do not retry. `Some(None)`: retry after the backoff delay.
    /// `Some(Some(d))`: the server asked for `d` (Retry-After).
    fn retry_hint(&self) -> Option<Option<Duration>>;
}

/// The longest `Retry-After` honoured as asked.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Eight attempts survive an upstream that fails a third of its requests:
        // the chance of eight failures in a row is (1/3)^8 ≈ 0.00015 per request.
        RetryPolicy {
            max_attempts: 8,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
    }

    /// Runs `op` until it succeeds, fails for good, or attempts run out.
    /// `what` names the request in log lines (never a secret).
    pub async fn run<T, E, F, Fut>(&self, what: &str, op: F) -> Result<T, E>
    where
        E: Transient + Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // A server's Retry-After is honoured beyond the backoff cap, up to a bound so one
        // odd header cannot stall a nightly run for hours.
        let retry_after_cap = self.max_delay.max(RETRY_AFTER_CAP);
        op.retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(|e: &E| e.retry_hint().is_some())
            // Only stretch a delay the backoff granted: `None` means attempts are used up.
            .adjust(move |e: &E, planned: Option<Duration>| {
                planned.map(|d| match e.retry_hint() {
                    // A zero or past hint says nothing about pacing: back off as usual.
                    Some(Some(asked)) if !asked.is_zero() => asked.min(retry_after_cap),
                    _ => d,
                })
            })
            .notify(|e: &E, d: Duration| {
                tracing::warn!("{what}: {e}; retrying in {} ms", d.as_millis());
            })
            .await
    }
}

/// Parses a `Retry-After` value: seconds, or an HTTP date (the wait until then).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    parse_retry_after_at(value?, SystemTime::now())
}

fn parse_retry_after_at(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Some(d) = seconds(v) {
        return Some(d);
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let at = SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(
        u64::try_from(at.timestamp_millis()).ok()?,
    ))?;
    // A date already past means "now".
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn seconds(v: &str) -> Option<Duration> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The wait a refusal's headers ask for, from whichever hint the server or the gateway
/// behind it sent: `retry-after-ms`, `Retry-After` (seconds or a date), the same with
/// LiteLLM's `llm_provider-` prefix (the upstream's own headers passed through), or
/// OpenAI's `x-ratelimit-reset-requests` / `-tokens` (`1s`, `6m0s`, `20ms`). `None`: no
/// hint, back off as usual.
pub fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    retry_hint_at(headers, SystemTime::now())
}

fn retry_hint_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    for prefix in ["", "llm_provider-"] {
        if let Some(ms) = get(&format!("{prefix}retry-after-ms")).and_then(seconds) {
            return Some(ms / 1000);
        }
        if let Some(d) =
            get(&format!("{prefix}retry-after")).and_then(|v| parse_retry_after_at(v, now))
        {
            return Some(d);
        }
    }
    // The reset of whichever limit is used up; when the remaining counts are not sent,
    // the later of the two resets (the earlier one may leave the other limit exhausted).
    let mut wait: Option<Duration> = None;
    for prefix in ["", "llm_provider-"] {
        for kind in ["requests", "tokens"] {
            let Some(reset) =
                get(&format!("{prefix}x-ratelimit-reset-{kind}")).and_then(go_duration)
            else {
                continue;
            };
            let exhausted = get(&format!("{prefix}x-ratelimit-remaining-{kind}"))
                .and_then(|r| r.trim().parse::<f64>().ok())
                .is_none_or(|r| r <= 0.0);
            if exhausted {
                wait = Some(wait.map_or(reset, |w| w.max(reset)));
            }
        }
        if wait.is_some() {
            break;
        }
    }
    wait
}

/// A Go-style duration as OpenAI writes its rate-limit resets: `1s`, `6m0s`, `1h2m3.5s`,
/// `20ms`; a bare number is seconds.
fn go_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Some(d) = seconds(v) {
        return Some(d);
    }
    if v.is_empty() {
        return None;
    }
    let mut rest = v;
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|n| *n > 0)?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    enum E {
        Busy,
        Fatal,
        /// A server's Retry-After.
        Asks(Duration),
        /// Transient without a Retry-After: the backoff decides.
        Flaky,
    }
    impl Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl Transient for E {
        fn retry_hint(&self) -> Option<Option<Duration>> {
            match self {
                E::Busy => Some(Some(Duration::from_millis(1))),
                E::Fatal => None,
                E::Asks(d) => Some(Some(*d)),
                E::Flaky => Some(None),
            }
        }
    }

    fn fast(n: usize) -> RetryPolicy {
        RetryPolicy {
            max_attempts: n,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let calls = AtomicUsize::new(0);
        let r: Result<u32, E> = fast(6)
            .run("test", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err(E::Busy)
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let calls = AtomicUsize::new(0);
        let r: Result<u32, E> = fast(3)
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E::Busy)
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_fatal_errors() {
        let calls = AtomicUsize::new(0);
        let r: Result<u32, E> = fast(5)
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E::Fatal)
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// How long (in paused, auto-advancing time) `policy` spends on an operation that
    /// fails with `error` until attempts run out.
    async fn time_spent(policy: RetryPolicy, error: fn() -> E) -> Duration {
        let started = tokio::time::Instant::now();
        let r: Result<(), E> = policy.run("test", || async { Err(error()) }).await;
        assert!(r.is_err());
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_beyond_the_backoff_cap_up_to_two_minutes() {
        let policy = RetryPolicy {
            max_attempts: 2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(30),
        };
        // One wait between two attempts: as asked, though above max_delay…
        assert_eq!(
            time_spent(policy, || E::Asks(Duration::from_secs(45))).await,
            Duration::from_secs(45)
        );
        // …but an hour is cut to the cap.
        assert_eq!(
            time_spent(policy, || E::Asks(Duration::from_secs(3600))).await,
            RETRY_AFTER_CAP
        );
        // A max_delay above the cap raises it.
        let patient = RetryPolicy {
            max_delay: Duration::from_secs(300),
            ..policy
        };
        assert_eq!(
            time_spent(patient, || E::Asks(Duration::from_secs(3600))).await,
            Duration::from_secs(300)
        );
        // No wait after the last attempt, however long the server asks.
        let once = RetryPolicy {
            max_attempts: 1,
            ..policy
        };
        assert_eq!(
            time_spent(once, || E::Asks(Duration::from_secs(3600))).await,
            Duration::ZERO
        );
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_from_the_base_delay_and_stops_at_max_delay() {
        let policy = RetryPolicy {
            max_attempts: 8,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
        };
        // Seven waits: 1, 2, 4, 8, then 10 s three times, each stretched by jitter of at
        // most its own length.
        let spent = time_spent(policy, || E::Flaky).await;
        let planned = Duration::from_secs(1 + 2 + 4 + 8 + 10 + 10 + 10);
        assert!(
            spent >= planned && spent <= 2 * planned,
            "{spent:?} against {planned:?}"
        );
    }

    #[test]
    fn retry_after_seconds_or_date() {
        assert_eq!(parse_retry_after(Some(" 2 ")), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(Some("0.5")),
            Some(Duration::from_millis(500))
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(
            parse_retry_after_at("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after_at("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past"
        );
        assert_eq!(parse_retry_after(Some("soon")), None);
        assert_eq!(parse_retry_after(None), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn retry_hints_from_every_header_gateways_send() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        let hint = |pairs: &[(&'static str, &str)]| retry_hint_at(&headers(pairs), now);
        assert_eq!(hint(&[]), None, "LiteLLM's own 429s carry no hint");
        assert_eq!(hint(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
        assert_eq!(
            hint(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            hint(&[("retry-after-ms", "250"), ("retry-after", "3")]),
            Some(Duration::from_millis(250)),
            "the finer hint wins"
        );
        assert_eq!(
            hint(&[("llm_provider-retry-after", "7")]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            hint(&[("llm_provider-retry-after-ms", "1500")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            hint(&[("x-ratelimit-reset-requests", "1s")]),
            Some(Duration::from_secs(1))
        );
        // Tokens are used up, requests are not: wait for the tokens.
        assert_eq!(
            hint(&[
                ("x-ratelimit-remaining-requests", "10"),
                ("x-ratelimit-reset-requests", "20ms"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ]),
            Some(Duration::from_secs(360))
        );
        assert_eq!(
            hint(&[("llm_provider-x-ratelimit-reset-tokens", "1m30.5s")]),
            Some(Duration::from_millis(90_500))
        );
        assert_eq!(hint(&[("x-ratelimit-reset-requests", "later")]), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(go_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(go_duration("150us"), Some(Duration::from_micros(150)));
        for bad in ["", "s", "1x", "m5", "1.2.3s"] {
            assert_eq!(go_duration(bad), None, "{bad:?}");
        }
    }
}
