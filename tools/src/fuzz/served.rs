//! One sequence played on a client under test (`c10k fuzz --serve`): the checker is the
//! server. It answers the client's upgrade request (agreeing permessage-deflate when the client
//! offered it and the sequence wants it), writes the sequence's frames (a server's: unmasked,
//! but for the masked ones a client must refuse) in the sequence's pieces and pauses, and judges
//! what the client sends back with the same judges as for a server: a client-role core is the
//! oracle, a server-role core decodes the client's frames (an unmasked one is a FAIL).
//!
//! Blocking, on the connection's own thread: a reader thread hands the client's bytes over a
//! channel, so writing never waits on reading. Every wait ends at the sequence's deadline.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use c10k::proto::deflate::negotiate;
use c10k::proto::handshake::{HeadLimits, accept_key, parse_request};
use c10k::proto::{Config, Connection, Role};

use super::driver::answers::peer_frames;
use super::grammar::Grammar;
use super::judge::{Judge, Judges, Outcome};
use super::oracle;
use super::rng::Rng;
use super::sequence::{Frame, Len, Sequence, deflate_policy};
use crate::check::Group;
use crate::check::Verdict;
use crate::check::client::{CLIENT_BOUND, ClientCase, Played};

/// Bytes read from the client at once.
const READ_CHUNK: usize = 64 << 10;
/// Chunks the reader thread may hold before the judge takes them (64 x 64 KiB at most).
const READ_QUEUE: usize = 64;

/// Lines a transcript keeps at most.
pub const MAX_LINES: usize = 200;

/// What playing a sequence came to: the outcome, and the connection's transcript (what was
/// written and read, with times since the request was read).
#[derive(Debug, Clone)]
pub struct Served {
    /// The verdict and its details.
    pub outcome: Outcome,
    /// At most [`MAX_LINES`] lines.
    pub transcript: Vec<String>,
}

/// A transcript being written.
struct Log {
    start: Instant,
    lines: Vec<String>,
    dropped: usize,
}

impl Log {
    fn line(&mut self, what: impl Into<String>) {
        if self.lines.len() < MAX_LINES {
            let ms = self.start.elapsed().as_secs_f64() * 1000.0;
            self.lines.push(format!("+{ms:.3} ms  {}", what.into()));
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self, outcome: &Outcome) -> Vec<String> {
        if self.dropped > 0 {
            self.lines.push(format!("... {} more lines", self.dropped));
        }
        self.lines.push(format!("expected: {}", outcome.expected));
        if outcome.verdict != Verdict::Pass {
            self.lines.push(format!(
                "{} ({}): {}",
                outcome.verdict, outcome.kind, outcome.reason
            ));
        }
        self.lines
    }
}

/// Plays `seq` on `stream`, whose request head `head` was read (nothing after it); `bound` is how
/// long the client may take beyond the sequence's own pauses.
pub fn play(stream: TcpStream, head: &[u8], seq: &Sequence, bound: Duration) -> Served {
    let mut log = Log {
        start: Instant::now(),
        lines: Vec::new(),
        dropped: 0,
    };
    let first = head.split(|&b| b == b'\r').next().unwrap_or_default();
    log.line(format!("< {}", String::from_utf8_lossy(first)));
    let outcome = play_logged(stream, head, seq, bound, &mut log);
    let transcript = log.finish(&outcome);
    Served { outcome, transcript }
}

fn play_logged(stream: TcpStream, head: &[u8], seq: &Sequence, bound: Duration, log: &mut Log) -> Outcome {
    let request = match parse_request(head, &HeadLimits::default()) {
        Ok(Some(r)) if r.is_websocket() => r,
        other => {
            let why = match other {
                Err(e) => e.to_string(),
                _ => "not a WebSocket upgrade request".to_owned(),
            };
            let _ = (&stream)
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return Outcome::new(
                Verdict::Fail,
                "bad-request",
                "handshake".to_owned(),
                "a valid upgrade request".to_owned(),
                format!("sent an invalid upgrade request: {why}"),
            );
        }
    };
    let key = request.header("sec-websocket-key").unwrap_or_default();
    let agreed = if seq.opening.deflate {
        negotiate(
            request.header_values("sec-websocket-extensions"),
            &deflate_policy(),
        )
    } else {
        None
    };
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        String::from_utf8_lossy(&accept_key(key))
    );
    if let Some(p) = &agreed {
        response.push_str(&format!("Sec-WebSocket-Extensions: {p}\r\n"));
    }
    response.push_str("\r\n");

    let expectation = oracle::expect_of(
        Role::Client,
        &seq.frames,
        None,
        agreed.map(|p| p.negotiated(Role::Client, &deflate_policy())),
    );
    let mut judges = Judges(expectation.alternatives.into_iter().map(Judge::new).collect());
    let config = Config {
        auto_pong: false,
        ..Config::default()
    };
    let decoder = Connection::server(config);
    #[cfg(feature = "deflate")]
    let decoder = match agreed {
        Some(p) => decoder.with_deflate(p.negotiated(Role::Server, &deflate_policy())),
        None => decoder,
    };
    let mut decoder = decoder;

    let pauses: Duration = seq
        .cuts
        .iter()
        .map(|c| Duration::from_micros(u64::from(c.pause_us)))
        .sum();
    let deadline = Instant::now() + bound + pauses;
    let _ = stream.set_write_timeout(Some(bound));
    let rx = match reader(&stream) {
        Ok(rx) => rx,
        Err(e) => return dropped(&mut judges, &format!("could not be read ({e})")),
    };
    let mut writer = &stream;
    if let Err(e) = writer.write_all(response.as_bytes()) {
        return dropped(&mut judges, &format!("went away before the 101 ({e})"));
    }
    log.line(match &agreed {
        Some(p) => format!("> 101 Switching Protocols; extensions: {p}"),
        None => "> 101 Switching Protocols".to_owned(),
    });
    for (i, f) in seq.frames[..expectation.send_frames].iter().enumerate() {
        log.line(format!("  frame {}: {}", i + 1, describe(f)));
    }

    let mut inbuf = Vec::new();
    let mut outcome = None;
    let mut ended: Option<String> = None;
    let bytes = &expectation.bytes;
    let mut written = 0;
    let mut cuts = seq.cuts.iter().filter(|c| c.at < bytes.len()).peekable();
    let mut write_failed = false;
    // Write piece by piece; between pieces, judge what came.
    while written < bytes.len() && outcome.is_none() && ended.is_none() {
        let (end, pause) = match cuts.next() {
            Some(c) if c.at > written => (c.at, Duration::from_micros(u64::from(c.pause_us))),
            Some(_) => continue,
            None => (bytes.len(), Duration::ZERO),
        };
        if let Err(e) = writer.write_all(&bytes[written..end]) {
            // The client closed or reset its end; what it sent before (its Close, say) is
            // still to be read: the reader's end of the stream says how it ended.
            log.line(format!("write failed: {e}"));
            write_failed = true;
            break;
        }
        log.line(format!("> bytes {written}..{end} of {}", bytes.len()));
        written = end;
        let until = Instant::now() + pause;
        loop {
            let wait = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Ok(chunk)) => {
                    log.line(format!("< {} B", chunk.len()));
                    inbuf.extend_from_slice(&chunk);
                    outcome = peer_frames(&mut decoder, &mut inbuf, &mut judges, outcome);
                }
                Ok(Err(why)) => ended = Some(why),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => ended = Some("closed the connection".to_owned()),
            }
            if outcome.is_some() || ended.is_some() {
                break;
            }
        }
    }
    if outcome.is_none() && ended.is_none() && !write_failed {
        judges.each(Judge::all_sent);
        outcome = judges.outcome();
    }
    while outcome.is_none() {
        if let Some(how) = &ended {
            log.line(format!("client {how}"));
            judges.each(|j| j.dropped(how));
            outcome = judges.outcome();
            break;
        }
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(chunk)) => {
                log.line(format!("< {} B", chunk.len()));
                inbuf.extend_from_slice(&chunk);
                outcome = peer_frames(&mut decoder, &mut inbuf, &mut judges, outcome);
            }
            Ok(Err(why)) => ended = Some(why),
            Err(RecvTimeoutError::Disconnected) => ended = Some("closed the connection".to_owned()),
            Err(RecvTimeoutError::Timeout) => {
                let ms = u64::try_from((bound + pauses).as_millis()).unwrap_or(u64::MAX);
                judges.each(|j| j.timed_out(ms));
                outcome = judges.outcome();
            }
        }
    }
    // The server closes the TCP connection (RFC 6455 7.1.1); a connection that nothing closed
    // is closed with 1000 first.
    let closing = seq.frames[..expectation.send_frames]
        .iter()
        .any(|f| f.opcode == 8);
    if ended.is_none() && written == bytes.len() && expectation.send_frames == seq.frames.len() && !closing {
        let _ = writer.write_all(&[0x88, 0x02, 0x03, 0xe8]);
        log.line("> close 1000");
    }
    log.line("checker closed TCP");
    let _ = stream.shutdown(Shutdown::Both);
    outcome.unwrap_or_else(|| {
        Outcome::new(
            Verdict::Fail,
            "no-progress",
            "sequence".to_owned(),
            String::new(),
            "undecided",
        )
    })
}

/// `count` sequences drawn from `seed`, as client cases `fuzz.1`, `fuzz.2`, ... that the client
/// suite's URLs serve (`c10k fuzz --serve`): the same seed draws the same sequences, and each
/// connection to `/case/fuzz.N` plays sequence N on it.
pub fn cases(seed: u64, count: u64) -> Vec<ClientCase> {
    let grammar = Grammar { max_message: None };
    (0..count)
        .map(|i| {
            let seq = grammar.served(&mut Rng::for_sequence(seed, i));
            let frames: Vec<String> = seq.frames.iter().map(short).collect();
            let description = format!("sequence {i} of seed {seed}: {}", frames.join(", "));
            let sent = format!(
                "{} frame(s) in {} write(s){}",
                seq.frames.len(),
                seq.cuts.len() + 1,
                if seq.opening.deflate {
                    ", permessage-deflate if offered"
                } else {
                    ""
                }
            );
            ClientCase::played(
                format!("fuzz.{}", i + 1),
                Group::Fuzz,
                "5",
                description,
                sent,
                CLIENT_BOUND,
                move |stream, head, bound| {
                    let s = play(stream, head, &seq, bound);
                    let o = s.outcome;
                    Played {
                        verdict: o.verdict,
                        reason: if o.verdict == Verdict::Pass {
                            String::new()
                        } else {
                            format!("{} ({}; expected {})", o.reason, o.kind, o.expected)
                        },
                        observed: o.kind.to_owned(),
                        transcript: s.transcript,
                    }
                },
            )
        })
        .collect()
}

/// A frame in a word or two, for a case's description.
fn short(f: &Frame) -> String {
    let op = match f.opcode {
        0 => "cont",
        1 => "text",
        2 => "binary",
        8 => "close",
        9 => "ping",
        10 => "pong",
        _ => "reserved",
    };
    let mut s = format!("{op} {}", f.payload.len());
    if !f.fin {
        s.push('+');
    }
    if f.rsv != 0 {
        s.push_str(" rsv");
    }
    if f.mask.is_some() {
        s.push_str(" masked");
    }
    s
}

/// A frame in one line: opcode, flags, masking, length and the start of its payload.
fn describe(f: &Frame) -> String {
    let op = match f.opcode {
        0 => "continuation".to_owned(),
        1 => "text".to_owned(),
        2 => "binary".to_owned(),
        8 => "close".to_owned(),
        9 => "ping".to_owned(),
        10 => "pong".to_owned(),
        o => format!("opcode {o:x}"),
    };
    let shown: String = f.payload.iter().take(32).map(|b| format!("{b:02x}")).collect();
    let more = if f.payload.len() > 32 { ".." } else { "" };
    format!(
        "{op}{}{}{} {} B{} [{shown}{more}]",
        if f.fin { "" } else { " (no FIN)" },
        if f.rsv != 0 {
            format!(" rsv={:03b}", f.rsv)
        } else {
            String::new()
        },
        if f.mask.is_some() { " MASKED" } else { "" },
        f.payload.len(),
        match f.len {
            Len::Minimal => String::new(),
            Len::Ext16 => " (16-bit length)".to_owned(),
            Len::Ext64 => " (64-bit length)".to_owned(),
            Len::Declared(d) => format!(" (declared {d})"),
        },
    )
}

/// The client went away before anything was judged.
fn dropped(judges: &mut Judges, how: &str) -> Outcome {
    judges.each(|j| j.dropped(how));
    judges.outcome().unwrap_or_else(|| {
        Outcome::new(
            Verdict::Fail,
            "dropped",
            "sequence".to_owned(),
            String::new(),
            how.to_owned(),
        )
    })
}

/// A thread that reads the client's bytes into a bounded channel until the end of the
/// connection (the channel then closes) or an error (sent as its description).
fn reader(stream: &TcpStream) -> io::Result<mpsc::Receiver<Result<Vec<u8>, String>>> {
    let mut s = stream.try_clone()?;
    let (tx, rx) = mpsc::sync_channel(READ_QUEUE);
    std::thread::Builder::new()
        .name("c10k-fuzz-served-reader".to_owned())
        .spawn(move || {
            let mut buf = vec![0; READ_CHUNK];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if tx.send(Ok(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(format!("reset the connection ({e})")));
                        return;
                    }
                }
            }
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use c10k::client::{Client, ClientConfig, Received};
    use c10k::proto::MessageKind;

    use super::*;

    /// An echo client on the engine's own client (a correct one), with or without an offer of
    /// permessage-deflate, on one connection.
    fn echo_client(url: String, deflate: bool) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let config = ClientConfig {
                timeout: Some(Duration::from_secs(5)),
                deflate: deflate.then(c10k::proto::DeflateConfig::default),
                ..ClientConfig::default()
            };
            let Ok(mut c) = Client::connect_with(&url, &config) else {
                return;
            };
            while let Ok(r) = c.recv_message() {
                let sent = match r {
                    Received::Text(t) => c.send(MessageKind::Text, t.as_bytes()),
                    Received::Binary(b) => c.send(MessageKind::Binary, &b),
                    _ => break,
                };
                if sent.is_err() {
                    break;
                }
            }
            // Wait for the server to close the TCP connection (RFC 6455 7.1.1).
            let mut rest = [0u8; 64];
            let mut s = c.stream();
            while matches!(s.read(&mut rest), Ok(n) if n > 0) {}
        })
    }

    /// Reads a request head (up to its blank line).
    fn head(stream: &mut TcpStream) -> Vec<u8> {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
            if stream.read(&mut b).unwrap_or(0) == 0 {
                break;
            }
            head.push(b[0]);
        }
        head
    }

    #[test]
    fn a_correct_client_passes_every_sequence() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/fuzz", listener.local_addr().unwrap());
        let grammar = Grammar { max_message: None };
        let mut fails = Vec::new();
        for i in 0..150u64 {
            let seq = grammar.served(&mut Rng::for_sequence(7, i));
            let client = echo_client(url.clone(), i % 2 == 0);
            let (mut stream, _) = listener.accept().unwrap();
            let h = head(&mut stream);
            let outcome = play(stream, &h, &seq, Duration::from_secs(2)).outcome;
            client.join().unwrap();
            if outcome.verdict == Verdict::Fail {
                fails.push(format!(
                    "{i}: {} {} ({})",
                    outcome.kind, outcome.reason, outcome.expected
                ));
            }
        }
        assert!(fails.is_empty(), "{fails:#?}");
    }

    #[test]
    fn a_client_that_does_not_mask_fails() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let grammar = Grammar { max_message: None };
        // A sequence with a valid text message first.
        let seq = (0..)
            .map(|i| grammar.served(&mut Rng::for_sequence(3, i)))
            .find(|s| {
                s.frames
                    .first()
                    .is_some_and(|f| f.opcode == 1 && f.fin && f.mask.is_none() && f.rsv == 0)
            })
            .unwrap();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(
                b"GET /fuzz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
            // Whatever comes, an unmasked text frame back.
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&[0x81, 0x01, b'x']);
            let _ = s.read(&mut buf);
        });
        let (mut stream, _) = listener.accept().unwrap();
        let h = head(&mut stream);
        let served = play(stream, &h, &seq, Duration::from_secs(2));
        let outcome = served.outcome;
        client.join().unwrap();
        assert!(
            served.transcript.iter().any(|l| l.contains("> 101")),
            "{:?}",
            served.transcript
        );
        assert_eq!(outcome.verdict, Verdict::Fail, "{outcome:?}");
        assert!(outcome.reason.contains("mask"), "{outcome:?}");
    }
}
