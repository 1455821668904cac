//! What a T-Bank request can end in, and how far it reaches: a call's transcript failing
//! fails that call; any other request failing leaves the run without T-Bank.

use std::time::Duration;

use crate::retry::Transient;
use crate::severity::{Severe, Severity};

/// Which request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    ClientSetup,
    Login,
    GroupSearch,
    Listing { page: u64 },
    Transcript { segment_id: i64 },
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::ClientSetup => f.write_str("client setup"),
            Request::Login => f.write_str("login"),
            Request::GroupSearch => f.write_str("group search"),
            Request::Listing { page } => write!(f, "call listing page {page}"),
            Request::Transcript { segment_id } => write!(f, "transcript of call {segment_id}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TbankError {
    #[error(
        "T-Bank login refused for {login:?} (HTTP {status}); check LOGIN, PASSWORD, AUTH_TYPE, AUTH_SYSTEM"
    )]
    LoginRefused { login: String, status: u16 },
    #[error("T-Bank work group {wanted:?} not found; the search returned: {found}")]
    GroupNotFound { wanted: String, found: String },
    #[error("T-Bank {what}: HTTP {status}: {body}")]
    Status {
        what: Request,
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("T-Bank {what}: {source}")]
    Transport {
        what: Request,
        source: reqwest::Error,
    },
    #[error("T-Bank {what}: unexpected response: {message}")]
    Decode { what: Request, message: String },
    #[error("T-Bank {what}: still unauthorized after logging in again")]
    Unauthorized { what: Request },
    /// `count` transcript requests in a row failed alike after their retries, none
    /// succeeded since: T-Bank would fail every other one too.
    #[error("T-Bank failed {count} transcript requests in a row alike: {error}")]
    Refusing { error: String, count: usize },
}

impl TbankError {
    fn request(&self) -> Option<&Request> {
        match self {
            TbankError::Status { what, .. }
            | TbankError::Transport { what, .. }
            | TbankError::Decode { what, .. }
            | TbankError::Unauthorized { what } => Some(what),
            TbankError::LoginRefused { .. }
            | TbankError::GroupNotFound { .. }
            | TbankError::Refusing { .. } => None,
        }
    }
}

impl Severe for TbankError {
    fn severity(&self) -> Severity {
        match self {
            TbankError::GroupNotFound { .. } => Severity::Input,
            TbankError::LoginRefused { .. } | TbankError::Refusing { .. } => Severity::Unavailable,
            // One call's transcript; the breaker turns a streak of alike ones into `Refusing`.
            e if matches!(e.request(), Some(Request::Transcript { .. })) => Severity::Call,
            // Login, the group, the listing: the run (or the day) cannot go on without them.
            _ => Severity::Unavailable,
        }
    }
}

impl Transient for TbankError {
    fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            TbankError::Status {
                status,
                retry_after,
                ..
            } if *status == 429 || *status >= 500 => Some(*retry_after),
            TbankError::Transport { source, .. }
                if source.is_timeout()
                    || source.is_connect()
                    || source.is_request()
                    || source.is_body() =>
            {
                Some(None)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_transcript_fails_its_call_and_any_other_request_the_run() {
        let status = |what| TbankError::Status {
            what,
            status: 500,
            body: String::new(),
            retry_after: None,
        };
        let transcript = Request::Transcript { segment_id: 7 };
        assert_eq!(status(transcript.clone()).severity(), Severity::Call);
        assert_eq!(
            TbankError::Unauthorized { what: transcript }.severity(),
            Severity::Call
        );
        for what in [
            Request::Login,
            Request::GroupSearch,
            Request::Listing { page: 2 },
        ] {
            assert_eq!(
                status(what.clone()).severity(),
                Severity::Unavailable,
                "{what}"
            );
        }
        assert_eq!(
            TbankError::GroupNotFound {
                wanted: "a".into(),
                found: "nothing".into()
            }
            .severity(),
            Severity::Input
        );
        assert_eq!(
            status(Request::Listing { page: 3 }).to_string(),
            "T-Bank call listing page 3: HTTP 500: "
        );
    }
}
