//! One connection's TLS state, sans-I/O: ciphertext in from a buffer the shard owns, plaintext
//! out into the shard's read buffer; plaintext in from the write path, ciphertext out into a
//! buffer the shard owns. Built on rustls' unbuffered API, so that rustls holds no buffer of
//! its own between calls: an idle session is its keys and handshake state, nothing more.

use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};

/// The most plaintext in one TLS record.
const MAX_FRAGMENT: usize = 16 << 10;
/// Room reserved per record for its header, explicit nonce, content type and tag.
const RECORD_OVERHEAD: usize = 64;
/// A fatal decode_error alert in a plaintext record, for input rustls refuses without an
/// alert of its own (a handshake message over its size limit) before anything was encrypted.
const DECODE_ERROR_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50];
/// The most states one call walks through (each handshake flight is a few records): bounds
/// every loop over rustls' states, beside one step per record of the input (see
/// [`Session::open`]).
const MAX_STEPS: usize = 256;
/// A TLS record header: every record read costs one step and consumes at least this much.
const RECORD_HEADER: usize = 5;

/// What [`Session::open`] did with the input.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    /// Bytes of input consumed (whole records); the rest is an unfinished record to keep.
    pub(crate) consumed: usize,
    /// Plaintext bytes written at the start of the output buffer.
    pub(crate) plain: usize,
    /// The peer sent close_notify: no more data comes from it.
    pub(crate) peer_closed: bool,
    /// The TLS connection failed; the alert to send, if any, is in the output.
    pub(crate) error: Option<rustls::Error>,
}

/// The TLS state of one connection (boxed in its slab entry).
pub(crate) struct Session {
    conn: UnbufferedServerConnection,
    /// An unfinished record kept between reads (unallocated when none).
    pub(crate) pending: Vec<u8>,
    /// close_notify was sent (or the connection failed): nothing more is encrypted.
    pub(crate) closed: bool,
    /// The peer's close_notify arrived.
    pub(crate) peer_closed: bool,
    /// Something was sent: from then on alerts may have to be encrypted, only rustls sends them.
    spoke: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("handshaking", &self.conn.is_handshaking())
            .field("pending", &self.pending.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(config: Arc<rustls::ServerConfig>) -> Result<Self, rustls::Error> {
        Ok(Self {
            conn: UnbufferedServerConnection::new(config)?,
            pending: Vec::new(),
            closed: false,
            peer_closed: false,
            spoke: false,
        })
    }

    /// Whether the handshake (once done) resumed an earlier session.
    pub(crate) fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Whether the TLS handshake is still going on.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Processes the records of `input`: application data is decrypted into `plain` (which must
    /// be at least as long as `input`: a record's plaintext is shorter than the record),
    /// handshake messages and alerts to send are appended to `out`.
    pub(crate) fn open(&mut self, input: &mut [u8], plain: &mut [u8], out: &mut Vec<u8>) -> Opened {
        debug_assert!(plain.len() >= input.len());
        let mut r = Opened::default();
        let out_start = out.len();
        // rustls hands out one application data record per call: a read of many small records
        // (a client that writes a few bytes at a time) takes a step each, and all of them must be
        // opened now; what is left is kept as an unfinished record, and no new read event comes
        // for bytes already read.
        for _ in 0..MAX_STEPS + input.len() / RECORD_HEADER {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut input[r.consumed..]);
            let more = match state {
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                let n = record.payload.len();
                                plain[r.plain..r.plain + n].copy_from_slice(record.payload);
                                r.plain += n;
                            }
                            Err(e) => {
                                r.error = Some(e);
                                break;
                            }
                        }
                    }
                    r.error.is_none()
                }
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    encode(out, |buf| data.encode(buf));
                    true
                }
                Ok(ConnectionState::TransmitTlsData(done)) => {
                    // What was encoded is in `out`, sent by the caller in order.
                    done.done();
                    true
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    r.peer_closed = true;
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    r.error = Some(e);
                    false
                }
            };
            r.consumed += discard;
            if !more {
                break;
            }
        }
        if r.error.is_some() {
            // The fatal alert rustls queued: encode it for the caller to send.
            self.drain_queued(&mut input[r.consumed..], out);
            if out.len() == out_start && !self.spoke {
                out.extend_from_slice(&DECODE_ERROR_ALERT);
            }
            self.closed = true;
        }
        self.spoke |= out.len() > out_start;
        r
    }

    /// Encrypts `a` then `b` into `out` (`a`, a frame header, shares the first record with the
    /// start of `b`; `join` is a buffer to build that record in).
    pub(crate) fn seal(
        &mut self,
        a: &[u8],
        b: &[u8],
        join: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        if self.closed {
            return Err(rustls::Error::General("TLS connection closed".into()));
        }
        // rustls is always handed the bytes it has seen and not consumed (an unfinished record):
        // its handshake joiner keeps offsets into them.
        let mut pending = std::mem::take(&mut self.pending);
        let res = self.seal_with(&mut pending, a, b, join, out);
        self.pending = pending;
        res
    }

    fn seal_with(
        &mut self,
        pending: &mut [u8],
        a: &[u8],
        b: &[u8],
        join: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        for _ in 0..MAX_STEPS {
            let status = self.conn.process_tls_records(pending);
            match status.state? {
                ConnectionState::WriteTraffic(mut w) => {
                    let mut enc = |data: &[u8]| encrypt(out, data, |d, buf| w.encrypt(d, buf));
                    if !a.is_empty() && !b.is_empty() && a.len() < MAX_FRAGMENT {
                        let take = b.len().min(MAX_FRAGMENT - a.len());
                        join.clear();
                        join.extend_from_slice(a);
                        join.extend_from_slice(&b[..take]);
                        enc(join)?;
                        return enc(&b[take..]);
                    }
                    enc(a)?;
                    return enc(b);
                }
                ConnectionState::EncodeTlsData(mut data) => encode(out, |buf| data.encode(buf)),
                ConnectionState::TransmitTlsData(done) => done.done(),
                _ => return Err(rustls::Error::HandshakeNotComplete),
            }
        }
        Err(rustls::Error::General("TLS state machine did not settle".into()))
    }

    /// Appends close_notify to `out` (once; nothing if the handshake is not complete).
    pub(crate) fn close_notify(&mut self, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut pending = std::mem::take(&mut self.pending);
        for _ in 0..MAX_STEPS {
            let status = self.conn.process_tls_records(&mut pending);
            match status.state {
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    let _ = encrypt(out, &[0], |_, buf| w.queue_close_notify(buf));
                    break;
                }
                Ok(ConnectionState::EncodeTlsData(mut data)) => encode(out, |buf| data.encode(buf)),
                Ok(ConnectionState::TransmitTlsData(done)) => done.done(),
                _ => break,
            }
        }
        self.pending = pending;
    }

    /// Encodes the fatal alert rustls queued with its error; `unconsumed` is the input it has
    /// seen and not consumed. One call only: the alert is the one queued message, handed out
    /// before any input is looked at again (which would fail a second time).
    fn drain_queued(&mut self, unconsumed: &mut [u8], out: &mut Vec<u8>) {
        if let Ok(ConnectionState::EncodeTlsData(mut data)) = self.conn.process_tls_records(unconsumed).state
        {
            encode(out, |buf| data.encode(buf));
        }
    }
}

/// Appends an encoded handshake record to `out`.
fn encode(out: &mut Vec<u8>, mut f: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>) {
    let at = out.len();
    out.resize(at + 1024, 0);
    let n = match f(&mut out[at..]) {
        Ok(n) => n,
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
            out.resize(at + required_size, 0);
            f(&mut out[at..]).unwrap_or(0)
        }
        Err(_) => 0,
    };
    out.truncate(at + n);
}

/// Appends the records of `data` to `out`, encrypted by `f`.
fn encrypt(
    out: &mut Vec<u8>,
    data: &[u8],
    mut f: impl FnMut(&[u8], &mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), rustls::Error> {
    if data.is_empty() {
        return Ok(());
    }
    let at = out.len();
    out.resize(
        at + data.len() + (data.len() / MAX_FRAGMENT + 1) * RECORD_OVERHEAD,
        0,
    );
    let res = match f(data, &mut out[at..]) {
        Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
            out.resize(at + required_size, 0);
            f(data, &mut out[at..])
        }
        other => other,
    };
    match res {
        Ok(n) => {
            out.truncate(at + n);
            Ok(())
        }
        Err(e) => {
            out.truncate(at);
            Err(rustls::Error::General(format!("cannot encrypt: {e}")))
        }
    }
}
