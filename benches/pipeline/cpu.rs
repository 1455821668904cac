//! CPU time, read from `/proc`: callq's (the benchmark's reaped children: `callq` is the
//! only process it starts), the benchmark process's own (the fakes answering callq, or the
//! save path's client in `save-only`) and PostgreSQL's (its postmaster and every process
//! under it) when the server runs on this machine. Wall time alone cannot say whose cost a
//! call is when all three share two cores.

use std::time::Duration;

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second on Linux whatever the kernel's HZ.
const TICKS_PER_SECOND: u64 = 100;

/// Cumulative CPU time of the three parties at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// This process, every thread.
    own: Duration,
    /// This process's children that have exited and been waited for.
    children: Duration,
    /// PostgreSQL's server processes, those that have exited included.
    postgres: Option<Duration>,
}

/// What a stretch of work cost each party.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    pub own: Duration,
    pub children: Duration,
    pub postgres: Option<Duration>,
}

impl Spent {
    /// Milliseconds of CPU per unit of work (per call, per save).
    pub fn per(&self, n: usize) -> (f64, f64, Option<f64>) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 / n.max(1) as f64;
        (ms(self.children), ms(self.own), self.postgres.map(ms))
    }
}

/// Reads the three parties' CPU time; PostgreSQL's only when its postmaster is a process
/// of this machine (found from a backend's parent).
pub struct Meter {
    postmaster: Option<u32>,
}

impl Meter {
    /// `client` is any connection to the server under measurement.
    pub async fn new(client: &tokio_postgres::Client) -> Meter {
        let backend: Option<i32> = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .ok()
            .map(|r| r.get(0));
        let postmaster = backend
            .and_then(|pid| u32::try_from(pid).ok())
            .and_then(stat)
            .map(|s| s.ppid)
            // A backend whose parent is not a postgres process is not on this machine's
            // /proc (another host, or a pid that happens to exist here).
            .filter(|ppid| is_postgres(*ppid));
        Meter { postmaster }
    }

    pub fn read(&self) -> Reading {
        let me = stat_self();
        Reading {
            own: me.map_or(Duration::ZERO, |s| ticks(s.utime + s.stime)),
            children: me.map_or(Duration::ZERO, |s| ticks(s.cutime + s.cstime)),
            postgres: self.postmaster.and_then(postgres_total),
        }
    }
}

impl Reading {
    pub fn since(&self, before: &Reading) -> Spent {
        Spent {
            own: self.own.saturating_sub(before.own),
            children: self.children.saturating_sub(before.children),
            postgres: match (self.postgres, before.postgres) {
                (Some(a), Some(b)) => Some(a.saturating_sub(b)),
                _ => None,
            },
        }
    }
}

/// Waits (up to 5 s) until no session but `client`'s is left on its database, so the
/// backends of a process that just exited have exited too and their time is counted.
pub async fn wait_for_sessions_to_end(client: &tokio_postgres::Client) {
    for _ in 0..500 {
        let left: i64 = match client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
        {
            Ok(row) => row.get(0),
            Err(_) => return,
        };
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Debug, Clone, Copy)]
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / TICKS_PER_SECOND)
}

fn stat_self() -> Option<Stat> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `/proc/<pid>/stat`: the fields after the command name (which may hold spaces and
/// parentheses, so the split is at the last `)`), numbered from 3 (state) as in proc(5).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

fn is_postgres(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| c.trim() == "postgres" || c.trim() == "postmaster")
}

/// The postmaster's own and reaped children's time, plus its live children's.
fn postgres_total(postmaster: u32) -> Option<Duration> {
    let main = stat(postmaster)?;
    let mut total = main.utime + main.stime + main.cutime + main.cstime;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(s) = stat(pid).filter(|s| s.ppid == postmaster) {
            total += s.utime + s.stime + s.cutime + s.cstime;
        }
    }
    Some(ticks(total))
}
