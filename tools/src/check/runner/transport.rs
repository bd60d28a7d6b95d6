//! The transport of one script: the socket for writing, a reader thread that turns the server's
//! bytes into frames, and the deadline that bounds every read and write.
//!
//! Writing never waits on reading: the reader thread hands each frame over with its arrival time,
//! so a server may answer while a large message is still going out.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use c10k::proto::frame::{OpCode, decode_header};
use c10k::proto::mask::apply_mask;

use super::Run;
use crate::check::case::wire;

/// The largest server frame the reader accepts (a server echoing 16 MiB stays well below).
const MAX_RX_FRAME: u64 = 64 << 20;

/// An open connection's transport: the socket for writing, the reader thread's events for
/// reading, and the script's deadline.
pub(super) struct Transport {
    stream: TcpStream,
    events: Receiver<(Instant, Rx)>,
    reader: Option<JoinHandle<()>>,
    deadline: Instant,
    /// When the last write finished.
    last_write: Instant,
    /// A write failed (the server closed or reset): later writes are skipped.
    write_failed: bool,
}

impl Transport {
    /// Starts the reader thread on a clone of `stream`; `leftover` (the bytes that followed the
    /// response head) is read first.
    pub(super) fn start(stream: TcpStream, leftover: Vec<u8>, deadline: Instant) -> io::Result<Self> {
        let read_half = stream.try_clone()?;
        let (tx, rx) = mpsc::channel();
        let reader = thread::Builder::new()
            .name("c10k-check-reader".into())
            .spawn(move || read_frames(read_half, leftover, &tx))?;
        Ok(Self {
            stream,
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
        let _ = self.stream.shutdown(Shutdown::Both);
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
        let mut sent = 0;
        for piece in bytes.chunks(chunk.max(1)) {
            // The server's answer to these bytes cannot come before they start to go out.
            self.last_write = Instant::now();
            if let Err(e) = write_until(&mut &self.stream, piece, self.deadline) {
                self.write_failed = true;
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
    pub(super) fn pong(&mut self, payload: &[u8]) {
        if !self.write_failed {
            let _ = (&self.stream).write_all(&wire::pong(payload));
        }
    }

    /// The next thing the reader thread saw, waiting until `until`; past it, what already arrived
    /// still counts.
    pub(super) fn next(&self, until: Instant) -> Result<(Instant, Rx), RecvTimeoutError> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            self.events.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            self.events.recv_timeout(left)
        }
    }
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

/// The reader thread: frames from the socket, each with its arrival time, until EOF or error.
fn read_frames(mut stream: TcpStream, mut buf: Vec<u8>, tx: &Sender<(Instant, Rx)>) {
    let mut chunk = vec![0u8; 64 << 10];
    let mut pos = 0;
    loop {
        loop {
            match decode_header(&buf[pos..]) {
                Ok(Some((h, hl))) => {
                    if h.len > MAX_RX_FRAME {
                        let _ = tx.send((
                            Instant::now(),
                            Rx::Invalid(format!("sent a frame of {} bytes", h.len)),
                        ));
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
                    if tx.send((Instant::now(), Rx::Frame(frame))).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send((Instant::now(), Rx::Invalid(format!("sent an invalid frame: {e}"))));
                    return;
                }
            }
        }
        if pos > 0 {
            buf.drain(..pos);
            pos = 0;
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                let _ = tx.send((Instant::now(), Rx::Eof));
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send((Instant::now(), Rx::Reset(e.kind().to_string())));
                return;
            }
        }
    }
}

pub(super) fn write_until(stream: &mut &TcpStream, bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_write_timeout(Some(left))?;
    stream.write_all(bytes)
}

pub(super) fn read_until(mut stream: &TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
