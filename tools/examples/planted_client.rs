//! A small blocking echo client for `c10k check --serve`, built on the core's sans-I/O pieces
//! (`c10k::proto`), with one defect that can be switched on, so that the client suite can be
//! shown to catch it:
//!
//! ```text
//! planted_client ws://HOST:PORT AGENT [--defect none|no-mask|no-accept-check|accepts-bad-utf8|closes-first]
//! ```
//!
//! - `none`: a correct client (it offers no extension, so the permessage-deflate cases are
//!   SKIPPED);
//! - `no-mask`: sends its frames unmasked;
//! - `no-accept-check`: does not check `Sec-WebSocket-Accept` (everything else of the 101 is);
//! - `accepts-bad-utf8`: takes invalid UTF-8 in text messages and Close reasons;
//! - `closes-first`: closes TCP right after answering the server's Close.
//!
//! It fetches `/cases`, runs each case on its own connection (echoing every message), then says
//! `/done`, as the contract in `c10k_tools::check::client` asks.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use base64::Engine as _;
use c10k::client::{OsKeys, WsUrl};
use c10k::proto::close::parse_close_payload;
use c10k::proto::error::Error;
use c10k::proto::frame::{OpCode, decode_header, encode_header};
use c10k::proto::handshake::{ClientRequest, HeadLimits, accept_key, parse_response, write_request};
use c10k::proto::mask::apply_mask;
use c10k::proto::utf8::Utf8Validator;

/// The largest message this client takes (the suite's 16 MiB, and room).
const MAX_MESSAGE: usize = 17 << 20;

/// How long any one read waits.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the client waits for the server to close TCP after the closing handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    None,
    NoMask,
    NoAcceptCheck,
    AcceptsBadUtf8,
    ClosesFirst,
}

/// What a connection does with the messages it receives.
enum Mode<'a> {
    Echo,
    Collect(&'a mut Vec<u8>),
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    keys: OsKeys,
    defect: Defect,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: planted_client ws://HOST:PORT AGENT [--defect none|no-mask|no-accept-check|accepts-bad-utf8|closes-first]";
    let (Some(url), Some(agent)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let defect = match (args.get(3).map(String::as_str), args.get(4).map(String::as_str)) {
        (None, _) | (Some("--defect"), Some("none")) => Defect::None,
        (Some("--defect"), Some("no-mask")) => Defect::NoMask,
        (Some("--defect"), Some("no-accept-check")) => Defect::NoAcceptCheck,
        (Some("--defect"), Some("accepts-bad-utf8")) => Defect::AcceptsBadUtf8,
        (Some("--defect"), Some("closes-first")) => Defect::ClosesFirst,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let base = url.trim_end_matches('/');
    let agent_q: String = agent
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let mut list = Vec::new();
    if let Err(e) = session(&format!("{base}/cases"), defect, Mode::Collect(&mut list)) {
        eprintln!("planted_client: /cases: {e}");
        std::process::exit(1);
    }
    let ids = String::from_utf8_lossy(&list).into_owned();
    for id in ids.split('\n').filter(|s| !s.is_empty()) {
        let case_url = format!("{base}/case/{id}?agent={agent_q}");
        if let Err(e) = session(&case_url, defect, Mode::Echo) {
            eprintln!("planted_client: {id}: {e}");
        }
    }
    if let Err(e) = session(&format!("{base}/done?agent={agent_q}"), defect, Mode::Echo) {
        eprintln!("planted_client: /done: {e}");
    }
}

/// One connection: the opening handshake, then frames until the connection ends.
fn session(url: &str, defect: Defect, mut mode: Mode<'_>) -> Result<(), String> {
    let url = WsUrl::parse(url).map_err(|e| e.to_string())?;
    let stream =
        TcpStream::connect(url.socket_addr().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut c = Client {
        stream,
        buf: Vec::new(),
        keys: OsKeys::new(),
        defect,
    };
    c.handshake(&url)?;
    c.frames(&mut mode)
}

impl Client {
    fn handshake(&mut self, url: &WsUrl) -> Result<(), String> {
        let mut key = [0u8; 16];
        for piece in key.chunks_mut(4) {
            piece.copy_from_slice(&self.keys.next_key());
        }
        let host = url.host_header();
        let req = ClientRequest {
            host: &host,
            target: &url.target,
            ..ClientRequest::default()
        };
        let mut out = Vec::new();
        let expected = write_request(&req, key, &mut out).map_err(|e| format!("{e:?}"))?;
        self.stream.write_all(&out).map_err(|e| e.to_string())?;
        loop {
            let head = match self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(end) if self.defect == Defect::NoAcceptCheck => {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(key);
                    let right = accept_key(encoded.as_bytes());
                    let (head, rest) = self.buf.split_at(end + 4);
                    let mut patched = trust_accept(head, &right);
                    patched.extend_from_slice(rest);
                    patched
                }
                _ => self.buf.clone(),
            };
            match parse_response(&head, &expected, &[], &HeadLimits::default()) {
                Ok(Some(resp)) => {
                    self.buf = head[resp.head_len()..].to_vec();
                    return Ok(());
                }
                Ok(None) => self.fill()?,
                Err(e) => {
                    let _ = self.stream.shutdown(Shutdown::Both);
                    return Err(format!("refused the handshake: {e}"));
                }
            }
        }
    }

    /// Reads more bytes; an error at the end of the stream.
    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 64 << 10];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("the server closed the connection".to_owned()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn send(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), String> {
        let mask = (self.defect != Defect::NoMask).then(|| self.keys.next_key());
        let mut out = encode_header(true, 0, opcode, payload.len() as u64, mask)
            .as_bytes()
            .to_vec();
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(k) = mask {
            apply_mask(&mut out[start..], k, 0);
        }
        self.stream.write_all(&out).map_err(|e| e.to_string())
    }

    /// Fails the connection: a Close with the error's code, then waits for the server to close.
    fn fail(&mut self, e: &Error) -> Result<(), String> {
        let code: u16 = e.close_code().into();
        self.send(OpCode::Close, &code.to_be_bytes())?;
        self.wait_for_server_close();
        Err(format!("failed the connection with {code}: {e}"))
    }

    fn wait_for_server_close(&mut self) {
        let _ = self.stream.set_read_timeout(Some(CLOSE_WAIT));
        let mut sink = [0u8; 4096];
        while matches!(self.stream.read(&mut sink), Ok(n) if n > 0) {}
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn frames(&mut self, mode: &mut Mode<'_>) -> Result<(), String> {
        // A fragmented message being received: its opcode, payload and UTF-8 state.
        let mut message: Option<(OpCode, Vec<u8>, Utf8Validator)> = None;
        loop {
            let (h, n) = match decode_header(&self.buf) {
                Ok(Some(x)) => x,
                Ok(None) => {
                    self.fill()?;
                    continue;
                }
                Err(e) => return self.fail(&e),
            };
            if h.mask.is_some() {
                return self.fail(&Error::MaskedFrame);
            }
            if h.rsv != 0 {
                return self.fail(&Error::ReservedBits(h.rsv));
            }
            if h.len > MAX_MESSAGE as u64 {
                return self.fail(&Error::FrameTooLarge {
                    len: h.len,
                    max: MAX_MESSAGE,
                });
            }
            let end = n + h.len as usize;
            while self.buf.len() < end {
                self.fill()?;
            }
            let payload: Vec<u8> = self.buf.drain(..end).skip(n).collect();
            match h.opcode {
                OpCode::Ping => self.send(OpCode::Pong, &payload)?,
                OpCode::Pong => {}
                OpCode::Close => return self.close(&payload),
                OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                    let (op, mut data, mut utf8) = match (h.opcode, message.take()) {
                        (OpCode::Continuation, Some(m)) => m,
                        (OpCode::Continuation, None) => {
                            return self.fail(&Error::UnexpectedContinuation);
                        }
                        (_, Some(_)) => return self.fail(&Error::ExpectedContinuation),
                        (op, None) => (op, Vec::new(), Utf8Validator::new()),
                    };
                    if data.len() + payload.len() > MAX_MESSAGE {
                        return self.fail(&Error::MessageTooLarge {
                            len: (data.len() + payload.len()) as u64,
                            max: MAX_MESSAGE,
                        });
                    }
                    if op == OpCode::Text && self.defect != Defect::AcceptsBadUtf8 {
                        let checked = utf8
                            .feed(&payload)
                            .and_then(|()| if h.fin { utf8.finish() } else { Ok(()) });
                        if let Err(e) = checked {
                            return self.fail(&Error::InvalidUtf8 { offset: e.offset });
                        }
                    }
                    data.extend_from_slice(&payload);
                    if !h.fin {
                        message = Some((op, data, utf8));
                        continue;
                    }
                    match mode {
                        Mode::Echo => self.send(op, &data)?,
                        Mode::Collect(into) => {
                            into.clear();
                            into.extend_from_slice(&data);
                        }
                    }
                }
            }
        }
    }

    /// Answers the server's Close (echoing its code), then waits for the server to close TCP.
    fn close(&mut self, payload: &[u8]) -> Result<(), String> {
        let code = match parse_close_payload(payload) {
            Ok(f) => u16::from(f.code),
            Err(Error::InvalidUtf8 { .. }) if self.defect == Defect::AcceptsBadUtf8 => {
                u16::from_be_bytes([payload[0], payload[1]])
            }
            Err(e) => return self.fail(&e),
        };
        let answer = if code == 1005 {
            Vec::new()
        } else {
            code.to_be_bytes().to_vec()
        };
        self.send(OpCode::Close, &answer)?;
        if self.defect == Defect::ClosesFirst {
            let _ = self.stream.shutdown(Shutdown::Both);
        } else {
            self.wait_for_server_close();
        }
        Ok(())
    }
}

/// The head with its `Sec-WebSocket-Accept` value replaced by (or, when missing, given) the
/// right one: what a client that never looks at the field ends up accepting.
fn trust_accept(head: &[u8], right: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<String> = text
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let right = String::from_utf8_lossy(right);
    match lines
        .iter_mut()
        .find(|l| l.to_ascii_lowercase().starts_with("sec-websocket-accept:"))
    {
        Some(l) => *l = format!("Sec-WebSocket-Accept: {right}"),
        None => lines.insert(1.min(lines.len()), format!("Sec-WebSocket-Accept: {right}")),
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out
}
