//! A throwaway PostgreSQL cluster for the demo, started from the server binaries on this
//! machine. initdb refuses to run as root, so as root the cluster belongs to the
//! unprivileged `postgres` user (created when missing) and runs through `runuser`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::severity::{Severe, Severity};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin. \
         Install PostgreSQL, or set DATA_BASE to a database the demo may write to — for example \
         the compose files' local-db profile: `docker compose -f docker-compose.department1.yml \
         --profile local-db up -d db` (publish its port, see the comments there), then \
         DATA_BASE=postgresql://callq:callq@localhost:5432/calls callq demo"
    )]
    NoServer,
    #[error("{step} failed: {detail}")]
    Step { step: String, detail: String },
}

impl Severe for ClusterError {
    fn severity(&self) -> Severity {
        match self {
            ClusterError::NoServer => Severity::Input,
            ClusterError::Step { .. } => Severity::Unavailable,
        }
    }
}

/// A running cluster; stopped and removed on drop unless [`Cluster::keep`] was called.
pub struct Cluster {
    dir: PathBuf,
    bindir: PathBuf,
    owner: Option<&'static str>,
    pub port: u16,
    kept: bool,
}

const OWNER: &str = "postgres";

fn step(step: &str, detail: impl std::fmt::Display) -> ClusterError {
    ClusterError::Step {
        step: step.to_string(),
        detail: detail.to_string(),
    }
}

/// initdb's folder: PATH first, then the newest of Debian's /usr/lib/postgresql/*/bin.
pub fn find_bindir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p).find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    /// initdb, then pg_ctl start on a free loopback port; blocks until the server accepts
    /// connections (pg_ctl -w).
    pub fn start() -> Result<Cluster, ClusterError> {
        let bindir = find_bindir().ok_or(ClusterError::NoServer)?;
        let dir = std::env::temp_dir().join(format!(
            "callq-demo-pg.{}.{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| step(&format!("mkdir {}", dir.display()), e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| step("chmod", e))?;
        let owner = if is_root() {
            ensure_owner()?;
            run(Command::new("chown").arg(OWNER).arg(&dir), "chown")?;
            Some(OWNER)
        } else {
            None
        };
        let mut cluster = Cluster {
            dir,
            bindir,
            owner,
            port: 0,
            kept: false,
        };
        let data = cluster.dir.join("data");
        run(
            cluster.command("initdb").arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        )?;
        cluster.port = free_port().map_err(|e| step("finding a free port", e))?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            cluster.port,
            cluster.dir.display()
        );
        let log = cluster.dir.join("server.log");
        // No pipes: the server outlives pg_ctl and would hold them open.
        let status = cluster
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| step("pg_ctl start", e))?;
        if !status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(step("pg_ctl start", text.trim()));
        }
        Ok(cluster)
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bindir.join(tool);
        match self.owner {
            Some(owner) => {
                let mut c = Command::new("runuser");
                c.args(["-u", owner, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// The server's `postgres` database.
    pub fn admin_url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Leaves the cluster running; returns the command that stops and removes it.
    pub fn keep(mut self) -> String {
        self.kept = true;
        let prefix = self
            .owner
            .map(|o| format!("runuser -u {o} -- "))
            .unwrap_or_default();
        format!(
            "{prefix}{} -D {} stop && rm -rf {}",
            self.bindir.join("pg_ctl").display(),
            self.dir.join("data").display(),
            self.dir.display()
        )
    }

    fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.kept {
            self.stop();
        }
    }
}

fn ensure_owner() -> Result<(), ClusterError> {
    let exists = Command::new("id")
        .args(["-u", OWNER])
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        run(
            Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                OWNER,
            ]),
            "useradd postgres",
        )?;
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<(), ClusterError> {
    let out = cmd.output().map_err(|e| step(what, e))?;
    if out.status.success() {
        Ok(())
    } else {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Err(step(what, text.trim()))
    }
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
