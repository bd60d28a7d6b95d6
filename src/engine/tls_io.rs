//! The shard's side of TLS: read ciphertext, decrypt it into the shard's read buffer for the
//! protocol core, encrypt what the write path sends, say close_notify before the FIN, and
//! answer and count what goes wrong.

use std::io::{self, Read};

use super::handler::Handler;
use super::input::{READ_BUDGET, ReadEnd};
use super::shard::Shard;
use super::state::App;
use super::stats::TlsFailure;

/// The answer to a plain HTTP request sent to the TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 45\r\nConnection: close\r\n\r\nthis port speaks TLS: use https:// or wss://\n";

/// An unfinished record kept between reads may not take more than this share of the read
/// buffer (a handshake message spread over many records is joined in place).
const MAX_PENDING_SHARE: usize = 2;

impl Shard {
    /// Reads TLS connection `key` until the socket is drained or its budget is spent: ciphertext
    /// into the shard's TLS buffer, plaintext into `scratch` (the shard's read buffer, after the
    /// bytes of an unfinished frame the connection kept), then to the protocol core.
    pub(in crate::engine) fn read_tls<H: Handler>(
        &mut self,
        app: &mut App<H>,
        scratch: &mut [u8],
        key: usize,
        read_closed: bool,
    ) -> ReadEnd {
        let mut rx = std::mem::take(&mut self.tls_rx);
        if rx.len() < scratch.len() {
            rx.resize(scratch.len(), 0);
        }
        let mut budget = READ_BUDGET;
        let end = loop {
            if !self.reads(key, scratch, read_closed) {
                break ReadEnd::Done;
            }
            let conn = &mut self.conns[key];
            let Some(tls) = conn.tls.as_mut() else {
                break ReadEnd::Done;
            };
            let kept = conn.leftover.len();
            // Plaintext is never longer than its records: what is read fits after `kept`.
            let room = scratch.len() - kept;
            let pend = tls.pending.len();
            if pend >= room / MAX_PENDING_SHARE {
                self.tls_failed(
                    key,
                    TlsFailure::BadRecord,
                    "record or handshake message too large",
                );
                break ReadEnd::Done;
            }
            rx[..pend].copy_from_slice(&tls.pending);
            let space = room - pend;
            let n = match conn.socket.read(&mut rx[pend..room]) {
                Ok(0) => {
                    if !tls.peer_closed {
                        // A truncation attack looks the same; to WebSocket it is a 1006.
                        self.count_tls(TlsFailure::NoCloseNotify);
                        log::debug!(
                            "shard {}: connection {key}: closed without close_notify",
                            self.index
                        );
                    }
                    self.kill(key);
                    break ReadEnd::Done;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break ReadEnd::Done,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.kill(key);
                    break ReadEnd::Done;
                }
            };
            conn.last_read_ms = self.now_ms;
            scratch[..kept].copy_from_slice(&conn.leftover);
            let mut out = std::mem::take(&mut self.tls_tx);
            let opened = tls.open(&mut rx[..pend + n], &mut scratch[kept..], &mut out);
            tls.pending.clear();
            tls.pending.extend_from_slice(&rx[opened.consumed..pend + n]);
            if tls.pending.is_empty() {
                // An idle connection keeps no buffer.
                tls.pending = Vec::new();
            }
            if !tls.established && !tls.is_handshaking() {
                tls.established = true;
                self.stats.tls_handshakes += 1;
                self.stats.tls_resumed += u64::from(tls.resumed());
            }
            if let Some(e) = opened.error {
                let plain_http = opened.plain == 0 && pend == 0 && looks_like_http(&rx[..n]);
                if plain_http {
                    out.clear();
                    out.extend_from_slice(PLAIN_HTTP_ANSWER);
                }
                self.write_raw(key, &out, &[]);
                out.clear();
                self.tls_tx = out;
                if plain_http {
                    self.tls_failed(key, TlsFailure::PlainHttp, "plain HTTP on the TLS port");
                } else {
                    self.tls_error(key, &e);
                }
                break ReadEnd::Done;
            }
            if !out.is_empty() {
                self.write_raw(key, &out, &[]);
            }
            out.clear();
            self.tls_tx = out;
            if opened.plain > 0 {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.leftover.clear();
                }
                self.process(app, scratch, key, kept + opened.plain);
            }
            if opened.peer_closed {
                // The peer's close_notify: no more input. Answer it and go, as after a FIN.
                self.close_notify(key);
                self.kill(key);
                break ReadEnd::Done;
            }
            budget = budget.saturating_sub(n);
            if n < space && !read_closed {
                break ReadEnd::Done;
            }
            if budget == 0 {
                break ReadEnd::Again;
            }
        };
        self.tls_rx = rx;
        end
    }

    /// Encrypts `a` then `b` for TLS connection `key` and writes the records (queueing what the
    /// kernel does not take).
    pub(in crate::engine) fn write_tls(&mut self, key: usize, a: &[u8], b: &[u8]) {
        let Some(tls) = self.conns.get_mut(key).and_then(|c| c.tls.as_mut()) else {
            return;
        };
        let mut out = std::mem::take(&mut self.tls_tx);
        let mut join = std::mem::take(&mut self.tls_join);
        let sealed = tls.seal(a, b, &mut join, &mut out);
        join.clear();
        self.tls_join = join;
        match sealed {
            Ok(()) => self.write_raw(key, &out, &[]),
            Err(e) => {
                log::debug!("shard {}: connection {key}: cannot encrypt: {e}", self.index);
                self.kill(key);
            }
        }
        out.clear();
        self.tls_tx = out;
    }

    /// Sends close_notify to TLS connection `key` (once, if its handshake is complete).
    /// Returns false for a plain connection.
    pub(in crate::engine) fn close_notify(&mut self, key: usize) -> bool {
        let Some(tls) = self.conns.get_mut(key).and_then(|c| c.tls.as_mut()) else {
            return false;
        };
        if tls.closed || tls.is_handshaking() {
            return true;
        }
        let mut out = std::mem::take(&mut self.tls_tx);
        tls.close_notify(&mut out);
        self.write_raw(key, &out, &[]);
        out.clear();
        self.tls_tx = out;
        true
    }

    /// Whether connection `key` is a TLS connection still in its TLS handshake.
    pub(in crate::engine) fn tls_handshaking(&self, key: usize) -> bool {
        self.conns
            .get(key)
            .and_then(|c| c.tls.as_ref())
            .is_some_and(|t| t.is_handshaking())
    }

    pub(in crate::engine) fn count_tls(&mut self, why: TlsFailure) {
        *self.stats.tls_failures.entry(why).or_default() += 1;
    }

    /// The TLS connection failed for `why`: count it, send what is queued (an alert), close.
    pub(in crate::engine) fn tls_failed(&mut self, key: usize, why: TlsFailure, what: &str) {
        self.count_tls(why);
        log::debug!("shard {}: connection {key}: TLS: {what}", self.index);
        if let Some(tls) = self.conns.get_mut(key).and_then(|c| c.tls.as_mut()) {
            tls.closed = true;
            tls.pending = Vec::new();
        }
        self.flush_then_close(key);
        self.after_io(key);
    }

    /// rustls failed the connection with `e` (its alert is already written).
    fn tls_error(&mut self, key: usize, e: &rustls::Error) {
        let handshaking = self.tls_handshaking(key);
        let why = match e {
            rustls::Error::AlertReceived(_) => TlsFailure::PeerAlert,
            _ if handshaking => TlsFailure::Handshake,
            _ => TlsFailure::BadRecord,
        };
        if why == TlsFailure::PeerAlert
            && handshaking
            && self.last_tls_log_ms.is_none_or(|t| self.now_ms >= t + 1000)
        {
            // A client refusing the handshake usually refuses the certificate: worth a look.
            self.last_tls_log_ms = Some(self.now_ms);
            log::warn!(
                "shard {}: a client refused the TLS handshake ({e}); check the certificate",
                self.index
            );
        }
        self.tls_failed(key, why, &e.to_string());
    }
}

/// Whether `input` starts like an HTTP request line (a method in capitals, then a space).
fn looks_like_http(input: &[u8]) -> bool {
    let method = input.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (3..=7).contains(&method) && input.get(method) == Some(&b' ')
}

#[cfg(test)]
mod tests {
    use super::looks_like_http;

    #[test]
    fn plain_http_is_told_from_a_client_hello() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"OPTIONS * HTTP/1.1\r\n"));
        assert!(!looks_like_http(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(!looks_like_http(b"GETX"));
    }
}
