//! PostgreSQL: every statement callq sends is here, one file per area. This file holds the
//! pool, its TLS and its timeouts, and the errors; `migrations` the schema, `save` a call's
//! save, `claims` and `lock` what keeps two runs apart, `runs` the `runs` rows, `operators`
//! the directory, `purge` retention, `calibration`, `experiment`, `canary` and `report` the
//! commands' reads and writes, `rows` the helpers they share.

mod batches;
mod calibration;
mod canary;
mod claims;
mod experiment;
mod lock;
mod migrations;
mod operators;
mod purge;
mod report;
mod rows;
mod runs;
mod save;

use std::sync::Arc;

use deadpool_postgres::{Hook, Manager, ManagerConfig, Pool, RecyclingMethod};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DbSettings;
use crate::severity::{Severe, Severity};

pub use batches::{BatchCall, BatchLock, BatchRow, CollectedCall, NewBatch, OPEN_STATES};
pub use calibration::HumanImportCounts;
pub(crate) use canary::{CanaryAgreement, CanaryNightRecord, CanaryNightRow};
pub use claims::Claim;
pub use experiment::{ExperimentCall, ExperimentStart, ExperimentTotals, StoredCall};
pub use lock::DayLock;
pub use migrations::{MIGRATIONS, MIGRATIONS_TABLE};
pub use operators::{ImportCounts, UnknownOperator};
pub use purge::{PURGE_BATCH, PurgeCounts, PurgeScope};
pub use runs::{Revisit, RunFinish, RunStart};
pub use save::{CallRecord, Failure};

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
    /// The server's own message, detail and constraint, not just "db error".
    #[error("database: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    #[error("migration {name}: {}", describe(.source))]
    Migration {
        name: String,
        source: tokio_postgres::Error,
    },
    /// The server did not answer in time (DB_TIMEOUT_S, or `connect_timeout` for a new
    /// connection): it is down, frozen or unreachable.
    #[error("database {target} did not answer {what} within {} s", .after.as_secs())]
    Timeout {
        target: String,
        what: &'static str,
        after: std::time::Duration,
    },
    #[error("the database is not migrated (table {0} is missing); run `callq migrate` first")]
    NotMigrated(String),
}

impl Severe for StoreError {
    fn severity(&self) -> Severity {
        match self {
            StoreError::NotMigrated(_) => Severity::Input,
            // A statement refused for its data fails that call; a closed connection means
            // the database is gone, and a refusal no statement escapes (permissions, a
            // missing table, a full disk, a shutdown) stops the run wherever it happens.
            StoreError::Query(e) if !e.is_closed() => match e.as_db_error() {
                Some(db) if refuses_every_statement(db.code()) => Severity::Unavailable,
                Some(_) => Severity::Call,
                None => Severity::Unavailable,
            },
            _ => Severity::Unavailable,
        }
    }
}

/// SQLSTATE classes of a database that cannot do the run's work at all, whatever the
/// data: connection (08), authorization (28), catalog (3D), schema (3F), access rules and
/// undefined objects (42), resources (53), operator intervention (57), system (58),
/// internal (XX); and a read-only transaction (25006).
fn refuses_every_statement(code: &tokio_postgres::error::SqlState) -> bool {
    let code = code.code();
    code == "25006"
        || ["08", "28", "3D", "3F", "42", "53", "57", "58", "XX"]
            .iter()
            .any(|class| code.starts_with(class))
}

/// A database error as the server put it: message, detail, hint, constraint; else the
/// client's error with its causes.
pub fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return with_causes(e);
    };
    let mut text = format!("{} ({})", db.message(), db.code().code());
    if let Some(d) = db.detail() {
        text.push_str(&format!("; detail: {d}"));
    }
    if let Some(h) = db.hint() {
        text.push_str(&format!("; hint: {h}"));
    }
    if let Some(c) = db.constraint() {
        text.push_str(&format!("; constraint: {c}"));
    }
    if let Some(t) = db.table() {
        text.push_str(&format!("; table: {t}"));
    }
    text
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    settings: DbSettings,
    /// Opens every connection, the pool's and the run lock's.
    tls: MakeRustlsConnect,
    /// Held (shared) by every session of this process: whether its runs are alive.
    process_key: i64,
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
        let process_key = lock::new_process_key();
        let manager = Manager::from_config(
            settings.config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(settings.op_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.op_timeout))
            .post_create(lock::hold_process_key(process_key))
            .post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    // Transcripts (a few KB each, the only values big enough to be
                    // compressed) are compressed with lz4 where the server has it
                    // (PostgreSQL 14+): the default, pglz, is a fifth of a save's work.
                    // Readers need nothing; a server without lz4 refuses the setting and
                    // keeps its default.
                    if let Err(e) = client
                        .simple_query("SET default_toast_compression = lz4")
                        .await
                    {
                        tracing::debug!("lz4 compression not available: {e}");
                    }
                    Ok(())
                })
            }))
            .build()
            .expect("the pool's timeouts have a runtime");
        let store = Store {
            pool,
            settings: settings.clone(),
            tls,
            process_key,
        };
        let client = store.client().await?;
        store
            .timed("a first query", client.simple_query("SELECT 1"))
            .await?;
        Ok(store)
    }

    /// A pooled connection; a database that cannot give one in time is reported as gone.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(source) => StoreError::Connect {
                target: self.settings.display.clone(),
                source,
            },
            deadpool_postgres::PoolError::Timeout(kind) => StoreError::Timeout {
                target: self.settings.display.clone(),
                what: match kind {
                    deadpool_postgres::TimeoutType::Create => "a new connection",
                    _ => "a free connection",
                },
                after: match kind {
                    deadpool_postgres::TimeoutType::Create => self.settings.connect_timeout,
                    _ => self.settings.op_timeout,
                },
            },
            other => StoreError::Pool(other),
        })
    }

    /// Bounds one of callq's database operations by DB_TIMEOUT_S. The server's own
    /// `statement_timeout` cannot help when the server itself stops answering.
    ///
    /// Applied inside the store's methods, never by their callers: every operation of the
    /// nightly run is bounded (the first query, the tables' check, the department, the
    /// directory, the stored calls, claims, the day lock, the `runs` rows, saves, failures,
    /// unknown operators). Migrations and the commands' imports, reports, experiments and
    /// purges are not: on a big database they may rightly take longer.
    async fn timed<T, E>(
        &self,
        what: &'static str,
        op: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, StoreError>
    where
        StoreError: From<E>,
    {
        match tokio::time::timeout(self.settings.op_timeout, op).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout {
                target: self.settings.display.clone(),
                what,
                after: self.settings.op_timeout,
            }),
        }
    }

    /// The database as it may be logged: host and name, never the password.
    pub fn target(&self) -> &str {
        &self.settings.display
    }
}

/// `error` and the errors under it, `: `-separated.
pub(crate) fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
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
