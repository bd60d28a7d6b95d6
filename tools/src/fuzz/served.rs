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
use super::judge::{Judge, Judges, Outcome};
use super::oracle;
use super::sequence::{Sequence, deflate_policy};
use crate::check::Verdict;

/// Bytes read from the client at once.
const READ_CHUNK: usize = 64 << 10;
/// Chunks the reader thread may hold before the judge takes them (64 x 64 KiB at most).
const READ_QUEUE: usize = 64;

/// Plays `seq` on `stream`, whose request head `head` was read (nothing after it); `bound` is how
/// long the client may take beyond the sequence's own pauses.
pub fn play(stream: TcpStream, head: &[u8], seq: &Sequence, bound: Duration) -> Outcome {
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

    let mut inbuf = Vec::new();
    let mut outcome = None;
    let mut ended: Option<String> = None;
    let bytes = &expectation.bytes;
    let mut written = 0;
    let mut cuts = seq.cuts.iter().filter(|c| c.at < bytes.len()).peekable();
    // Write piece by piece; between pieces, judge what came.
    while written < bytes.len() && outcome.is_none() && ended.is_none() {
        let (end, pause) = match cuts.next() {
            Some(c) if c.at > written => (c.at, Duration::from_micros(u64::from(c.pause_us))),
            Some(_) => continue,
            None => (bytes.len(), Duration::ZERO),
        };
        if let Err(e) = writer.write_all(&bytes[written..end]) {
            ended = Some(format!("reset the connection ({e})"));
            break;
        }
        written = end;
        let until = Instant::now() + pause;
        loop {
            let wait = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Ok(chunk)) => {
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
    if outcome.is_none() && ended.is_none() {
        judges.each(Judge::all_sent);
        outcome = judges.outcome();
    }
    while outcome.is_none() {
        if let Some(how) = &ended {
            judges.each(|j| j.dropped(how));
            outcome = judges.outcome();
            break;
        }
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(chunk)) => {
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
    }
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
    use crate::fuzz::grammar::Grammar;
    use crate::fuzz::rng::Rng;

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
            let outcome = play(stream, &h, &seq, Duration::from_secs(2));
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
        let outcome = play(stream, &h, &seq, Duration::from_secs(2));
        client.join().unwrap();
        assert_eq!(outcome.verdict, Verdict::Fail, "{outcome:?}");
        assert!(outcome.reason.contains("mask"), "{outcome:?}");
    }
}
