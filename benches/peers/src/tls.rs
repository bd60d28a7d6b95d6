//! wss for the peer servers: a tokio-rustls acceptor built from PEM files, with the settings c10k
//! serves TLS with (rustls, the aws-lc-rs provider, TLS 1.3 and 1.2, ALPN `http/1.1`, rustls'
//! defaults for everything else), and the matching client settings the smoke checks dial with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The certificate chain (leaf first) and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `--tls-cert FILE`.
    pub cert: PathBuf,
    /// `--tls-key FILE` (PKCS#8, RSA or EC).
    pub key: PathBuf,
}

/// The aws-lc-rs provider, as c10k's `tls` feature uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Both versions c10k accepts, newest first.
const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The acceptor of a peer started with `--tls-cert`/`--tls-key`.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| match e {
        pem::Error::NoItemsFound => format!("{}: no private key in the file", files.key.display()),
        e => format!("{}: {e}", files.key.display()),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Client settings that trust the CA certificates in `ca` (PEM), offer ALPN `http/1.1` and the
/// given protocol `versions` (both, or one to check that each is served).
pub fn client_config(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", ca.display()))?;
    for cert in certs {
        roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", ca.display()));
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Both TLS versions, for [`client_config`].
pub fn all_versions() -> &'static [&'static rustls::SupportedProtocolVersion] {
    VERSIONS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_files_are_named_in_the_error() {
        let missing = TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let err = acceptor(&missing).err().unwrap();
        assert!(err.starts_with("/nonexistent/cert.pem: "), "{err}");

        let dir = std::env::temp_dir().join(format!("c10k-peers-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = acceptor(&TlsFiles {
            cert: empty.clone(),
            key: empty.clone(),
        })
        .err()
        .unwrap();
        assert!(err.ends_with("no CERTIFICATE in the file"), "{err}");
        let err = client_config(&empty, all_versions()).err().unwrap();
        assert!(err.ends_with("no CERTIFICATE in the file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
