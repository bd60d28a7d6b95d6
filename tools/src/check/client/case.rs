//! What a client case is: metadata, how the checker answers the client's upgrade request, and
//! the steps that follow on the connection.

use std::fmt;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use super::super::Verdict;
use super::super::case::Group;

/// One client case: the checker plays the server of one connection.
#[derive(Clone)]
pub struct ClientCase {
    /// `group.sub.n`, for example `utf8.3.2`, or `close.tcp.1`.
    pub id: String,
    /// The group (the server suite's groups; the client's opening handshake is `handshake`).
    pub group: Group,
    /// The RFC section checked: `5.5.1` is RFC 6455's, `rfc7692.7.1` RFC 7692's.
    pub section: &'static str,
    /// What the case checks.
    pub description: String,
    /// What the checker sends, in short.
    pub sent: String,
    /// The time bound of the case's connection, before `--timeout-scale`: how long the checker
    /// waits for each answer (a client that must fail the connection has this long to close).
    pub bound: Duration,
    pub(crate) plan: Plan,
}

/// What a case does on its connection.
#[derive(Clone)]
pub(crate) enum Plan {
    /// A script of the suite: an answer to the upgrade, then steps.
    Script(Arc<dyn Fn() -> Script + Send + Sync>),
    /// The whole connection, answer included, played by other code (a sequence of `c10k fuzz
    /// --serve`).
    Played(Arc<PlayFn>),
}

/// Plays a case's connection: the stream (its request head read), the head, the case's bound.
pub type PlayFn = dyn Fn(TcpStream, &[u8], Duration) -> Played + Send + Sync;

/// What a played connection came to.
#[derive(Debug, Clone)]
pub struct Played {
    /// The verdict.
    pub verdict: Verdict,
    /// Why it is not PASS.
    pub reason: String,
    /// What the client did, in short.
    pub observed: String,
    /// The connection's transcript, with times.
    pub transcript: Vec<String>,
}

impl ClientCase {
    /// A case whose connection `play` handles whole (answering the upgrade too): how `c10k
    /// fuzz --serve` serves its sequences through the client suite's URLs.
    pub fn played(
        id: String,
        group: Group,
        section: &'static str,
        description: String,
        sent: String,
        bound: Duration,
        play: impl Fn(TcpStream, &[u8], Duration) -> Played + Send + Sync + 'static,
    ) -> Self {
        Self {
            id,
            group,
            section,
            description,
            sent,
            bound,
            plan: Plan::Played(Arc::new(play)),
        }
    }
}

impl fmt::Debug for ClientCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCase")
            .field("id", &self.id)
            .field("section", &self.section)
            .field("description", &self.description)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

/// The answer and the steps of one case.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub answer: Answer,
    pub steps: Vec<Step>,
}

/// How the checker answers the client's (valid) upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 101 as RFC 6455 4.2.2 says, declining every extension and subprotocol.
    Accept,
    /// A valid 101 written in an unusual but allowed way.
    Odd(Odd),
    /// 101 agreeing to permessage-deflate; SKIPPED when the client offered none the checker can
    /// accept. `takeover`: context takeover both ways (else no context takeover either way).
    Deflate { takeover: bool },
    /// An answer the client must refuse (RFC 6455 4.1, RFC 7692 7.1).
    Bad(Bad),
}

/// A valid 101 the client must accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Odd {
    /// `UPGRADE: WebSocket`, `connection: upgrade`: names and tokens are case-insensitive.
    MixedCase,
    /// `Connection: keep-alive, Upgrade` and extra header fields.
    TokenList,
    /// The head written one byte at a time.
    ByteByByte,
    /// The head and the first frame in one write.
    WithFrame,
}

/// An answer to the upgrade request that the client must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    /// `Sec-WebSocket-Accept` computed from another key.
    WrongAccept,
    /// No `Sec-WebSocket-Accept`.
    MissingAccept,
    /// `200 OK` instead of 101.
    Status200,
    /// 101 without `Upgrade: websocket`.
    NoUpgrade,
    /// 101 without `Connection: Upgrade`.
    NoConnection,
    /// An extension the client did not offer (`x-unknown`).
    UnofferedExtension,
    /// A subprotocol the client did not offer.
    UnofferedProtocol,
    /// permessage-deflate to a client that did not offer it (SKIPPED when it did).
    DeflateUnoffered,
    /// This `Sec-WebSocket-Extensions` value to a client that offered permessage-deflate
    /// (SKIPPED when it did not). With `unless_client_bits`, SKIPPED too when an offer has
    /// `client_max_window_bits` (the answer would then be valid).
    DeflateValue {
        value: &'static str,
        unless_client_bits: bool,
    },
}

/// A message or pong the client must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Pong(Vec<u8>),
}

/// How the client must answer a Close frame of the checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterClose {
    /// Answer with a Close frame (any valid code, or none); the checker then closes TCP.
    Answer,
    /// Answer with a Close frame, then wait for the checker to close TCP: the checker waits
    /// [`super::TCP_GRACE`] first, and a client that closes TCP in that time FAILS.
    AnswerAndWait,
    /// Answer with a Close frame; the checker never closes TCP: INFO, how long the client waited
    /// before closing TCP itself.
    AnswerAndLinger,
}

/// One step of a script.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Bytes in one write (frames, possibly broken on purpose).
    Write(Vec<u8>),
    /// Bytes in writes of at most this many bytes each.
    Chunked(Vec<u8>, usize),
    /// A message compressed as agreed (permessage-deflate cases): opcode, payload, frames.
    Compressed {
        opcode: u8,
        payload: Vec<u8>,
        frames: usize,
    },
    /// Wait for these messages in order, and these pongs in order (the two may interleave).
    Expect(Vec<Want>),
    /// The client must fail the connection: a Close frame with one of `codes` (PASS), another
    /// error code or a drop (NON-STRICT); an echo, a pong or silence FAILS.
    Fail(&'static [u16]),
    /// The checker sent a Close frame: the client must answer it.
    Closed(AfterClose),
    /// The checker sent an invalid Close frame: the client must fail the connection with one of
    /// these codes; answering it like a valid one FAILS.
    CloseRejected(&'static [u16]),
    /// The checker answered the upgrade in a way the client must refuse: any frame from the
    /// client FAILS; closing, or silence until the bound, PASSES.
    Refused,
    /// A message too big for many clients: echoed, or refused with 1009 (INFO either way: which,
    /// and how long it took); anything else FAILS.
    Big(Want),
}

impl Script {
    /// A script over a standard 101.
    pub fn new() -> Self {
        Self {
            answer: Answer::Accept,
            steps: Vec::new(),
        }
    }

    pub fn answer(mut self, answer: Answer) -> Self {
        self.answer = answer;
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

    pub fn frames(mut self, frames: Vec<Vec<u8>>) -> Self {
        self.steps.extend(frames.into_iter().map(Step::Write));
        self
    }

    pub fn compressed(mut self, opcode: u8, payload: Vec<u8>, frames: usize) -> Self {
        self.steps.push(Step::Compressed {
            opcode,
            payload,
            frames: frames.max(1),
        });
        self
    }

    pub fn expect(mut self, wants: Vec<Want>) -> Self {
        self.steps.push(Step::Expect(wants));
        self
    }

    pub fn fail(mut self, codes: &'static [u16]) -> Self {
        self.steps.push(Step::Fail(codes));
        self
    }

    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }
}

/// The default time bound of a client case.
pub const CLIENT_BOUND: Duration = Duration::from_secs(2);

/// The time bound of a case that moves many megabytes.
pub const CLIENT_BIG_BOUND: Duration = Duration::from_secs(20);

/// Builds the client suite: numbers cases `group.sub.n` (or `group.NAME.n`) as they are added.
pub(crate) struct Registry {
    pub cases: Vec<ClientCase>,
    group: Group,
    sub: String,
    subs: usize,
    n: usize,
}

impl Registry {
    pub fn new() -> Self {
        Self {
            cases: Vec::new(),
            group: Group::Framing,
            sub: String::new(),
            subs: 0,
            n: 0,
        }
    }

    /// Starts a group.
    pub fn group(&mut self, group: Group) {
        self.group = group;
        self.sub.clear();
        self.subs = 0;
        self.n = 0;
    }

    /// Starts a numbered subgroup.
    pub fn sub(&mut self) {
        self.subs += 1;
        self.sub = self.subs.to_string();
        self.n = 0;
    }

    /// Starts a named subgroup (`close.tcp`).
    pub fn sub_named(&mut self, name: &str) {
        self.sub = name.to_owned();
        self.n = 0;
    }

    /// Adds a case with the default bound.
    pub fn add(
        &mut self,
        section: &'static str,
        description: impl Into<String>,
        sent: impl Into<String>,
        script: impl Fn() -> Script + Send + Sync + 'static,
    ) {
        self.add_bounded(section, description, sent, CLIENT_BOUND, script);
    }

    /// Adds a case with its own bound.
    pub fn add_bounded(
        &mut self,
        section: &'static str,
        description: impl Into<String>,
        sent: impl Into<String>,
        bound: Duration,
        script: impl Fn() -> Script + Send + Sync + 'static,
    ) {
        if self.sub.is_empty() {
            self.sub();
        }
        self.n += 1;
        self.cases.push(ClientCase {
            id: format!("{}.{}.{}", self.group.name(), self.sub, self.n),
            group: self.group,
            section,
            description: description.into(),
            sent: sent.into(),
            bound,
            plan: Plan::Script(Arc::new(script)),
        });
    }
}

/// A server frame: never masked (RFC 6455 5.1), any 4-bit opcode and RSV bits.
pub(crate) fn sframe(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = super::super::case::wire::header(fin, rsv, opcode, payload.len() as u64, None);
    out.extend_from_slice(payload);
    out
}

/// An unmasked text frame.
pub(crate) fn stext(payload: &[u8]) -> Vec<u8> {
    sframe(true, 0, 0x1, payload)
}

/// An unmasked binary frame.
pub(crate) fn sbinary(payload: &[u8]) -> Vec<u8> {
    sframe(true, 0, 0x2, payload)
}

/// An unmasked Close frame with a code and a reason.
pub(crate) fn sclose(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    sframe(true, 0, 0x8, &payload)
}

/// A message in unmasked frames cut at these payload offsets (first frame `opcode`, then
/// continuations; FIN on the last).
pub(crate) fn sfragments(opcode: u8, payload: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut bounds: Vec<usize> = cuts.to_vec();
    bounds.push(payload.len());
    let mut last = 0;
    bounds
        .iter()
        .enumerate()
        .map(|(i, &end)| {
            let op = if i == 0 { opcode } else { 0x0 };
            let f = sframe(i + 1 == bounds.len(), 0, op, &payload[last..end]);
            last = end;
            f
        })
        .collect()
}
