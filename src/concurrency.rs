//! Adaptive request concurrency, in the spirit of Vector's: the number of requests allowed
//! in flight grows while the upstream answers promptly and shrinks when it pushes back, so
//! a user need not know the gateway's own limit. The configured concurrency is the ceiling.
//!
//! - Slow start: the limit doubles each window until the first sign of back-pressure.
//! - Additive increase: then +1 per window in which the limit was actually used; once a
//!   refusal has shown where the upstream's limit is, only every [`PROBE_WINDOWS`] windows.
//! - A refusal (429) carries the concurrency it was refused at: a request sent as the k-th
//!   in flight and refused means the upstream takes fewer than k, so the limit drops to
//!   k − 1 — but never below the concurrency answers have proven in this window or the
//!   last. Refusals that lower nothing (the upstream's capacity shrank, or it limits a rate
//!   rather than concurrency) shrink the limit ×0.9 when their window ends.
//! - Overload (503, timeouts) and a window's mean latency well above the long-run mean
//!   shrink it ×0.5 during slow start, ×0.9 afterwards — at most once per window.
//!
//! A window is as many responses as the limit was when it began, roughly one round trip.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
// Tokio's clock, so tests can run whole simulated nights on paused time.
use tokio::time::Instant;

/// A window whose mean latency exceeds the long-run mean by this factor shrinks the limit.
const LATENCY_RISE: f64 = 2.0;
const DECREASE: f64 = 0.9;
/// Windows of latency history before latency may shrink the limit.
const WARMUP_WINDOWS: u32 = 3;
/// Clean windows at a limit a refusal has set before probing one above it.
pub const PROBE_WINDOWS: u32 = 8;

#[derive(Clone)]
pub struct AdaptiveLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    freed: Notify,
}

#[derive(Debug)]
struct State {
    max: usize,
    limit: f64,
    in_flight: usize,
    slow_start: bool,
    // The current window.
    window_size: usize,
    window_responses: usize,
    /// Responses that carried a latency sample (push-backs do not).
    window_answered: usize,
    window_rtt_sum: Duration,
    window_saturated: bool,
    /// Any push-back (refusal or overload) in this window.
    window_backpressure: bool,
    /// The multiplicative decrease already happened in this window.
    window_decreased: bool,
    /// Refusals in this window that lowered nothing.
    window_idle_refusals: bool,
    /// The most requests in flight among answered requests' sends, this window and the last.
    window_proven: usize,
    last_proven: usize,
    /// Clean windows still to wait before probing above a limit set by a refusal.
    probe_wait: u32,
    /// Long-run mean latency of whole windows (EWMA), once there is one.
    long_rtt: Option<f64>,
    windows: u32,
    peak_in_flight: usize,
}

/// What one request's response says about the upstream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadSignal {
    /// Answered (success or an error that says nothing about load) after this long.
    Answered(Duration),
    /// Refused at the door: too many requests (429).
    Rejected,
    /// Service unavailable (503) or a timeout.
    Overloaded,
}

impl AdaptiveLimiter {
    pub fn new(max: usize) -> AdaptiveLimiter {
        let max = max.max(1);
        let start = 2.min(max);
        AdaptiveLimiter {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    max,
                    limit: start as f64,
                    in_flight: 0,
                    slow_start: true,
                    window_size: start,
                    window_responses: 0,
                    window_answered: 0,
                    window_rtt_sum: Duration::ZERO,
                    window_saturated: false,
                    window_backpressure: false,
                    window_decreased: false,
                    window_idle_refusals: false,
                    window_proven: 0,
                    last_proven: 0,
                    probe_wait: 0,
                    long_rtt: None,
                    windows: 0,
                    peak_in_flight: 0,
                }),
                freed: Notify::new(),
            }),
        }
    }

    /// Waits until a request may go out. The permit must be finished with `done`; a permit
    /// dropped unfinished (its future cancelled) frees its slot without a signal.
    pub async fn acquire(&self) -> Permit {
        loop {
            let notified = self.inner.freed.notified();
            {
                let mut s = self.inner.state.lock().expect("limiter lock");
                if s.in_flight < s.allowed() {
                    s.in_flight += 1;
                    s.peak_in_flight = s.peak_in_flight.max(s.in_flight);
                    if s.in_flight >= s.allowed() {
                        s.window_saturated = true;
                    }
                    return Permit {
                        limiter: self.clone(),
                        started: Instant::now(),
                        at_send: s.in_flight,
                        finished: false,
                    };
                }
            }
            notified.await;
        }
    }

    /// The current limit, for logs and tests.
    pub fn limit(&self) -> usize {
        self.inner.state.lock().expect("limiter lock").allowed()
    }

    /// Most requests ever in flight at once.
    pub fn peak_in_flight(&self) -> usize {
        self.inner
            .state
            .lock()
            .expect("limiter lock")
            .peak_in_flight
    }

    fn release(&self, signal: Option<(LoadSignal, usize)>) {
        {
            let mut s = self.inner.state.lock().expect("limiter lock");
            s.in_flight -= 1;
            if let Some((signal, at_send)) = signal {
                s.observe(signal, at_send);
            }
        }
        self.inner.freed.notify_waiters();
    }
}

impl State {
    fn allowed(&self) -> usize {
        (self.limit.floor() as usize).clamp(1, self.max)
    }

    fn observe(&mut self, signal: LoadSignal, at_send: usize) {
        self.window_responses += 1;
        match signal {
            LoadSignal::Answered(rtt) => {
                self.window_answered += 1;
                self.window_rtt_sum += rtt;
                self.window_proven = self.window_proven.max(at_send);
            }
            LoadSignal::Rejected => self.refused(at_send),
            LoadSignal::Overloaded => self.overloaded(),
        }
        if self.window_responses >= self.window_size {
            self.end_window();
        }
    }

    /// Sent as the `at_send`-th request in flight and refused: the upstream takes fewer.
    /// Every refusal counts (the lowest bound wins), not once per window.
    fn refused(&mut self, at_send: usize) {
        self.window_backpressure = true;
        self.slow_start = false;
        let proven = self.window_proven.max(self.last_proven);
        if at_send <= proven {
            // Refused at a concurrency answers had proven: less capacity than before.
            self.window_idle_refusals = true;
        }
        let bound = (at_send.saturating_sub(1)).max(proven).max(1);
        if (bound as f64) < self.limit {
            let before = self.allowed();
            self.limit = bound as f64;
            self.probe_wait = PROBE_WINDOWS;
            tracing::debug!(
                "LLM concurrency {before} → {} (refused at {at_send} in flight)",
                self.allowed()
            );
        }
    }

    fn overloaded(&mut self) {
        self.window_backpressure = true;
        if !self.window_decreased {
            // React at once, once per window: later push-backs of the same window were
            // sent before the limit shrank.
            self.window_decreased = true;
            let factor = if self.slow_start { 0.5 } else { DECREASE };
            self.slow_start = false;
            let before = self.allowed();
            self.limit = (self.limit * factor).max(1.0);
            tracing::debug!(
                "LLM concurrency {before} → {} (upstream overloaded)",
                self.allowed()
            );
        }
    }

    fn end_window(&mut self) {
        let answered = self.window_answered;
        let mean = if answered > 0 {
            self.window_rtt_sum.as_secs_f64() / answered as f64
        } else {
            0.0
        };
        self.windows += 1;
        let latency_rose = self.windows > WARMUP_WINDOWS
            && self.long_rtt.is_some_and(|long| mean > long * LATENCY_RISE)
            && !self.window_backpressure;
        if latency_rose {
            self.slow_start = false;
            self.limit = (self.limit * DECREASE).max(1.0);
            tracing::debug!(
                "LLM concurrency → {} (latency rising: {mean:.3} s)",
                self.allowed()
            );
        } else if self.window_idle_refusals && !self.window_decreased {
            self.limit = (self.limit * DECREASE).max(1.0);
            self.probe_wait = PROBE_WINDOWS;
            tracing::debug!(
                "LLM concurrency → {} (refused below the proven concurrency)",
                self.allowed()
            );
        } else if !self.window_backpressure && self.window_saturated {
            if self.slow_start {
                self.limit *= 2.0;
            } else if self.probe_wait > 0 {
                self.probe_wait -= 1;
            } else {
                self.limit += 1.0;
            }
            self.limit = self.limit.min(self.max as f64);
        }
        if mean > 0.0 && !latency_rose {
            self.long_rtt = Some(match self.long_rtt {
                None => mean,
                Some(long) => long * 0.8 + mean * 0.2,
            });
        }
        self.window_size = self.allowed();
        self.window_responses = 0;
        self.window_answered = 0;
        self.window_rtt_sum = Duration::ZERO;
        self.window_backpressure = false;
        self.window_decreased = false;
        self.window_idle_refusals = false;
        self.last_proven = self.window_proven;
        self.window_proven = 0;
        self.window_saturated = self.in_flight >= self.allowed();
    }
}

/// One request's slot.
pub struct Permit {
    limiter: AdaptiveLimiter,
    started: Instant,
    /// Requests in flight when this one was sent, itself included.
    at_send: usize,
    finished: bool,
}

impl Permit {
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn done(mut self, signal: LoadSignal) {
        self.finished = true;
        self.limiter.release(Some((signal, self.at_send)));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.finished {
            self.limiter.release(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `n` requests through the limiter at its limit, answering each with `answer`.
    async fn round(l: &AdaptiveLimiter, answer: impl Fn(usize) -> LoadSignal) {
        let n = l.limit();
        let mut permits = Vec::new();
        for _ in 0..n {
            permits.push(l.acquire().await);
        }
        for (i, p) in permits.into_iter().enumerate() {
            p.done(answer(i));
        }
    }

    fn ok() -> LoadSignal {
        LoadSignal::Answered(Duration::from_millis(100))
    }

    #[tokio::test]
    async fn slow_start_doubles_up_to_the_ceiling() {
        let l = AdaptiveLimiter::new(8);
        assert_eq!(l.limit(), 2);
        round(&l, |_| ok()).await;
        assert_eq!(l.limit(), 4);
        round(&l, |_| ok()).await;
        assert_eq!(l.limit(), 8);
        round(&l, |_| ok()).await;
        assert_eq!(l.limit(), 8, "never above the configured ceiling");
    }

    #[tokio::test]
    async fn overload_halves_once_then_additive_increase() {
        let l = AdaptiveLimiter::new(32);
        round(&l, |_| ok()).await; // 4
        round(&l, |_| ok()).await; // 8
        round(&l, |_| ok()).await; // 16
        assert_eq!(l.limit(), 16);
        // Half the window is refused: one decrease, not eight.
        round(&l, |i| {
            if i % 2 == 0 {
                LoadSignal::Overloaded
            } else {
                ok()
            }
        })
        .await;
        assert_eq!(l.limit(), 8);
        round(&l, |_| ok()).await;
        assert_eq!(l.limit(), 9, "+1 per window after slow start");
        round(&l, |i| if i == 0 { LoadSignal::Overloaded } else { ok() }).await;
        assert_eq!(l.limit(), 8, "×0.9 after slow start");
    }

    #[tokio::test]
    async fn rising_latency_shrinks_the_limit() {
        let l = AdaptiveLimiter::new(16);
        for _ in 0..6 {
            round(&l, |_| ok()).await;
        }
        let before = l.limit();
        round(&l, |_| LoadSignal::Answered(Duration::from_millis(400))).await;
        assert!(l.limit() < before, "{} !< {before}", l.limit());
    }

    #[tokio::test]
    async fn an_unsaturated_limit_does_not_grow() {
        let l = AdaptiveLimiter::new(16);
        for _ in 0..5 {
            // One request at a time: the limit is never reached.
            l.acquire().await.done(ok());
            l.acquire().await.done(ok());
        }
        assert_eq!(l.limit(), 2);
    }

    #[tokio::test]
    async fn waiters_get_freed_slots_and_cancelled_permits_free_theirs() {
        let l = AdaptiveLimiter::new(1);
        let first = l.acquire().await;
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire().await.done(ok()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "no slot while the first request is in flight"
        );
        drop(first);
        waiter.await.unwrap();
        assert_eq!(l.peak_in_flight(), 1);
    }

    #[tokio::test]
    async fn a_refusal_drops_the_limit_to_the_concurrency_it_was_refused_at() {
        let l = AdaptiveLimiter::new(32);
        round(&l, |_| ok()).await; // 4
        round(&l, |_| ok()).await; // 8
        round(&l, |_| ok()).await; // 16
        assert_eq!(l.limit(), 16);
        // The upstream takes 6: the 7th to 16th in flight are refused. The last window
        // proved 8, so the refusals at 7 and 8 also say the capacity shrank.
        round(&l, |i| if i < 6 { ok() } else { LoadSignal::Rejected }).await;
        assert_eq!(l.limit(), 7, "8 as proven, then ×0.9 for refusals below it");
        round(&l, |i| if i < 6 { ok() } else { LoadSignal::Rejected }).await;
        assert_eq!(l.limit(), 6, "refused at the 7th: the upstream takes 6");
        for _ in 0..PROBE_WINDOWS {
            round(&l, |_| ok()).await;
            assert_eq!(l.limit(), 6, "no probing right after a refusal");
        }
        round(&l, |_| ok()).await;
        assert_eq!(l.limit(), 7, "then one above, once");
    }

    #[tokio::test]
    async fn refusals_at_a_proven_concurrency_shrink_the_limit_by_window() {
        let l = AdaptiveLimiter::new(10);
        for _ in 0..4 {
            round(&l, |_| ok()).await;
        }
        assert_eq!(l.limit(), 10);
        // Another client took half the capacity: refusals come at any position.
        round(&l, |i| {
            if i % 2 == 0 {
                LoadSignal::Rejected
            } else {
                ok()
            }
        })
        .await;
        assert_eq!(l.limit(), 9);
    }

    /// A gateway that runs at most `limit` requests at once and refuses the rest at once
    /// (as LiteLLM's max_parallel_requests does), without a retry hint.
    struct Gateway {
        limit: usize,
        in_flight: std::sync::atomic::AtomicUsize,
        refused: std::sync::atomic::AtomicUsize,
    }

    const LATENCY: Duration = Duration::from_millis(500);
    const BACKOFF: Duration = Duration::from_millis(500);

    /// One call through the limiter, retried after a refusal, as the LLM client does.
    async fn call(l: &AdaptiveLimiter, gw: &Gateway) {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            let permit = l.acquire().await;
            if gw.in_flight.fetch_add(1, SeqCst) >= gw.limit {
                gw.in_flight.fetch_sub(1, SeqCst);
                gw.refused.fetch_add(1, SeqCst);
                permit.done(LoadSignal::Rejected);
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
            tokio::time::sleep(LATENCY).await;
            // The slot is free before the answer leaves.
            gw.in_flight.fetch_sub(1, SeqCst);
            let rtt = permit.elapsed();
            permit.done(LoadSignal::Answered(rtt));
            return;
        }
    }

    /// `calls` calls, at most `ceiling` at a time (the run's buffer), through a gateway of
    /// `limit`: the virtual wall time, the limit at the end and the refusals.
    async fn night(calls: usize, ceiling: usize, limit: usize) -> (Duration, usize, usize) {
        use futures::StreamExt;
        let l = AdaptiveLimiter::new(ceiling);
        let gw = Gateway {
            limit,
            in_flight: Default::default(),
            refused: Default::default(),
        };
        let started = Instant::now();
        futures::stream::iter(0..calls)
            .for_each_concurrent(ceiling, |_| call(&l, &gw))
            .await;
        (
            started.elapsed(),
            l.limit(),
            gw.refused.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn behind_a_hard_gateway_limit_it_settles_at_that_limit() {
        let (calls, limit) = (1000, 8);
        let bound = LATENCY * (calls / limit) as u32;
        let (wall, settled, refused) = night(calls, 32, limit).await;
        assert!(
            (limit..=limit + 1).contains(&settled),
            "settled at {settled}, the gateway takes {limit}"
        );
        assert!(
            wall.as_secs_f64() <= bound.as_secs_f64() * 1.05,
            "{wall:?} against {bound:?} at the gateway's limit"
        );
        assert!(refused < calls / 20, "{refused} refusals");
        // The same night at the right concurrency from the start, for comparison.
        let (at_limit, _, _) = night(calls, limit, limit).await;
        assert!(
            wall.as_secs_f64() <= at_limit.as_secs_f64() * 1.05,
            "{wall:?} vs {at_limit:?} when configured at the limit"
        );
    }
}
