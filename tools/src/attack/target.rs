//! The server under attack: its address, the `Host` and path its upgrade requests carry, and the
//! TLS settings of a `wss://` URL.

use std::net::{IpAddr, SocketAddr};
#[cfg(feature = "tls")]
use std::sync::Arc;

use c10k::client::WsUrl;

use super::Options;

/// Where the attacks and the bystanders connect, resolved once.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// The address connected to.
    pub addr: SocketAddr,
    /// The `Host` header field.
    pub host: String,
    /// The request target of the URL (path and query).
    pub path: String,
    /// `wss://`: every connection speaks TLS.
    pub secure: bool,
    /// The address the attack's sockets are bound to (not the bystanders').
    pub source: Option<IpAddr>,
    /// wss: the client settings and the name the certificate must have.
    #[cfg(feature = "tls")]
    pub tls: Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)>,
}

impl Target {
    /// Resolves `opts.url`; a `wss://` URL needs the TLS settings (and a build with TLS).
    pub fn resolve(opts: &Options) -> Result<Self, String> {
        let url = WsUrl::parse(&opts.url).map_err(|e| e.to_string())?;
        let addr = url.socket_addr().map_err(|e| e.to_string())?;
        #[cfg(feature = "tls")]
        let tls = if url.secure {
            let config = opts.tls.clone().ok_or_else(|| {
                format!(
                    "{}: wss:// needs TLS settings (--tls-ca FILE or --insecure)",
                    opts.url
                )
            })?;
            Some((config, crate::loadgen::tls_server_name(&url.host)?))
        } else {
            None
        };
        #[cfg(not(feature = "tls"))]
        if url.secure {
            return Err(format!("{}: this build has no TLS (the tls feature)", opts.url));
        }
        Ok(Self {
            url: opts.url.clone(),
            addr,
            host: url.host_header(),
            path: url.target.clone(),
            secure: url.secure,
            source: opts.source,
            #[cfg(feature = "tls")]
            tls,
        })
    }
}
