//! The per-(department, day) run lock: a PostgreSQL advisory lock held by a connection of
//! its own, watched for as long as the run lasts. The lock lives exactly as long as that
//! connection, so a server restart, `idle_session_timeout`, or a pooler or NAT dropping
//! the idle connection releases it silently; the watcher turns that into a signal the run
//! obeys (stop admitting calls), and writes the run's heartbeat on the same connection,
//! which both keeps it from sitting idle and proves it still works.
//!
//! Whether a run is alive is decided apart from the day lock: every session this process
//! opens (the pool's and the lock's) holds a shared advisory lock on the process's random
//! key, recorded in `runs.process_key`, and the SQL function `callq_run_alive` (migration
//! 0007) looks it up in `pg_locks`. The server drops a session's locks the moment the
//! session ends, so a killed process is dead at once, while a run that lost only its
//! lock's connection still has its pool's sessions — and, after the loss, a keeper session
//! of its own — holding the key until it ends.

use std::time::Duration;

use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;

use super::{Store, StoreError};

/// How often the lock's connection is checked and the run's heartbeat written.
pub const LOCK_CHECK_EVERY: Duration = Duration::from_secs(5);

/// The name the lock's connection shows in `pg_stat_activity`.
pub const LOCK_APPLICATION_NAME: &str = "callq-day-lock";

/// The name of the session that keeps a run's process key held after its lock was lost.
pub const KEEPER_APPLICATION_NAME: &str = "callq-run-alive";

/// How soon the keeper tries again when it cannot connect.
const KEEPER_RETRY: Duration = Duration::from_secs(1);

/// A process's key: random, so two processes never share one, and non-negative, so the
/// server's two 32-bit halves of it (`pg_locks.classid`, `objid`) convert back to `oid`.
pub(super) fn new_process_key() -> i64 {
    rand::random::<i64>() & i64::MAX
}

/// The pool's hook: every new connection holds the process key shared, for as long as the
/// session lasts (the pool recycles connections without `DISCARD ALL`, which would drop it).
pub(super) fn hold_process_key(key: i64) -> deadpool_postgres::Hook {
    deadpool_postgres::Hook::async_fn(move |client, _| {
        Box::pin(async move {
            client
                .execute("SELECT pg_advisory_lock_shared($1)", &[&key])
                .await
                .map(|_| ())
                .map_err(deadpool_postgres::HookError::Backend)
        })
    })
}

/// Holds a run's (department, day) lock. Dropping it closes the connection, which releases
/// the lock; a crashed process releases it the same way.
pub struct DayLock {
    client: std::sync::Arc<tokio_postgres::Client>,
    connection: tokio::task::JoinHandle<()>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    lost: CancellationToken,
    reason: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    check_timeout: Duration,
    /// Opens the keeper's session once the lock is lost.
    store: Store,
}

impl Store {
    /// Takes the advisory lock of (department, day) on a connection of its own; `None`
    /// when another run holds it.
    pub async fn lock_day(
        &self,
        department_id: i32,
        day: NaiveDate,
    ) -> Result<Option<DayLock>, StoreError> {
        let (client, connection) = self.connect_own(LOCK_APPLICATION_NAME).await?;
        let lost = CancellationToken::new();
        let reason = std::sync::Arc::new(std::sync::Mutex::new(None));
        let connection = {
            let lost = lost.clone();
            let reason = reason.clone();
            tokio::spawn(async move {
                let why = match connection.await {
                    Ok(()) => "the server closed the lock's connection".to_string(),
                    Err(e) => format!("the lock's connection failed: {}", super::describe(&e)),
                };
                set_lost(&lost, &reason, why);
            })
        };
        let lock = DayLock {
            client: std::sync::Arc::new(client),
            connection,
            watcher: None,
            lost,
            reason,
            check_timeout: self.settings.op_timeout.min(Duration::from_secs(10)),
            store: self.clone(),
        };
        let got: bool = self
            .timed(
                "the day lock",
                lock.client.query_one(
                    "SELECT pg_try_advisory_lock($1, $2) FROM pg_advisory_lock_shared($3)",
                    &[&department_id, &day_key(day), &self.process_key],
                ),
            )
            .await?
            .get(0);
        Ok(got.then_some(lock))
    }

    /// The key every session of this process holds: `runs.process_key` of its runs.
    pub fn process_key(&self) -> i64 {
        self.process_key
    }

    /// A connection of its own, outside the pool, named `application_name`, with the
    /// future that drives it (it ends when the connection does).
    async fn connect_own(
        &self,
        application_name: &str,
    ) -> Result<
        (
            tokio_postgres::Client,
            impl std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
        ),
        StoreError,
    > {
        let mut config = self.settings.config.clone();
        config.application_name(application_name);
        let connect = config.connect(self.tls.clone());
        tokio::time::timeout(self.settings.connect_timeout, connect)
            .await
            .map_err(|_| StoreError::Timeout {
                target: self.settings.display.clone(),
                what: "a new connection",
                after: self.settings.connect_timeout,
            })?
            .map_err(|source| StoreError::Connect {
                target: self.settings.display.clone(),
                source,
            })
    }

    /// After the lock is lost, until the run ends (the watcher is aborted): a session that
    /// holds the process key, opened again whenever it breaks. The run may still have
    /// requests at the LLM, and its pool's sessions may be gone too (a server restart, an
    /// idle-session timeout); without it the next run would take its claims and pay for
    /// those calls again.
    async fn keep_process_alive(&self) {
        loop {
            if let Ok((client, connection)) = self.connect_own(KEEPER_APPLICATION_NAME).await {
                let connection = tokio::spawn(connection);
                let held = tokio::time::timeout(
                    self.settings.op_timeout,
                    client.execute("SELECT pg_advisory_lock_shared($1)", &[&self.process_key]),
                )
                .await;
                if matches!(held, Ok(Ok(_))) {
                    // Pinged like the lock's connection, so it does not sit idle.
                    loop {
                        tokio::time::sleep(LOCK_CHECK_EVERY).await;
                        let ping =
                            tokio::time::timeout(self.settings.op_timeout, client.simple_query(""))
                                .await;
                        if !matches!(ping, Ok(Ok(_))) {
                            break;
                        }
                    }
                }
                connection.abort();
            }
            tokio::time::sleep(KEEPER_RETRY).await;
        }
    }
}

fn set_lost(lost: &CancellationToken, reason: &std::sync::Mutex<Option<String>>, why: String) {
    let mut r = reason.lock().expect("lock reason");
    if r.is_none() {
        *r = Some(why);
    }
    lost.cancel();
}

impl DayLock {
    /// Starts checking the lock's connection every [`LOCK_CHECK_EVERY`], writing the run's
    /// heartbeat (`runs.heartbeat_at`) with each check when there is a run row.
    pub fn watch(&mut self, run_id: Option<i64>) {
        let client = self.client.clone();
        let lost = self.lost.clone();
        let reason = self.reason.clone();
        let check_timeout = self.check_timeout;
        let store = self.store.clone();
        self.watcher = Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(LOCK_CHECK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = lost.cancelled() => break,
                    _ = every.tick() => {}
                }
                let check = async {
                    match run_id {
                        Some(id) => client
                            .execute("UPDATE runs SET heartbeat_at = now() WHERE id = $1", &[&id])
                            .await
                            .map(|_| ()),
                        None => client.simple_query("SELECT 1").await.map(|_| ()),
                    }
                };
                let why = match tokio::time::timeout(check_timeout, check).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => format!("the lock's connection failed: {}", super::describe(&e)),
                    Err(_) => format!(
                        "the lock's connection did not answer within {} s",
                        check_timeout.as_secs()
                    ),
                };
                set_lost(&lost, &reason, why);
                break;
            }
            store.keep_process_alive().await;
        }));
    }

    /// Resolves when the lock is lost.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Why the lock was lost, once it has been.
    pub fn lost_reason(&self) -> Option<String> {
        self.reason.lock().expect("lock reason").clone()
    }
}

impl Drop for DayLock {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        self.connection.abort();
    }
}

/// Days since 1970-01-01: the second half of the advisory lock key.
fn day_key(day: NaiveDate) -> i32 {
    (day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}
