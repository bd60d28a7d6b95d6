//! What one fuzzing sequence is: an opening handshake (sometimes mutated), frames (valid, nearly
//! valid or invalid), and where the byte stream is cut into writes, with the pause after each.
//! Pure data and its encoding into bytes; the grammar makes sequences, the oracle judges them.

use c10k::proto::deflate::DeflateConfig;
use c10k::proto::handshake::{self, ClientRequest, Expected};

/// The handshake key every sequence sends (RFC 6455 section 1.3's sample nonce): the key is not
/// what is fuzzed, and a fixed one keeps replay files short.
pub const KEY: [u8; 16] = *b"the sample nonce";

/// One sequence: a connection's whole life as the client writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// The opening handshake.
    pub opening: Opening,
    /// The frames written after the request, in order.
    pub frames: Vec<Frame>,
    /// Where the stream (request and frames) is cut into writes.
    pub cuts: Vec<Cut>,
}

/// The opening handshake of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    /// Offer permessage-deflate (without context takeover either way).
    pub deflate: bool,
    /// Write frames right behind the request, before the 101 has arrived. An offer of
    /// permessage-deflate always waits for the answer (whether RSV1 is valid depends on it).
    pub pipelined: bool,
    /// A change to the standard request.
    pub mutation: Mutation,
}

/// Changes to the standard upgrade request: the first ones keep it valid, the others make the
/// server answer with an HTTP error (RFC 6455 section 4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// The request as written by the core.
    None,
    /// Header names in lower case (field names are case-insensitive).
    LowerCaseNames,
    /// `Connection: keep-alive, Upgrade` (a list that contains the token).
    ConnectionList,
    /// `Upgrade: WebSocket` (the token is case-insensitive).
    UpgradeCase,
    /// A subprotocol is offered (the server may select it or not).
    Subprotocol,
    /// Unknown header fields around the standard ones.
    ExtraFields,
    /// `Sec-WebSocket-Version: 8`: 426.
    Version8,
    /// A key that decodes to 15 bytes: 400.
    ShortKey,
    /// No `Sec-WebSocket-Key`: 400.
    NoKey,
    /// `POST` instead of `GET`: 405.
    Post,
    /// `HTTP/1.0`: 505.
    Http10,
    /// `Connection: keep-alive` without `upgrade`: 400.
    NoConnectionUpgrade,
}

impl Mutation {
    /// Every mutation, in file-format order.
    pub const ALL: [Mutation; 12] = [
        Mutation::None,
        Mutation::LowerCaseNames,
        Mutation::ConnectionList,
        Mutation::UpgradeCase,
        Mutation::Subprotocol,
        Mutation::ExtraFields,
        Mutation::Version8,
        Mutation::ShortKey,
        Mutation::NoKey,
        Mutation::Post,
        Mutation::Http10,
        Mutation::NoConnectionUpgrade,
    ];

    /// The name used in replay files.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::None => "none",
            Mutation::LowerCaseNames => "lower-case-names",
            Mutation::ConnectionList => "connection-list",
            Mutation::UpgradeCase => "upgrade-case",
            Mutation::Subprotocol => "subprotocol",
            Mutation::ExtraFields => "extra-fields",
            Mutation::Version8 => "version-8",
            Mutation::ShortKey => "short-key",
            Mutation::NoKey => "no-key",
            Mutation::Post => "post",
            Mutation::Http10 => "http-1.0",
            Mutation::NoConnectionUpgrade => "no-connection-upgrade",
        }
    }

    /// The mutation called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// How a frame's payload length is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// The minimal encoding of the payload's length (the only valid one).
    Minimal,
    /// Always the 16-bit form (non-minimal below 126; the 64-bit form past 65535).
    Ext16,
    /// Always the 64-bit form (non-minimal below 65536).
    Ext64,
    /// The header announces this length whatever the payload: a length over the server's
    /// limit, or one with the top bit set, of which only the payload given is sent.
    Declared(u64),
}

/// One frame as written, every field free: opcodes, RSV bits and lengths may be invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// FIN.
    pub fin: bool,
    /// RSV1 RSV2 RSV3 as a 3-bit value.
    pub rsv: u8,
    /// The 4-bit opcode, reserved values included.
    pub opcode: u8,
    /// The masking key; `None` writes an unmasked frame.
    pub mask: Option<[u8; 4]>,
    /// How the length is written.
    pub len: Len,
    /// The payload before masking (already compressed for a compressed frame).
    pub payload: Vec<u8>,
}

impl Frame {
    /// A final, masked frame with a minimal length.
    pub fn new(opcode: u8, payload: Vec<u8>, mask: [u8; 4]) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(mask),
            len: Len::Minimal,
            payload,
        }
    }

    /// Appends the frame's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let n = self.payload.len() as u64;
        out.push(u8::from(self.fin) << 7 | (self.rsv & 7) << 4 | (self.opcode & 0xf));
        let masked = if self.mask.is_some() { 0x80 } else { 0 };
        let (announced, form) = match self.len {
            Len::Minimal if n < 126 => (n, 7),
            Len::Minimal | Len::Ext16 if n <= 0xffff => (n, 16),
            Len::Minimal | Len::Ext16 | Len::Ext64 => (n, 64),
            Len::Declared(d) if d < 126 => (d, 7),
            Len::Declared(d) if d <= 0xffff => (d, 16),
            Len::Declared(d) => (d, 64),
        };
        match form {
            7 => out.push(masked | announced as u8),
            16 => {
                out.push(masked | 126);
                out.extend_from_slice(&(announced as u16).to_be_bytes());
            }
            _ => {
                out.push(masked | 127);
                out.extend_from_slice(&announced.to_be_bytes());
            }
        }
        let start = out.len();
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                let body = out.len();
                out.extend_from_slice(&self.payload);
                c10k::proto::mask::apply_mask(&mut out[body..], key, 0);
            }
            None => out.extend_from_slice(&self.payload),
        }
        debug_assert!(out.len() >= start);
    }

    /// Whether the length is written in more bytes than needed (a sender's MUST NOT that RFC
    /// 6455 does not tell the receiver to reject: the oracle allows both answers).
    pub fn non_minimal(&self) -> bool {
        let n = self.payload.len();
        match self.len {
            Len::Ext16 => n < 126,
            Len::Ext64 => n <= 0xffff,
            Len::Minimal | Len::Declared(_) => false,
        }
    }
}

/// A cut: the write that ends at byte `at` of the stream, then a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cut {
    /// Offset in the stream (request and frames) where the write ends.
    pub at: usize,
    /// Pause after the write, in microseconds.
    pub pause_us: u32,
}

/// The permessage-deflate policy of the offer: no context takeover either way, so that each
/// compressed message stands alone.
pub fn deflate_policy() -> DeflateConfig {
    DeflateConfig::default()
}

/// The request head of `opening` for `host` and `target`, and what the response must then
/// say.
pub fn request(opening: &Opening, host: &str, target: &str) -> (Vec<u8>, Expected) {
    let protocols: &[&str] = if opening.mutation == Mutation::Subprotocol {
        &["chat"]
    } else {
        &[]
    };
    let req = ClientRequest {
        host,
        target,
        protocols,
        deflate: opening.deflate.then(deflate_policy),
        ..ClientRequest::default()
    };
    let mut out = Vec::with_capacity(256);
    let expected = match handshake::write_request(&req, KEY, &mut out) {
        Ok(e) => e,
        // A target that cannot go in a request head: fall back to `/`.
        Err(_) => {
            out.clear();
            let req = ClientRequest { target: "/", ..req };
            handshake::write_request(&req, KEY, &mut out)
                .unwrap_or_else(|_| unreachable!("a plain request with a checked host is always written"))
        }
    };
    (mutate(out, opening.mutation), expected)
}

fn mutate(head: Vec<u8>, m: Mutation) -> Vec<u8> {
    let Ok(text) = String::from_utf8(head.clone()) else {
        return head;
    };
    let text = match m {
        Mutation::None | Mutation::Subprotocol => text,
        Mutation::LowerCaseNames => {
            let mut lines = text.split("\r\n");
            let first = lines.next().unwrap_or_default().to_owned();
            let rest: Vec<String> = lines
                .map(|l| match l.split_once(':') {
                    Some((name, value)) => format!("{}:{value}", name.to_ascii_lowercase()),
                    None => l.to_owned(),
                })
                .collect();
            format!("{first}\r\n{}", rest.join("\r\n"))
        }
        Mutation::ConnectionList => text.replace("Connection: Upgrade", "Connection: keep-alive, Upgrade"),
        Mutation::UpgradeCase => text.replace("Upgrade: websocket", "Upgrade: WebSocket"),
        Mutation::ExtraFields => text.replacen("\r\n", "\r\nX-Fuzz-A: 1\r\nAccept: */*\r\n", 1),
        Mutation::Version8 => text.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
        Mutation::ShortKey => replace_key(&text, "dGhlIHNhbXBsZSBub25j"),
        Mutation::NoKey => remove_field(&text, "Sec-WebSocket-Key"),
        Mutation::Post => text.replacen("GET ", "POST ", 1),
        Mutation::Http10 => text.replacen(" HTTP/1.1\r\n", " HTTP/1.0\r\n", 1),
        Mutation::NoConnectionUpgrade => text.replace("Connection: Upgrade", "Connection: keep-alive"),
    };
    text.into_bytes()
}

fn remove_field(text: &str, name: &str) -> String {
    text.split_inclusive("\r\n")
        .filter(|l| !l.starts_with(&format!("{name}:")))
        .collect()
}

fn replace_key(text: &str, key: &str) -> String {
    text.split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with("Sec-WebSocket-Key:") {
                format!("Sec-WebSocket-Key: {key}\r\n")
            } else {
                l.to_owned()
            }
        })
        .collect()
}

/// The frames' bytes, and where each frame ends in them.
pub fn encode_frames(frames: &[Frame]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(frames.iter().map(|f| f.payload.len() + 14).sum());
    let mut ends = Vec::with_capacity(frames.len());
    for f in frames {
        f.encode(&mut out);
        ends.push(out.len());
    }
    (out, ends)
}

#[cfg(test)]
mod tests {
    use c10k::proto::frame::decode_header;
    use c10k::proto::handshake::{HeadLimits, parse_request};

    use super::*;

    #[test]
    fn minimal_frames_decode_as_the_core_encodes_them() {
        for n in [0, 1, 125, 126, 65535, 65536] {
            let f = Frame::new(2, vec![7; n], [1, 2, 3, 4]);
            let mut out = Vec::new();
            f.encode(&mut out);
            let (h, len) = decode_header(&out).unwrap().unwrap();
            assert_eq!((h.len, h.mask, h.fin), (n as u64, Some([1, 2, 3, 4]), true));
            assert_eq!(out.len(), len + n);
        }
    }

    #[test]
    fn non_minimal_and_declared_lengths_are_written_as_asked() {
        let mut f = Frame::new(1, b"hi".to_vec(), [0; 4]);
        f.len = Len::Ext16;
        assert!(f.non_minimal());
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(&out[..4], &[0x81, 0x80 | 126, 0, 2]);
        f.len = Len::Declared(1 << 63);
        out.clear();
        f.encode(&mut out);
        assert_eq!(&out[1..10], &[0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(out.len(), 2 + 8 + 4 + 2);
    }

    #[test]
    fn valid_mutations_parse_and_invalid_ones_are_refused() {
        for m in Mutation::ALL {
            let opening = Opening {
                deflate: false,
                pipelined: false,
                mutation: m,
            };
            let (head, _) = request(&opening, "127.0.0.1:1", "/");
            let parsed = parse_request(&head, &HeadLimits::default());
            let valid = matches!(
                m,
                Mutation::None
                    | Mutation::LowerCaseNames
                    | Mutation::ConnectionList
                    | Mutation::UpgradeCase
                    | Mutation::Subprotocol
                    | Mutation::ExtraFields
            );
            match parsed {
                Ok(Some(r)) => assert!(valid && r.is_websocket(), "{m:?}"),
                Err(_) => assert!(!valid, "{m:?}"),
                Ok(None) => panic!("{m:?}: incomplete"),
            }
            assert_eq!(Mutation::from_name(m.name()), Some(m));
        }
    }
}
