//! The transcript of one connection: the frames written and received, and what happened to the
//! connection, each with its time since the case started.
//!
//! Lines look like `+0.310 ms  < text 5 B "Hello"`: `>` for what the checker wrote, `<` for what
//! the server sent, no arrow for events (`server closed TCP`). A transcript keeps at most
//! [`MAX_LINES`] lines and counts the rest; a payload shows at most [`MAX_SHOWN`] bytes, escaped.
//! What the checker writes may be deliberately broken, so written bytes are read with a lenient
//! header parser of their own: reserved opcodes and bad lengths are shown, not refused.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use c10k::proto::frame::OpCode;
use c10k::proto::mask::apply_mask;

/// The most lines a case's transcript keeps; the rest are counted (`... N more`).
pub(crate) const MAX_LINES: usize = 200;

/// The most payload bytes a line shows.
pub(crate) const MAX_SHOWN: usize = 64;

/// The lines of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Transcript {
    start: Instant,
    /// The lines in the order of their times, with those times.
    lines: Vec<(Duration, String)>,
    /// Lines left out past [`MAX_LINES`].
    more: usize,
    /// Bytes of a frame that a previous write started and did not finish.
    owed: u64,
}

impl Transcript {
    /// An empty transcript whose times count from `start` (the case's start).
    pub(crate) fn new(start: Instant) -> Self {
        Self {
            start,
            lines: Vec::new(),
            more: 0,
            owed: 0,
        }
    }

    /// Adds a line at `at`; `what` is only formatted while there is room. Lines stay in the
    /// order of their times: the end of the connection, seen by the reader thread, may be
    /// recorded after a write that came later.
    pub(crate) fn note(&mut self, at: Instant, what: impl FnOnce() -> String) {
        if self.lines.len() >= MAX_LINES {
            self.more += 1;
            return;
        }
        let d = at.saturating_duration_since(self.start);
        let line = format!("+{:.3} ms  {}", d.as_secs_f64() * 1000.0, what());
        let i = self.lines.partition_point(|(t, _)| *t <= d);
        self.lines.insert(i, (d, line));
    }

    /// Records bytes written at `at`, frame by frame; `chunk` is the size of the pieces they go
    /// out in.
    pub(crate) fn sent(&mut self, at: Instant, bytes: &[u8], chunk: usize) {
        if chunk < bytes.len() {
            self.note(at, || format!("> {} B in pieces of {chunk} B:", bytes.len()));
        }
        let mut rest = bytes;
        if self.owed > 0 {
            let n = (self.owed.min(rest.len() as u64)) as usize;
            self.owed -= n as u64;
            self.note(at, || format!("> {n} B more of the frame begun before"));
            rest = &rest[n..];
        }
        while !rest.is_empty() {
            let Some(h) = Header::parse(rest) else {
                let n = rest.len();
                let shown = escape(&rest[..n.min(MAX_SHOWN)], n);
                self.note(at, || {
                    format!("> {n} B that are not a whole frame header: {shown}")
                });
                return;
            };
            let here = (rest.len() - h.header_len).min(usize::try_from(h.len).unwrap_or(usize::MAX));
            if self.lines.len() >= MAX_LINES {
                // Full: the frame is only counted (a message in a million frames stays cheap).
                self.more += 1;
                self.owed = h.len - here as u64;
                rest = &rest[h.header_len + here..];
                continue;
            }
            let mut head = rest[h.header_len..h.header_len + here.min(MAX_SHOWN)].to_vec();
            if let Some(key) = h.mask {
                apply_mask(&mut head, key, 0);
            }
            let mut line = String::from("> ");
            line.push_str(&describe(h.fin, h.rsv, h.opcode, h.mask.is_some(), &head, h.len));
            if (here as u64) < h.len {
                self.owed = h.len - here as u64;
                let _ = write!(line, " ({here} B of it in this write)");
            }
            self.note(at, || line);
            rest = &rest[h.header_len + here..];
        }
    }

    /// Records a frame received at `at`.
    pub(crate) fn received(
        &mut self,
        at: Instant,
        fin: bool,
        rsv: u8,
        opcode: OpCode,
        masked: bool,
        payload: &[u8],
    ) {
        self.note(at, || {
            let shown = &payload[..payload.len().min(MAX_SHOWN)];
            format!(
                "< {}",
                describe(fin, rsv, opcode as u8, masked, shown, payload.len() as u64)
            )
        });
    }

    /// The lines, then `... N more` if some were left out.
    pub(crate) fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.lines
            .iter()
            .map(|(_, l)| l.clone())
            .chain((self.more > 0).then(|| format!("... {} more", self.more)))
    }

    /// How many lines there are, the left-out ones included.
    pub(crate) fn len(&self) -> usize {
        self.lines.len() + self.more
    }
}

/// The transcript of a case: each connection's lines, under a heading when there are several,
/// at most [`MAX_LINES`] in all.
pub(crate) fn merge<'a>(runs: impl ExactSizeIterator<Item = (&'a str, &'a Transcript)>) -> Vec<String> {
    let n = runs.len();
    let mut out = Vec::new();
    let mut more = 0usize;
    for (i, (label, t)) in runs.enumerate() {
        let heading = (n > 1).then(|| {
            if label.is_empty() {
                format!("-- connection {} of {n}", i + 1)
            } else {
                format!("-- connection {} of {n}: {label}", i + 1)
            }
        });
        let count = t.len() + usize::from(heading.is_some());
        if out.len() + count > MAX_LINES {
            let room = MAX_LINES - out.len();
            out.extend(heading.into_iter().chain(t.lines()).take(room));
            more += count - room;
        } else if more > 0 {
            more += count;
        } else {
            out.extend(heading.into_iter().chain(t.lines()));
        }
    }
    if more > 0 {
        out.push(format!("... {more} more"));
    }
    out
}

/// A frame's header as written, read leniently.
struct Header {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    header_len: usize,
}

impl Header {
    /// The header at the start of `b`, or `None` if `b` holds less than a whole header.
    fn parse(b: &[u8]) -> Option<Self> {
        let (&b0, &b1) = (b.first()?, b.get(1)?);
        let (len, mut at) = match b1 & 0x7f {
            126 => (u64::from(u16::from_be_bytes(*b[2..].first_chunk::<2>()?)), 4),
            127 => (u64::from_be_bytes(*b[2..].first_chunk::<8>()?), 10),
            n => (u64::from(n), 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let key = *b[at..].first_chunk::<4>()?;
            at += 4;
            Some(key)
        } else {
            None
        };
        Some(Self {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0f,
            mask,
            len,
            header_len: at,
        })
    }
}

/// `text 5 B "Hello" (masked)`, `close 1000 "bye"`, `op 0x3 0 B ""`: `shown` is the start of the
/// payload (unmasked), `len` its whole length.
fn describe(fin: bool, rsv: u8, opcode: u8, masked: bool, shown: &[u8], len: u64) -> String {
    let name = match opcode {
        0x0 => "cont".to_owned(),
        0x1 => "text".to_owned(),
        0x2 => "binary".to_owned(),
        0x8 => "close".to_owned(),
        0x9 => "ping".to_owned(),
        0xa => "pong".to_owned(),
        op => format!("op {op:#x}"),
    };
    let full = len as usize;
    let mut s = match (opcode, shown) {
        (0x8, [a, b, reason @ ..]) if len <= 125 => {
            format!(
                "close {} {}",
                u16::from_be_bytes([*a, *b]),
                escape(reason, full - 2)
            )
        }
        (0x8, []) => "close (no code)".to_owned(),
        _ => format!("{name} {len} B {}", escape(shown, full)),
    };
    let mut flags = Vec::new();
    if !fin {
        flags.push("not final".to_owned());
    }
    if rsv != 0 {
        flags.push(format!("rsv {rsv:#05b}"));
    }
    if masked {
        flags.push("masked".to_owned());
    }
    if !flags.is_empty() {
        let _ = write!(s, " ({})", flags.join(", "));
    }
    s
}

/// `"Hello\n\xff"`: printable ASCII as it is, the rest escaped; `...` after the quotes when
/// `shown` is the start of `len` bytes.
pub(crate) fn escape(shown: &[u8], len: usize) -> String {
    let mut s = String::with_capacity(shown.len() + 2);
    s.push('"');
    for &b in shown {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            b => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    if len > shown.len() {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::case::wire;

    fn lines(t: &Transcript) -> Vec<String> {
        t.lines().collect()
    }

    #[test]
    fn a_masked_text_frame_is_unmasked_and_shown() {
        let start = Instant::now();
        let mut t = Transcript::new(start);
        t.sent(start, &wire::frame(true, 0, 0x1, b"Hello"), usize::MAX);
        let l = lines(&t);
        assert_eq!(l.len(), 1);
        assert!(l[0].starts_with("+0.000 ms  > text 5 B \"Hello\""), "{}", l[0]);
        assert!(l[0].ends_with("(masked)"), "{}", l[0]);
    }

    #[test]
    fn close_frames_show_their_code_and_reason() {
        let start = Instant::now();
        let mut t = Transcript::new(start);
        t.received(start, true, 0, OpCode::Close, false, b"\x03\xe8bye");
        assert!(lines(&t)[0].ends_with("< close 1000 \"bye\""), "{:?}", lines(&t));
    }

    #[test]
    fn payloads_are_cut_and_escaped() {
        let start = Instant::now();
        let mut t = Transcript::new(start);
        let payload: Vec<u8> = (0..200u8).collect();
        t.received(start, true, 0, OpCode::Binary, false, &payload);
        let l = &lines(&t)[0];
        assert!(l.contains("binary 200 B \"\\x00\\x01"), "{l}");
        assert!(l.ends_with("\"..."), "{l}");
        assert!(!l.contains("\\xc7"), "byte 199 is past the first 64: {l}");
        assert_eq!(escape(b"a\"\\\n", 4), r#""a\"\\\n""#);
    }

    #[test]
    fn a_frame_split_over_writes_and_garbage_are_described() {
        let start = Instant::now();
        let mut t = Transcript::new(start);
        let frame = wire::frame(true, 0, 0x2, &[7u8; 100]);
        t.sent(start, &frame[..50], usize::MAX);
        t.sent(start, &frame[50..], usize::MAX);
        t.sent(start, &[0xff], usize::MAX);
        let l = lines(&t);
        assert!(
            l[0].contains("binary 100 B") && l[0].contains("in this write"),
            "{l:?}"
        );
        assert!(
            l[1].contains(&format!("{} B more of the frame", frame.len() - 50)),
            "{l:?}"
        );
        assert!(l[2].contains("1 B that are not a whole frame header"), "{l:?}");
    }

    #[test]
    fn reserved_opcodes_are_shown_not_refused() {
        let start = Instant::now();
        let mut t = Transcript::new(start);
        t.sent(start, &wire::frame(true, 0b010, 0x3, b""), usize::MAX);
        assert!(
            lines(&t)[0].contains("op 0x3 0 B \"\" (rsv 0b010, masked)"),
            "{:?}",
            lines(&t)
        );
    }

    #[test]
    fn lines_are_kept_in_the_order_of_their_times() {
        let start = Instant::now();
        let later = start + Duration::from_millis(2);
        let mut t = Transcript::new(start);
        t.note(later, || "second".to_owned());
        t.note(start + Duration::from_millis(1), || "first".to_owned());
        t.note(later, || "third".to_owned());
        let l = lines(&t);
        assert_eq!(l, ["+1.000 ms  first", "+2.000 ms  second", "+2.000 ms  third"]);
    }

    #[test]
    fn transcripts_are_bounded() {
        let start = Instant::now();
        let mut a = Transcript::new(start);
        for i in 0..250 {
            a.note(start, || format!("line {i}"));
        }
        assert_eq!(a.lines().count(), MAX_LINES + 1);
        assert_eq!(a.lines().last().as_deref(), Some("... 50 more"));
        let mut b = Transcript::new(start);
        b.note(start, || "b".to_owned());
        let merged = merge([("first", &a), ("", &b)].into_iter());
        assert_eq!(merged.len(), MAX_LINES + 1);
        assert_eq!(merged[0], "-- connection 1 of 2: first");
        // 251 lines of the first connection and a heading plus one of the second: 253 in all.
        assert_eq!(merged.last().map(String::as_str), Some("... 53 more"));
        let mut frames = wire::text(b"x");
        frames.extend(wire::text(b"y"));
        frames.extend(wire::text(b"z"));
        a.sent(start, &frames, usize::MAX);
        assert_eq!(
            a.lines().last().as_deref(),
            Some("... 53 more"),
            "a full one counts frames"
        );
        let one = merge([("", &b)].into_iter());
        assert_eq!(one.len(), 1);
    }
}
