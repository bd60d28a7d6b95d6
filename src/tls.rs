//! TLS (wss), behind the `tls` feature: the server's settings ([`TlsConfig`], given to
//! [`ServerConfig::tls`](crate::ServerConfig::tls)) and the client's ([`client_config`], given to
//! [`ClientConfig::tls`](crate::client::ClientConfig::tls)). rustls is re-exported for settings
//! built by hand.
//!
//! The server side runs inside the shard loop: a connection's TLS state is in its slab entry,
//! records are decrypted into the shard's read buffer and frames encrypted on their way to the
//! socket (see `docs/architecture.md`).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

pub use crate::engine::tls::{CertFiles, CertSources, TlsConfig, TlsError, certified_key};
pub use rustls;

/// Which servers a client trusts.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// Certificates issued by the CA certificates in this PEM file.
    CaFile(&'a Path),
    /// Any certificate, unchecked (tests and benchmarks only: anyone in the path can read and
    /// change the traffic).
    Insecure,
}

/// Client settings: TLS 1.2 and 1.3, ALPN `http/1.1`, the aws-lc-rs provider, trusting what
/// `trust` says.
pub fn client_config(trust: Trust<'_>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = crate::engine::tls::provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let mut config = match trust {
        Trust::CaFile(path) => {
            let pem = |why: String| TlsError::Pem {
                path: path.to_owned(),
                why,
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| pem(e.to_string()))? {
                roots
                    .add(cert.map_err(|e| pem(e.to_string()))?)
                    .map_err(TlsError::Rustls)?;
            }
            if roots.is_empty() {
                return Err(pem("no CERTIFICATE in the file".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any certificate; signatures are still checked, so the handshake is a real one.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
