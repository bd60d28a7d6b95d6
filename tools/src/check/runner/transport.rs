//! The transport of one script: the stream for writing, a reader thread that turns the server's
//! bytes into frames, and the deadline that bounds every read and write.
//!
//! Writing never waits on reading: the reader thread hands each frame over with its arrival time,
//! so a server may answer while a large message is still going out. Over TLS the reader thread
//! may also ask the writer to send records of its own (see [`super::tls`]); that request comes
//! on the same channel and is served while the script waits for the server.

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use c10k::proto::frame::{OpCode, decode_header};
use c10k::proto::mask::apply_mask;

use super::Run;
use super::wire::{Source, Wire, is_timeout};
use crate::check::case::wire;

/// The largest server frame the reader accepts (a server echoing 16 MiB stays well below).
const MAX_RX_FRAME: u64 = 64 << 20;

/// An open connection's transport: the stream for writing, the reader thread's events for
/// reading, and the script's deadline.
pub(super) struct Transport {
    wire: Wire,
    events: Receiver<Event>,
    reader: Option<JoinHandle<()>>,
    deadline: Instant,
    /// When the last write finished.
    last_write: Instant,
    /// A write failed (the server closed or reset): later writes are skipped.
    write_failed: bool,
}

impl Transport {
    /// Starts the reader thread on `wire`'s source; `leftover` (the bytes that followed the
    /// response head) is read first.
    pub(super) fn start(wire: Wire, leftover: Vec<u8>, deadline: Instant) -> io::Result<Self> {
        let source = wire.source()?;
        // Records the opening handshake's reads left to send go out before the reader starts.
        wire.flush(deadline)?;
        let (tx, rx) = mpsc::channel();
        let reader = thread::Builder::new()
            .name("c10k-check-reader".into())
            .spawn(move || read_frames(source, leftover, &tx))?;
        Ok(Self {
            wire,
            events: rx,
            reader: Some(reader),
            deadline,
            last_write: Instant::now(),
            write_failed: false,
        })
    }

    /// The script's deadline.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// When the last piece of the last write started going out: the server's answer cannot
    /// come before it.
    pub(super) fn last_write(&self) -> Instant {
        self.last_write
    }

    /// Ends the connection and the reader thread.
    pub(super) fn finish(&mut self) {
        self.wire.close();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// Writes `bytes` in pieces of `chunk` bytes, each before the deadline; a failure is recorded
    /// in `run`, and every later write is skipped.
    pub(super) fn write(&mut self, bytes: &[u8], chunk: usize, run: &mut Run) {
        if self.write_failed || bytes.is_empty() {
            return;
        }
        run.transcript.sent(Instant::now(), bytes, chunk.max(1));
        let mut sent = 0;
        for piece in bytes.chunks(chunk.max(1)) {
            // The server's answer to these bytes cannot come before they start to go out.
            self.last_write = Instant::now();
            if let Err(e) = self.wire.write_until(piece, self.deadline) {
                self.write_failed = true;
                run.transcript.note(Instant::now(), || {
                    format!("> write failed after {sent} of {} B ({})", bytes.len(), e.kind())
                });
                run.saw(format!(
                    "{} after {} of {} bytes were written",
                    if is_timeout(&e) {
                        "stopped reading (write timed out)".to_owned()
                    } else {
                        format!("refused more data ({})", e.kind())
                    },
                    sent,
                    bytes.len()
                ));
                break;
            }
            sent += piece.len();
        }
    }

    /// Answers a ping, unless writing has failed.
    pub(super) fn pong(&mut self, payload: &[u8], run: &mut Run) {
        if !self.write_failed {
            let pong = wire::pong(payload);
            run.transcript.sent(Instant::now(), &pong, usize::MAX);
            let _ = self.wire.write_until(&pong, self.deadline);
        }
    }

    /// The next thing the reader thread saw, waiting until `until`; past it, what already arrived
    /// still counts. Records the reader thread asks to send go out on the way.
    pub(super) fn next(&self, until: Instant) -> Result<(Instant, Rx), RecvTimeoutError> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let event = if left.is_zero() {
                self.events.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else {
                self.events.recv_timeout(left)
            }?;
            match event {
                Event::Rx(at, rx) => return Ok((at, rx)),
                // A failure here shows as the reader's own end (the server reset or closed).
                Event::Flush if !self.write_failed => {
                    let _ = self.wire.flush(self.deadline);
                }
                Event::Flush => {}
            }
        }
    }
}

/// What the reader thread hands over.
enum Event {
    /// What it saw, and when.
    Rx(Instant, Rx),
    /// Records wait to be sent (TLS): the writer's side sends them.
    Flush,
}

/// What the reader thread saw.
pub(super) enum Rx {
    Frame(RxFrame),
    Invalid(String),
    Eof,
    Reset(String),
}

/// One frame from the server, unmasked.
pub(super) struct RxFrame {
    pub(super) fin: bool,
    pub(super) rsv: u8,
    pub(super) opcode: OpCode,
    pub(super) masked: bool,
    pub(super) payload: Vec<u8>,
}

/// The reader thread: frames from the source, each with its arrival time, until the stream ends.
fn read_frames(mut source: Box<dyn Source>, mut buf: Vec<u8>, tx: &Sender<Event>) {
    let rx = |rx: Rx| Event::Rx(Instant::now(), rx);
    let mut pos = 0;
    loop {
        loop {
            match decode_header(&buf[pos..]) {
                Ok(Some((h, hl))) => {
                    if h.len > MAX_RX_FRAME {
                        let _ = tx.send(rx(Rx::Invalid(format!("sent a frame of {} bytes", h.len))));
                        return;
                    }
                    let total = hl + h.len as usize;
                    if buf.len() - pos < total {
                        break;
                    }
                    let mut payload = buf[pos + hl..pos + total].to_vec();
                    if let Some(k) = h.mask {
                        apply_mask(&mut payload, k, 0);
                    }
                    pos += total;
                    let frame = RxFrame {
                        fin: h.fin,
                        rsv: h.rsv,
                        opcode: h.opcode,
                        masked: h.mask.is_some(),
                        payload,
                    };
                    if tx.send(rx(Rx::Frame(frame))).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(rx(Rx::Invalid(format!("sent an invalid frame: {e}"))));
                    return;
                }
            }
        }
        if pos > 0 {
            buf.drain(..pos);
            pos = 0;
        }
        let fill = source.fill(&mut buf);
        if fill.flush && tx.send(Event::Flush).is_err() {
            return;
        }
        if let Some(end) = fill.end {
            let _ = tx.send(rx(end));
            return;
        }
    }
}
