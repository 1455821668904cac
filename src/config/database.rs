//! DATA_BASE: the connection string, as the old tool wrote it or as PostgreSQL does.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub const DEFAULT_DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_DB_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct DbSettings {
    pub config: tokio_postgres::Config,
    /// The URL with its password replaced, safe to log.
    pub display: String,
    /// Opening a connection, the startup and login included (`connect_timeout` in the
    /// URL; tokio-postgres itself bounds only the TCP connect with it).
    pub connect_timeout: Duration,
    /// The longest one of callq's own database operations may take, waiting for a pooled
    /// connection included (DB_TIMEOUT_S): a database that stops answering ends the run
    /// instead of hanging it.
    pub op_timeout: Duration,
}

impl fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// Accepts the old tool's SQLAlchemy URLs (`postgresql+psycopg2://…`) as well as plain
/// `postgres://` URLs and key=value strings.
pub fn parse_database_url(raw: &str) -> Result<DbSettings, String> {
    let mut url = raw.trim().to_string();
    if let Some(rest) = url.strip_prefix("postgresql+")
        && let Some(i) = rest.find("://")
    {
        url = format!("postgresql{}", &rest[i..]);
    }
    let config = tokio_postgres::Config::from_str(&url)
        .map_err(|e| format!("not a PostgreSQL connection string: {e}"))?;
    if config.get_dbname().is_none() && config.get_user().is_none() {
        return Err(
            "names no database (expected postgresql://user:password@host:5432/dbname)".into(),
        );
    }
    let display = redact_password(&url);
    let mut config = config;
    let connect_timeout = match config.get_connect_timeout() {
        Some(t) if !t.is_zero() => *t,
        _ => DEFAULT_DB_CONNECT_TIMEOUT,
    };
    config.connect_timeout(connect_timeout);
    // Keepalives find a connection whose peer vanished (a restarted server, a NAT or
    // pooler that dropped it) within about a minute, even while it sits idle.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3);
    Ok(DbSettings {
        config,
        display,
        connect_timeout,
        op_timeout: DEFAULT_DB_TIMEOUT,
    })
}

fn redact_password(url: &str) -> String {
    if let Ok(mut u) = url::Url::parse(url) {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        return u.to_string();
    }
    // key=value form: drop the password pair.
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_urls_are_accepted_and_the_password_never_shows() {
        let db = parse_database_url("postgresql+psycopg2://u:secret@db:5432/calls").unwrap();
        assert_eq!(db.config.get_dbname(), Some("calls"));
        assert!(!db.display.contains("secret"), "{}", db.display);
        assert!(!format!("{db:?}").contains("secret"));
        let db = parse_database_url("host=db dbname=calls password=secret").unwrap();
        assert_eq!(db.display, "host=db dbname=calls password=***");
        assert_eq!(db.connect_timeout, DEFAULT_DB_CONNECT_TIMEOUT);
        assert!(parse_database_url("host=db").is_err());
    }
}
