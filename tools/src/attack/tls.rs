//! wss: the TLS side of the attackers' connections. A connection's plaintext goes through its
//! rustls client connection on the way out and comes back decrypted on the way in, so that every
//! attack runs the same over `ws://` and `wss://`; and a connection may instead send a ClientHello
//! and nothing after it (tls-hello-flood).

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::ClientConnection;

use super::fleet::{Fleet, read_error};
use super::peer::{Answer, Stage};

/// Ciphertext read from the socket at once.
const TLS_READ: usize = 64 << 10;

impl Fleet {
    /// Starts the TLS of `key` if the target is `wss://` (its ClientHello leaves with the next
    /// flush). Returns false if the connection failed.
    pub(super) fn start_tls(&mut self, key: usize) -> bool {
        let Some((config, name)) = self.target_tls() else {
            return true;
        };
        match ClientConnection::new(config, name) {
            Ok(conn) => {
                if let Some(p) = self.peer(key) {
                    p.tls = Some(Box::new(conn));
                }
                true
            }
            Err(e) => {
                self.finish(key, Answer::Failed(format!("TLS: {e}")));
                false
            }
        }
    }

    /// Sends a ClientHello on `key` and nothing after it: the connection then reads raw bytes.
    /// Returns false if the connection failed.
    pub(super) fn hello_only(&mut self, key: usize) -> bool {
        let Some((config, name)) = self.target_tls() else {
            self.finish(key, Answer::Failed("a ClientHello needs a wss:// URL".to_owned()));
            return false;
        };
        let mut conn = match ClientConnection::new(config, name) {
            Ok(c) => c,
            Err(e) => {
                self.finish(key, Answer::Failed(format!("TLS: {e}")));
                return false;
            }
        };
        let mut hello = Vec::new();
        while conn.wants_write() {
            if conn.write_tls(&mut hello).is_err() {
                break;
            }
        }
        let Some(p) = self.peer(key) else { return false };
        p.stage = Stage::Raw;
        p.out = hello;
        true
    }

    fn target_tls(&self) -> Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)> {
        self.target_ref().tls.clone()
    }

    /// Moves what `key` has queued into TLS records and writes them, until the socket would
    /// block.
    pub(super) fn flush_tls(&mut self, key: usize) {
        let Some(p) = self.peer(key) else { return };
        let Some(tls) = p.tls.as_mut() else { return };
        loop {
            if !p.out.is_empty() && !p.write_dead {
                match tls.writer().write(&p.out) {
                    Ok(n) => {
                        p.out.drain(..n);
                        p.sent += n as u64;
                    }
                    Err(_) => return p.write_failed(),
                }
            }
            if !tls.wants_write() || p.write_dead {
                return;
            }
            match tls.write_tls(&mut p.socket) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return p.write_failed(),
            }
        }
    }

    /// Reads TLS connection `key` until the socket would block: records in, plaintext to the
    /// connection's reading.
    pub(super) fn read_tls(&mut self, key: usize) {
        let mut rx = std::mem::take(&mut self.tls_rx);
        if rx.is_empty() {
            rx = vec![0; TLS_READ];
        }
        let mut plain = std::mem::take(&mut self.scratch);
        while let Some(p) = self.peer(key) {
            if !p.reading || p.stage == Stage::Connecting {
                break;
            }
            let n = match p.socket.read(&mut rx) {
                Ok(0) => {
                    self.finish(key, Answer::Eof);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.finish(key, read_error(&e));
                    break;
                }
            };
            p.received += n as u64;
            if !self.records(key, &rx[..n], &mut plain) {
                break;
            }
        }
        self.tls_rx = rx;
        self.scratch = plain;
    }

    /// Feeds ciphertext to `key`'s TLS and its plaintext to the connection. Returns whether the
    /// connection is still there.
    fn records(&mut self, key: usize, mut input: &[u8], plain: &mut [u8]) -> bool {
        while !input.is_empty() {
            let Some(p) = self.peer(key) else { return false };
            let Some(tls) = p.tls.as_mut() else { return false };
            if let Err(e) = tls.read_tls(&mut input) {
                self.finish(key, Answer::Failed(format!("TLS: {e}")));
                return false;
            }
            let state = match tls.process_new_packets() {
                Ok(s) => s,
                Err(e) => {
                    let _ = tls.write_tls(&mut p.socket);
                    self.finish(key, Answer::Failed(format!("TLS: {e}")));
                    return false;
                }
            };
            loop {
                let Some(p) = self.peer(key) else { return false };
                let Some(tls) = p.tls.as_mut() else { return false };
                match tls.reader().read(plain) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => self.input(key, &plain[..n]),
                }
            }
            // The handshake's own records (and pongs, Close replies) go out.
            self.flush(key);
            if state.peer_has_closed() {
                self.finish(key, Answer::Eof);
                return false;
            }
        }
        true
    }
}
