//! Adaptive request concurrency, in the spirit of Vector's: the number of requests allowed
//! in flight grows while the upstream answers promptly and shrinks when it pushes back, so
//! a user need not know the gateway's own limit. The configured concurrency is the ceiling.
//!
//! - Slow start: the limit doubles each window until the first sign of back-pressure.
//! - Additive increase: then +1 per window in which the limit was actually used.
//! - Multiplicative decrease: ×0.5 on the first back-pressure (429, 503, timeouts),
//!   ×0.9 afterwards, and ×0.9 when a window's mean latency rises well above the long-run
//!   mean — at most once per window, so a burst of 429s from one window counts once.
//!
//! A window is as many responses as the limit was when it began, roughly one round trip.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// A window whose mean latency exceeds the long-run mean by this factor shrinks the limit.
const LATENCY_RISE: f64 = 2.0;
const DECREASE: f64 = 0.9;
/// Windows of latency history before latency may shrink the limit.
const WARMUP_WINDOWS: u32 = 3;

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
    window_backpressure: bool,
    /// Long-run mean latency of whole windows (EWMA), once there is one.
    long_rtt: Option<f64>,
    windows: u32,
    peak_in_flight: usize,
}

/// What one request's response says about the upstream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// Answered (success or an error that says nothing about load) after this long.
    Answered(Duration),
    /// Too many requests, service unavailable, or a timeout.
    Backpressure,
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

    fn release(&self, signal: Option<Signal>) {
        {
            let mut s = self.inner.state.lock().expect("limiter lock");
            s.in_flight -= 1;
            if let Some(signal) = signal {
                s.observe(signal);
            }
        }
        self.inner.freed.notify_waiters();
    }
}

impl State {
    fn allowed(&self) -> usize {
        (self.limit.floor() as usize).clamp(1, self.max)
    }

    fn observe(&mut self, signal: Signal) {
        self.window_responses += 1;
        match signal {
            Signal::Answered(rtt) => {
                self.window_answered += 1;
                self.window_rtt_sum += rtt;
            }
            Signal::Backpressure => {
                if !self.window_backpressure {
                    // React at once, once per window: later 429s of the same window were
                    // sent before the limit shrank.
                    self.window_backpressure = true;
                    let factor = if self.slow_start { 0.5 } else { DECREASE };
                    self.slow_start = false;
                    let before = self.allowed();
                    self.limit = (self.limit * factor).max(1.0);
                    tracing::debug!(
                        "LLM concurrency {before} → {} (upstream pushed back)",
                        self.allowed()
                    );
                }
            }
        }
        if self.window_responses >= self.window_size {
            self.end_window();
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
        } else if !self.window_backpressure && self.window_saturated {
            self.limit = if self.slow_start {
                self.limit * 2.0
            } else {
                self.limit + 1.0
            };
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
        self.window_saturated = self.in_flight >= self.allowed();
    }
}

/// One request's slot.
pub struct Permit {
    limiter: AdaptiveLimiter,
    started: Instant,
    finished: bool,
}

impl Permit {
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn done(mut self, signal: Signal) {
        self.finished = true;
        self.limiter.release(Some(signal));
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
    async fn round(l: &AdaptiveLimiter, answer: impl Fn(usize) -> Signal) {
        let n = l.limit();
        let mut permits = Vec::new();
        for _ in 0..n {
            permits.push(l.acquire().await);
        }
        for (i, p) in permits.into_iter().enumerate() {
            p.done(answer(i));
        }
    }

    fn ok() -> Signal {
        Signal::Answered(Duration::from_millis(100))
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
    async fn backpressure_halves_once_then_additive_increase() {
        let l = AdaptiveLimiter::new(32);
        round(&l, |_| ok()).await; // 4
        round(&l, |_| ok()).await; // 8
        round(&l, |_| ok()).await; // 16
        assert_eq!(l.limit(), 16);
        // Half the window is refused: one decrease, not eight.
        round(&l, |i| {
            if i % 2 == 0 {
                Signal::Backpressure
            } else {
                ok()
            }
        })
        .await;
        assert_eq!(l.limit(), 8);
        round(&l, |_| ok()).await;
        assert_eq!(l.limit(), 9, "+1 per window after slow start");
        round(&l, |i| if i == 0 { Signal::Backpressure } else { ok() }).await;
        assert_eq!(l.limit(), 8, "×0.9 after slow start");
    }

    #[tokio::test]
    async fn rising_latency_shrinks_the_limit() {
        let l = AdaptiveLimiter::new(16);
        for _ in 0..6 {
            round(&l, |_| ok()).await;
        }
        let before = l.limit();
        round(&l, |_| Signal::Answered(Duration::from_millis(400))).await;
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
}
