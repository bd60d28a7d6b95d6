//! The checker's side of one client connection: a reader thread that turns the client's bytes
//! into frames, the transcript of everything that went over the connection, and the words that
//! describe a frame in it.

use std::io::Read;
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use c10k::proto::frame::decode_header;
use c10k::proto::mask::apply_mask;

/// The largest frame payload the checker takes from a client: the 16 MiB of the limit cases and
/// room to spare. A larger frame ends the case (FAIL) before anything is allocated for it.
pub const MAX_FRAME: usize = 17 << 20;

/// Frames the reader may hold for the case before it waits (the channel's bound): with the
/// frame being read, at most 5 x [`MAX_FRAME`] bytes per connection.
const QUEUED_FRAMES: usize = 4;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 << 10;

/// At most this many lines of a transcript are kept; one more line says how many were left out.
pub const MAX_TRANSCRIPT_LINES: usize = 200;

/// At most this many payload bytes are shown in a transcript line.
pub const SHOWN_PAYLOAD: usize = 64;

/// One frame from the client, unmasked.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// What the reader saw.
#[derive(Debug)]
pub(crate) enum Ev {
    Frame(Frame),
    /// The client closed TCP (FIN).
    Eof,
    /// A read failed (reset).
    Error(String),
    /// Bytes that are not a frame a client may send.
    Bad(String),
}

/// An [`Ev`] and when it was seen.
#[derive(Debug)]
pub(crate) struct Event {
    pub at: Instant,
    pub ev: Ev,
}

/// Starts the thread that reads the client's frames (`leftover`: bytes read with the request
/// head). It ends at the end of the stream, on an error, or once the receiver is gone; every
/// case ends by shutting the socket down, which ends a read that waits.
pub(crate) fn spawn_reader(stream: TcpStream, leftover: Vec<u8>) -> Receiver<Event> {
    let (tx, rx) = sync_channel(QUEUED_FRAMES);
    // Without a thread the sender is dropped: the case sees the connection end.
    let _ = std::thread::Builder::new()
        .name("check-client-read".to_owned())
        .spawn(move || read_frames(stream, leftover, &tx));
    rx
}

fn read_frames(mut stream: TcpStream, mut buf: Vec<u8>, tx: &SyncSender<Event>) {
    // The waits are the case's (on the channel); a read timeout left from reading the request
    // head would end a slow client's connection as if it had reset it.
    let _ = stream.set_read_timeout(None);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        // Every whole frame in the buffer.
        loop {
            match decode_header(&buf) {
                Ok(None) => break,
                Ok(Some((h, n))) => {
                    if h.len > MAX_FRAME as u64 {
                        let _ = tx.send(event(Ev::Bad(format!(
                            "sent a frame of {} bytes, past the checker's bound of {} MiB",
                            h.len,
                            MAX_FRAME >> 20
                        ))));
                        return;
                    }
                    let end = n + h.len as usize;
                    if buf.len() < end {
                        break;
                    }
                    let mut payload = buf[n..end].to_vec();
                    if let Some(key) = h.mask {
                        apply_mask(&mut payload, key, 0);
                    }
                    buf.drain(..end);
                    let frame = Frame {
                        fin: h.fin,
                        rsv: h.rsv,
                        opcode: h.opcode as u8,
                        masked: h.mask.is_some(),
                        payload,
                    };
                    if tx.send(event(Ev::Frame(frame))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(event(Ev::Bad(format!(
                        "sent bytes that are not a valid frame ({e}): {}",
                        show(&buf)
                    ))));
                    return;
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                let _ = tx.send(event(Ev::Eof));
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A timeout after all (set_read_timeout failed): read on; the case's wait decides.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                let _ = tx.send(event(Ev::Error(e.to_string())));
                return;
            }
        }
    }
}

fn event(ev: Ev) -> Event {
    Event {
        at: Instant::now(),
        ev,
    }
}

/// The lines of one connection, each with its time since the connection was accepted.
#[derive(Debug)]
pub(crate) struct Transcript {
    start: Instant,
    lines: Vec<String>,
    left_out: usize,
}

impl Transcript {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            lines: Vec::new(),
            left_out: 0,
        }
    }

    /// When the connection was accepted.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Adds `+T ms  text`, or counts it once the transcript is full.
    pub fn push(&mut self, at: Instant, text: impl AsRef<str>) {
        if self.lines.len() >= MAX_TRANSCRIPT_LINES {
            self.left_out += 1;
            return;
        }
        let ms = at.saturating_duration_since(self.start).as_secs_f64() * 1000.0;
        self.lines.push(format!("+{ms:.3} ms  {}", text.as_ref()));
    }

    /// Adds a line timed now.
    pub fn note(&mut self, text: impl AsRef<str>) {
        self.push(Instant::now(), text);
    }

    pub fn into_lines(mut self) -> Vec<String> {
        if self.left_out > 0 {
            self.lines
                .push(format!("... {} more lines not kept", self.left_out));
        }
        self.lines
    }
}

/// A payload for a transcript: quoted text when it is printable UTF-8, hex otherwise, at most
/// [`SHOWN_PAYLOAD`] bytes (`...` when there is more).
pub(crate) fn show(payload: &[u8]) -> String {
    let (head, more) = if payload.len() > SHOWN_PAYLOAD {
        (&payload[..SHOWN_PAYLOAD], "...")
    } else {
        (payload, "")
    };
    match std::str::from_utf8(head) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}{more}"),
        _ => {
            let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
            format!("[{}]{more}", hex.join(" "))
        }
    }
}

/// The name of an opcode.
pub(crate) fn opcode_name(op: u8) -> String {
    match op {
        0x0 => "continuation".to_owned(),
        0x1 => "text".to_owned(),
        0x2 => "binary".to_owned(),
        0x8 => "close".to_owned(),
        0x9 => "ping".to_owned(),
        0xa => "pong".to_owned(),
        n => format!("opcode {n}"),
    }
}

/// `text 5 B "Hello"`, `close 1000 "bye"`, with the flags that are unusual: `(FIN clear)`,
/// `RSV1`, `(masked)` / `(NOT masked)` as asked.
pub(crate) fn describe(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask_note: &str) -> String {
    let mut s = opcode_name(opcode);
    if opcode == 0x8 && payload.len() >= 2 {
        let code = u16::from_be_bytes([payload[0], payload[1]]);
        s.push_str(&format!(" {code} {}", show(&payload[2..])));
    } else if opcode == 0x8 && payload.is_empty() {
        s.push_str(" (no code)");
    } else {
        s.push_str(&format!(" {} B {}", payload.len(), show(payload)));
    }
    for (bit, name) in [(4, "RSV1"), (2, "RSV2"), (1, "RSV3")] {
        if rsv & bit != 0 {
            s.push_str(&format!(" {name}"));
        }
    }
    if !fin {
        s.push_str(" (FIN clear)");
    }
    s.push_str(mask_note);
    s
}

/// Describes the frames of bytes the checker writes (they may be broken on purpose, so the
/// header is read leniently); a trailing piece that is not a whole frame is shown as bytes.
pub(crate) fn describe_written(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some((fin, rsv, opcode, mask, len, n)) = lenient_header(rest) else {
            out.push(format!("{} bytes {}", rest.len(), show(rest)));
            break;
        };
        let Some(end) = n.checked_add(len).filter(|&e| e <= rest.len()) else {
            out.push(format!("{} bytes {}", rest.len(), show(rest)));
            break;
        };
        let line = match mask {
            // Only the masked frames of a case that sends one are copied, to unmask them.
            Some(k) => {
                let mut payload = rest[n..end].to_vec();
                apply_mask(&mut payload, k, 0);
                describe(fin, rsv, opcode, &payload, " (masked)")
            }
            None => describe(fin, rsv, opcode, &rest[n..end], ""),
        };
        out.push(line);
        rest = &rest[end..];
    }
    out
}

type Lenient = (bool, u8, u8, Option<[u8; 4]>, usize, usize);

fn lenient_header(b: &[u8]) -> Option<Lenient> {
    let (&b0, &b1) = (b.first()?, b.get(1)?);
    let (len, mut n) = match b1 & 0x7f {
        126 => (u64::from(u16::from_be_bytes(b.get(2..4)?.try_into().ok()?)), 4),
        127 => (u64::from_be_bytes(b.get(2..10)?.try_into().ok()?), 10),
        l => (u64::from(l), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        let k: [u8; 4] = b.get(n..n + 4)?.try_into().ok()?;
        n += 4;
        Some(k)
    } else {
        None
    };
    Some((
        b0 & 0x80 != 0,
        (b0 >> 4) & 7,
        b0 & 0x0f,
        mask,
        usize::try_from(len).ok()?,
        n,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_frames_are_described_unmasked_and_cut_at_the_shown_bound() {
        let masked = crate::check::case::wire::text(b"Hello");
        let mut bytes = masked.clone();
        bytes.extend_from_slice(&super::super::case::sclose(1000, b"bye"));
        bytes.extend_from_slice(&super::super::case::sframe(false, 4, 0x2, &[7u8; 100]));
        bytes.extend_from_slice(&[0x81, 0x05, b'x']);
        let lines = describe_written(&bytes);
        assert_eq!(lines[0], "text 5 B \"Hello\" (masked)");
        assert_eq!(lines[1], "close 1000 \"bye\"");
        assert!(lines[2].starts_with("binary 100 B [07 07"), "{}", lines[2]);
        assert!(lines[2].ends_with("]... RSV1 (FIN clear)"), "{}", lines[2]);
        assert_eq!(lines[2].matches("07").count(), SHOWN_PAYLOAD);
        assert_eq!(lines[3], "3 bytes [81 05 78]");
    }

    #[test]
    fn a_transcript_keeps_its_bound_and_says_how_many_lines_it_left_out() {
        let start = Instant::now();
        let mut t = Transcript::new(start);
        for i in 0..MAX_TRANSCRIPT_LINES + 5 {
            t.push(start, format!("line {i}"));
        }
        let lines = t.into_lines();
        assert_eq!(lines.len(), MAX_TRANSCRIPT_LINES + 1);
        assert_eq!(lines[0], "+0.000 ms  line 0");
        assert_eq!(lines[MAX_TRANSCRIPT_LINES], "... 5 more lines not kept");
    }
}
