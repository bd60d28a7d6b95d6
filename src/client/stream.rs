//! The client's byte stream: a TCP connection, or TLS over one (`wss://`).

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// A plain or TLS stream.
#[derive(Debug)]
pub(super) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP connection underneath.
    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.get_ref(),
        }
    }

    /// Starts TLS over `tcp` for `host` (the SNI name and the name the certificate must have).
    #[cfg(feature = "tls")]
    pub(super) fn tls(
        tcp: TcpStream,
        host: &str,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Self, super::ClientError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| super::ClientError::Url(format!("{host}: {e}")))?;
        let conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| super::ClientError::Io(io::Error::other(e)))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        // The handshake now, so that a refused certificate is a connect error.
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(Self::Tls(Box::new(s)))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.flush(),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        #[cfg(feature = "tls")]
        if let Self::Tls(s) = self {
            // close_notify, best effort: the server then knows the end is not a truncation.
            s.conn.send_close_notify();
            let _ = s.conn.write_tls(&mut s.sock);
        }
    }
}
