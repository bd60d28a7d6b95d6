//! wss: each connection's TLS, a rustls client connection boxed in its [`LoadClient`] (none for
//! `ws://`). The plaintext the scenarios queue in `out` is encrypted on its way to the socket;
//! the records read from the socket are decrypted into the thread's read buffer, where the
//! WebSocket client reads them as it reads a plain connection's bytes.
//!
//! A connection counts as open (and its handshake latency ends) at the `101` answer, so the
//! handshake latency of a wss connection includes the TCP connect and the whole TLS handshake.
//! Without resumption ([`Options::tls_resume`](crate::loadgen::Options::tls_resume)) every
//! handshake is a full one; with it each thread keeps the session tickets its connections got
//! and the later connections of the thread resume with them.
//!
//! A failed TLS connection (an alert, a certificate it does not trust, a broken record) is an
//! error of that connection, `TLS: <why>`, after rustls' alert is sent. A connection that ends
//! sends close_notify (once its handshake is done); the server's FIN without close_notify is
//! taken as the end of the connection like a plain FIN (the WebSocket closing handshake, not
//! TLS, says whether it ended well).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind};

use super::Driver;
use super::client::{LoadClient, Phase};
use crate::loadgen::Scenario;

/// Ciphertext read from the socket at once (allocated on a thread's first TLS read).
const TLS_READ: usize = 64 << 10;
/// The settings of one load thread: `base` with session resumption on (a store of this
/// thread's own) or off.
pub(super) fn thread_config(base: &Arc<ClientConfig>, resume: bool) -> Arc<ClientConfig> {
    let mut config = ClientConfig::clone(base);
    config.resumption = if resume {
        rustls::client::Resumption::store(Arc::new(super::sessions::Sessions::default()))
    } else {
        rustls::client::Resumption::disabled()
    };
    Arc::new(config)
}

/// The name a `wss://` URL's host is checked against (and sent by SNI).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| format!("{host}: not a TLS server name: {e}"))
}

impl LoadClient {
    /// Whether this connection resumed a TLS session.
    pub(super) fn tls_resumed(&self) -> bool {
        self.tls.as_ref().and_then(|t| t.handshake_kind()) == Some(HandshakeKind::Resumed)
    }

    /// What this connection's TLS agreed on: version, cipher suite, key exchange group.
    pub(super) fn tls_params(&self) -> Option<String> {
        let tls = self.tls.as_ref()?;
        let name = |v: Option<String>| v.unwrap_or_else(|| "?".to_owned());
        Some(format!(
            "{}, {}, {}",
            name(tls.protocol_version().map(|v| format!("{v:?}"))),
            name(tls.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite()))),
            name(
                tls.negotiated_key_exchange_group()
                    .map(|g| format!("{:?}", g.name()))
            ),
        ))
    }

    /// Sends close_notify, if the TLS handshake is done: once, and only as far as the socket
    /// takes it now (the connection is being dropped).
    pub(super) fn close_notify(&mut self) {
        if let Some(tls) = self.tls.as_mut()
            && !tls.is_handshaking()
        {
            tls.send_close_notify();
            let _ = tls.write_tls(&mut self.socket);
        }
    }
}

impl Driver {
    /// Connection `key` is connected: starts its TLS if it is a wss connection (the ClientHello
    /// leaves with the next flush). Returns false if the connection failed.
    pub(super) fn start_tls(&mut self, key: usize) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        let publisher = c.index == 0 && self.shared.opts.scenario == Scenario::Fanout;
        let name = match self.shared.publish_addr {
            Some(_) if publisher => &self.shared.publish_tls_name,
            _ => &self.shared.tls_name,
        };
        let (Some(name), Some(config)) = (name, self.tls.as_ref()) else {
            return true;
        };
        match ClientConnection::new(Arc::clone(config), name.clone()) {
            Ok(conn) => {
                c.tls = Some(Box::new(conn));
                true
            }
            Err(e) => {
                self.fail(key, format!("TLS: {e}"));
                false
            }
        }
    }

    /// Moves what `out` holds into TLS records and writes them, until the socket would block
    /// (the rest waits in `out` and in rustls for the next writable event).
    pub(super) fn flush_tls(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        let Some(tls) = c.tls.as_mut() else { return };
        loop {
            if !c.out.is_empty() {
                // rustls takes what its buffer limit allows (before the handshake is done, it
                // keeps the plaintext and sends it after).
                match tls.writer().write(&c.out) {
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(e) => return self.fail(key, format!("TLS: {e}")),
                }
            }
            if !tls.wants_write() {
                return;
            }
            match tls.write_tls(&mut c.socket) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(key, format!("write: {e}")),
            }
        }
    }

    /// Reads TLS connection `key` until the socket would block: ciphertext into the thread's
    /// TLS buffer, plaintext into `scratch`, then to the scenario as a plain read would.
    pub(super) fn read_tls(&mut self, key: usize, scratch: &mut [u8]) {
        let mut rx = std::mem::take(&mut self.tls_rx);
        if rx.is_empty() {
            rx = vec![0; TLS_READ];
        }
        while let Some(c) = self.conns.get_mut(key) {
            if c.phase == Phase::Connecting {
                break;
            }
            let n = match c.socket.read(&mut rx) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.fail(key, format!("read: {e}"));
                    break;
                }
            };
            if !self.tls_input(key, scratch, &rx[..n]) {
                break;
            }
        }
        self.tls_rx = rx;
    }

    /// Feeds the ciphertext `input` read from connection `key` (empty: the server's FIN) to its
    /// TLS, the plaintext to the scenario, and sends what rustls and the scenario have to send.
    /// Returns whether the connection is still there to read from.
    fn tls_input(&mut self, key: usize, scratch: &mut [u8], mut input: &[u8]) -> bool {
        let fin = input.is_empty();
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return false;
            };
            let Some(tls) = c.tls.as_mut() else { return false };
            // rustls takes at most a few KiB at a time: the rest goes in on the next pass.
            let took = if input.is_empty() {
                0
            } else {
                match tls.read_tls(&mut input) {
                    Ok(n) => n,
                    Err(e) => {
                        self.fail(key, format!("TLS: {e}"));
                        return false;
                    }
                }
            };
            let state = match tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // The alert that says why, as far as the socket takes it.
                    let _ = tls.write_tls(&mut c.socket);
                    self.fail(key, format!("TLS: {e}"));
                    return false;
                }
            };
            if state.plaintext_bytes_to_read() > 0 && !self.tls_plaintext(key, scratch) {
                return false;
            }
            self.flush(key);
            if state.peer_has_closed() || fin {
                // close_notify or FIN: the server sends nothing more.
                self.tls_end(key);
                return false;
            }
            if input.is_empty() {
                return self.conns.contains(key);
            }
            if took == 0 {
                self.fail(key, "TLS: rustls took none of the input".to_owned());
                return false;
            }
        }
    }

    /// Hands the plaintext rustls decrypted to the scenario: after the bytes of an unfinished
    /// frame the connection kept (the slowloris answer on its own). Returns whether the
    /// connection is still there.
    fn tls_plaintext(&mut self, key: usize, scratch: &mut [u8]) -> bool {
        let slowloris = self.shared.opts.scenario == Scenario::Slowloris;
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return false;
            };
            let Some(tls) = c.tls.as_mut() else { return false };
            let kept = if slowloris { 0 } else { c.leftover.len() };
            if kept >= scratch.len() {
                self.fail(key, "leftover larger than the read buffer".to_owned());
                return false;
            }
            let n = match tls.reader().read(&mut scratch[kept..]) {
                Ok(0) => return true,
                Ok(n) => n,
                // WouldBlock: all read. UnexpectedEof (a FIN without close_notify): the caller
                // ends the connection.
                Err(_) => return true,
            };
            if slowloris {
                if !self.slowloris_input(key, &scratch[..n]) {
                    return self.conns.contains(key);
                }
                continue;
            }
            scratch[..kept].copy_from_slice(&c.leftover);
            c.leftover.clear();
            self.process(key, scratch, kept + n, Instant::now());
        }
    }

    /// The server closed TLS connection `key` (close_notify or FIN): the end of a plain
    /// connection's read.
    fn tls_end(&mut self, key: usize) {
        if self.shared.opts.scenario == Scenario::Slowloris {
            self.slow_eof(key);
        } else {
            self.on_eof(key);
        }
    }
}
