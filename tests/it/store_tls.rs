//! The database connection's TLS follows the URL's `sslmode` the way the old tool's psycopg2
//! did: against the test server, which has no TLS, `prefer` (the default) and `disable`
//! connect in plain text and `require` refuses; against a server that offers TLS with a
//! self-signed certificate, `prefer` and `require` both connect over TLS.

use std::sync::Arc;

use crate::common::{TestDb, day};
use callq::config::parse_database_url;
use callq::store::{Store, StoreError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// `url` with its `sslmode` replaced and a password that must never be shown.
fn with_sslmode(url: &str, mode: &str) -> String {
    let mut url = url::Url::parse(url).expect("a URL");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "sslmode")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("sslmode", mode);
    url.set_password(Some("sekrit-pw")).unwrap();
    url.to_string()
}

async fn connect(url: &str) -> Result<Store, StoreError> {
    let settings = parse_database_url(url).expect("a valid database URL");
    Store::connect(&settings, 2).await
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is not set: run the tests through ./scripts/test")
}

#[tokio::test]
async fn require_against_a_server_without_tls_is_a_connect_error_naming_the_redacted_url() {
    let url = with_sslmode(&database_url(), "require");
    let Err(err) = connect(&url).await else {
        panic!("sslmode=require connected to a server without TLS");
    };
    let StoreError::Connect { target, source } = &err else {
        panic!("expected StoreError::Connect, got {err}");
    };
    assert!(target.contains("***"), "{target}");
    assert!(target.contains("sslmode=require"), "{target}");
    let message = err.to_string();
    assert!(!message.contains("sekrit-pw"), "{message}");
    assert!(message.contains(target.as_str()), "{message}");
    // The cause is shown, not only tokio-postgres's "error performing TLS handshake".
    assert!(
        message
            .ends_with("unreachable: error performing TLS handshake: server does not support TLS"),
        "{message}"
    );
    assert!(source.as_db_error().is_none());
}

#[tokio::test]
async fn prefer_and_disable_use_plain_text_when_the_server_has_no_tls() {
    let db = TestDb::create().await;
    for mode in ["prefer", "disable"] {
        let store = connect(&with_sslmode(&db.url, mode))
            .await
            .unwrap_or_else(|e| panic!("sslmode={mode}: {e}"));
        // The run lock opens a connection of its own, through the same connector.
        let lock = store.lock_day(1, day()).await.unwrap();
        assert!(lock.is_some(), "sslmode={mode}: lock not taken");
        assert!(store.lock_day(1, day()).await.unwrap().is_none());
        drop(lock);
    }
}

/// A server that answers the SSLRequest with `S`, completes a TLS handshake with a
/// self-signed certificate, reads the startup message through TLS and refuses it with an
/// error the client shows: reaching that error proves the connection went over TLS.
async fn fake_tls_server() -> (u16, tokio::task::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![CertificateDer::from(cert.cert.der().to_vec())], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let task = tokio::spawn(async move {
        let mut handshakes = 0;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            socket.read_exact(&mut request).await.unwrap();
            // Length 8, then the SSLRequest code 80877103.
            assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47], "not an SSLRequest");
            socket.write_all(b"S").await.unwrap();
            let Ok(mut tls) = acceptor.accept(socket).await else {
                continue;
            };
            handshakes += 1;
            let mut len = [0u8; 4];
            tls.read_exact(&mut len).await.unwrap();
            let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
            tls.read_exact(&mut startup).await.unwrap();
            let mut fields = Vec::new();
            for (code, value) in [
                (b'S', "FATAL"),
                (b'V', "FATAL"),
                (b'C', "28000"),
                (b'M', "fake server: startup received over TLS"),
            ] {
                fields.push(code);
                fields.extend_from_slice(value.as_bytes());
                fields.push(0);
            }
            fields.push(0);
            let mut reply = vec![b'E'];
            reply.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
            reply.extend_from_slice(&fields);
            tls.write_all(&reply).await.unwrap();
            tls.flush().await.unwrap();
            let _ = tls.shutdown().await;
            if handshakes == 2 {
                break;
            }
        }
        handshakes
    });
    (port, task)
}

#[tokio::test]
async fn prefer_and_require_use_tls_when_offered_even_with_a_self_signed_certificate() {
    let (port, server) = fake_tls_server().await;
    for mode in ["prefer", "require"] {
        let url = format!("postgresql://callq:sekrit-pw@127.0.0.1:{port}/calls?sslmode={mode}");
        let Err(err) = connect(&url).await else {
            panic!("the fake server accepted a login");
        };
        let StoreError::Connect { source, .. } = &err else {
            panic!("sslmode={mode}: expected StoreError::Connect, got {err}");
        };
        let db_error = source
            .as_db_error()
            .unwrap_or_else(|| panic!("sslmode={mode}: no TLS session: {err}"));
        assert_eq!(db_error.message(), "fake server: startup received over TLS");
    }
    assert_eq!(server.await.unwrap(), 2);
}
