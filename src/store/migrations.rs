//! Migrations embedded in the binary, applied in order, each in its own transaction,
//! recorded in `callq_migrations`. Two processes migrating at once serialise on a lock.
//! Also the checks that a database has the tables a command reads.

use super::{Store, StoreError};

/// (version, name, SQL), in order. Append only: an applied migration never changes.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_initial",
        include_str!("../../db/migrations/0001_initial.sql"),
    ),
    (
        2,
        "0002_unknown_operators",
        include_str!("../../db/migrations/0002_unknown_operators.sql"),
    ),
    (
        3,
        "0003_bi_views",
        include_str!("../../db/migrations/0003_bi_views.sql"),
    ),
    (
        4,
        "0004_run_safety",
        include_str!("../../db/migrations/0004_run_safety.sql"),
    ),
    (
        5,
        "0005_gateway",
        include_str!("../../db/migrations/0005_gateway.sql"),
    ),
    (
        6,
        "0006_quality",
        include_str!("../../db/migrations/0006_quality.sql"),
    ),
    (
        7,
        "0007_run_liveness",
        include_str!("../../db/migrations/0007_run_liveness.sql"),
    ),
    (
        8,
        "0008_canary",
        include_str!("../../db/migrations/0008_canary.sql"),
    ),
    (
        9,
        "0009_batches",
        include_str!("../../db/migrations/0009_batches.sql"),
    ),
    (
        10,
        "0010_canary_batches",
        include_str!("../../db/migrations/0010_canary_batches.sql"),
    ),
];

/// The table that records applied migrations; db/schema.sql creates it with the same text.
pub const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS callq_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// An arbitrary constant: the advisory lock key that serialises concurrent migrations.
const MIGRATION_LOCK: i64 = 0x6361_6c6c_715f_6d67;

impl Store {
    /// Applies the embedded migrations not applied yet; returns their names.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut client = self.client().await?;
        apply(&mut client).await
    }

    /// Fails with a hint when the tables a dry run reads are missing (a dry run does not migrate).
    pub async fn ensure_migrated(&self) -> Result<(), StoreError> {
        self.timed(
            "the tables' check",
            self.require_tables(&["calls", "operators", "runs", "call_failures"]),
        )
        .await
    }

    /// Fails with a hint when one of these tables is missing (the database is not migrated).
    pub async fn require_tables(&self, tables: &[&str]) -> Result<(), StoreError> {
        let client = self.client().await?;
        for table in tables {
            let row = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])
                .await?;
            if !row.get::<_, bool>(0) {
                return Err(StoreError::NotMigrated(table.to_string()));
            }
        }
        Ok(())
    }

    /// Names of the embedded migrations this database has not had yet.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let exists: bool = client
            .query_one("SELECT to_regclass('callq_migrations') IS NOT NULL", &[])
            .await?
            .get(0);
        let done: Vec<i32> = if exists {
            client
                .query("SELECT version FROM callq_migrations", &[])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
        } else {
            Vec::new()
        };
        Ok(MIGRATIONS
            .iter()
            .filter(|(v, _, _)| !done.contains(v))
            .map(|(_, name, _)| name.to_string())
            .collect())
    }
}

async fn apply(client: &mut tokio_postgres::Client) -> Result<Vec<String>, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(MIGRATIONS_TABLE).await?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM callq_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|source| StoreError::Migration {
                name: name.to_string(),
                source,
            })?;
        tx.execute(
            "INSERT INTO callq_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        applied.push(name.to_string());
    }
    tx.commit().await?;
    Ok(applied)
}
