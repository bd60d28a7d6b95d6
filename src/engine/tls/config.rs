//! The server's TLS settings: certificates (one default, more chosen by SNI) loaded from PEM,
//! ALPN `http/1.1`, TLS 1.2 and 1.3, and the swap of the whole set at run time (a reload on
//! SIGHUP): connections accepted afterwards use the new set, the others keep theirs.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why TLS settings could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or held no usable PEM item.
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// rustls refused the settings (a key that does not match its certificate, an unsupported
    /// key type, a bad SNI name).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pem { path, why } => write!(f, "{}: {why}", path.display()),
            Self::Rustls(e) => write!(f, "TLS settings refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        Self::Rustls(e)
    }
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The chain, leaf first (PEM `CERTIFICATE` items).
    pub cert: PathBuf,
    /// The private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), PEM.
    pub key: PathBuf,
}

/// Where the certificates come from: what [`TlsConfig::reload`] reads again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSources {
    /// Served when the client names no server (no SNI) or a name without a certificate of its
    /// own.
    pub default: CertFiles,
    /// Certificates chosen by the server name the client asks for (SNI), by exact name.
    pub sni: Vec<(String, CertFiles)>,
}

/// The TLS settings of a listener, swappable at run time.
///
/// Each accepted connection takes the settings current at its accept ([`TlsConfig::current`]);
/// [`TlsConfig::replace`] or [`TlsConfig::reload`] change them for the connections accepted
/// after, without touching the open ones.
pub struct TlsConfig {
    current: Mutex<Arc<rustls::ServerConfig>>,
    sources: Option<CertSources>,
    /// The session ticket key of settings made from files, kept across reloads.
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Settings built by the caller. The engine speaks HTTP/1.1 inside TLS: if the config
    /// announces no ALPN protocol, `http/1.1` is set.
    pub fn new(mut config: rustls::ServerConfig) -> Self {
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        Self {
            current: Mutex::new(Arc::new(config)),
            sources: None,
            ticketer: None,
        }
    }

    /// Settings from PEM files: the default certificate and those chosen by SNI; ALPN
    /// `http/1.1`; TLS 1.2 and 1.3; the aws-lc-rs provider; stateless session tickets (the
    /// session is inside the ticket, encrypted with a key of this process that rotates every
    /// 6 hours), so that resumption does not depend on a cache that a burst of handshakes turns
    /// over. The ticket key survives [`TlsConfig::reload`].
    pub fn from_files(sources: CertSources) -> Result<Self, TlsError> {
        let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        let config = server_config(&sources, &ticketer)?;
        Ok(Self {
            current: Mutex::new(Arc::new(config)),
            sources: Some(sources),
            ticketer: Some(ticketer),
        })
    }

    /// The settings for a connection accepted now.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the settings for the connections accepted from now on.
    pub fn replace(&self, config: rustls::ServerConfig) {
        let config = Self::new(config).current();
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Reads the PEM files again (settings made by [`TlsConfig::from_files`]) and uses them for
    /// the connections accepted from now on. On error the settings in use stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (Some(sources), Some(ticketer)) = (self.sources.as_ref(), self.ticketer.as_ref()) else {
            return Ok(());
        };
        let config = Arc::new(server_config(sources, ticketer)?);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }
}

/// The crypto provider: aws-lc-rs (see docs/dependencies.md).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn server_config(
    sources: &CertSources,
    ticketer: &Arc<dyn rustls::server::ProducesTickets>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let default = Arc::new(certified_key(&sources.default, &provider)?);
    let mut by_name = HashMap::new();
    for (name, files) in &sources.sni {
        by_name.insert(
            name.to_ascii_lowercase(),
            Arc::new(certified_key(files, &provider)?),
        );
    }
    let resolver = Resolver { default, by_name };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ticketer = Arc::clone(ticketer);
    Ok(config)
}

/// Reads a certificate chain and its key from PEM files.
pub fn certified_key(files: &CertFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let pem = |path: &Path, why: String| TlsError::Pem {
        path: path.to_owned(),
        why,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| pem(&files.cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(&files.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem(&files.cert, "no CERTIFICATE in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem(&files.key, e.to_string()))?;
    Ok(CertifiedKey::from_der(chain, key, provider)?)
}

/// Chooses the certificate by the client's SNI name, or the default one.
#[derive(Debug)]
struct Resolver {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()))
            .unwrap_or(&self.default);
        Some(Arc::clone(chosen))
    }
}
