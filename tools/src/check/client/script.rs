//! The interpreter of a client case: answers the client's upgrade as the case says, runs its
//! steps, and judges every frame the client sends, into a verdict, a reason and a transcript.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::super::Verdict;
use super::TCP_GRACE;
use super::case::{AfterClose, Answer, Odd, Script, Step, Want, sframe};
use super::conn::{self, Transcript, describe, describe_written, show};
use super::deflate::Agreement;
use super::http::{self, Offer};
use super::peer::{In, Judge, Peer, close_payload, is_valid_code, ms};

/// What one client did in one case.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub verdict: Verdict,
    pub reason: String,
    pub observed: String,
    pub transcript: Vec<String>,
}

/// The error codes a client may fail a connection with (RFC 6455 7.4.1).
const ERROR_CODES: [u16; 7] = [1002, 1003, 1007, 1008, 1009, 1010, 1011];

/// Runs `case` on an accepted connection whose request head (a valid client handshake that
/// offered `offer`) was read; `leftover` is what the client sent after the head.
pub(crate) fn run(
    stream: TcpStream,
    leftover: Vec<u8>,
    offer: &Offer,
    bound: Duration,
    start: Instant,
    script: &(dyn Fn() -> Script + Send + Sync),
) -> Outcome {
    let script = script();
    let mut t = Transcript::new(start);
    t.note(format!("< {} (a valid client handshake)", offer.summary()));
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(bound.max(Duration::from_secs(1))));
    let mut steps: VecDeque<Step> = script.steps.into();
    let (answer, deflate) = match script.answer {
        Answer::Accept => (http::accept(offer, None), None),
        Answer::Odd(odd) => (http::accept_odd(offer, odd), None),
        Answer::Deflate { takeover } => match Agreement::new(&offer.extensions, takeover) {
            Some(a) => (http::accept(offer, Some(&a.answer)), Some(a)),
            None if offer.offers_deflate() => {
                let why = format!(
                    "the checker could not accept the client's permessage-deflate offers ({})",
                    offer.extensions.join(", ")
                );
                return skip(stream, offer, t, why);
            }
            None => {
                let why = "the client did not offer permessage-deflate, which the case needs";
                return skip(stream, offer, t, why.to_owned());
            }
        },
        Answer::Bad(bad) => match http::bad_answer(offer, bad) {
            Ok(bytes) => (bytes, None),
            Err(why) => return skip(stream, offer, t, why),
        },
    };
    let mut peer = match Peer::open(stream, leftover, t, deflate, bound) {
        Ok(p) => p,
        Err((t, why)) => {
            return Outcome {
                verdict: Verdict::Fail,
                reason: why,
                observed: "the connection failed".to_owned(),
                transcript: t.into_lines(),
            };
        }
    };
    let head = String::from_utf8_lossy(&answer);
    let lines: Vec<&str> = head.split("\r\n").filter(|l| !l.is_empty()).collect();
    peer.t.note(format!("> {}", lines.join(" | ")));
    match script.answer {
        Answer::Odd(Odd::ByteByByte) => peer.write(&answer, Some(1)),
        Answer::Odd(Odd::WithFrame) => {
            let mut both = answer;
            if let Some(Step::Write(first)) = steps.front() {
                peer.t.note("  (the head and the first frame in one write)");
                for line in describe_written(first) {
                    peer.t.note(format!("> {line}"));
                }
                both.extend_from_slice(first);
                steps.pop_front();
            }
            peer.write_quiet(&both);
        }
        _ => {
            peer.write_quiet(&answer);
        }
    }
    let mut judge = Judge {
        verdict: Verdict::Pass,
        reason: String::new(),
        observed: Vec::new(),
    };
    for step in steps {
        if judge.verdict == Verdict::Fail || !peer.is_open() {
            if matches!(step, Step::Expect(_) | Step::Big(_)) && judge.verdict != Verdict::Fail {
                judge.set(Verdict::Fail, "the connection ended before the echo");
            }
            break;
        }
        run_step(&mut peer, &mut judge, step);
    }
    peer.finish(&mut judge);
    Outcome {
        verdict: judge.verdict,
        reason: judge.reason,
        observed: if judge.observed.is_empty() {
            "did nothing the case looks at".to_owned()
        } else {
            judge.observed.join("; ")
        },
        transcript: peer.t.into_lines(),
    }
}

/// A case that cannot run for this client: a plain 101, a Close 1000, and SKIPPED.
fn skip(mut stream: TcpStream, offer: &Offer, mut t: Transcript, why: String) -> Outcome {
    let _ = stream.write_all(&http::accept(offer, None));
    t.note("> 101 Switching Protocols (the case is skipped)");
    let _ = stream.write_all(&sframe(true, 0, 0x8, &close_payload(1000, b"skipped")));
    t.note("> close 1000 \"skipped\"");
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 256];
    let _ = std::io::Read::read(&mut stream, &mut sink);
    let _ = stream.shutdown(Shutdown::Both);
    t.note(format!("skipped: {why}"));
    Outcome {
        verdict: Verdict::Skipped,
        reason: why,
        observed: "was not tested".to_owned(),
        transcript: t.into_lines(),
    }
}

fn show_want(w: &Want) -> String {
    match w {
        Want::Text(p) => format!("text {} B {}", p.len(), show(p)),
        Want::Binary(p) => format!("binary {} B {}", p.len(), show(p)),
        Want::Pong(p) => format!("pong {} B {}", p.len(), show(p)),
    }
}

fn show_msg(opcode: u8, payload: &[u8]) -> String {
    format!(
        "{} {} B {}",
        conn::opcode_name(opcode),
        payload.len(),
        show(payload)
    )
}

fn is_want(w: &Want, opcode: u8, payload: &[u8]) -> bool {
    match w {
        Want::Text(p) => opcode == 1 && p == payload,
        Want::Binary(p) => opcode == 2 && p == payload,
        Want::Pong(_) => false,
    }
}

fn run_step(peer: &mut Peer, judge: &mut Judge, step: Step) {
    let bound = peer.bound;
    match step {
        Step::Write(bytes) => peer.write(&bytes, None),
        Step::Chunked(bytes, n) => peer.write(&bytes, Some(n)),
        Step::Compressed {
            opcode,
            payload,
            frames,
        } => {
            let z = match peer.deflate.as_mut() {
                Some(d) => d.compress(&payload),
                None => payload,
            };
            let per = z.len().div_ceil(frames).max(1);
            let pieces: Vec<&[u8]> = if z.is_empty() {
                vec![&[]]
            } else {
                z.chunks(per).collect()
            };
            let last = pieces.len() - 1;
            let mut bytes = Vec::with_capacity(z.len() + 14 * pieces.len());
            for (i, p) in pieces.iter().enumerate() {
                let (rsv, op) = if i == 0 { (4, opcode) } else { (0, 0) };
                bytes.extend_from_slice(&sframe(i == last, rsv, op, p));
            }
            peer.write(&bytes, None);
        }
        Step::Expect(wants) => expect(peer, judge, wants),
        Step::Fail(codes) => failure(peer, judge, codes, false),
        Step::CloseRejected(codes) => failure(peer, judge, codes, true),
        Step::Closed(after) => closed(peer, judge, after),
        Step::Refused => {
            let started = Instant::now();
            match peer.next(started + bound) {
                In::Ended(how) => judge.saw(format!("refused it: {how}")),
                In::Timeout => judge.saw(format!("stayed silent for {}", ms(bound))),
                other => {
                    let what = brief(&other);
                    judge.saw(what.clone());
                    judge.set(
                        Verdict::Fail,
                        format!(
                            "took the connection as open after an answer it must refuse (RFC 6455 \
                             4.1: the client must fail the connection): {what}"
                        ),
                    );
                }
            }
        }
        Step::Big(want) => {
            let started = Instant::now();
            match peer.next(started + bound) {
                In::Msg { opcode, payload } if is_want(&want, opcode, &payload) => {
                    let took = ms(started.elapsed());
                    judge.saw(format!("echoed it in {took}"));
                    judge.set(
                        Verdict::Info,
                        format!("echoed the {} B message in {took}", payload.len()),
                    );
                }
                In::Close(p) if p.starts_with(&1009u16.to_be_bytes()) => {
                    let took = ms(started.elapsed());
                    judge.saw(format!("closed with 1009 after {took}"));
                    judge.set(Verdict::Info, format!("refused it with 1009 after {took}"));
                    peer.answer_close(&p);
                }
                In::Ended(how) => judge.set(
                    Verdict::NonStrict,
                    format!("{how}: neither echoed it nor closed with 1009"),
                ),
                other => judge.set(
                    Verdict::Fail,
                    format!("neither echoed it nor closed with 1009: {}", brief(&other)),
                ),
            }
        }
    }
}

/// A short account of what the client did.
fn brief(i: &In) -> String {
    match i {
        In::Msg { opcode, payload } => format!("sent {}", show_msg(*opcode, payload)),
        In::Pong(p) => format!("sent pong {} B {}", p.len(), show(p)),
        In::Close(p) => format!("sent {}", describe(true, 0, 8, p, "")),
        In::Ended(how) => how.clone(),
        In::Wrong(why) => why.clone(),
        In::Timeout => "nothing in time".to_owned(),
    }
}

fn expect(peer: &mut Peer, judge: &mut Judge, wants: Vec<Want>) {
    let deadline = Instant::now() + peer.bound;
    let (pongs, msgs): (Vec<Want>, Vec<Want>) = wants.into_iter().partition(|w| matches!(w, Want::Pong(_)));
    let mut msgs: VecDeque<Want> = msgs.into();
    let mut pongs: VecDeque<Vec<u8>> = pongs
        .into_iter()
        .filter_map(|w| match w {
            Want::Pong(p) => Some(p),
            _ => None,
        })
        .collect();
    while !msgs.is_empty() || !pongs.is_empty() {
        let due = msgs
            .front()
            .map(show_want)
            .or_else(|| pongs.front().map(|p| show_want(&Want::Pong(p.clone()))))
            .unwrap_or_default();
        match peer.next(deadline) {
            In::Msg { opcode, payload } => match msgs.pop_front() {
                Some(w) if is_want(&w, opcode, &payload) => {
                    judge.saw(format!("echoed {}", show_msg(opcode, &payload)));
                }
                Some(w) => {
                    return judge.set(
                        Verdict::Fail,
                        format!(
                            "sent {} where the echo {} was due",
                            show_msg(opcode, &payload),
                            show_want(&w)
                        ),
                    );
                }
                None => {
                    return judge.set(
                        Verdict::Fail,
                        format!("sent {}, which is no echo", show_msg(opcode, &payload)),
                    );
                }
            },
            In::Pong(p) => {
                if let Some(i) = pongs.iter().position(|w| *w == p) {
                    // A client may answer only the latest of several pings (RFC 6455 5.5.3).
                    pongs.drain(..=i);
                    judge.saw(format!("answered with pong {} B", p.len()));
                } else if !pongs.is_empty() {
                    return judge.set(
                        Verdict::Fail,
                        format!(
                            "answered with a pong of {} B {} where {due} was due (RFC 6455 5.5.3: \
                             the pong carries the ping's payload)",
                            p.len(),
                            show(&p)
                        ),
                    );
                }
            }
            In::Close(p) => {
                judge.set(
                    Verdict::Fail,
                    format!("sent {} where {due} was due", describe(true, 0, 8, &p, "")),
                );
                return peer.answer_close(&p);
            }
            In::Timeout => {
                return judge.set(
                    Verdict::Fail,
                    format!("no answer within {}: {due} was due", ms(peer.bound)),
                );
            }
            other => {
                return judge.set(Verdict::Fail, format!("{} where {due} was due", brief(&other)));
            }
        }
    }
}

/// The client must fail the connection with one of `codes`. `after_close`: what it was sent
/// is an invalid Close frame, which a client answering normally (1000, 1001, no code) accepts.
fn failure(peer: &mut Peer, judge: &mut Judge, codes: &[u16], after_close: bool) {
    let deadline = Instant::now() + peer.bound;
    let want = codes.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ");
    match peer.next(deadline) {
        In::Close(p) => {
            let code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
            judge.saw(format!("closed with {}", describe(true, 0, 8, &p, "")));
            match code {
                Some(c) if codes.contains(&c) => {}
                Some(c) if p.len() >= 2 && ERROR_CODES.contains(&c) => judge.set(
                    Verdict::NonStrict,
                    format!("failed the connection with {c}, where {want} is the code for it"),
                ),
                Some(c) if !is_valid_code(c) => judge.set(
                    Verdict::Fail,
                    format!("answered with close code {c}, which may not be sent (RFC 6455 7.4)"),
                ),
                _ if after_close => judge.set(
                    Verdict::Fail,
                    format!(
                        "answered the invalid Close as a valid one ({}): it must fail the \
                         connection with {want} (RFC 6455 5.5.1, 7.1.5, 7.4.1)",
                        describe(true, 0, 8, &p, "")
                    ),
                ),
                _ => judge.set(
                    Verdict::NonStrict,
                    format!(
                        "closed with {}, not an error code; {want} is the code for it",
                        describe(true, 0, 8, &p, "")
                    ),
                ),
            }
            peer.answer_close(&p);
        }
        In::Ended(how) => {
            judge.saw(how.clone());
            judge.set(
                Verdict::NonStrict,
                format!("{how} without a Close frame: RFC 6455 7.1.7 says to send Close {want} first"),
            );
        }
        In::Timeout => judge.set(
            Verdict::Fail,
            format!("did not fail the connection within {}", ms(peer.bound)),
        ),
        In::Msg { opcode, payload } => judge.set(
            Verdict::Fail,
            format!(
                "sent {} instead of failing the connection with {want}",
                show_msg(opcode, &payload)
            ),
        ),
        other => judge.set(
            Verdict::Fail,
            format!("{} instead of failing the connection with {want}", brief(&other)),
        ),
    }
}

/// The checker sent a valid Close: the client must answer it, and then (per `after`) wait for
/// the checker to close TCP.
fn closed(peer: &mut Peer, judge: &mut Judge, after: AfterClose) {
    let deadline = Instant::now() + peer.bound;
    let answer = loop {
        match peer.next(deadline) {
            In::Close(p) => break p,
            In::Pong(_) => {}
            In::Msg { opcode, payload } => {
                return judge.set(
                    Verdict::Fail,
                    format!(
                        "sent {} after the checker's Close instead of answering it (RFC 6455 \
                         5.5.1: data after a Close is not processed)",
                        show_msg(opcode, &payload)
                    ),
                );
            }
            In::Timeout => {
                return judge.set(
                    Verdict::Fail,
                    format!(
                        "did not answer the Close within {} (RFC 6455 5.5.1)",
                        ms(peer.bound)
                    ),
                );
            }
            other => {
                return judge.set(
                    Verdict::Fail,
                    format!(
                        "{} without answering the Close (RFC 6455 5.5.1: it must send a Close \
                         back)",
                        brief(&other)
                    ),
                );
            }
        }
    };
    let answered = Instant::now();
    judge.saw(format!("answered {}", describe(true, 0, 8, &answer, "")));
    match answer.as_slice() {
        [] => {}
        [_] => judge.set(Verdict::Fail, "answered with a 1-byte Close payload"),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_code(code) {
                judge.set(
                    Verdict::Fail,
                    format!("answered with close code {code}, which may not be sent"),
                );
            } else if std::str::from_utf8(reason).is_err() {
                judge.set(Verdict::Fail, "answered with a reason that is not UTF-8");
            }
        }
    }
    match after {
        AfterClose::Answer => peer.close_tcp(),
        AfterClose::AnswerAndWait => match peer.next(answered + TCP_GRACE) {
            In::Timeout => {
                judge.saw(format!(
                    "kept TCP open for {} until the checker closed it",
                    ms(TCP_GRACE)
                ));
                peer.close_tcp();
            }
            In::Ended(how) => judge.set(
                Verdict::Fail,
                format!(
                    "{how}, {} after answering the Close, before the checker did: the server \
                     closes TCP first, a client only after a timeout (RFC 6455 5.5.1, 7.1.1)",
                    ms(answered.elapsed())
                ),
            ),
            other => judge.set(Verdict::Fail, format!("after its Close: {}", brief(&other))),
        },
        AfterClose::AnswerAndLinger => {
            let linger = peer.bound;
            match peer.next(answered + linger) {
                In::Ended(how) => {
                    let took = ms(answered.elapsed());
                    judge.saw(format!("closed TCP itself {took} after its Close"));
                    judge.set(
                        Verdict::Info,
                        format!("{how}: it waited {took} after its Close for the server to close"),
                    );
                }
                In::Timeout => {
                    judge.saw(format!("still open {} after its Close", ms(linger)));
                    judge.set(
                        Verdict::Info,
                        format!(
                            "kept TCP open for {} after its Close (the checker then closed it)",
                            ms(linger)
                        ),
                    );
                    peer.close_tcp();
                }
                other => judge.set(Verdict::Fail, format!("after its Close: {}", brief(&other))),
            }
        }
    }
}
