//! The client side's TLS options, shared by `c10k bench`, `c10k check` and `c10k fuzz`: whom a
//! `wss://` URL trusts.

use std::path::PathBuf;
use std::sync::Arc;

use c10k::tls::{Trust, client_config};

/// TLS options of a command that connects to `wss://` URLs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsClientArgs {
    /// Trust the certificates issued by the CA certificates in this PEM file (wss:// URLs).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub tls_ca: Option<PathBuf>,
    /// Accept any server certificate on wss:// URLs, unchecked (tests and benchmarks only).
    #[arg(long)]
    pub insecure: bool,
}

impl TlsClientArgs {
    /// The client settings for `url`: None for `ws://`; for `wss://`, the settings that trust
    /// what --tls-ca or --insecure says (one of them is required: this program carries no list
    /// of public CAs).
    pub fn config_for(&self, url: &str) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        if !url.starts_with("wss://") {
            return Ok(None);
        }
        let trust = match (&self.tls_ca, self.insecure) {
            (Some(path), _) => Trust::CaFile(path),
            (None, true) => Trust::Insecure,
            (None, false) => return Err(format!("{url}: wss:// needs --tls-ca FILE or --insecure")),
        };
        client_config(trust).map(Some).map_err(|e| format!("TLS: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_needs_nothing_and_wss_needs_a_trust() {
        let none = TlsClientArgs::default();
        assert!(none.config_for("ws://127.0.0.1:1/").unwrap().is_none());
        let err = none.config_for("wss://127.0.0.1:1/").unwrap_err();
        assert!(err.contains("--tls-ca FILE or --insecure"), "{err}");
        let insecure = TlsClientArgs {
            insecure: true,
            ..TlsClientArgs::default()
        };
        let config = insecure.config_for("wss://127.0.0.1:1/").unwrap().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let missing = TlsClientArgs {
            tls_ca: Some("/nonexistent/ca.pem".into()),
            ..TlsClientArgs::default()
        };
        assert!(missing.config_for("wss://127.0.0.1:1/").is_err());
    }
}
