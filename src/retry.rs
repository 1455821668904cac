//! The one retry mechanism every HTTP client shares: capped exponential backoff with
//! jitter, `Retry-After` honoured, and a log line per retry.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

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
                    Some(Some(asked)) => asked.min(retry_after_cap),
                    _ => d,
                })
            })
            .notify(|e: &E, d: Duration| {
                tracing::warn!("{what}: {e}; retrying in {} ms", d.as_millis());
            })
            .await
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is rare from APIs
/// and falls back to the backoff delay).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let v = value?.trim();
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
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
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after(Some(" 2 ")), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(Some("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }
}
