//! What a test case is: metadata, and a plan of scripts that run on fresh connections.
//!
//! A [`Case`] is data: an id, the RFC 6455 section it checks, a description, a summary of what is
//! sent, a time bound, and a plan that builds its [`Script`]s when the case runs (so that the
//! registry stays small even when a case sends 16 MiB). A script opens one TCP connection (a
//! standard upgrade, or a raw request whose answer is itself under test) and then runs its
//! [`Step`]s in order; the runner ([`super::runner`]) judges every step.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Target;
use super::deflate::Encoding;

/// The groups of cases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// Base framing: lengths, chunked writes, masking (RFC 6455 section 5.2).
    Framing,
    /// Ping and pong (section 5.5.2, 5.5.3).
    Ping,
    /// Reserved bits and opcodes (section 5.2).
    Reserved,
    /// Fragmentation (section 5.4).
    Fragmentation,
    /// UTF-8 in text messages (sections 5.6, 8.1).
    Utf8,
    /// The server's size limits (section 10.4).
    Limits,
    /// The closing handshake and close codes (sections 5.5.1, 7).
    Close,
    /// The opening handshake (section 4).
    Handshake,
    /// permessage-deflate (RFC 7692): negotiation, compressed messages, bombs and bad data.
    Deflate,
    /// Replay files saved by `c10k fuzz`, run as regression cases (`--regressions DIR`); not a
    /// group of the built-in suite, so not in [`Group::ALL`].
    Regression,
    /// Sequences that `c10k fuzz --serve` plays on a client under test; not a group of the
    /// built-in suite either.
    Fuzz,
}

impl Group {
    /// Every group of the built-in suite, in running order.
    pub const ALL: [Group; 9] = [
        Group::Framing,
        Group::Ping,
        Group::Reserved,
        Group::Fragmentation,
        Group::Utf8,
        Group::Limits,
        Group::Close,
        Group::Handshake,
        Group::Deflate,
    ];

    /// The id prefix of the group's cases.
    pub fn name(self) -> &'static str {
        match self {
            Group::Framing => "framing",
            Group::Ping => "ping",
            Group::Reserved => "reserved",
            Group::Fragmentation => "frag",
            Group::Utf8 => "utf8",
            Group::Limits => "limits",
            Group::Close => "close",
            Group::Handshake => "handshake",
            Group::Deflate => "deflate",
            Group::Regression => "regress",
            Group::Fuzz => "fuzz",
        }
    }

    /// A title for reports.
    pub fn title(self) -> &'static str {
        match self {
            Group::Framing => "Framing (RFC 6455 5.2)",
            Group::Ping => "Ping and pong (5.5.2, 5.5.3)",
            Group::Reserved => "Reserved bits and opcodes (5.2)",
            Group::Fragmentation => "Fragmentation (5.4)",
            Group::Utf8 => "UTF-8 (5.6, 8.1)",
            Group::Limits => "Limits (10.4)",
            Group::Close => "Closing handshake (5.5.1, 7)",
            Group::Handshake => "Opening handshake (4)",
            Group::Deflate => "permessage-deflate (RFC 7692)",
            Group::Regression => "Fuzzer regressions (replay files)",
            Group::Fuzz => "Fuzzed sequences (c10k fuzz --serve)",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Builds the scripts of a case for a target; one script per connection.
pub(crate) type Plan = Arc<dyn Fn(&Target) -> Vec<Script> + Send + Sync>;

/// One numbered test case.
#[derive(Clone)]
pub struct Case {
    /// `group.sub.n`, for example `utf8.2.14`.
    pub id: String,
    /// The group.
    pub group: Group,
    /// The RFC section checked: `5.5.2` is RFC 6455's, `rfc7692.7.2.1` is RFC 7692's (the
    /// permessage-deflate cases).
    pub section: &'static str,
    /// What the case checks.
    pub description: String,
    /// What is sent, in short.
    pub sent: String,
    /// The time bound of each connection of the case, before `--timeout-scale`.
    pub bound: Duration,
    pub(crate) plan: Plan,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("id", &self.id)
            .field("section", &self.section)
            .field("description", &self.description)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

/// One connection's worth of a case.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// Names this connection when a case runs several (`code 1004`).
    pub label: String,
    pub open: Open,
    pub steps: Vec<Step>,
}

/// How the connection is opened.
#[derive(Debug, Clone)]
pub(crate) enum Open {
    /// A standard upgrade request; anything but a valid 101 answer fails the case.
    Standard,
    /// These bytes (a request head, possibly followed by frames), written `chunk` bytes at a
    /// time, and what the answer must be.
    Raw {
        request: Vec<u8>,
        chunk: usize,
        want: HttpWant,
    },
    /// A standard upgrade that offers permessage-deflate: these `Sec-WebSocket-Extensions`
    /// values, one header field each. The server may decline (101 without the extension) or
    /// accept one of the valid offers (if any), as RFC 7692 allows; anything else fails the case.
    /// With `requires`, the steps need the extension: when the server declines, they are skipped
    /// and the case passes with a note (declining is allowed).
    Deflate { offers: Vec<String>, requires: bool },
}

/// What the answer to a raw request must be.
#[derive(Debug, Clone)]
pub(crate) enum HttpWant {
    /// `101` with the `Sec-WebSocket-Accept` value of this key, and no subprotocol but one of
    /// `offered`; the steps run after it.
    Accept { key: String, offered: Vec<String> },
    /// A rejection. `best` is the status the RFC (or HTTP) names; `None` when any status of the
    /// allowed classes is right. `server_errors` allows 5xx as well as 4xx. `header` must be in
    /// the answer (name, a token its value must list).
    Reject {
        best: Option<u16>,
        server_errors: bool,
        header: Option<(&'static str, &'static str)>,
    },
    /// Not a WebSocket upgrade: any answer but 101 (plain HTTP is fine).
    NotUpgraded,
}

/// A message or pong the server must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Pong(Vec<u8>),
}

/// How the server must answer a Close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseWant {
    /// A valid Close frame was sent with this code (`None`: empty payload): the server answers
    /// with the same code or 1000 (empty or 1000 for an empty one).
    Echo(Option<u16>),
    /// An invalid Close frame (the code that was sent, if any): the server fails with `code`.
    Fail { code: u16, sent: Option<u16> },
}

/// One step of a script.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Bytes in one write.
    Write(Vec<u8>),
    /// Bytes in writes of at most `chunk` bytes each.
    Chunked(Vec<u8>, usize),
    /// Wait for these replies: messages in this order, pongs in this order (the two streams may
    /// interleave). With `too_big_ok`, a close 1009 instead is only NON-STRICT (the server's limit
    /// is unknown and lower than the message).
    Expect { wants: Vec<Want>, too_big_ok: bool },
    /// Wait for the server's Close frame (answering a Close frame sent by an earlier step), then
    /// for the end of the TCP connection.
    Closed(CloseWant),
    /// The server must fail the connection with this code.
    Fail(u16),
    /// The server must fail the connection with `code` before `rest` is written: PASS if it does,
    /// NON-STRICT if it does only after `rest`.
    FailFast { code: u16, rest: Vec<u8> },
    /// A message, compressed as the connection agreed (plain when permessage-deflate was not
    /// agreed), in one write.
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    Send(Msg),
}

/// A message the runner encodes when it is sent, because its compressed form depends on what
/// was agreed and on the messages before it.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub opcode: u8,
    pub payload: Vec<u8>,
    /// Frames: the (compressed) payload is cut into this many pieces of about the same size,
    /// RSV1 on the first only; `usize::MAX`: one byte per frame.
    pub frames: usize,
    pub encoding: Encoding,
    /// A ping (`ping`) goes between the first and the second frame.
    pub ping_inside: bool,
}

impl Script {
    /// A script over a standard upgrade.
    pub fn new() -> Self {
        Self {
            label: String::new(),
            open: Open::Standard,
            steps: Vec::new(),
        }
    }

    /// A script over a raw request.
    pub fn raw(request: Vec<u8>, want: HttpWant) -> Self {
        Self {
            label: String::new(),
            open: Open::Raw {
                request,
                chunk: usize::MAX,
                want,
            },
            steps: Vec::new(),
        }
    }

    /// Writes the raw request `chunk` bytes at a time.
    pub fn request_chunk(mut self, n: usize) -> Self {
        if let Open::Raw { chunk, .. } = &mut self.open {
            *chunk = n.max(1);
        }
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn write(mut self, bytes: Vec<u8>) -> Self {
        self.steps.push(Step::Write(bytes));
        self
    }

    pub fn chunked(mut self, bytes: Vec<u8>, chunk: usize) -> Self {
        self.steps.push(Step::Chunked(bytes, chunk.max(1)));
        self
    }

    /// Writes every frame with its own write.
    pub fn frames(mut self, frames: Vec<Vec<u8>>) -> Self {
        self.steps.extend(frames.into_iter().map(Step::Write));
        self
    }

    pub fn expect(mut self, wants: Vec<Want>) -> Self {
        self.steps.push(Step::Expect {
            wants,
            too_big_ok: false,
        });
        self
    }

    pub fn expect_big(mut self, wants: Vec<Want>, too_big_ok: bool) -> Self {
        self.steps.push(Step::Expect { wants, too_big_ok });
        self
    }

    pub fn fail(mut self, code: u16) -> Self {
        self.steps.push(Step::Fail(code));
        self
    }

    pub fn fail_fast(mut self, code: u16, rest: Vec<u8>) -> Self {
        self.steps.push(Step::FailFast { code, rest });
        self
    }

    /// A standard upgrade offering permessage-deflate (see [`Open::Deflate`]).
    pub fn deflate(offers: &[&str], requires: bool) -> Self {
        Self {
            label: String::new(),
            open: Open::Deflate {
                offers: offers.iter().map(|o| (*o).to_owned()).collect(),
                requires,
            },
            steps: Vec::new(),
        }
    }

    /// Sends a message, compressed if permessage-deflate was agreed.
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    pub fn send(mut self, msg: Msg) -> Self {
        self.steps.push(Step::Send(msg));
        self
    }

    pub fn closed(mut self, want: CloseWant) -> Self {
        self.steps.push(Step::Closed(want));
        self
    }

    /// The normal end of a conversation: Close 1000, answered by the server.
    pub fn close(self) -> Self {
        self.write(wire::close(1000, b""))
            .closed(CloseWant::Echo(Some(1000)))
    }
}

/// Frame and payload builders. Client frames are masked with a fresh random key (the core's
/// `encode_header` and `apply_mask`); reserved opcodes are patched into the first byte.
pub(crate) mod wire {
    use std::cell::RefCell;

    use c10k::client::OsKeys;
    use c10k::proto::frame::{OpCode, encode_header};
    use c10k::proto::mask::apply_mask;

    pub const CONT: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xa;

    thread_local! {
        static KEYS: RefCell<OsKeys> = RefCell::new(OsKeys::new());
    }

    /// A fresh masking key.
    pub fn key() -> [u8; 4] {
        KEYS.with(|k| k.borrow_mut().next_key())
    }

    /// The header of a frame with any 4-bit opcode and any RSV bits, masked with `mask` if given.
    pub fn header(fin: bool, rsv: u8, opcode: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut h = encode_header(fin, rsv, OpCode::Text, len, mask)
            .as_bytes()
            .to_vec();
        h[0] = (h[0] & 0xf0) | (opcode & 0x0f);
        h
    }

    /// A masked frame.
    pub fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let k = key();
        let mut out = header(fin, rsv, opcode, payload.len() as u64, Some(k));
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], k, 0);
        out
    }

    /// An unmasked frame (which a server must reject).
    pub fn unmasked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = header(fin, 0, opcode, payload.len() as u64, None);
        out.extend_from_slice(payload);
        out
    }

    pub fn text(payload: &[u8]) -> Vec<u8> {
        frame(true, 0, TEXT, payload)
    }

    pub fn binary(payload: &[u8]) -> Vec<u8> {
        frame(true, 0, BINARY, payload)
    }

    pub fn ping(payload: &[u8]) -> Vec<u8> {
        frame(true, 0, PING, payload)
    }

    pub fn pong(payload: &[u8]) -> Vec<u8> {
        frame(true, 0, PONG, payload)
    }

    /// A Close frame with a code and a reason.
    pub fn close(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        frame(true, 0, CLOSE, &payload)
    }

    /// A message split into frames at the given payload offsets (first frame `opcode`, then
    /// continuations; FIN on the last).
    pub fn fragments(opcode: u8, payload: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut frames = Vec::with_capacity(cuts.len() + 1);
        let mut last = 0;
        let mut bounds: Vec<usize> = cuts.to_vec();
        bounds.push(payload.len());
        for (i, &end) in bounds.iter().enumerate() {
            let op = if i == 0 { opcode } else { CONT };
            frames.push(frame(i + 1 == bounds.len(), 0, op, &payload[last..end]));
            last = end;
        }
        frames
    }

    /// A message with one payload byte per frame (an empty payload gives one empty frame).
    pub fn byte_frames(opcode: u8, payload: &[u8]) -> Vec<Vec<u8>> {
        let cuts: Vec<usize> = (1..payload.len()).collect();
        fragments(opcode, payload, &cuts)
    }

    /// `n` bytes of text: ASCII and 2-, 3- and 4-byte characters, so that chunked writes and
    /// fragments split code points.
    pub fn text_payload(n: usize) -> Vec<u8> {
        const PIECES: [&str; 8] = ["Hello", ", ", "κόσμε", " ", "€", "𝄞", " 0123456789", "\u{10ffff}"];
        let mut out = Vec::with_capacity(n);
        let mut i = 0;
        while out.len() < n {
            let piece = PIECES[i % PIECES.len()].as_bytes();
            i += 1;
            if out.len() + piece.len() <= n {
                out.extend_from_slice(piece);
            } else {
                out.resize(n, b'a');
            }
        }
        out
    }

    /// `n` bytes of binary data, every byte value present.
    pub fn binary_payload(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i.wrapping_mul(31).wrapping_add(i >> 8)) as u8)
            .collect()
    }

    /// Concatenates frames.
    pub fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }
}

/// Builds the registry: numbers cases `group.sub.n` as they are added.
pub(crate) struct Registry {
    pub cases: Vec<Case>,
    group: Group,
    sub: usize,
    n: usize,
    /// The normal time bound of a connection.
    pub bound: Duration,
}

/// The default time bound of one connection.
pub const DEFAULT_BOUND: Duration = Duration::from_secs(3);

/// The time bound of a connection that moves many megabytes.
pub const BIG_BOUND: Duration = Duration::from_secs(20);

impl Registry {
    pub fn new() -> Self {
        Self {
            cases: Vec::new(),
            group: Group::Framing,
            sub: 0,
            n: 0,
            bound: DEFAULT_BOUND,
        }
    }

    /// Starts a group.
    pub fn group(&mut self, group: Group) {
        self.group = group;
        self.sub = 0;
        self.n = 0;
    }

    /// Starts a subgroup: the next case is `group.(sub+1).1`.
    pub fn sub(&mut self) {
        self.sub += 1;
        self.n = 0;
    }

    /// Adds a case with the default bound.
    pub fn add(
        &mut self,
        section: &'static str,
        description: impl Into<String>,
        sent: impl Into<String>,
        plan: impl Fn(&Target) -> Vec<Script> + Send + Sync + 'static,
    ) {
        let bound = self.bound;
        self.add_bounded(section, description, sent, bound, plan);
    }

    /// Adds a case with its own bound.
    pub fn add_bounded(
        &mut self,
        section: &'static str,
        description: impl Into<String>,
        sent: impl Into<String>,
        bound: Duration,
        plan: impl Fn(&Target) -> Vec<Script> + Send + Sync + 'static,
    ) {
        if self.sub == 0 {
            self.sub = 1;
        }
        self.n += 1;
        self.cases.push(Case {
            id: format!("{}.{}.{}", self.group.name(), self.sub, self.n),
            group: self.group,
            section,
            description: description.into(),
            sent: sent.into(),
            bound,
            plan: Arc::new(plan),
        });
    }

    /// Adds a case of several scripts, one connection each.
    pub fn one_multi(
        &mut self,
        section: &'static str,
        description: impl Into<String>,
        sent: impl Into<String>,
        scripts: impl Fn() -> Vec<Script> + Send + Sync + 'static,
    ) {
        self.add(section, description, sent, move |_| scripts());
    }

    /// Adds a case of one script.
    pub fn one(
        &mut self,
        section: &'static str,
        description: impl Into<String>,
        sent: impl Into<String>,
        script: impl Fn() -> Script + Send + Sync + 'static,
    ) {
        self.add(section, description, sent, move |_| vec![script()]);
    }
}

/// A short form of a byte string for descriptions: hex for short non-ASCII, a length otherwise.
pub(crate) fn show_bytes(b: &[u8]) -> String {
    if b.len() <= 24 {
        if let Ok(s) = std::str::from_utf8(b)
            && s.chars().all(|c| !c.is_control())
        {
            return format!("{s:?}");
        }
        let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("[{}]", hex.join(" "))
    } else {
        format!("{} bytes", b.len())
    }
}

/// `1 byte` / `n bytes`, with KiB and MiB for round sizes.
pub(crate) fn size(n: usize) -> String {
    match n {
        1 => "1 byte".to_owned(),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}
