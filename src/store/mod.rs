//! PostgreSQL: the pool, embedded migrations, the per-(department, day) run lock, and the
//! reads the run needs. Saving calls and runs lives in `save`, retention in `purge`.

mod migrations;
mod operators;
mod purge;
mod save;

use std::sync::Arc;

use chrono::NaiveDate;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DbSettings;

pub use migrations::MIGRATIONS;
pub use operators::{ImportCounts, UnknownOperator};
pub use purge::{PURGE_BATCH, PurgeCounts, PurgeScope};
pub use save::{CallRecord, Failure, RunFinish, RunStart};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Shows the causes too: tokio-postgres's own message is only the kind of failure
    /// ("error performing TLS handshake", "db error").
    #[error("database {target} unreachable: {}", with_causes(.source))]
    Connect {
        target: String,
        source: tokio_postgres::Error,
    },
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("migration {name}: {source}")]
    Migration {
        name: String,
        source: tokio_postgres::Error,
    },
    #[error("the database is not migrated (table {0} is missing); run `callq migrate` first")]
    NotMigrated(String),
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    settings: DbSettings,
    /// Opens every connection, the pool's and the run lock's.
    tls: MakeRustlsConnect,
}

impl Store {
    /// Builds the pool and checks the database answers, so an unreachable database is
    /// reported before anything else is fetched.
    ///
    /// TLS follows the URL's `sslmode` as libpq (the old tool's psycopg2) does: `disable`
    /// plain, `prefer` (the default) TLS when the server offers it and plain otherwise,
    /// `require` TLS or fail — see [`tls_connector`].
    pub async fn connect(settings: &DbSettings, max_size: usize) -> Result<Store, StoreError> {
        let tls = tls_connector();
        let manager = Manager::from_config(
            settings.config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size.max(2))
            .build()
            .expect("no runtime-less pool options");
        let store = Store {
            pool,
            settings: settings.clone(),
            tls,
        };
        let client = store.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(source) => StoreError::Connect {
                target: settings.display.clone(),
                source,
            },
            other => StoreError::Pool(other),
        })?;
        client.simple_query("SELECT 1").await?;
        Ok(store)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Applies the embedded migrations not applied yet; returns their names.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut client = self.client().await?;
        migrations::apply(&mut client).await
    }

    /// Fails with a hint when the tables a dry run reads are missing (a dry run does not migrate).
    pub async fn ensure_migrated(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        for table in ["calls", "operators", "runs", "call_failures"] {
            let row = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
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

    /// The whole operator directory: (id, full_name, department_id).
    pub async fn operators(&self) -> Result<Vec<(i64, String, Option<i64>)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id::bigint, full_name, department_id::bigint FROM operators",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get::<_, Option<String>>(1).unwrap_or_default(),
                    r.get(2),
                )
            })
            .collect())
    }

    /// Which of these calls already have a row in `calls` (scored or judged not-sales,
    /// by this tool or the old one).
    pub async fn existing_calls(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT id::bigint FROM calls WHERE id = ANY($1::bigint[])")
            .await?;
        let rows = client.query(&stmt, &[&ids]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Makes sure the department exists, so calls can reference it.
    pub async fn ensure_department(&self, id: i32) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "INSERT INTO departments (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                &[&id, &format!("Отдел {id}")],
            )
            .await?;
        Ok(n == 1)
    }

    /// Takes the advisory lock of (department, day) on a connection of its own, held until
    /// the guard is dropped; `None` when another run holds it.
    pub async fn lock_day(
        &self,
        department_id: i32,
        day: NaiveDate,
    ) -> Result<Option<DayLock>, StoreError> {
        let (client, connection) = self
            .settings
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|source| StoreError::Connect {
                target: self.settings.display.clone(),
                source,
            })?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        let day_number = day_key(day);
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&department_id, &day_number],
            )
            .await?;
        if row.get::<_, bool>(0) {
            Ok(Some(DayLock {
                _client: client,
                task,
            }))
        } else {
            task.abort();
            Ok(None)
        }
    }
}

/// `error` and the errors under it, `: `-separated.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// The TLS side of every database connection. Like libpq's `sslmode=prefer` and `require`
/// (the only modes tokio-postgres knows), the connection is encrypted but the server's
/// certificate is not checked against any roots: the servers the old tool reached include
/// self-signed certificates (Debian's and Ubuntu's packaged PostgreSQL turn TLS on with a
/// snakeoil certificate) and managed databases signed by the provider's own CA, which
/// psycopg2 accepted and no OS root store holds. The handshake's signatures are still
/// verified, and SCRAM channel binding, used when the server offers it, ties the password
/// exchange to the certificate the client saw.
fn tls_connector() -> MakeRustlsConnect {
    crate::tls::install_crypto_provider();
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the provider supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(UncheckedServerCert(provider)))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// Accepts any server certificate, as libpq's `sslmode=require` without a root certificate
/// file does, but still checks that the server holds the certificate's key.
#[derive(Debug)]
struct UncheckedServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for UncheckedServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Days since 1970-01-01: the second half of the advisory lock key.
fn day_key(day: NaiveDate) -> i32 {
    (day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// Holds a run's (department, day) lock. Dropping it closes the connection, which releases
/// the lock; a crashed process releases it the same way.
pub struct DayLock {
    _client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DayLock {
    fn drop(&mut self) {
        self.task.abort();
    }
}
