//! One process-wide TLS crypto provider. reqwest and the Google crates both use rustls;
//! without an installed default, rustls refuses to pick between providers at run time.

/// Installs the ring provider; a second call (tests start many clients) is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
