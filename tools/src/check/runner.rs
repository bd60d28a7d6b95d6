//! Runs scripts on raw TCP connections and judges what the server does.
//!
//! Each script gets a fresh connection and one deadline (the case's bound times the timeout
//! scale). A reader thread turns the server's bytes into frames (decoded with the core's
//! `decode_header`) and hands them over with their arrival time, so that writing never waits on
//! reading: a server may answer while a 16 MiB message is still going out. Everything the server
//! can do — echo, close with a code, drop the connection, answer HTTP, send garbage, stay silent —
//! is an outcome to classify; nothing it does makes the checker panic.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::Target;
use super::Verdict;
use super::case::{CloseWant, HttpWant, Msg, Open, Script, Step, Want, show_bytes, size, wire};
use super::deflate::{self, Codec, Encoding, TAIL};
use c10k::proto::close::parse_close_payload;
use c10k::proto::frame::{OpCode, decode_header};
use c10k::proto::handshake::{self, ClientRequest, HeadLimits};
use c10k::proto::mask::apply_mask;

/// The largest server frame the reader accepts (a server echoing 16 MiB stays well below).
const MAX_RX_FRAME: u64 = 64 << 20;

/// The largest HTTP response head read.
const MAX_HEAD: usize = 64 << 10;

/// The outcome of one script.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub label: String,
    pub verdict: Verdict,
    /// Why the verdict is not PASS (the first reason of the worst kind).
    pub reason: String,
    /// What the server did, step by step.
    pub observed: Vec<String>,
    /// The longest time the server took to answer after the last byte sent before the answer.
    pub took: Duration,
    /// Why the script's steps did not run although nothing went wrong (the server declined an
    /// extension they need, which it may do).
    pub skipped: Option<String>,
}

impl Run {
    fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            verdict: Verdict::Pass,
            reason: String::new(),
            observed: Vec::new(),
            took: Duration::ZERO,
            skipped: None,
        }
    }

    fn judge(&mut self, verdict: Verdict, why: impl Into<String>) {
        if verdict > self.verdict {
            self.verdict = verdict;
            self.reason = why.into();
        }
    }

    fn non_strict(&mut self, why: impl Into<String>) {
        self.judge(Verdict::NonStrict, why);
    }

    fn fail(&mut self, why: impl Into<String>) {
        self.judge(Verdict::Fail, why);
    }

    fn saw(&mut self, what: impl Into<String>) {
        let what = what.into();
        if self.observed.last() != Some(&what) {
            self.observed.push(what);
        }
    }
}

/// Runs one script against the target within `bound`.
pub(crate) fn run_script(target: &Target, script: &Script, bound: Duration) -> Run {
    let mut run = Run::new(&script.label);
    let deadline = Instant::now() + bound;
    let stream = match TcpStream::connect_timeout(&target.addr, bound) {
        Ok(s) => s,
        Err(e) => {
            run.fail(format!("cannot connect to {}: {e}", target.addr));
            run.saw(format!("could not be reached ({})", e.kind()));
            return run;
        }
    };
    let _ = stream.set_nodelay(true);
    let Some((leftover, codec)) = open(target, &script.open, &stream, deadline, &mut run) else {
        let _ = stream.shutdown(Shutdown::Both);
        return run;
    };
    if matches!(script.open, Open::Deflate { requires: true, .. }) && codec.is_none() {
        run.skipped = Some(
            "the server declined permessage-deflate, which RFC 7692 allows: the steps that need it \
             did not run"
                .to_owned(),
        );
        let _ = stream.shutdown(Shutdown::Both);
        return run;
    }
    let mut conn = match Conn::start(stream, leftover, deadline, codec) {
        Ok(c) => c,
        Err(e) => {
            run.fail(format!("cannot start reading: {e}"));
            return run;
        }
    };
    for step in &script.steps {
        if conn.ended || run.verdict == Verdict::Fail {
            break;
        }
        conn.step(step, &mut run);
    }
    conn.finish();
    run
}

/// Performs the opening handshake; returns the bytes that followed the response head, and the
/// permessage-deflate state if it was agreed, when the connection is open for the steps; `None`
/// when the script ends with the handshake.
fn open(
    target: &Target,
    how: &Open,
    stream: &TcpStream,
    deadline: Instant,
    run: &mut Run,
) -> Option<(Vec<u8>, Option<Codec>)> {
    let mut writer = stream;
    match how {
        Open::Standard => {
            let mut key = [0u8; 16];
            for chunk in key.chunks_mut(4) {
                chunk.copy_from_slice(&wire::key());
            }
            let req = ClientRequest {
                host: &target.host,
                target: &target.path,
                ..ClientRequest::default()
            };
            let mut out = Vec::new();
            let expected = match handshake::write_request(&req, key, &mut out) {
                Ok(e) => e,
                Err(e) => {
                    run.fail(format!("cannot build the upgrade request: {e}"));
                    return None;
                }
            };
            let started = Instant::now();
            if let Err(e) = write_until(&mut writer, &out, deadline) {
                run.fail(format!("cannot send the upgrade request: {e}"));
                return None;
            }
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match handshake::parse_response(&buf, &expected, &[], &HeadLimits::default()) {
                    Ok(Some(resp)) => {
                        let n = resp.head_len();
                        return Some((buf.split_off(n), None));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        run.saw(format!("did not accept the upgrade: {e}"));
                        run.fail(format!("the standard upgrade request failed: {e}"));
                        return None;
                    }
                }
                match read_until(stream, &mut chunk, deadline) {
                    Ok(0) => {
                        run.saw("dropped the connection during the handshake");
                        run.fail("the server closed the connection instead of answering the upgrade");
                        return None;
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if is_timeout(&e) => {
                        run.saw(format!(
                            "did not answer the upgrade within {}",
                            ms(started.elapsed())
                        ));
                        run.fail("the upgrade request got no answer");
                        return None;
                    }
                    Err(e) => {
                        run.saw(format!(
                            "reset the connection during the handshake ({})",
                            e.kind()
                        ));
                        run.fail("the server reset the connection instead of answering the upgrade");
                        return None;
                    }
                }
            }
        }
        Open::Raw { request, chunk, want } => {
            let started = Instant::now();
            for piece in request.chunks((*chunk).max(1)) {
                if let Err(e) = write_until(&mut writer, piece, deadline) {
                    // The server may have answered and closed already; read what it said.
                    run.saw(format!("write failed: {}", e.kind()));
                    break;
                }
            }
            let (head, leftover) = read_head(stream, deadline, want, started, run)?;
            run.saw(format!("answered HTTP {}", head.status));
            judge_answer(want, &head, run).then_some((leftover, None))
        }
        Open::Deflate { offers, .. } => open_deflate(target, offers, stream, deadline, run),
    }
}

/// Reads and parses the response head; the bytes after it come back with it.
fn read_head(
    stream: &TcpStream,
    deadline: Instant,
    want: &HttpWant,
    started: Instant,
    run: &mut Run,
) -> Option<(Head, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head = loop {
        if let Some(end) = find_head_end(&buf) {
            break Ok(end);
        }
        if buf.len() > MAX_HEAD {
            break Err("a response head over 64 KiB".to_owned());
        }
        match read_until(stream, &mut chunk, deadline) {
            Ok(0) => break Err("dropped".to_owned()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => break Err("timeout".to_owned()),
            Err(e) => break Err(format!("reset ({e})")),
        }
    };
    run.took = started.elapsed();
    let head_len = match head {
        Ok(n) => n,
        Err(why) => {
            judge_no_answer(want, &why, started.elapsed(), run);
            return None;
        }
    };
    match parse_head(&buf[..head_len]) {
        Ok(h) => Some((h, buf.split_off(head_len))),
        Err(e) => {
            run.saw(format!("answered something that is not HTTP: {e}"));
            run.fail(format!("the answer is not an HTTP response: {e}"));
            None
        }
    }
}

/// A standard upgrade with permessage-deflate offers: the answer is judged against them.
fn open_deflate(
    target: &Target,
    offers: &[String],
    stream: &TcpStream,
    deadline: Instant,
    run: &mut Run,
) -> Option<(Vec<u8>, Option<Codec>)> {
    let mut key = [0u8; 16];
    for chunk in key.chunks_mut(4) {
        chunk.copy_from_slice(&wire::key());
    }
    let headers: Vec<(&str, &str)> = offers
        .iter()
        .map(|o| ("Sec-WebSocket-Extensions", o.as_str()))
        .collect();
    let req = ClientRequest {
        host: &target.host,
        target: &target.path,
        headers: &headers,
        ..ClientRequest::default()
    };
    let mut out = Vec::new();
    if let Err(e) = handshake::write_request(&req, key, &mut out) {
        run.fail(format!("cannot build the upgrade request: {e}"));
        return None;
    }
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(key)
    };
    let want = HttpWant::Accept {
        key: encoded.clone(),
        offered: Vec::new(),
    };
    let started = Instant::now();
    if let Err(e) = write_until(&mut &*stream, &out, deadline) {
        run.fail(format!("cannot send the upgrade request: {e}"));
        return None;
    }
    let (head, leftover) = read_head(stream, deadline, &want, started, run)?;
    let valid = deflate::valid_offers(offers);
    if head.status != 101 {
        run.saw(format!("answered HTTP {}", head.status));
        let client_error = (400..500).contains(&head.status);
        if client_error && !deflate::well_formed(offers) {
            // A header field outside the grammar of RFC 6455 9.1: a bad request (4.2.1).
            run.saw("rejected a Sec-WebSocket-Extensions field that breaks RFC 6455 9.1");
        } else if valid.is_empty() && client_error {
            run.non_strict(format!(
                "rejected the upgrade with {}; the answer to offers a server cannot accept is to \
                 decline them: 101 without the extension (RFC 7692 5)",
                head.status
            ));
        } else {
            run.fail(format!(
                "a valid upgrade request offering permessage-deflate was answered {}",
                head.status
            ));
        }
        return None;
    }
    if !judge_101(&head, &encoded, &[], run) {
        return None;
    }
    let answer: Vec<&[u8]> = head.values("sec-websocket-extensions").collect();
    match deflate::judge_answer(&answer, &valid) {
        Ok(None) => {
            run.saw("declined permessage-deflate");
            Some((leftover, None))
        }
        Ok(Some(agreed)) => {
            run.saw(format!("agreed {agreed}"));
            Some((leftover, Some(Codec::new(&agreed, &valid))))
        }
        Err(why) => {
            let shown: Vec<String> = answer
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            run.saw(format!("answered Sec-WebSocket-Extensions: {}", shown.join(", ")));
            run.fail(why);
            None
        }
    }
}

fn judge_no_answer(want: &HttpWant, why: &str, took: Duration, run: &mut Run) {
    let timed_out = why == "timeout";
    if timed_out {
        run.saw(format!("did not answer within {}", ms(took)));
    } else {
        run.saw(format!("{why} without an HTTP answer"));
    }
    match want {
        HttpWant::Accept { .. } => run.fail("a valid upgrade request was not answered"),
        _ if timed_out => run.fail("the request got no answer: the RFC asks for an HTTP error status"),
        _ => run.non_strict("the connection was closed without an HTTP error status"),
    }
}

/// Judges an HTTP answer; true when the connection is open for the script's steps.
fn judge_answer(want: &HttpWant, head: &Head, run: &mut Run) -> bool {
    let status = head.status;
    match want {
        HttpWant::Accept { key, offered } => {
            if status != 101 {
                run.fail(format!("a valid upgrade request was rejected with {status}"));
                return false;
            }
            if judge_101(head, key, offered, run) && head.values("sec-websocket-extensions").next().is_some()
            {
                run.fail("the server selected an extension that was not offered (RFC 6455 9.1)");
            }
            run.verdict != Verdict::Fail
        }
        HttpWant::NotUpgraded => {
            if status == 101 {
                run.fail("a request that is not a WebSocket upgrade was upgraded");
            }
            false
        }
        HttpWant::Reject {
            best,
            server_errors,
            header,
        } => {
            let allowed = (400..500).contains(&status) || (*server_errors && (500..600).contains(&status));
            let header_ok = header.is_none_or(|(name, token)| head.lists(name, token));
            match best {
                _ if status == 101 => run.fail("an invalid upgrade request was accepted"),
                _ if !(400..600).contains(&status) => {
                    run.fail(format!(
                        "an invalid upgrade request was answered {status}, not an error"
                    ));
                }
                Some(b) if status != *b => run.non_strict(format!(
                    "answered {status}; the status for this error is {b}{}",
                    header.map_or(String::new(), |(n, v)| format!(" with {n}: {v}"))
                )),
                None if !allowed => run.non_strict(format!(
                    "answered {status}; expected {}",
                    if *server_errors {
                        "a 4xx or 5xx status"
                    } else {
                        "a 4xx status"
                    }
                )),
                _ if !header_ok => {
                    if let Some((n, v)) = header {
                        run.non_strict(format!("answered {status} without {n}: {v} (RFC 6455 4.4)"));
                    }
                }
                _ => {}
            }
            false
        }
    }
}

/// Judges the fields of a 101 answer but the extensions; true when they are right.
fn judge_101(head: &Head, key: &str, offered: &[String], run: &mut Run) -> bool {
    let accept = handshake::accept_key(key.as_bytes());
    if !head.lists("upgrade", "websocket") {
        run.fail("the 101 answer lacks Upgrade: websocket");
    } else if !head.lists("connection", "upgrade") {
        run.fail("the 101 answer's Connection field does not list upgrade");
    } else if head.values("sec-websocket-accept").ne([accept.as_slice()]) {
        run.fail("Sec-WebSocket-Accept is missing or wrong (RFC 6455 4.2.2)");
    } else if head
        .values("sec-websocket-protocol")
        .any(|p| !offered.iter().any(|o| o.as_bytes() == p))
        || head.values("sec-websocket-protocol").count() > 1
    {
        run.fail("the server selected a subprotocol that was not offered, or several (RFC 6455 4.2.2)");
    }
    run.verdict != Verdict::Fail
}

/// A parsed response head.
struct Head {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_ascii())
    }

    /// Whether the comma-separated values of `name` list `token` (case-insensitive).
    fn lists(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse_head(buf: &[u8]) -> Result<Head, String> {
    let mut storage = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut storage);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete head".to_owned()),
        Err(e) => return Err(e.to_string()),
    }
    Ok(Head {
        status: resp.code.unwrap_or(0),
        headers: resp
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
    })
}

/// What the reader thread saw.
enum Rx {
    Frame(RxFrame),
    Invalid(String),
    Eof,
    Reset(String),
}

struct RxFrame {
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    masked: bool,
    payload: Vec<u8>,
}

/// What the server did, as the steps see it (messages reassembled).
enum Got {
    Message { text: bool, data: Vec<u8> },
    Pong(Vec<u8>),
    Close(Vec<u8>),
    Eof,
    Reset(String),
    Invalid(String),
    Timeout,
}

/// An open connection: the socket for writing, the reader thread's events for reading.
struct Conn {
    stream: TcpStream,
    events: Receiver<(Instant, Rx)>,
    reader: Option<JoinHandle<()>>,
    deadline: Instant,
    /// The message the server is sending in fragments: text, compressed, the payload so far.
    partial: Option<(bool, bool, Vec<u8>)>,
    /// permessage-deflate, when it was agreed.
    codec: Option<Codec>,
    /// Messages received, and how many of them compressed.
    received: (usize, usize),
    /// When the last write finished.
    last_write: Instant,
    /// A write failed (the server closed or reset): later writes are skipped.
    write_failed: bool,
    /// The connection is over (closed, dropped, or garbage received).
    ended: bool,
}

impl Conn {
    fn start(
        stream: TcpStream,
        leftover: Vec<u8>,
        deadline: Instant,
        codec: Option<Codec>,
    ) -> io::Result<Self> {
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
            partial: None,
            codec,
            received: (0, 0),
            last_write: Instant::now(),
            write_failed: false,
            ended: false,
        })
    }

    /// Ends the connection and the reader thread.
    fn finish(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    fn write(&mut self, bytes: &[u8], chunk: usize, run: &mut Run) {
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

    fn step(&mut self, step: &Step, run: &mut Run) {
        match step {
            Step::Write(bytes) => self.write(bytes, usize::MAX, run),
            Step::Chunked(bytes, chunk) => self.write(bytes, *chunk, run),
            Step::Expect { wants, too_big_ok } => self.expect(wants, *too_big_ok, run),
            Step::Closed(want) => self.closed(*want, run),
            Step::Fail(code) => {
                self.fail(*code, run);
            }
            Step::FailFast { code, rest } => self.fail_fast(*code, rest, run),
            Step::Send(msg) => self.send(msg, run),
        }
    }

    /// Encodes a message as agreed (compressed with permessage-deflate, plain otherwise) and
    /// writes its frames in one write.
    fn send(&mut self, msg: &Msg, run: &mut Run) {
        let (payload, rsv) = match self.codec.as_mut() {
            Some(c) if msg.encoding != Encoding::Plain => (c.encode(&msg.payload, msg.encoding), 0b100),
            _ => (msg.payload.clone(), 0),
        };
        let n = payload.len();
        let bounds: Vec<usize> = if msg.frames == usize::MAX {
            (1..=n.max(1)).map(|i| i.min(n)).collect()
        } else {
            let parts = msg.frames.max(1);
            (1..=parts).map(|i| i * n / parts).collect()
        };
        let mut bytes = Vec::with_capacity(n + bounds.len() * 16);
        let mut start = 0;
        for (i, &end) in bounds.iter().enumerate() {
            let (op, bits) = if i == 0 {
                (msg.opcode, rsv)
            } else {
                (wire::CONT, 0)
            };
            bytes.extend(wire::frame(i + 1 == bounds.len(), bits, op, &payload[start..end]));
            if i == 0 && msg.ping_inside {
                bytes.extend(wire::ping(b"ping"));
            }
            start = end;
        }
        self.write(&bytes, usize::MAX, run);
    }

    /// A whole message from the server: inflated if it was compressed.
    fn message(&mut self, text: bool, compressed: bool, data: Vec<u8>) -> Got {
        self.received.0 += 1;
        if !compressed {
            return Got::Message { text, data };
        }
        self.received.1 += 1;
        if data.ends_with(&TAIL) {
            return Got::Invalid(
                "sent a compressed message ending with 00 00 ff ff: the sender removes that tail \
                 (RFC 7692 7.2.1)"
                    .to_owned(),
            );
        }
        match self.codec.as_mut().map(|c| c.decode(&data)) {
            Some(Ok(data)) => Got::Message { text, data },
            Some(Err(why)) => Got::Invalid(format!("{why} (RFC 7692 7.2.2)")),
            None => Got::Invalid("set RSV1 with no extension negotiated (RFC 6455 5.2)".to_owned()),
        }
    }

    /// The next thing the server did, before the deadline. Pings are answered on the way.
    fn recv(&mut self, until: Instant) -> (Got, Instant) {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            // Past the deadline, what already arrived still counts.
            let next = if left.is_zero() {
                self.events.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else {
                self.events.recv_timeout(left)
            };
            let (at, rx) = match next {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => return (Got::Timeout, Instant::now()),
                Err(RecvTimeoutError::Disconnected) => return (Got::Eof, Instant::now()),
            };
            let f = match rx {
                Rx::Frame(f) => f,
                Rx::Invalid(why) => return (Got::Invalid(why), at),
                Rx::Eof => return (Got::Eof, at),
                Rx::Reset(e) => return (Got::Reset(e), at),
            };
            if f.masked {
                return (Got::Invalid("sent a masked frame (RFC 6455 5.1)".into()), at);
            }
            let deflate = self.codec.is_some();
            if f.rsv != 0 && !deflate {
                return (
                    Got::Invalid(format!(
                        "set reserved bits {:#05b} with no extension negotiated (RFC 6455 5.2)",
                        f.rsv
                    )),
                    at,
                );
            }
            if f.rsv & 0b011 != 0 {
                return (
                    Got::Invalid(format!(
                        "set reserved bits {:#05b}: permessage-deflate defines RSV1 only (RFC 7692 6)",
                        f.rsv
                    )),
                    at,
                );
            }
            let compressed = f.rsv & 0b100 != 0;
            if compressed && !matches!(f.opcode, OpCode::Text | OpCode::Binary) {
                return (
                    Got::Invalid(format!(
                        "set RSV1 on a {} frame: only the first frame of a data message may have it \
                         (RFC 7692 6.1)",
                        if f.opcode == OpCode::Continuation {
                            "continuation"
                        } else {
                            "control"
                        }
                    )),
                    at,
                );
            }
            let got = match f.opcode {
                OpCode::Ping => {
                    if !self.write_failed {
                        let _ = (&self.stream).write_all(&wire::pong(&f.payload));
                    }
                    continue;
                }
                OpCode::Pong => Got::Pong(f.payload),
                OpCode::Close => Got::Close(f.payload),
                OpCode::Text | OpCode::Binary => {
                    if self.partial.is_some() {
                        return (
                            Got::Invalid("started a message inside a fragmented one (RFC 6455 5.4)".into()),
                            at,
                        );
                    }
                    let text = f.opcode == OpCode::Text;
                    if !f.fin {
                        self.partial = Some((text, compressed, f.payload));
                        continue;
                    }
                    self.message(text, compressed, f.payload)
                }
                OpCode::Continuation => {
                    let Some((text, compressed, mut data)) = self.partial.take() else {
                        return (
                            Got::Invalid(
                                "sent a continuation frame with no message open (RFC 6455 5.4)".into(),
                            ),
                            at,
                        );
                    };
                    data.extend_from_slice(&f.payload);
                    if !f.fin {
                        self.partial = Some((text, compressed, data));
                        continue;
                    }
                    self.message(text, compressed, data)
                }
            };
            return (got, at);
        }
    }

    fn took(&self, at: Instant, run: &mut Run) {
        run.took = run.took.max(at.saturating_duration_since(self.last_write));
    }

    /// Records an ending of the connection (anything but a frame) and judges it for a step that
    /// was waiting for `waiting`. Returns nothing: the verdict goes into `run`.
    fn ended_while(&mut self, got: &Got, at: Instant, waiting: &str, run: &mut Run) {
        self.ended = true;
        match got {
            Got::Eof => {
                self.took(at, run);
                run.saw("dropped the connection without a Close frame");
                run.fail(format!("the connection was dropped while waiting for {waiting}"));
            }
            Got::Reset(e) => {
                self.took(at, run);
                run.saw(format!("reset the connection ({e})"));
                run.fail(format!("the connection was reset while waiting for {waiting}"));
            }
            Got::Invalid(why) => {
                run.saw(why.clone());
                run.fail(format!("the server {why}"));
            }
            Got::Timeout => {
                let waited = self.deadline.saturating_duration_since(self.last_write);
                run.saw(format!("timed out ({} without the expected answer)", ms(waited)));
                run.fail(format!("timed out waiting for {waiting}"));
            }
            Got::Message { .. } | Got::Pong(_) | Got::Close(_) => {}
        }
    }

    fn expect(&mut self, wants: &[Want], too_big_ok: bool, run: &mut Run) {
        let mut messages = wants.iter().filter(|w| !matches!(w, Want::Pong(_))).peekable();
        let mut pongs = wants.iter().filter(|w| matches!(w, Want::Pong(_))).peekable();
        let (mut got_messages, mut got_pongs) = (0usize, 0usize);
        let total_messages = wants.len() - wants.iter().filter(|w| matches!(w, Want::Pong(_))).count();
        let total_pongs = wants.len() - total_messages;
        let received = self.received;
        while messages.peek().is_some() || pongs.peek().is_some() {
            let waiting = format!(
                "{} (got {got_messages} of {total_messages} messages, {got_pongs} of {total_pongs} pongs)",
                describe_wants(wants)
            );
            let (got, at) = self.recv(self.deadline);
            match got {
                Got::Message { text, data } => {
                    self.took(at, run);
                    let Some(want) = messages.next() else {
                        run.saw(describe_message(text, &data));
                        run.fail("the server sent a message that was not expected");
                        return;
                    };
                    if let Some(diff) = compare_message(want, text, &data) {
                        run.saw(describe_message(text, &data));
                        run.fail(diff);
                        return;
                    }
                    got_messages += 1;
                }
                Got::Pong(data) => {
                    self.took(at, run);
                    // Unsolicited pongs are allowed (RFC 6455 5.5.3) when none is expected.
                    let Some(Want::Pong(want)) = pongs.peek() else {
                        run.saw(format!("sent an unsolicited pong {}", show_bytes(&data)));
                        continue;
                    };
                    if *want != data {
                        run.saw(format!("answered with pong {}", show_bytes(&data)));
                        run.fail(format!(
                            "pong payload {} differs from the ping's {} (RFC 6455 5.5.3)",
                            show_bytes(&data),
                            show_bytes(want)
                        ));
                        return;
                    }
                    pongs.next();
                    got_pongs += 1;
                }
                Got::Close(payload) => {
                    self.took(at, run);
                    run.saw(describe_close(&payload));
                    let code = close_code(&payload);
                    if too_big_ok && code == Some(1009) {
                        run.non_strict(
                            "closed with 1009: the server's message limit is below this size \
                             (give its limit with --max-message to check the limit instead)",
                        );
                    } else {
                        run.fail(format!(
                            "the server closed the connection while waiting for {waiting}"
                        ));
                    }
                    self.answer_close(&payload, run);
                    return;
                }
                other => {
                    self.ended_while(&other, at, &waiting, run);
                    return;
                }
            }
        }
        let done = describe_wants_done(wants);
        if self.codec.is_some() && total_messages > 0 {
            let compressed = self.received.1 - received.1;
            run.saw(format!("{done} ({compressed} of {total_messages} compressed)"));
        } else {
            run.saw(done);
        }
    }

    /// Replies to the server's Close frame and waits for the end of the TCP connection.
    fn answer_close(&mut self, payload: &[u8], run: &mut Run) {
        let reply = match close_code(payload) {
            Some(code) if parse_close_payload(payload).is_ok() => wire::close(code, b""),
            _ => wire::frame(true, 0, wire::CLOSE, b""),
        };
        self.write(&reply, usize::MAX, run);
        self.await_tcp_close(run);
    }

    /// After both Close frames: the server should close the TCP connection (RFC 6455 7.1.1).
    fn await_tcp_close(&mut self, run: &mut Run) {
        self.ended = true;
        let (got, _) = self.recv(self.deadline);
        match got {
            Got::Eof | Got::Reset(_) => {}
            Got::Timeout => {
                run.saw("kept the TCP connection open after the closing handshake");
                run.non_strict(
                    "the server did not close the TCP connection after the closing handshake \
                     (RFC 6455 7.1.1)",
                );
            }
            Got::Invalid(why) => {
                run.fail(format!("the server {why}"));
                run.saw(why);
            }
            Got::Message { text, data } => {
                run.saw(format!("{} after its Close frame", describe_message(text, &data)));
                run.fail("the server sent a data frame after its Close frame (RFC 6455 5.5.1)");
            }
            Got::Pong(_) | Got::Close(_) => {
                run.saw("sent a control frame after its Close frame");
                run.fail("the server sent a frame after its Close frame (RFC 6455 5.5.1)");
            }
        }
    }

    /// The server must answer the Close frame this script sent.
    fn closed(&mut self, want: CloseWant, run: &mut Run) {
        loop {
            let (got, at) = self.recv(self.deadline);
            match got {
                Got::Message { text, data } => {
                    self.took(at, run);
                    run.saw(describe_message(text, &data));
                    run.fail(
                        "the server sent a message that was not expected (after the client's Close frame)",
                    );
                    self.ended = true;
                    return;
                }
                Got::Pong(data) => {
                    self.took(at, run);
                    run.saw(format!("answered with pong {}", show_bytes(&data)));
                    run.non_strict("the server answered a ping sent after the client's Close frame");
                }
                Got::Close(payload) => {
                    self.took(at, run);
                    match want {
                        CloseWant::Echo(Some(c)) if close_code(&payload) == Some(c) && payload.len() == 2 => {
                            run.saw("answered with the same close code");
                        }
                        _ => run.saw(describe_close(&payload)),
                    }
                    judge_close_reply(want, &payload, run);
                    self.await_tcp_close(run);
                    return;
                }
                Got::Eof | Got::Reset(_) => {
                    self.took(at, run);
                    self.ended = true;
                    run.saw("dropped the connection without answering the Close frame");
                    match want {
                        CloseWant::Echo(_) => run.non_strict(
                            "the server closed the TCP connection without a Close frame (RFC 6455 5.5.1 asks for one)",
                        ),
                        CloseWant::Fail { code, .. } => {
                            run.non_strict(format!("the connection was dropped instead of closed with {code}"));
                        }
                    }
                    return;
                }
                other => {
                    self.ended_while(&other, at, "the server's Close frame", run);
                    return;
                }
            }
        }
    }

    /// The server must fail the connection with `code`. Returns true if it closed or dropped it.
    fn fail(&mut self, code: u16, run: &mut Run) -> bool {
        self.fail_until(code, self.deadline, run) != Failed::No
    }

    fn fail_until(&mut self, code: u16, until: Instant, run: &mut Run) -> Failed {
        let (got, at) = self.recv(until);
        match got {
            Got::Message { text, data } => {
                self.took(at, run);
                run.saw(describe_message(text, &data));
                run.fail(format!(
                    "the server accepted what it should have rejected (expected a close with {code})"
                ));
                self.ended = true;
            }
            Got::Pong(data) => {
                self.took(at, run);
                run.saw(format!("answered with pong {}", show_bytes(&data)));
                run.fail(format!(
                    "the server answered a frame it should have rejected with {code}"
                ));
                self.ended = true;
            }
            Got::Close(payload) => {
                self.took(at, run);
                run.saw(describe_close(&payload));
                match parse_close_payload(&payload) {
                    Err(e) => run.fail(format!("the server's Close frame is invalid: {e}")),
                    Ok(f) if f.code.as_u16() == code => {}
                    Ok(_) if payload.is_empty() => run.non_strict(format!(
                        "closed without a status code; {code} is the code for this error"
                    )),
                    Ok(f) => run.non_strict(format!(
                        "closed with {}; {code} is the code for this error",
                        f.code
                    )),
                }
                self.answer_close(&payload, run);
            }
            Got::Eof | Got::Reset(_) => {
                self.took(at, run);
                self.ended = true;
                run.saw(match got {
                    Got::Reset(e) => format!("reset the connection without a Close frame ({e})"),
                    _ => "dropped the connection without a Close frame".to_owned(),
                });
                run.non_strict(format!(
                    "the connection was dropped without a Close frame; the RFC's way to fail it is \
                     a Close frame with {code} (RFC 6455 7.1.7)"
                ));
            }
            Got::Timeout if until < self.deadline => return Failed::No,
            other => {
                let waiting = format!("the server to fail the connection with {code}");
                self.ended_while(&other, at, &waiting, run);
                return Failed::No;
            }
        }
        Failed::Yes
    }

    fn fail_fast(&mut self, code: u16, rest: &[u8], run: &mut Run) {
        let bound = self.deadline.saturating_duration_since(Instant::now());
        let early = Instant::now() + bound / 2;
        if self.fail_until(code, early, run) == Failed::Yes || self.ended {
            return;
        }
        run.saw(format!(
            "did not fail the connection within {}: sending the rest ({})",
            ms(bound / 2),
            size(rest.len())
        ));
        self.write(rest, usize::MAX, run);
        if self.fail(code, run) {
            run.non_strict(format!(
                "failed the connection only after the rest of the message was sent; it could have failed it with {code} at once"
            ));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    Yes,
    No,
}

/// Judges the server's answer to the Close frame a script sent.
fn judge_close_reply(want: CloseWant, payload: &[u8], run: &mut Run) {
    let parsed = parse_close_payload(payload);
    let code = close_code(payload);
    match want {
        CloseWant::Echo(sent) => match (&parsed, code) {
            (Err(e), _) => run.fail(format!("the server's Close frame is invalid: {e}")),
            (Ok(_), None) if sent.is_none() => {}
            (Ok(_), Some(1000)) => {}
            (Ok(_), Some(c)) if Some(c) == sent => {}
            (Ok(_), None) => run.non_strict(format!(
                "answered with an empty Close frame; the usual answer echoes the code {}",
                sent.unwrap_or(1000)
            )),
            // A valid code called a protocol error: only the codes registered after RFC 6455
            // (1012-1014) may be unknown to a server.
            (Ok(_), Some(1002)) if !sent.is_some_and(|c| (1012..=1014).contains(&c)) => run.fail(format!(
                "answered a valid Close frame ({}) with 1002, as if it were a protocol error",
                sent.map_or("empty".to_owned(), |c| c.to_string())
            )),
            (Ok(_), Some(c)) => run.non_strict(format!(
                "answered the Close frame with {c}; the usual answer echoes the code received or sends 1000"
            )),
        },
        CloseWant::Fail {
            code: want_code,
            sent,
        } => match (&parsed, code) {
            (Err(e), _) => run.fail(format!("the server's Close frame is invalid: {e}")),
            (Ok(_), Some(c)) if c == want_code => {}
            (Ok(_), Some(c)) if Some(c) == sent => {
                run.fail(format!(
                    "the server echoed a close code that may not be used ({c})"
                ));
            }
            (Ok(_), c) => run.non_strict(format!(
                "answered the invalid Close frame with {}; {want_code} is the code for this error",
                c.map_or("an empty Close frame".to_owned(), |c| c.to_string())
            )),
        },
    }
}

fn close_code(payload: &[u8]) -> Option<u16> {
    payload.first_chunk::<2>().map(|b| u16::from_be_bytes(*b))
}

fn describe_close(payload: &[u8]) -> String {
    match payload {
        [] => "closed with an empty Close frame".to_owned(),
        [_] => "closed with a 1-byte Close frame".to_owned(),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            match std::str::from_utf8(reason) {
                Ok("") => format!("closed with {code}"),
                Ok(r) if r.chars().count() <= 60 => format!("closed with {code} {r:?}"),
                _ => format!("closed with {code} and a reason of {}", show_bytes(reason)),
            }
        }
    }
}

fn describe_message(text: bool, data: &[u8]) -> String {
    format!(
        "sent a {} message of {}",
        if text { "text" } else { "binary" },
        size(data.len())
    )
}

fn describe_wants(wants: &[Want]) -> String {
    let messages = wants.iter().filter(|w| !matches!(w, Want::Pong(_))).count();
    let pongs = wants.len() - messages;
    match (messages, pongs) {
        (m, 0) => format!("{m} echoed message{}", plural(m)),
        (0, p) => format!("{p} pong{}", plural(p)),
        (m, p) => format!("{m} echoed message{} and {p} pong{}", plural(m), plural(p)),
    }
}

fn describe_wants_done(wants: &[Want]) -> String {
    let messages: Vec<&Want> = wants.iter().filter(|w| !matches!(w, Want::Pong(_))).collect();
    let pongs = wants.len() - messages.len();
    let mut parts = Vec::new();
    match messages.as_slice() {
        [] => {}
        [Want::Text(d)] => parts.push(format!("echoed the text ({})", size(d.len()))),
        [Want::Binary(d)] => parts.push(format!("echoed the binary ({})", size(d.len()))),
        m => parts.push(format!("echoed {} messages", m.len())),
    }
    match pongs {
        0 => {}
        1 => parts.push("answered with the pong".to_owned()),
        p => parts.push(format!("answered with {p} pongs")),
    }
    parts.join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// How a received message differs from the expected one, if it does.
fn compare_message(want: &Want, text: bool, data: &[u8]) -> Option<String> {
    let (want_text, want_data) = match want {
        Want::Text(d) => (true, d),
        Want::Binary(d) => (false, d),
        Want::Pong(_) => return Some("expected a pong".to_owned()),
    };
    if want_text != text {
        return Some(format!(
            "the echo is a {} message; a {} message was sent",
            if text { "text" } else { "binary" },
            if want_text { "text" } else { "binary" }
        ));
    }
    if data == want_data.as_slice() {
        return None;
    }
    if data.len() != want_data.len() {
        return Some(format!(
            "the echo has {} bytes; {} were sent",
            data.len(),
            want_data.len()
        ));
    }
    let at = data
        .iter()
        .zip(want_data.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    Some(format!(
        "the echo differs from what was sent at byte {at} ({:#04x} instead of {:#04x})",
        data[at], want_data[at]
    ))
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

fn write_until(stream: &mut &TcpStream, bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_write_timeout(Some(left))?;
    stream.write_all(bytes)
}

fn read_until(mut stream: &TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
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

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// A duration for humans: `0.4 ms`, `12 ms`, `2.5 s`.
pub(crate) fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}
