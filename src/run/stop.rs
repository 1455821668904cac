//! Stopping a run from outside: the first SIGTERM or SIGINT stops admitting calls and gives
//! the calls in flight `SHUTDOWN_GRACE_S` to finish and save; a second signal, or the end
//! of the grace period, stops at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Signal;

#[derive(Clone, Default)]
pub struct Stop {
    /// Cancelled: admit no more calls.
    admit: CancellationToken,
    /// Cancelled: abandon the calls in flight too.
    now: CancellationToken,
    signal: Arc<Mutex<Option<Signal>>>,
}

impl Stop {
    /// Listens for SIGTERM and SIGINT for the life of the process.
    pub fn on_signals(grace: Duration) -> Stop {
        let stop = Stop::default();
        let s = stop.clone();
        tokio::spawn(async move {
            let mut signals = Signals::new();
            while let Some(signal) = signals.next().await {
                s.request(signal, grace);
            }
        });
        stop
    }

    /// What a signal does: the first stops admitting and starts the grace period, a
    /// second one stops at once.
    pub fn request(&self, signal: Signal, grace: Duration) {
        let first = {
            let mut s = self.signal.lock().expect("stop lock");
            let first = s.is_none();
            s.get_or_insert(signal);
            first
        };
        if first {
            tracing::warn!(
                "{signal}: admitting no more calls; calls in flight get {} s to finish and save \
                 (send it again to stop at once)",
                grace.as_secs()
            );
            self.admit.cancel();
            let now = self.now.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                now.cancel();
            });
        } else {
            tracing::warn!("{signal} again: stopping at once");
            self.now.cancel();
        }
    }

    /// The signal that stopped the run, if any.
    pub fn signal(&self) -> Option<Signal> {
        *self.signal.lock().expect("stop lock")
    }

    pub fn admitting(&self) -> CancellationToken {
        self.admit.clone()
    }

    pub fn immediate(&self) -> CancellationToken {
        self.now.clone()
    }
}

/// SIGTERM and SIGINT, registered once so none is missed between two.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    #[cfg(unix)]
    async fn next(&mut self) -> Option<Signal> {
        let (Some(term), Some(int)) = (self.term.as_mut(), self.int.as_mut()) else {
            return None;
        };
        tokio::select! {
            Some(()) = term.recv() => Some(Signal::Terminate),
            Some(()) = int.recv() => Some(Signal::Interrupt),
            else => None,
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Option<Signal> {
        tokio::signal::ctrl_c().await.ok()?;
        Some(Signal::Interrupt)
    }
}
