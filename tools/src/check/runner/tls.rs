//! TLS under a script's connection (`wss://`): the handshake, and one rustls `ClientConnection`
//! shared by the writer (the script's thread) and the reader thread, such that writing still
//! never waits on reading.
//!
//! # Sharing one connection between two threads
//!
//! The connection's state (keys, sequence numbers, buffers) is behind one mutex, held only
//! for work on memory: encrypting a piece of plaintext and taking the records it made out
//! (`write_tls` into a `Vec`), or decrypting bytes already read (`read_tls`,
//! `process_new_packets`, the plaintext taken out). No thread blocks on the socket while it
//! holds it:
//!
//! - **The reader thread** reads raw bytes from its clone of the socket without the lock, then
//!   locks to decrypt them. It never writes on the socket.
//! - **The writer** (the script's thread) is the only one that writes on the socket. It locks,
//!   encrypts at most rustls' buffer limit (64 KiB), takes every record rustls has waiting,
//!   unlocks, and only then writes those bytes, bounded by the deadline. A server that stops
//!   reading blocks the writer on the socket, never the reader on the lock: the reader goes on
//!   decrypting what the server sends, so the server's own writes drain and it cannot wedge the
//!   two directions against each other.
//!
//! **Record order.** Records must reach the socket in the order rustls made them (each is
//! sealed with the next sequence number: one sent out of its turn does not decrypt). rustls keeps
//! them in one queue; the records are taken out of it only under the lock and only by the writer, which
//! writes each batch completely (or fails) before it takes the next. So the bytes on the
//! socket are the queue's, in order, whoever made them.
//!
//! **Records the reader's side makes** (a fatal alert after a bad record, the reply to a key
//! update, the refusal of a renegotiation) stay in that queue; the reader thread only tells the
//! writer (an event on the channel it hands frames over, once for records that were not waiting
//! yet), and never blocks on anything. The writer sends them when it wakes for that event (it
//! waits for the server's frames on that channel), or before its own next records, which come
//! after them in the queue anyway. A writer that is blocked on a server that does not read
//! delays them, as it delays its own: they are behind its bytes in any order that is right.
//!
//! Only one lock, never held across I/O: no lock order, no deadlock; a socket write is bounded by
//! the script's deadline and the reader thread's read ends when the transport shuts the socket.
//!
//! # How the server's end looks over TLS
//!
//! The end of the server's stream is its close_notify, or a TCP FIN without one: both are "the
//! server closed the connection" for the checker, as for browsers (a WebSocket tells a clean end
//! by its own Close frame; a frame cut short by the FIN is judged as over plain TCP). A fatal
//! alert from the server is a reset; records that do not parse or decrypt are garbage.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::ClientConnection;

use super::ms;
use super::transport::Rx;
use super::wire::{self, Fill, Source, is_timeout};
use crate::check::TargetTls;

/// How long the close_notify at the end may take to go out.
const CLOSE_NOTIFY_WAIT: Duration = Duration::from_millis(100);

/// The TLS state of one connection, shared by the writer and the reader thread.
struct Tls {
    conn: ClientConnection,
    /// Plaintext decrypted and not taken yet.
    plain: Vec<u8>,
    /// The server's close_notify arrived.
    closed: bool,
    /// The records did not parse or decrypt, or the server sent a fatal alert.
    failed: Option<rustls::Error>,
}

impl Tls {
    /// Decrypts `bytes` (read from the socket) into `plain`.
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.closed && self.failed.is_none() {
            match self.conn.read_tls(&mut bytes) {
                // close_notify already came: what follows it is not read.
                Ok(0) => self.closed = true,
                Ok(_) => {}
                Err(e) => {
                    self.failed = Some(rustls::Error::General(e.to_string()));
                    return;
                }
            }
            match self.conn.process_new_packets() {
                Ok(state) => {
                    let at = self.plain.len();
                    self.plain.resize(at + state.plaintext_bytes_to_read(), 0);
                    if let Err(e) = self.conn.reader().read_exact(&mut self.plain[at..]) {
                        self.plain.truncate(at);
                        self.failed = Some(rustls::Error::General(e.to_string()));
                    }
                    self.closed |= state.peer_has_closed();
                }
                Err(e) => self.failed = Some(e),
            }
        }
    }
}

/// A TLS session over a script's socket.
pub(super) struct Session {
    tcp: TcpStream,
    tls: Arc<Mutex<Tls>>,
}

fn lock(tls: &Mutex<Tls>) -> MutexGuard<'_, Tls> {
    // A panic elsewhere leaves the state as consistent as rustls left it; the script goes on.
    tls.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the TLS handshake on `tcp` before `deadline`. The error says why in one line: the
/// certificate was refused, the server does not speak TLS, it closed, it did not answer.
pub(super) fn connect(tcp: TcpStream, target: &TargetTls, deadline: Instant) -> Result<Session, String> {
    let started = Instant::now();
    let conn = ClientConnection::new(Arc::clone(&target.config), target.name.clone())
        .map_err(|e| format!("cannot start TLS: {e}"))?;
    let mut tls = Tls {
        conn,
        plain: Vec::new(),
        closed: false,
        failed: None,
    };
    let mut raw = vec![0u8; 16 << 10];
    let mut first = true;
    let mut out = Vec::new();
    loop {
        out.clear();
        while tls.conn.wants_write() {
            tls.conn
                .write_tls(&mut out)
                .map_err(|e| format!("cannot encode the TLS handshake: {e}"))?;
        }
        if let Some(e) = tls.failed.take() {
            // Our alert, best effort: the server then knows why.
            let _ = wire::write_until(&tcp, &out, deadline);
            return Err(handshake_failed(&e));
        }
        if !out.is_empty() {
            wire::write_until(&tcp, &out, deadline).map_err(|e| {
                if is_timeout(&e) {
                    format!("the TLS handshake was not over within {}", ms(started.elapsed()))
                } else {
                    format!("the connection failed during the TLS handshake ({})", e.kind())
                }
            })?;
        }
        if !tls.conn.is_handshaking() {
            break;
        }
        let n = match wire::read_until(&tcp, &mut raw, deadline) {
            Ok(0) if first => {
                return Err(
                    "the server closed the connection on the TLS ClientHello: it does not \
                            seem to speak TLS on this port"
                        .to_owned(),
                );
            }
            Ok(0) => return Err("the server closed the connection during the TLS handshake".to_owned()),
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                return Err(format!(
                    "the server did not finish the TLS handshake within {}",
                    ms(started.elapsed())
                ));
            }
            Err(e) => {
                return Err(format!(
                    "the connection failed during the TLS handshake ({})",
                    e.kind()
                ));
            }
        };
        if first {
            first = false;
            if let Some(why) = not_tls(&raw[..n]) {
                return Err(why);
            }
        }
        tls.feed(&raw[..n]);
        if tls.closed {
            return Err("the server ended TLS (close_notify) during the handshake".to_owned());
        }
    }
    Ok(Session {
        tcp,
        tls: Arc::new(Mutex::new(tls)),
    })
}

fn handshake_failed(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(_) => {
            format!("the server's certificate was refused ({e})")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the TLS handshake (alert {alert:?})")
        }
        _ => format!("the TLS handshake failed: {e}"),
    }
}

/// Why the server's first answer to the ClientHello is not TLS, if it is not: a TLS record
/// begins with a content type (20 to 24) and the major version 3.
fn not_tls(first: &[u8]) -> Option<String> {
    let tls = matches!(first, [20..=24] | [20..=24, 3, ..]);
    if tls {
        return None;
    }
    if first.starts_with(b"HTTP/") {
        let line = first
            .split(|&b| b == b'\r' || b == b'\n')
            .next()
            .unwrap_or_default();
        let line: String = String::from_utf8_lossy(line).chars().take(80).collect();
        return Some(format!(
            "the server answered the TLS ClientHello with plain HTTP ({line:?}): it does not speak \
             TLS on this port (a ws:// URL reaches it)"
        ));
    }
    let shown: Vec<String> = first.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "the server's answer to the TLS ClientHello is not TLS (it begins {}): it does not speak TLS \
         on this port",
        shown.join(" ")
    ))
}

impl Session {
    /// The protocol version, cipher suite and ALPN protocol agreed, for reports.
    pub(super) fn describe(&self) -> String {
        let tls = lock(&self.tls);
        let version = match tls.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
            Some(v) => format!("{v:?}"),
            None => "TLS".to_owned(),
        };
        let mut s = version;
        if let Some(suite) = tls.conn.negotiated_cipher_suite() {
            s.push_str(&format!(", {:?}", suite.suite()));
        }
        match tls.conn.alpn_protocol() {
            Some(p) => s.push_str(&format!(", ALPN {}", String::from_utf8_lossy(p))),
            None => s.push_str(", no ALPN"),
        }
        s
    }

    /// Encrypts and writes all of `bytes` before `deadline`, after the records that wait
    /// (`bytes` empty: only those). The lock is held to encrypt and take the records out, never
    /// while writing them.
    pub(super) fn write_until(&self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        let mut rest = bytes;
        let mut records = Vec::new();
        loop {
            {
                let mut tls = lock(&self.tls);
                if !rest.is_empty() {
                    let n = tls.conn.writer().write(rest)?;
                    rest = &rest[n..];
                }
                while tls.conn.wants_write() {
                    tls.conn.write_tls(&mut records)?;
                }
            }
            if records.is_empty() {
                return if rest.is_empty() {
                    Ok(())
                } else {
                    Err(io::Error::other("TLS took no more plaintext"))
                };
            }
            wire::write_until(&self.tcp, &records, deadline)?;
            records.clear();
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// Reads decrypted bytes (at most `buf.len()`), waiting until `deadline`; `Ok(0)` when the
    /// server closed. Only while no reader thread runs (the opening handshake).
    pub(super) fn read_until(&self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        let mut raw = [0u8; 4096];
        loop {
            {
                let mut tls = lock(&self.tls);
                if !tls.plain.is_empty() {
                    let n = buf.len().min(tls.plain.len());
                    buf[..n].copy_from_slice(&tls.plain[..n]);
                    tls.plain.drain(..n);
                    return Ok(n);
                }
                if let Some(e) = &tls.failed {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                }
                if tls.closed {
                    return Ok(0);
                }
            }
            // An alert or a key update reply made by the last records goes out first.
            self.write_until(&[], deadline)?;
            let n = wire::read_until(&self.tcp, &mut raw, deadline)?;
            if n == 0 {
                return Ok(0);
            }
            lock(&self.tls).feed(&raw[..n]);
        }
    }

    /// The reader thread's source: a clone of the socket, and the shared state to decrypt with.
    pub(super) fn source(&self) -> io::Result<TlsSource> {
        Ok(TlsSource {
            tcp: self.tcp.try_clone()?,
            tls: Arc::clone(&self.tls),
            raw: vec![0u8; 64 << 10],
        })
    }

    /// Sends close_notify if it goes out at once, and shuts the socket.
    pub(super) fn close(&self) {
        let mut records = Vec::new();
        {
            let mut tls = lock(&self.tls);
            if tls.failed.is_none() {
                tls.conn.send_close_notify();
            }
            while tls.conn.wants_write() {
                if tls.conn.write_tls(&mut records).is_err() {
                    break;
                }
            }
        }
        let _ = wire::write_until(&self.tcp, &records, Instant::now() + CLOSE_NOTIFY_WAIT);
        let _ = self.tcp.shutdown(Shutdown::Both);
    }
}

/// The reader thread's side of a session: raw bytes read without the lock, decrypted with it.
pub(super) struct TlsSource {
    tcp: TcpStream,
    tls: Arc<Mutex<Tls>>,
    raw: Vec<u8>,
}

impl TlsSource {
    /// What is decrypted and not taken yet, or how the stream ended; None when a read must come.
    fn take(&self, buf: &mut Vec<u8>) -> Option<Fill> {
        let mut tls = lock(&self.tls);
        if !tls.plain.is_empty() {
            buf.append(&mut tls.plain);
            return Some(Fill::MORE);
        }
        if let Some(e) = &tls.failed {
            return Some(Fill::end(ended_by(e)));
        }
        tls.closed.then(|| Fill::end(Rx::Eof))
    }
}

impl Source for TlsSource {
    fn fill(&mut self, buf: &mut Vec<u8>) -> Fill {
        // What the handshake's reads decrypted comes first; the end after the last bytes.
        if let Some(fill) = self.take(buf) {
            return fill;
        }
        let n = match self.tcp.read(&mut self.raw) {
            // A TCP FIN without close_notify: closed, as browsers take it.
            Ok(0) => return Fill::end(Rx::Eof),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Fill::MORE,
            Err(e) => return Fill::end(Rx::Reset(e.kind().to_string())),
        };
        // The writer is told once when these bytes made records to send (records already
        // waiting were told about when they were made).
        let flush = {
            let mut tls = lock(&self.tls);
            let waiting = tls.conn.wants_write();
            tls.feed(&self.raw[..n]);
            !waiting && tls.conn.wants_write()
        };
        let mut fill = self.take(buf).unwrap_or(Fill::MORE);
        fill.flush = flush;
        fill
    }
}

/// How records that failed end the stream: a fatal alert is the server aborting (a reset);
/// records that do not parse or decrypt are garbage.
fn ended_by(e: &rustls::Error) -> Rx {
    match e {
        rustls::Error::AlertReceived(alert) => Rx::Reset(format!("TLS alert {alert:?}")),
        other => Rx::Invalid(format!("sent TLS records that are not valid: {other}")),
    }
}

/// Whether the server at `addr` answers a TLS ClientHello with TLS records (a ServerHello or
/// an alert: either way it speaks TLS there). Used to explain why a `ws://` URL got no upgrade.
pub(super) fn answers_tls(addr: std::net::SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let Ok(config) = c10k::tls::client_config(c10k::tls::Trust::Insecure) else {
        return false;
    };
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let Ok(mut conn) = ClientConnection::new(config, name) else {
        return false;
    };
    let Ok(tcp) = TcpStream::connect_timeout(&addr, within) else {
        return false;
    };
    let mut hello = Vec::new();
    while conn.wants_write() {
        if conn.write_tls(&mut hello).is_err() {
            return false;
        }
    }
    let mut first = [0u8; 8];
    let answered = wire::write_until(&tcp, &hello, deadline)
        .and_then(|()| wire::read_until(&tcp, &mut first, deadline))
        .is_ok_and(|n| n > 0 && not_tls(&first[..n]).is_none());
    let _ = tcp.shutdown(Shutdown::Both);
    answered
}
