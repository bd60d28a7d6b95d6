//! `c10k serve`'s TLS options: certificates from PEM files (a default one and more chosen by
//! SNI), the TLS listener's address, and the reload on SIGHUP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use c10k::ServerConfig;
use c10k::tls::{CertFiles, CertSources, TlsConfig};

/// TLS options of `c10k serve` (wss://).
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Certificate chain, PEM (leaf first): serve wss:// with it. Reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert, PEM (PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Another certificate, for clients asking for NAME by SNI (repeatable): NAME=CERT,KEY.
    #[arg(long, value_name = "NAME=CERT,KEY", requires = "tls_cert", value_parser = parse_sni)]
    tls_sni: Vec<(String, CertFiles)>,
    /// Listen for TLS here, beside the plain listener on --addr. Without it, --addr speaks TLS
    /// when --tls-cert is given.
    #[arg(long, value_name = "ADDR", requires = "tls_cert")]
    tls_addr: Option<SocketAddr>,
}

fn parse_sni(s: &str) -> Result<(String, CertFiles), String> {
    let (name, files) = s.split_once('=').ok_or("expected NAME=CERT,KEY")?;
    let (cert, key) = files.split_once(',').ok_or("expected NAME=CERT,KEY")?;
    if name.is_empty() || cert.is_empty() || key.is_empty() {
        return Err("expected NAME=CERT,KEY".into());
    }
    Ok((
        name.to_owned(),
        CertFiles {
            cert: cert.into(),
            key: key.into(),
        },
    ))
}

impl TlsArgs {
    /// The TLS listener's address beside the plain one (`--tls-addr`).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Loads the certificates into `config`; returns the settings to reload on SIGHUP.
    pub fn apply(&self, config: &mut ServerConfig) -> Result<Option<Arc<TlsConfig>>, String> {
        let (Some(cert), Some(key)) = (self.tls_cert.clone(), self.tls_key.clone()) else {
            return Ok(None);
        };
        let tls = TlsConfig::from_files(CertSources {
            default: CertFiles { cert, key },
            sni: self.tls_sni.clone(),
        })
        .map_err(|e| format!("TLS: {e}"))?;
        let tls = Arc::new(tls);
        config.tls = Some(Arc::clone(&tls));
        config.tls_addr = self.tls_addr;
        Ok(Some(tls))
    }
}

/// SIGHUP: the certificate files are read again; new handshakes use them, open connections
/// keep theirs. A failed reload keeps the certificates in use.
pub fn reload(tls: &TlsConfig) {
    match tls.reload() {
        Ok(()) => log::info!("SIGHUP: TLS certificates reloaded"),
        Err(e) => log::error!("SIGHUP: TLS certificates not reloaded, the old ones stay: {e}"),
    }
}
