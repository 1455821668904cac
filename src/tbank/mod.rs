//! The T-Bank TQM client: login (and again on 401), the work group, the day's calls page
//! by page, a call's transcript. TQM's JSON stays private in `wire`; the rest of callq sees
//! [`Group`], [`Page`] and the domain's `Call` and `Transcript`.

mod client;
mod error;
mod wire;

use std::time::Duration;

use crate::domain::Call;
use crate::retry::RetryPolicy;

pub use client::TbankClient;
pub use error::TbankError;

#[derive(Clone)]
pub struct TbankSettings {
    pub base_url: String,
    pub login: String,
    pub password: String,
    pub auth_type: String,
    pub auth_system: String,
    pub group_name: String,
    pub tqm_version: String,
    pub timeout: Duration,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// Transcript requests failing alike in a row (after retries) that stop the run.
    pub breaker_threshold: usize,
}

impl std::fmt::Debug for TbankSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of every debug print.
        f.debug_struct("TbankSettings")
            .field("base_url", &self.base_url)
            .field("login", &self.login)
            .field("group_name", &self.group_name)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub kind: String,
}

/// One page of the listing: the day's calls that parsed, how many items did not, and how
/// many were calls of a neighbouring day (the listing asks with a margin, see
/// `listing_window`); only `calls` count as listed.
#[derive(Debug, Default)]
pub struct Page {
    pub calls: Vec<Call>,
    pub broken: usize,
    /// The unreadable items, with their id when one could be read: recorded like failed
    /// calls, so the day is listed again.
    pub unreadable: Vec<(Option<i64>, String)>,
    pub other_days: usize,
}
