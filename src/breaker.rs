//! A circuit breaker for refusals no retry can fix. A wrong key behind a gateway that
//! answers it with some unrecognised 400 would otherwise fail every call of the night one
//! by one; when a run of requests in a row is refused with the very same error and none
//! succeeded since, the breaker trips and every such refusal becomes fatal for the run.
//!
//! A refusal is held undecided while the streak it belongs to may still trip, so the calls
//! the run never really tried are not recorded as failed: it is released as an ordinary
//! failure of its own call when a later request succeeds or is refused differently, or
//! when every caller is waiting here and nothing has changed for [`QUIET`] (the run has no
//! more requests to tell); it becomes fatal when the streak reaches the threshold. The
//! threshold never exceeds the callers that can be in flight at once, or a full pipeline
//! of held refusals would wait for a request that cannot come.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// How long refusals wait for more evidence once nobody else can bring any: long enough
/// for the run to hand over its next calls, short enough for a run's last call.
pub const QUIET: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

struct Inner {
    threshold: usize,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// Callers inside the client (see [`Breaker::enter`]).
    active: usize,
    /// Of those, refusals waiting for a verdict.
    held: usize,
    /// The current run of alike refusals: their signature and how many.
    streak: Option<(String, usize)>,
    /// Bumped whenever held refusals are to be released as their own calls' failures.
    release: u64,
    tripped: Option<(String, usize)>,
}

/// What a refusal turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// One of `count` alike refusals in a row: the run must stop.
    Tripped { count: usize },
    /// This call's own failure.
    Alone,
}

impl Breaker {
    /// `threshold` alike refusals in a row trip it; `callers` is the most callers that can
    /// be inside the client at once (the threshold is capped there).
    pub fn new(threshold: usize, callers: usize) -> Breaker {
        Breaker {
            inner: Arc::new(Inner {
                threshold: threshold.min(callers).max(1),
                state: Mutex::new(State::default()),
                changed: Notify::new(),
            }),
        }
    }

    #[cfg(test)]
    pub fn threshold(&self) -> usize {
        self.inner.threshold
    }

    /// Marks a caller as inside the client until the guard is dropped: one that may still
    /// report a success or another refusal.
    pub fn enter(&self) -> Caller {
        self.state().active += 1;
        Caller(self.clone())
    }

    /// The streak of alike refusals is broken; refusals held so far fail alone.
    pub fn success(&self) {
        let mut s = self.state();
        if s.streak.take().is_some() {
            s.release += 1;
            drop(s);
            self.inner.changed.notify_waiters();
        }
    }

    /// The signature that tripped the breaker, with the count, if it has.
    #[cfg(test)]
    pub fn tripped(&self) -> Option<(String, usize)> {
        self.state().tripped.clone()
    }

    /// Reports a refusal no retry can fix, `signature` telling alike ones apart (status
    /// and message, never a call's id), and waits for its verdict.
    pub async fn refused(&self, signature: &str) -> Verdict {
        let my_release = {
            let mut s = self.state();
            if let Some((sig, count)) = &s.tripped
                && sig == signature
            {
                return Verdict::Tripped { count: *count };
            }
            let count = match &mut s.streak {
                Some((sig, count)) if sig == signature => {
                    *count += 1;
                    *count
                }
                _ => {
                    // Another error: the refusals held so far were not alike with this one.
                    s.streak = Some((signature.to_string(), 1));
                    s.release += 1;
                    1
                }
            };
            if count >= self.inner.threshold {
                s.tripped = Some((signature.to_string(), count));
                drop(s);
                self.inner.changed.notify_waiters();
                return Verdict::Tripped { count };
            }
            s.held += 1;
            s.release
        };
        self.inner.changed.notify_waiters();
        let verdict = self.wait(signature, my_release).await;
        self.state().held -= 1;
        self.inner.changed.notify_waiters();
        verdict
    }

    async fn wait(&self, signature: &str, my_release: u64) -> Verdict {
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let nobody_else = {
                let s = self.state();
                if let Some((sig, count)) = &s.tripped
                    && sig == signature
                {
                    return Verdict::Tripped { count: *count };
                }
                if s.release != my_release {
                    return Verdict::Alone;
                }
                s.held >= s.active
            };
            if !nobody_else {
                changed.await;
                continue;
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep(QUIET) => {
                    let mut s = self.state();
                    if s.release == my_release && s.held >= s.active && s.tripped.is_none() {
                        // The streak goes on counting: later alike refusals may still trip.
                        s.release += 1;
                        drop(s);
                        self.inner.changed.notify_waiters();
                    }
                }
            }
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("breaker lock")
    }
}

/// A caller inside the client; see [`Breaker::enter`].
pub struct Caller(Breaker);

impl Drop for Caller {
    fn drop(&mut self) {
        self.0.state().active -= 1;
        self.0.inner.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "400 No connected db.";

    /// `n` callers refused alike at once, each inside the client while it waits.
    async fn refuse_together(b: &Breaker, n: usize, sig: &str) -> Vec<Verdict> {
        let calls = (0..n).map(|_| {
            let b = b.clone();
            let sig = sig.to_string();
            async move {
                let _inside = b.enter();
                b.refused(&sig).await
            }
        });
        futures::future::join_all(calls).await
    }

    #[tokio::test(start_paused = true)]
    async fn alike_refusals_up_to_the_threshold_trip_it_and_all_are_fatal() {
        let b = Breaker::new(5, 8);
        let started = tokio::time::Instant::now();
        let verdicts = refuse_together(&b, 5, SIG).await;
        assert!(
            verdicts.iter().all(|v| *v == Verdict::Tripped { count: 5 }),
            "{verdicts:?}"
        );
        assert_eq!(started.elapsed(), Duration::ZERO, "decided without waiting");
        assert_eq!(b.tripped(), Some((SIG.to_string(), 5)));
        // Later alike refusals are fatal at once; other errors are judged afresh.
        let _inside = b.enter();
        assert_eq!(b.refused(SIG).await, Verdict::Tripped { count: 5 });
    }

    #[tokio::test(start_paused = true)]
    async fn the_threshold_is_capped_at_the_callers_in_flight() {
        let b = Breaker::new(5, 3);
        assert_eq!(b.threshold(), 3);
        let verdicts = refuse_together(&b, 3, SIG).await;
        assert!(
            verdicts
                .iter()
                .all(|v| matches!(v, Verdict::Tripped { .. }))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_releases_held_refusals_as_their_own_failures() {
        let b = Breaker::new(5, 8);
        let refused = {
            let b = b.clone();
            async move {
                let _inside = b.enter();
                b.refused("400 context too long").await
            }
        };
        let succeeded = async {
            let _inside = b.enter();
            // The refusal is held first, then this request answers.
            tokio::task::yield_now().await;
            b.success();
        };
        let (verdict, ()) = tokio::join!(refused, succeeded);
        assert_eq!(verdict, Verdict::Alone);
        assert_eq!(b.tripped(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_different_refusal_releases_the_held_ones() {
        let b = Breaker::new(3, 8);
        let first = {
            let b = b.clone();
            async move {
                let _inside = b.enter();
                b.refused("400 a").await
            }
        };
        let second = {
            let b = b.clone();
            async move {
                let _inside = b.enter();
                tokio::task::yield_now().await;
                let v = b.refused("400 b").await;
                (v, tokio::time::Instant::now())
            }
        };
        let started = tokio::time::Instant::now();
        let (a, (b_verdict, b_at)) = tokio::join!(first, second);
        assert_eq!(a, Verdict::Alone);
        assert_eq!(b_verdict, Verdict::Alone);
        assert_eq!(
            b_at - started,
            QUIET,
            "the last one waited for more evidence"
        );
        assert_eq!(b.tripped(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_refusal_waits_quietly_then_fails_alone_and_the_streak_goes_on() {
        let b = Breaker::new(3, 8);
        let started = tokio::time::Instant::now();
        assert_eq!(refuse_together(&b, 2, SIG).await, vec![Verdict::Alone; 2]);
        assert_eq!(started.elapsed(), QUIET);
        // The third alike refusal in a row trips it, although the first two were released.
        assert_eq!(
            refuse_together(&b, 1, SIG).await,
            vec![Verdict::Tripped { count: 3 }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_still_busy_keeps_the_held_refusal_waiting() {
        let b = Breaker::new(5, 8);
        let busy = b.enter();
        let refused = {
            let b = b.clone();
            tokio::spawn(async move {
                let _inside = b.enter();
                b.refused(SIG).await
            })
        };
        tokio::time::sleep(QUIET * 10).await;
        assert!(
            !refused.is_finished(),
            "decided while another caller was busy"
        );
        drop(busy);
        assert_eq!(refused.await.unwrap(), Verdict::Alone);
    }
}
