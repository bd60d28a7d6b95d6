//! The script interpreter: a script's steps (write, send, expect, close, fail) played on an open
//! connection, with the server's frames reassembled into what the steps wait for.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;

use c10k::proto::close::parse_close_payload;
use c10k::proto::frame::OpCode;

use super::transport::{Rx, Transport};
use super::verdict::{
    close_code, compare_message, describe_close, describe_message, describe_wants, describe_wants_done,
    judge_close_reply,
};
use super::{Run, ms};
use crate::check::case::{CloseWant, Msg, Step, Want, show_bytes, size, wire};
use crate::check::deflate::{Codec, Encoding, TAIL};

/// Plays a script's steps on a transport: what the server sends is reassembled into messages,
/// inflated when permessage-deflate was agreed, and judged against each step.
pub(super) struct Interpreter {
    transport: Transport,
    /// The message the server is sending in fragments: text, compressed, the payload so far.
    partial: Option<(bool, bool, Vec<u8>)>,
    /// permessage-deflate, when it was agreed.
    codec: Option<Codec>,
    /// Messages received, and how many of them compressed.
    received: (usize, usize),
    /// The connection is over (closed, dropped, or garbage received).
    ended: bool,
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

impl Interpreter {
    pub(super) fn new(transport: Transport, codec: Option<Codec>) -> Self {
        Self {
            transport,
            partial: None,
            codec,
            received: (0, 0),
            ended: false,
        }
    }

    /// Whether the connection is over: the remaining steps do not run.
    pub(super) fn ended(&self) -> bool {
        self.ended
    }

    /// Ends the connection and the reader thread.
    pub(super) fn finish(&mut self) {
        self.transport.finish();
    }

    pub(super) fn step(&mut self, step: &Step, run: &mut Run) {
        match step {
            Step::Write(bytes) => self.transport.write(bytes, usize::MAX, run),
            Step::Chunked(bytes, chunk) => self.transport.write(bytes, *chunk, run),
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
        self.transport.write(&bytes, usize::MAX, run);
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
    fn recv(&mut self, until: Instant, run: &mut Run) -> (Got, Instant) {
        loop {
            // Past the deadline, what already arrived still counts.
            let (at, rx) = match self.transport.next(until) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => {
                    let now = Instant::now();
                    run.transcript
                        .note(now, || "nothing more from the server by the deadline".to_owned());
                    return (Got::Timeout, now);
                }
                Err(RecvTimeoutError::Disconnected) => return (Got::Eof, Instant::now()),
            };
            let f = match rx {
                Rx::Frame(f) => f,
                Rx::Invalid(why) => {
                    run.transcript
                        .note(at, || format!("< not a valid frame: the server {why}"));
                    return (Got::Invalid(why), at);
                }
                Rx::Eof => {
                    run.transcript.note(at, || "server closed TCP".to_owned());
                    return (Got::Eof, at);
                }
                Rx::Reset(e) => {
                    run.transcript.note(at, || format!("server reset TCP ({e})"));
                    return (Got::Reset(e), at);
                }
            };
            run.transcript
                .received(at, f.fin, f.rsv, f.opcode, f.masked, &f.payload);
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
                    self.transport.pong(&f.payload, run);
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
        run.took = run
            .took
            .max(at.saturating_duration_since(self.transport.last_write()));
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
                let waited = self
                    .transport
                    .deadline()
                    .saturating_duration_since(self.transport.last_write());
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
            let (got, at) = self.recv(self.transport.deadline(), run);
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
        self.transport.write(&reply, usize::MAX, run);
        self.await_tcp_close(run);
    }

    /// After both Close frames: the server should close the TCP connection (RFC 6455 7.1.1).
    fn await_tcp_close(&mut self, run: &mut Run) {
        self.ended = true;
        let (got, _) = self.recv(self.transport.deadline(), run);
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
            let (got, at) = self.recv(self.transport.deadline(), run);
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
        self.fail_until(code, self.transport.deadline(), run) != Failed::No
    }

    fn fail_until(&mut self, code: u16, until: Instant, run: &mut Run) -> Failed {
        let (got, at) = self.recv(until, run);
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
            Got::Timeout if until < self.transport.deadline() => return Failed::No,
            other => {
                let waiting = format!("the server to fail the connection with {code}");
                self.ended_while(&other, at, &waiting, run);
                return Failed::No;
            }
        }
        Failed::Yes
    }

    fn fail_fast(&mut self, code: u16, rest: &[u8], run: &mut Run) {
        let bound = self
            .transport
            .deadline()
            .saturating_duration_since(Instant::now());
        let early = Instant::now() + bound / 2;
        if self.fail_until(code, early, run) == Failed::Yes || self.ended {
            return;
        }
        run.saw(format!(
            "did not fail the connection within {}: sending the rest ({})",
            ms(bound / 2),
            size(rest.len())
        ));
        self.transport.write(rest, usize::MAX, run);
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
