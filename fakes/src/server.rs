//! Plumbing shared by the fakes: binding and serving, bearer tokens, seeded fault dice.

use std::net::SocketAddr;
use std::sync::Arc;
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

/// Holds requests at a point of a handler until the test lets them through, and tells
/// the test when they arrive: tests order events with it instead of latency windows.
///
/// The test owns the `Gate`; the fake holds a [`GateSlot`]. Dropping the `Gate` releases
/// everything, so a failing test never leaves a request hanging.
pub struct Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    /// Requests pass one per permit; closed means open for all.
    permits: tokio::sync::Semaphore,
    arrived: AtomicUsize,
    arrival: tokio::sync::Notify,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            inner: Arc::new(GateInner {
                permits: tokio::sync::Semaphore::new(0),
                arrived: AtomicUsize::new(0),
                arrival: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Lets `n` more requests through, held ones first.
    pub fn admit(&self, n: usize) {
        self.inner.permits.add_permits(n);
    }

    /// Lets every held and every later request through.
    pub fn release(&self) {
        self.inner.permits.close();
    }

    /// Requests that reached the gate so far, held or let through.
    pub fn arrivals(&self) -> usize {
        self.inner.arrived.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests have reached the gate.
    pub async fn arrived(&self, n: usize) {
        loop {
            let notified = self.inner.arrival.notified();
            tokio::pin!(notified);
            // Registered before the check, so an arrival in between is not missed.
            notified.as_mut().enable();
            if self.arrivals() >= n {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.release();
    }
}

/// Where a fake keeps the gate a test installed, if any.
#[derive(Default)]
pub(crate) struct GateSlot(Mutex<Option<Arc<GateInner>>>);

impl GateSlot {
    /// Installs a new gate (replacing any earlier one, which is released) and returns it.
    pub(crate) fn install(&self) -> Gate {
        let gate = Gate::new();
        if let Some(old) = self.0.lock().replace(Arc::clone(&gate.inner)) {
            old.permits.close();
        }
        gate
    }

    /// Holds the caller until the installed gate lets it through; no gate, no wait.
    pub(crate) async fn pass(&self) {
        let Some(inner) = self.0.lock().clone() else {
            return;
        };
        inner.arrived.fetch_add(1, Ordering::SeqCst);
        inner.arrival.notify_waiters();
        if let Ok(permit) = inner.permits.acquire().await {
            permit.forget();
        }
    }
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

    #[tokio::test]
    async fn a_gate_holds_requests_until_admitted_or_released() {
        let slot = Arc::new(GateSlot::default());
        slot.pass().await; // no gate installed: no wait
        let gate = slot.install();
        let passed = Arc::new(AtomicUsize::new(0));
        let spawn = || {
            let (slot, passed) = (Arc::clone(&slot), Arc::clone(&passed));
            tokio::spawn(async move {
                slot.pass().await;
                passed.fetch_add(1, Ordering::SeqCst);
            })
        };
        let (a, b, c) = (spawn(), spawn(), spawn());
        gate.arrived(3).await;
        assert_eq!(passed.load(Ordering::SeqCst), 0, "all three held");
        gate.admit(1);
        let first = tokio::select! { _ = a => 0, _ = b => 1, _ = c => 2 };
        assert_eq!(passed.load(Ordering::SeqCst), 1, "one admitted ({first})");
        drop(gate);
        slot.pass().await; // a dropped gate holds nothing
        while passed.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
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
