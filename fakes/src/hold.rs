//! A hold a test puts on a fake's requests: while closed, every request that reaches it
//! waits until the test opens it. The test can also wait until N requests have arrived.
//! Events are ordered by the test, not by timing.

use tokio::sync::watch;

pub struct Hold {
    open: watch::Sender<bool>,
    arrived: watch::Sender<usize>,
}

impl Default for Hold {
    fn default() -> Self {
        Hold {
            open: watch::Sender::new(true),
            arrived: watch::Sender::new(0),
        }
    }
}

impl Hold {
    /// Requests arriving from now on wait.
    pub fn close(&self) {
        self.open.send_replace(false);
    }

    /// Lets every waiting and later request through.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Resolves once at least `n` requests have reached the hold (passed or waiting).
    pub async fn arrived(&self, n: usize) {
        let mut rx = self.arrived.subscribe();
        let _ = rx.wait_for(|a| *a >= n).await;
    }

    pub fn arrived_now(&self) -> usize {
        *self.arrived.borrow()
    }

    /// Called by the fake for each request.
    pub(crate) async fn pass(&self) {
        self.arrived.send_modify(|a| *a += 1);
        let mut rx = self.open.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}
