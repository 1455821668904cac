//! Plumbing shared by the fakes: binding and serving, bearer tokens, seeded fault dice.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Prompts with long transcripts and big JSON schemas exceed axum's 2 MB default.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// A server running on the current tokio runtime; dropping it stops the accept loop so a
/// benchmark that starts many fakes in one runtime does not accumulate listeners.
pub(crate) struct Running {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Running {
    /// Binds an ephemeral loopback port and serves `router` on it.
    ///
    /// Panics when loopback cannot be bound: the fakes are test fixtures and a test that
    /// has no loopback cannot do anything useful anyway.
    pub(crate) async fn start(router: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port on 127.0.0.1");
        let addr = listener
            .local_addr()
            .expect("local address of the listener");
        let app = router.layer(DefaultBodyLimit::max(BODY_LIMIT));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake server's accept loop failed");
        });
        Running { addr, task }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// as RFC 6750 allows, the token itself is compared exactly by the callers.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Seeded randomness for fault injection, so a failing benchmark can be re-run with the
/// same sequence of faults (as far as request arrival order is the same).
pub(crate) struct Dice(Mutex<StdRng>);

impl Dice {
    pub(crate) fn new(seed: u64) -> Self {
        Dice(Mutex::new(StdRng::seed_from_u64(seed)))
    }

    /// True with probability `p`; never consumes randomness when `p <= 0`, so turning a
    /// fault off does not shift the sequence of other draws.
    pub(crate) fn roll(&self, p: f64) -> bool {
        p > 0.0 && self.0.lock().random::<f64>() < p
    }
}

/// A random lowercase hex string of `bytes` random bytes, for tokens that must differ
/// on every login; drawn from the thread RNG so issuing tokens never shifts the seeded
/// fault sequence.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// A counter readable at any time from the test while handlers bump it.
#[derive(Default)]
pub(crate) struct Counter(AtomicUsize);

impl Counter {
    pub(crate) fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// A `Duration` a test can change while requests are being served.
pub(crate) struct LatencyKnob(AtomicU64);

impl LatencyKnob {
    pub(crate) fn new(d: Duration) -> Self {
        LatencyKnob(AtomicU64::new(nanos(d)))
    }

    pub(crate) fn set(&self, d: Duration) {
        self.0.store(nanos(d), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }

    /// Sleeps for the current latency; zero latency does not even yield.
    pub(crate) async fn wait(&self) {
        let d = self.get();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// An `f64` rate a test can change while requests are being served.
pub(crate) struct RateKnob(AtomicU64);

impl RateKnob {
    pub(crate) fn new(rate: f64) -> Self {
        RateKnob(AtomicU64::new(rate.to_bits()))
    }

    pub(crate) fn set(&self, rate: f64) {
        self.0.store(rate.to_bits(), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_accepts_any_scheme_case_and_rejects_empty_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn dice_is_reproducible_per_seed() {
        let a: Vec<bool> = {
            let d = Dice::new(7);
            (0..64).map(|_| d.roll(0.5)).collect()
        };
        let b: Vec<bool> = {
            let d = Dice::new(7);
            (0..64).map(|_| d.roll(0.5)).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x));
        assert!(!Dice::new(1).roll(0.0));
        assert!(Dice::new(1).roll(1.0));
    }
}
