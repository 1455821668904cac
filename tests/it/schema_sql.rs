//! db/schema.sql, for DBAs who create the database by hand, builds exactly what
//! `callq migrate` builds, and callq then finds nothing left to migrate.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::TestDb;
use callq::config::Env;
use callq::exit::ExitCode;
use callq::store::MIGRATIONS;

fn schema_sql() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("db/schema.sql"))
        .expect("db/schema.sql exists")
}

/// pg_dump from the server binaries scripts/test starts PostgreSQL with: `pg_config
/// --bindir`, else the newest /usr/lib/postgresql/*/bin, else the PATH.
fn pg_dump() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let candidate = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("pg_dump");
        if candidate.is_file() {
            return candidate;
        }
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let candidate = entry.path().join("bin/pg_dump");
            candidate.is_file().then_some((version, candidate))
        })
        .collect();
    versioned.sort();
    if let Some((_, newest)) = versioned.pop() {
        return newest;
    }
    PathBuf::from("pg_dump")
}

/// The schema as pg_dump prints it, less comments, blank lines and the `\restrict` /
/// `\unrestrict` lines newer pg_dump versions print with a random key.
fn dump_schema(url: &str) -> Vec<String> {
    let pg_dump = pg_dump();
    let out = Command::new(&pg_dump)
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--dbname",
            url,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (install the PostgreSQL client)",
                pg_dump.display()
            )
        });
    assert!(
        out.status.success(),
        "{} failed: {}",
        pg_dump.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("pg_dump prints UTF-8")
        .lines()
        .map(str::trim_end)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("--")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .map(str::to_string)
        .collect()
}

/// Lines of `a` missing from `b`, counting repeats, for a readable failure.
fn missing_from(a: &[String], b: &[String]) -> Vec<String> {
    let mut rest = b.to_vec();
    a.iter()
        .filter(|line| match rest.iter().position(|r| r == *line) {
            Some(i) => {
                rest.remove(i);
                false
            }
            None => true,
        })
        .cloned()
        .collect()
}

async fn callq_migrate(db: &TestDb) -> ExitCode {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env.migrate");
    std::fs::write(&env_file, format!("DATA_BASE={}\n", db.url)).unwrap();
    callq::commands::migrate::migrate(&Env::load_with(&env_file, true, Vec::new())).await
}

/// (version, name, applied_at as text) of every recorded migration.
async fn recorded_migrations(db: &TestDb) -> Vec<(i32, String, String)> {
    db.client()
        .await
        .query(
            "SELECT version, name, applied_at::text FROM callq_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("callq_migrations exists")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn schema_sql_builds_what_the_migrations_build() {
    callq::tls::install_crypto_provider();
    let by_hand = TestDb::create().await;
    let migrated = TestDb::create().await;

    by_hand
        .client()
        .await
        .batch_execute(&schema_sql())
        .await
        .expect("db/schema.sql applies to an empty database");
    assert_eq!(
        callq_migrate(&migrated).await,
        ExitCode::Ok,
        "callq migrate on an empty database"
    );

    let hand_dump = dump_schema(&by_hand.url);
    let migrated_dump = dump_schema(&migrated.url);
    assert!(
        hand_dump
            .iter()
            .any(|l| l.starts_with("CREATE TABLE public.calls")),
        "{hand_dump:#?}"
    );
    if hand_dump != migrated_dump {
        let at = hand_dump
            .iter()
            .zip(&migrated_dump)
            .take_while(|(a, b)| a == b)
            .count();
        panic!(
            "db/schema.sql has drifted from db/migrations/: update it to build what `callq migrate` builds.\n\
             only in schema.sql's database: {:#?}\nonly in the migrated database: {:#?}\n\
             first difference (line order matters: column order, for one), schema.sql: {:?}, migrated: {:?}",
            missing_from(&hand_dump, &migrated_dump),
            missing_from(&migrated_dump, &hand_dump),
            hand_dump.get(at),
            migrated_dump.get(at),
        );
    }

    let names = |rows: &[(i32, String, String)]| {
        rows.iter()
            .map(|(v, n, _)| (*v, n.clone()))
            .collect::<Vec<_>>()
    };
    let expected: Vec<(i32, String)> = MIGRATIONS
        .iter()
        .map(|(v, n, _)| (*v, n.to_string()))
        .collect();
    let hand_recorded = recorded_migrations(&by_hand).await;
    assert_eq!(names(&recorded_migrations(&migrated).await), expected);
    assert_eq!(
        names(&hand_recorded),
        expected,
        "db/schema.sql must record every migration in callq_migrations"
    );

    // callq finds the hand-built database up to date: it applies nothing and records nothing.
    assert_eq!(
        callq_migrate(&by_hand).await,
        ExitCode::Ok,
        "callq migrate on the schema.sql database"
    );
    assert_eq!(recorded_migrations(&by_hand).await, hand_recorded);
    assert_eq!(dump_schema(&by_hand.url), hand_dump);
}

#[tokio::test]
async fn schema_sql_changes_nothing_where_tables_exist() {
    let db = TestDb::create().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE calls (id bigint PRIMARY KEY, total_score double precision)")
        .await
        .unwrap();
    let before = dump_schema(&db.url);
    let err = client
        .batch_execute(&schema_sql())
        .await
        .expect_err("schema.sql must refuse an existing table");
    assert!(
        err.to_string().contains("already exists") || format!("{err:?}").contains("already exists"),
        "{err:?}"
    );
    // Nothing of the failed transaction is left once it is rolled back.
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(dump_schema(&db.url), before);
}
