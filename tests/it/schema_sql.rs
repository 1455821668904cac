//! db/schema.sql, for DBAs who create the database by hand, is generated from the
//! migrations (so it cannot drift), builds exactly what `callq migrate` builds, and callq
//! then finds nothing left to migrate.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::TestDb;
use callq::config::Env;
use callq::severity::ExitCode;
use callq::store::{MIGRATIONS, MIGRATIONS_TABLE};

const WRITE_VAR: &str = "CALLQ_WRITE_SCHEMA";

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("db/schema.sql")
}

fn schema_sql() -> String {
    std::fs::read_to_string(schema_path()).expect("db/schema.sql exists")
}

const HEADER: &str = "\
-- callq's full database schema, for a DBA who creates the database by hand.
--
-- GENERATED from db/migrations/ by tests/it/schema_sql.rs: do not edit. After adding a
-- migration, run `CALLQ_WRITE_SCHEMA=1 cargo test --test it schema_sql` to regenerate.
--
-- It is the migrations in order, as `callq migrate` applies them to an empty database
-- (the same test compares the two), and it records them as applied in callq_migrations,
-- so callq does not run them again.
--
-- For an EMPTY database only:
--
--     psql -v ON_ERROR_STOP=1 -d calls -f db/schema.sql
--
-- It runs in one transaction and fails, changing nothing, where a table already exists.
-- For the old tool's database (tables and data already there) do not use this file: run
-- `callq migrate`, which keeps existing tables, columns and rows and adds what is missing.
";

/// Tables the migrations create: the ones whose presence means \"not an empty database\".
fn created_tables() -> Vec<String> {
    let mut tables = vec!["callq_migrations".to_string()];
    for (_, _, sql) in MIGRATIONS {
        for line in sql.lines() {
            let line = line.trim_start();
            if let Some(rest) = line.strip_prefix("CREATE TABLE IF NOT EXISTS ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && !tables.contains(&name) {
                    tables.push(name);
                }
            }
        }
    }
    tables
}

/// db/schema.sql as it must be: header, a guard against existing tables (the migrations
/// themselves say IF NOT EXISTS), the migrations table and every migration in order, and
/// the migrations recorded, in one transaction.
fn generated_schema_sql() -> String {
    let mut out = String::from(HEADER);
    out.push_str("\nBEGIN;\n\n");
    let tables = created_tables()
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    out.push_str(&format!(
        "-- An empty database only: a table of callq's already there stops everything.\n\
         DO $$\n\
         DECLARE t text;\n\
         BEGIN\n\
         \x20   FOREACH t IN ARRAY ARRAY[{tables}] LOOP\n\
         \x20       IF to_regclass('public.' || t) IS NOT NULL THEN\n\
         \x20           RAISE EXCEPTION 'table % already exists: db/schema.sql is for an empty database; use callq migrate', t;\n\
         \x20       END IF;\n\
         \x20   END LOOP;\n\
         END\n\
         $$;\n\n"
    ));
    out.push_str("-- ─── Migration bookkeeping (what `callq migrate` creates and reads) ───\n\n");
    out.push_str(MIGRATIONS_TABLE.trim_end());
    out.push_str(";\n");
    for (_, name, sql) in MIGRATIONS {
        out.push_str(&format!("\n-- ─── db/migrations/{name}.sql ───\n\n"));
        out.push_str(sql.trim_end());
        out.push('\n');
    }
    out.push_str("\n-- The migrations above, recorded so callq does not apply them again.\n");
    out.push_str("INSERT INTO callq_migrations (version, name) VALUES\n");
    let rows = MIGRATIONS
        .iter()
        .map(|(version, name, _)| format!("    ({version}, '{name}')"))
        .collect::<Vec<_>>()
        .join(",\n");
    out.push_str(&rows);
    out.push_str(";\n\nCOMMIT;\n");
    out
}

/// With CALLQ_WRITE_SCHEMA=1 rewrites db/schema.sql; otherwise fails when it differs.
#[test]
fn schema_sql_is_generated_from_the_migrations() {
    let expected = generated_schema_sql();
    if std::env::var_os(WRITE_VAR).is_some_and(|v| v == "1") {
        // Through a temporary file: the other schema tests may be reading it right now.
        let tmp = schema_path().with_extension("sql.tmp");
        std::fs::write(&tmp, &expected).unwrap();
        std::fs::rename(&tmp, schema_path()).unwrap();
        return;
    }
    if schema_sql() != expected {
        panic!(
            "db/schema.sql differs from what db/migrations/ generate: \
             run {WRITE_VAR}=1 cargo test --test it schema_sql to regenerate"
        );
    }
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
