//! The connection state machine (RFC 6455 sections 5 to 7) through the public API.
//!
//! An in-memory client/server pair pumps bytes both ways in configurable chunk sizes; single ends
//! are fed raw bytes to provoke every [`Error`], and the Close frame each failure writes is decoded
//! and checked. Test names say the behaviour and the side that shows it.

use c10k::proto::frame::{decode_header, encode_header};
use c10k::proto::mask::apply_mask_scalar;
use c10k::proto::{
    CloseCode, Config, Connection, Error, Event, InvalidSend, MaskSource, Message, MessageKind, OpCode, Role,
};

/// The masking key of the RFC 6455 section 5.7 examples.
const RFC_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The longest unconsumed rest a connection may leave: an incomplete masked control frame.
const MAX_REST: usize = 2 + 4 + 125;

/// Chunk sizes every byte-level case is fed in (`usize::MAX`: all at once).
const CHUNKS: [usize; 4] = [usize::MAX, 1, 2, 7];

// ---- owned events ----

/// An [`Event`] copied out of the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
}

fn text(s: &str) -> Ev {
    Ev::Text(s.to_owned())
}

fn binary(b: &[u8]) -> Ev {
    Ev::Binary(b.to_vec())
}

/// Copies an event; the flag says whether it was a message borrowed from the input.
fn own(event: Event<'_>) -> (Ev, Option<bool>) {
    match event {
        Event::Message(message) => {
            let borrowed = message.is_borrowed();
            let kind = message.kind();
            let bytes = message.as_bytes().to_vec();
            let ev = match message {
                Message::Text(t) => {
                    assert_eq!(kind, MessageKind::Text);
                    Ev::Text(t.into_owned())
                }
                Message::Binary(b) => {
                    assert_eq!(kind, MessageKind::Binary);
                    Ev::Binary(b.into_owned())
                }
            };
            match &ev {
                Ev::Text(t) => assert_eq!(t.as_bytes(), bytes),
                Ev::Binary(b) => assert_eq!(*b, bytes),
                _ => unreachable!(),
            }
            (ev, Some(borrowed))
        }
        Event::Ping(p) => (Ev::Ping(p.to_vec()), None),
        Event::Pong(p) => (Ev::Pong(p.to_vec()), None),
        Event::Close(f) => (Ev::Close(f.code.as_u16(), f.reason.to_owned()), None),
    }
}

// ---- one end ----

/// Masking keys `[n, 0xa5, n ^ 0x5a, 0x3c]` for n = 1, 2, 3...: the key of the n-th frame sent.
fn counting_keys() -> MaskSource {
    let mut n = 0u8;
    Box::new(move || {
        n = n.wrapping_add(1);
        key_number(n)
    })
}

fn key_number(n: u8) -> [u8; 4] {
    [n, 0xa5, n ^ 0x5a, 0x3c]
}

/// One end of a connection: its state machine, the bytes received but not consumed yet, what it
/// wrote, and everything it reported.
struct Peer {
    conn: Connection,
    pending: Vec<u8>,
    out: Vec<u8>,
    events: Vec<Ev>,
    /// `is_borrowed` of every message event, in order.
    borrowed: Vec<bool>,
    error: Option<Error>,
    /// The most bytes the connection ever held for a message being assembled.
    max_buffered: usize,
    /// How many bytes were given to `receive` when the error came.
    error_at: Option<usize>,
    received: usize,
}

impl Peer {
    fn new(role: Role, config: Config) -> Self {
        let conn = match role {
            Role::Server => Connection::server(config),
            Role::Client => Connection::client(config, counting_keys()),
        };
        Self::with(conn)
    }

    fn with(conn: Connection) -> Self {
        Self {
            conn,
            pending: Vec::new(),
            out: Vec::new(),
            events: Vec::new(),
            borrowed: Vec::new(),
            error: None,
            max_buffered: 0,
            error_at: None,
            received: 0,
        }
    }

    fn server() -> Self {
        Self::new(Role::Server, Config::default())
    }

    fn client() -> Self {
        Self::new(Role::Client, Config::default())
    }

    /// Takes bytes from the peer and drives `read` until it stalls: the rest stays pending, in
    /// front of the next bytes.
    fn receive(&mut self, bytes: &[u8]) {
        self.received += bytes.len();
        self.pending.extend_from_slice(bytes);
        let mut pos = 0;
        loop {
            let available = self.pending.len() - pos;
            let (consumed, event) = match self.conn.read(&mut self.pending[pos..], &mut self.out) {
                Ok(read) => (read.consumed, read.event.map(own)),
                Err(e) => {
                    assert_eq!(self.error, None, "a failed connection reports no second error");
                    assert_eq!(e.close_code(), self.close_code_of(&e));
                    self.error = Some(e);
                    self.error_at = Some(self.received);
                    self.pending.clear();
                    self.track_buffered();
                    return;
                }
            };
            assert!(consumed <= available, "consumed {consumed} of {available}");
            self.track_buffered();
            pos += consumed;
            match event {
                Some((ev, borrowed)) => {
                    if let Some(b) = borrowed {
                        self.borrowed.push(b);
                    }
                    self.events.push(ev);
                }
                None if consumed == 0 => break,
                None => {}
            }
        }
        self.pending.drain(..pos);
        assert!(
            self.pending.len() <= MAX_REST,
            "the unconsumed rest is never more than a header or a control frame: {} bytes",
            self.pending.len()
        );
    }

    /// Feeds `bytes` in chunks of `chunk` bytes.
    fn receive_in_chunks(&mut self, bytes: &[u8], chunk: usize) {
        if bytes.is_empty() {
            self.receive(bytes);
        }
        for piece in bytes.chunks(chunk.clamp(1, bytes.len().max(1))) {
            self.receive(piece);
        }
    }

    fn close_code_of(&self, e: &Error) -> CloseCode {
        match e {
            Error::InvalidUtf8 { .. } => CloseCode::InvalidPayload,
            Error::FrameTooLarge { .. } | Error::MessageTooLarge { .. } => CloseCode::TooBig,
            _ => CloseCode::ProtocolError,
        }
    }

    fn track_buffered(&mut self) {
        self.max_buffered = self.max_buffered.max(self.conn.buffered());
    }

    fn take_out(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn take_events(&mut self) -> Vec<Ev> {
        std::mem::take(&mut self.events)
    }

    /// The frames written so far, decoded, checked for this end's masking rule, and removed.
    fn sent_frames(&mut self) -> Vec<Frame> {
        let out = self.take_out();
        let frames = frames(&out);
        for f in &frames {
            assert_eq!(
                f.mask.is_some(),
                self.conn.role() == Role::Client,
                "a client masks every frame, a server none: {f:?}"
            );
        }
        frames
    }
}

/// A client and a server connected by two in-memory pipes that deliver `chunk` bytes at a time.
struct Pair {
    client: Peer,
    server: Peer,
    chunk: usize,
    /// Everything the client sent, in order.
    client_wire: Vec<u8>,
    /// Everything the server sent, in order.
    server_wire: Vec<u8>,
}

impl Pair {
    fn new(chunk: usize) -> Self {
        Self::with_configs(Config::default(), Config::default(), chunk)
    }

    fn with_configs(client: Config, server: Config, chunk: usize) -> Self {
        Self {
            client: Peer::new(Role::Client, client),
            server: Peer::new(Role::Server, server),
            chunk,
            client_wire: Vec::new(),
            server_wire: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither end has anything left to send.
    fn pump(&mut self) {
        loop {
            let to_server = self.client.take_out();
            let to_client = self.server.take_out();
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            self.client_wire.extend_from_slice(&to_server);
            self.server_wire.extend_from_slice(&to_client);
            for piece in to_server.chunks(self.chunk.max(1)) {
                self.server.receive(piece);
            }
            for piece in to_client.chunks(self.chunk.max(1)) {
                self.client.receive(piece);
            }
        }
    }

    fn end(&mut self, role: Role) -> &mut Peer {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    fn other(&mut self, role: Role) -> &mut Peer {
        match role {
            Role::Client => &mut self.server,
            Role::Server => &mut self.client,
        }
    }
}

const ROLES: [Role; 2] = [Role::Server, Role::Client];

fn other_role(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

// ---- frames on the wire ----

/// A decoded frame, payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

impl Frame {
    fn close(&self) -> (u16, String) {
        assert_eq!(self.opcode, OpCode::Close, "{self:?}");
        assert!(self.payload.len() >= 2, "{self:?}");
        (
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            String::from_utf8(self.payload[2..].to_vec()).expect("close reason is UTF-8"),
        )
    }
}

/// Decodes a byte stream made of whole frames.
fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (h, n) = decode_header(bytes)
            .expect("a valid frame header")
            .expect("a complete frame header");
        let len = usize::try_from(h.len).unwrap();
        assert!(bytes.len() >= n + len, "a complete frame");
        let mut payload = bytes[n..n + len].to_vec();
        if let Some(key) = h.mask {
            apply_mask_scalar(&mut payload, key, 0);
        }
        frames.push(Frame {
            fin: h.fin,
            rsv: h.rsv,
            opcode: h.opcode,
            mask: h.mask,
            payload,
        });
        bytes = &bytes[n + len..];
    }
    frames
}

/// A frame from its first byte (FIN, RSV, opcode) and payload, with the minimal length encoding,
/// masked with `mask` if given. Works for reserved opcodes too.
fn raw(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        out.splice(start..start, key);
        apply_mask_scalar(&mut out[start + 4..], key, 0);
    }
    out
}

/// A frame as the peer of `receiver` would send it: masked towards a server, plain towards a client.
fn to(receiver: Role, b0: u8, payload: &[u8]) -> Vec<u8> {
    match receiver {
        Role::Server => raw(b0, payload, Some(RFC_KEY)),
        Role::Client => raw(b0, payload, None),
    }
}

/// A frame header with an arbitrary (possibly non-minimal) length field, as the peer of `receiver`
/// would send it, followed by `payload_len` zero bytes of payload.
fn with_length(receiver: Role, b0: u8, len_field: &[u8], payload_len: usize) -> Vec<u8> {
    let masked = receiver == Role::Server;
    let mut out = vec![b0];
    out.extend_from_slice(len_field);
    if masked {
        out[1] |= 0x80;
        out.extend_from_slice(&RFC_KEY);
    }
    out.resize(out.len() + payload_len, 0);
    out
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

const FIN: u8 = 0x80;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

// ---- failures ----

/// Feeds `bytes` to a fresh `role` end in every chunk size and checks that it fails with
/// `expected` and close code `code`, that the Close frame it wrote says so, and that it then
/// ignores input.
fn assert_fails(name: &str, role: Role, config: Config, bytes: &[u8], expected: &Error, code: u16) {
    for chunk in CHUNKS {
        let mut peer = Peer::new(role, config);
        peer.receive_in_chunks(bytes, chunk);
        let ctx = format!("{name} ({role:?} side, chunks of {chunk})");
        assert_eq!(
            peer.error.as_ref(),
            Some(expected),
            "{ctx}; events {:?}",
            peer.events
        );
        assert_eq!(expected.close_code().as_u16(), code, "{ctx}");
        assert!(peer.max_buffered <= config.max_message_size, "{ctx}");

        let sent = peer.sent_frames();
        let closes: Vec<_> = sent.iter().filter(|f| f.opcode == OpCode::Close).collect();
        assert_eq!(closes.len(), 1, "{ctx}: one Close frame, got {sent:?}");
        let close = closes[0];
        assert!(close.fin && close.rsv == 0, "{ctx}");
        assert_eq!(close.close(), (code, expected.reason().to_owned()), "{ctx}");
        assert_eq!(
            sent.last(),
            Some(close),
            "{ctx}: the Close frame is the last frame written"
        );

        assert!(peer.conn.failed(), "{ctx}");
        assert!(peer.conn.is_closed(), "{ctx}");
        assert!(peer.conn.close_sent(), "{ctx}");
        assert!(
            peer.conn.should_close_tcp(),
            "{ctx}: both roles drop TCP after a failure"
        );
        assert_eq!(
            peer.conn.buffered(),
            0,
            "{ctx}: a failure drops the partial message"
        );

        // Input after the failure is consumed and ignored.
        let events = peer.events.len();
        let mut good = to(role, FIN | TEXT, b"ignored");
        let mut out = Vec::new();
        let read = peer.conn.read(&mut good, &mut out).unwrap();
        assert_eq!((read.consumed, read.event.is_none()), (good.len(), true), "{ctx}");
        assert!(out.is_empty(), "{ctx}");
        peer.receive(&to(role, FIN | PING, b"ignored"));
        assert_eq!(peer.events.len(), events, "{ctx}");
        assert!(peer.out.is_empty(), "{ctx}");
        assert_eq!(
            peer.conn.send(MessageKind::Text, b"x", &mut peer.out),
            Err(InvalidSend::Closed),
            "{ctx}"
        );
    }
}

/// Runs [`assert_fails`] for each `(name, bytes, error, code)` case on the `role` side.
fn assert_all_fail(role: Role, config: Config, cases: &[(String, Vec<u8>, Error, u16)]) {
    for (name, bytes, error, code) in cases {
        assert_fails(name, role, config, bytes, error, *code);
    }
}

fn reserved_opcode_cases(role: Role) -> Vec<(String, Vec<u8>, Error, u16)> {
    let mut cases = Vec::new();
    for op in (0x3..=0x7).chain(0xb..=0xf) {
        for fin in [FIN, 0] {
            cases.push((
                format!("opcode {op:#x} fin {fin:#x}"),
                to(role, fin | op, b"data"),
                Error::ReservedOpcode(op),
                1002,
            ));
        }
        // Also after a good message and inside a fragmented one.
        cases.push((
            format!("opcode {op:#x} after a message"),
            cat(&[to(role, FIN | TEXT, b"ok"), to(role, FIN | op, b"")]),
            Error::ReservedOpcode(op),
            1002,
        ));
        cases.push((
            format!("opcode {op:#x} inside a fragmented message"),
            cat(&[to(role, TEXT, b"part"), to(role, FIN | op, b"")]),
            Error::ReservedOpcode(op),
            1002,
        ));
    }
    cases
}

#[test]
fn server_rejects_reserved_opcodes_with_1002() {
    assert_all_fail(
        Role::Server,
        Config::default(),
        &reserved_opcode_cases(Role::Server),
    );
}

#[test]
fn client_rejects_reserved_opcodes_with_1002() {
    assert_all_fail(
        Role::Client,
        Config::default(),
        &reserved_opcode_cases(Role::Client),
    );
}

fn rsv_cases(role: Role) -> Vec<(String, Vec<u8>, Error, u16)> {
    let mut cases = Vec::new();
    for rsv in 1..=7u8 {
        let bits = rsv << 4;
        for (what, b0) in [
            ("text", FIN | TEXT),
            ("binary", FIN | BINARY),
            ("ping", FIN | PING),
            ("pong", FIN | PONG),
            ("close", FIN | CLOSE),
            ("first fragment", TEXT),
        ] {
            cases.push((
                format!("rsv {rsv:#05b} on {what}"),
                to(role, b0 | bits, b""),
                Error::ReservedBits(rsv),
                1002,
            ));
        }
        cases.push((
            format!("rsv {rsv:#05b} on a continuation"),
            cat(&[to(role, BINARY, b"a"), to(role, FIN | CONT | bits, b"b")]),
            Error::ReservedBits(rsv),
            1002,
        ));
    }
    cases
}

#[test]
fn server_rejects_rsv_bits_with_1002() {
    assert_all_fail(Role::Server, Config::default(), &rsv_cases(Role::Server));
}

#[test]
fn client_rejects_rsv_bits_with_1002() {
    assert_all_fail(Role::Client, Config::default(), &rsv_cases(Role::Client));
}

#[test]
fn server_accepts_only_the_rsv_bits_an_extension_allows_on_data_frames() {
    let config = Config {
        allowed_rsv: 0b100,
        ..Config::default()
    };
    let mut peer = Peer::new(Role::Server, config);
    peer.receive(&to(Role::Server, FIN | 0x40 | TEXT, b"rsv1"));
    assert_eq!(peer.take_events(), [text("rsv1")]);
    assert_eq!(peer.error, None);

    let cases = vec![
        (
            "rsv2 on data".to_owned(),
            to(Role::Server, FIN | 0x20 | BINARY, b""),
            Error::ReservedBits(0b010),
            1002,
        ),
        (
            "rsv1 and rsv3 on data".to_owned(),
            to(Role::Server, FIN | 0x50 | BINARY, b""),
            Error::ReservedBits(0b101),
            1002,
        ),
        (
            "rsv1 on a ping".to_owned(),
            to(Role::Server, FIN | 0x40 | PING, b""),
            Error::ReservedBits(0b100),
            1002,
        ),
        (
            "rsv1 on a close".to_owned(),
            to(Role::Server, FIN | 0x40 | CLOSE, b""),
            Error::ReservedBits(0b100),
            1002,
        ),
    ];
    assert_all_fail(Role::Server, config, &cases);
}

fn fragmented_control_cases(role: Role) -> Vec<(String, Vec<u8>, Error, u16)> {
    let mut cases = Vec::new();
    for (what, op) in [("ping", PING), ("pong", PONG), ("close", CLOSE)] {
        cases.push((
            format!("{what} without FIN"),
            to(role, op, b"x"),
            Error::FragmentedControlFrame,
            1002,
        ));
        cases.push((
            format!("{what} without FIN inside a fragmented message"),
            cat(&[to(role, TEXT, b"a"), to(role, op, b"")]),
            Error::FragmentedControlFrame,
            1002,
        ));
    }
    cases
}

#[test]
fn server_rejects_fragmented_control_frames_with_1002() {
    assert_all_fail(
        Role::Server,
        Config::default(),
        &fragmented_control_cases(Role::Server),
    );
}

#[test]
fn client_rejects_fragmented_control_frames_with_1002() {
    assert_all_fail(
        Role::Client,
        Config::default(),
        &fragmented_control_cases(Role::Client),
    );
}

fn long_control_cases(role: Role) -> Vec<(String, Vec<u8>, Error, u16)> {
    let mut cases = Vec::new();
    for (what, op) in [("ping", PING), ("pong", PONG), ("close", CLOSE)] {
        let mut payload = close_payload(1000, b"");
        payload.resize(126, b'a');
        cases.push((
            format!("{what} of 126 bytes"),
            to(role, FIN | op, &payload),
            Error::ControlFrameTooLong(126),
            1002,
        ));
        cases.push((
            format!("{what} of 126 bytes, header only"),
            with_length(role, FIN | op, &[0x7e, 0x00, 0x7e], 0),
            Error::ControlFrameTooLong(126),
            1002,
        ));
    }
    cases
}

#[test]
fn server_rejects_control_frames_over_125_bytes_with_1002() {
    assert_all_fail(Role::Server, Config::default(), &long_control_cases(Role::Server));
    // A 125-byte ping is fine.
    let mut peer = Peer::server();
    peer.receive(&to(Role::Server, FIN | PING, &[7; 125]));
    assert_eq!(peer.take_events(), [Ev::Ping(vec![7; 125])]);
}

#[test]
fn client_rejects_control_frames_over_125_bytes_with_1002() {
    assert_all_fail(Role::Client, Config::default(), &long_control_cases(Role::Client));
}

#[test]
fn server_reports_the_announced_length_of_a_long_control_frame() {
    for (field, len) in [
        (vec![0x7e, 0x01, 0x00], 256u64),
        (vec![0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00], 65536),
    ] {
        let mut peer = Peer::server();
        peer.receive(&with_length(Role::Server, FIN | PING, &field, 0));
        assert_eq!(peer.error, Some(Error::ControlFrameTooLong(len)));
    }
}

fn length_cases(role: Role) -> Vec<(String, Vec<u8>, Error, u16)> {
    vec![
        (
            "16-bit length of 125".to_owned(),
            with_length(role, FIN | BINARY, &[0x7e, 0x00, 0x7d], 125),
            Error::NonMinimalLength,
            1002,
        ),
        (
            "16-bit length of 0".to_owned(),
            with_length(role, FIN | TEXT, &[0x7e, 0x00, 0x00], 0),
            Error::NonMinimalLength,
            1002,
        ),
        (
            "64-bit length of 5".to_owned(),
            with_length(role, FIN | BINARY, &[0x7f, 0, 0, 0, 0, 0, 0, 0, 5], 5),
            Error::NonMinimalLength,
            1002,
        ),
        (
            "64-bit length of 65535".to_owned(),
            with_length(role, FIN | BINARY, &[0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 0),
            Error::NonMinimalLength,
            1002,
        ),
        (
            "non-minimal continuation".to_owned(),
            cat(&[
                to(role, BINARY, b"a"),
                with_length(role, FIN | CONT, &[0x7e, 0x00, 0x01], 1),
            ]),
            Error::NonMinimalLength,
            1002,
        ),
        (
            "64-bit length with its top bit set".to_owned(),
            with_length(role, FIN | BINARY, &[0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0], 0),
            Error::LengthOverflow,
            1002,
        ),
        (
            "64-bit length of all ones".to_owned(),
            with_length(
                role,
                FIN | BINARY,
                &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                0,
            ),
            Error::LengthOverflow,
            1002,
        ),
    ]
}

#[test]
fn server_rejects_non_minimal_and_overflowing_lengths_with_1002() {
    assert_all_fail(Role::Server, Config::default(), &length_cases(Role::Server));
}

#[test]
fn client_rejects_non_minimal_and_overflowing_lengths_with_1002() {
    assert_all_fail(Role::Client, Config::default(), &length_cases(Role::Client));
}

#[test]
fn server_rejects_unmasked_frame_with_1002() {
    let mut cases = Vec::new();
    for (what, b0) in [
        ("text", FIN | TEXT),
        ("binary", FIN | BINARY),
        ("ping", FIN | PING),
        ("pong", FIN | PONG),
        ("close", FIN | CLOSE),
        ("first fragment", TEXT),
    ] {
        cases.push((
            format!("unmasked {what}"),
            raw(b0, b"", None),
            Error::UnmaskedFrame,
            1002,
        ));
        cases.push((
            format!("unmasked {what} after a masked message"),
            cat(&[to(Role::Server, FIN | TEXT, b"ok"), raw(b0, b"abc", None)]),
            Error::UnmaskedFrame,
            1002,
        ));
    }
    cases.push((
        "unmasked continuation".to_owned(),
        cat(&[to(Role::Server, TEXT, b"a"), raw(FIN | CONT, b"b", None)]),
        Error::UnmaskedFrame,
        1002,
    ));
    assert_all_fail(Role::Server, Config::default(), &cases);
}

#[test]
fn client_rejects_masked_frame_with_1002() {
    let mut cases = Vec::new();
    for (what, b0) in [
        ("text", FIN | TEXT),
        ("binary", FIN | BINARY),
        ("ping", FIN | PING),
        ("pong", FIN | PONG),
        ("close", FIN | CLOSE),
        ("first fragment", TEXT),
    ] {
        cases.push((
            format!("masked {what}"),
            raw(b0, b"", Some(RFC_KEY)),
            Error::MaskedFrame,
            1002,
        ));
    }
    cases.push((
        "masked continuation".to_owned(),
        cat(&[to(Role::Client, TEXT, b"a"), raw(FIN | CONT, b"b", Some(RFC_KEY))]),
        Error::MaskedFrame,
        1002,
    ));
    cases.push((
        "RFC 6455 section 5.7 masked Hello".to_owned(),
        vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
        Error::MaskedFrame,
        1002,
    ));
    assert_all_fail(Role::Client, Config::default(), &cases);
}

fn sequence_cases(role: Role) -> Vec<(String, Vec<u8>, Error, u16)> {
    vec![
        (
            "final continuation without start".to_owned(),
            to(role, FIN | CONT, b"x"),
            Error::UnexpectedContinuation,
            1002,
        ),
        (
            "continuation without start".to_owned(),
            to(role, CONT, b"x"),
            Error::UnexpectedContinuation,
            1002,
        ),
        (
            "continuation after a finished message".to_owned(),
            cat(&[
                to(role, TEXT, b"a"),
                to(role, FIN | CONT, b"b"),
                to(role, FIN | CONT, b"c"),
            ]),
            Error::UnexpectedContinuation,
            1002,
        ),
        (
            "text inside a fragmented text message".to_owned(),
            cat(&[to(role, TEXT, b"a"), to(role, FIN | TEXT, b"b")]),
            Error::ExpectedContinuation,
            1002,
        ),
        (
            "binary inside a fragmented text message".to_owned(),
            cat(&[to(role, TEXT, b"a"), to(role, BINARY, b"b")]),
            Error::ExpectedContinuation,
            1002,
        ),
        (
            "text inside a fragmented binary message, after a ping".to_owned(),
            cat(&[
                to(role, BINARY, b"a"),
                to(role, FIN | PING, b"p"),
                to(role, FIN | TEXT, b"b"),
            ]),
            Error::ExpectedContinuation,
            1002,
        ),
        (
            "new data frame after an empty first fragment".to_owned(),
            cat(&[to(role, BINARY, b""), to(role, FIN | BINARY, b"")]),
            Error::ExpectedContinuation,
            1002,
        ),
    ]
}

#[test]
fn server_rejects_fragments_out_of_sequence_with_1002() {
    assert_all_fail(Role::Server, Config::default(), &sequence_cases(Role::Server));
}

#[test]
fn client_rejects_fragments_out_of_sequence_with_1002() {
    assert_all_fail(Role::Client, Config::default(), &sequence_cases(Role::Client));
}

fn bad_close_cases(role: Role) -> Vec<(String, Vec<u8>, Error, u16)> {
    vec![
        (
            "1-byte close payload".to_owned(),
            to(role, FIN | CLOSE, &[0x03]),
            Error::CloseOneByte,
            1002,
        ),
        (
            "1-byte close payload inside a fragmented message".to_owned(),
            cat(&[to(role, TEXT, b"a"), to(role, FIN | CLOSE, &[0x03])]),
            Error::CloseOneByte,
            1002,
        ),
        (
            "close code 1005".to_owned(),
            to(role, FIN | CLOSE, &close_payload(1005, b"")),
            Error::InvalidCloseCode(1005),
            1002,
        ),
        (
            "close code 999 with a reason".to_owned(),
            to(role, FIN | CLOSE, &close_payload(999, b"why")),
            Error::InvalidCloseCode(999),
            1002,
        ),
        (
            "close reason not UTF-8".to_owned(),
            to(role, FIN | CLOSE, &close_payload(1000, b"ab\xff")),
            Error::InvalidUtf8 { offset: 2 },
            1007,
        ),
        (
            "close reason with a surrogate".to_owned(),
            to(role, FIN | CLOSE, &close_payload(1001, b"\xed\xa0\x80")),
            Error::InvalidUtf8 { offset: 0 },
            1007,
        ),
        (
            "close reason ending inside a code point".to_owned(),
            to(role, FIN | CLOSE, &close_payload(4000, b"x\xe2\x82")),
            Error::InvalidUtf8 { offset: 1 },
            1007,
        ),
    ]
}

#[test]
fn server_rejects_bad_close_payloads() {
    assert_all_fail(Role::Server, Config::default(), &bad_close_cases(Role::Server));
}

#[test]
fn client_rejects_bad_close_payloads() {
    assert_all_fail(Role::Client, Config::default(), &bad_close_cases(Role::Client));
}

/// Every code 0..=5000 (and the largest one) in a received Close frame: accepted and echoed if
/// RFC 6455 section 7.4 allows it on the wire, else 1002.
fn check_every_close_code(role: Role) {
    for code in (0..=5000u16).chain([u16::MAX]) {
        let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        let mut peer = Peer::new(role, Config::default());
        peer.receive(&to(role, FIN | CLOSE, &close_payload(code, b"r")));
        let sent = peer.sent_frames();
        assert_eq!(sent.len(), 1, "code {code}");
        if valid {
            assert_eq!(peer.error, None, "code {code}");
            assert_eq!(
                peer.take_events(),
                [Ev::Close(code, "r".to_owned())],
                "code {code}"
            );
            assert_eq!(sent[0].close(), (code, String::new()), "code {code} is echoed");
            assert!(!peer.conn.failed());
        } else {
            assert_eq!(peer.error, Some(Error::InvalidCloseCode(code)), "code {code}");
            assert!(peer.events.is_empty(), "code {code}");
            assert_eq!(
                sent[0].close(),
                (1002, "invalid close code".to_owned()),
                "code {code}"
            );
        }
        assert!(peer.conn.is_closed());
    }
}

#[test]
fn server_checks_every_close_code() {
    check_every_close_code(Role::Server);
}

#[test]
fn client_checks_every_close_code() {
    check_every_close_code(Role::Client);
}

fn utf8_cases(role: Role) -> Vec<(String, Vec<u8>, Error, u16)> {
    vec![
        (
            "0xff in a text frame".to_owned(),
            to(role, FIN | TEXT, b"\xff"),
            Error::InvalidUtf8 { offset: 0 },
            1007,
        ),
        (
            "overlong NUL".to_owned(),
            to(role, FIN | TEXT, b"ab\xc0\x80"),
            Error::InvalidUtf8 { offset: 2 },
            1007,
        ),
        (
            "surrogate".to_owned(),
            to(role, FIN | TEXT, &["κόσμε".as_bytes(), b"\xed\xa0\x80"].concat()),
            Error::InvalidUtf8 {
                offset: "κόσμε".len() as u64,
            },
            1007,
        ),
        (
            "above U+10FFFF".to_owned(),
            to(role, FIN | TEXT, b"\xf4\x90\x80\x80"),
            Error::InvalidUtf8 { offset: 0 },
            1007,
        ),
        (
            "text ending inside a code point".to_owned(),
            to(role, FIN | TEXT, b"ok \xe2\x82"),
            Error::InvalidUtf8 { offset: 3 },
            1007,
        ),
        (
            "fragmented text ending inside a code point".to_owned(),
            cat(&[to(role, TEXT, b"ok "), to(role, FIN | CONT, b"\xf0\x9f\x98")]),
            Error::InvalidUtf8 { offset: 3 },
            1007,
        ),
        (
            "invalid byte in the second fragment".to_owned(),
            cat(&[
                to(role, TEXT, b"abc"),
                to(role, CONT, b"d\xff"),
                to(role, FIN | CONT, b"e"),
            ]),
            Error::InvalidUtf8 { offset: 4 },
            1007,
        ),
        (
            "code point split across fragments then broken".to_owned(),
            cat(&[to(role, TEXT, b"x\xe2"), to(role, FIN | CONT, b"\x82A")]),
            Error::InvalidUtf8 { offset: 1 },
            1007,
        ),
        (
            "second message invalid after a valid one".to_owned(),
            cat(&[to(role, FIN | TEXT, b"fine"), to(role, FIN | TEXT, b"z\x80")]),
            Error::InvalidUtf8 { offset: 1 },
            1007,
        ),
    ]
}

#[test]
fn server_rejects_invalid_utf8_text_with_1007() {
    assert_all_fail(Role::Server, Config::default(), &utf8_cases(Role::Server));
}

#[test]
fn client_rejects_invalid_utf8_text_with_1007() {
    assert_all_fail(Role::Client, Config::default(), &utf8_cases(Role::Client));
}

#[test]
fn either_side_does_not_check_binary_messages_for_utf8() {
    for role in ROLES {
        let mut peer = Peer::new(role, Config::default());
        peer.receive(&cat(&[
            to(role, FIN | BINARY, b"\xff\xfe"),
            to(role, BINARY, b"\xed"),
            to(role, FIN | CONT, b"\xa0\x80"),
        ]));
        assert_eq!(peer.error, None);
        assert_eq!(peer.take_events(), [binary(b"\xff\xfe"), binary(b"\xed\xa0\x80")]);
    }
}

fn limit_config() -> Config {
    Config {
        max_frame_size: 16,
        max_message_size: 40,
        ..Config::default()
    }
}

fn limit_cases(role: Role) -> Vec<(String, Vec<u8>, Error, u16)> {
    vec![
        (
            "binary frame of 17 bytes".to_owned(),
            to(role, FIN | BINARY, &[0; 17]),
            Error::FrameTooLarge { len: 17, max: 16 },
            1009,
        ),
        (
            "text fragment of 17 bytes".to_owned(),
            to(role, TEXT, &[b'a'; 17]),
            Error::FrameTooLarge { len: 17, max: 16 },
            1009,
        ),
        (
            "continuation of 17 bytes".to_owned(),
            cat(&[to(role, BINARY, &[0; 16]), to(role, FIN | CONT, &[0; 17])]),
            Error::FrameTooLarge { len: 17, max: 16 },
            1009,
        ),
        (
            "announced 1 TiB frame, header only".to_owned(),
            with_length(role, FIN | BINARY, &[0x7f, 0, 0, 0x01, 0, 0, 0, 0, 0], 0),
            Error::FrameTooLarge {
                len: 1 << 40,
                max: 16,
            },
            1009,
        ),
        (
            "message of 41 bytes in three fragments".to_owned(),
            cat(&[
                to(role, BINARY, &[1; 16]),
                to(role, CONT, &[2; 16]),
                to(role, FIN | CONT, &[3; 9]),
            ]),
            Error::MessageTooLarge { len: 41, max: 40 },
            1009,
        ),
        (
            "text message of 48 bytes, pings between fragments".to_owned(),
            cat(&[
                to(role, TEXT, &[b'a'; 16]),
                to(role, FIN | PING, b"p"),
                to(role, CONT, &[b'b'; 16]),
                to(role, FIN | PONG, b"q"),
                to(role, FIN | CONT, &[b'c'; 16]),
            ]),
            Error::MessageTooLarge { len: 48, max: 40 },
            1009,
        ),
    ]
}

#[test]
fn server_rejects_frames_and_messages_over_the_limits_with_1009() {
    assert_all_fail(Role::Server, limit_config(), &limit_cases(Role::Server));
}

#[test]
fn client_rejects_frames_and_messages_over_the_limits_with_1009() {
    assert_all_fail(Role::Client, limit_config(), &limit_cases(Role::Client));
}

#[test]
fn either_side_accepts_a_message_of_exactly_the_limits() {
    for role in ROLES {
        for chunk in CHUNKS {
            let mut peer = Peer::new(role, limit_config());
            let bytes = cat(&[
                to(role, BINARY, &[1; 16]),
                to(role, CONT, &[2; 16]),
                to(role, FIN | PING, b"between"),
                to(role, FIN | CONT, &[3; 8]),
                to(role, FIN | TEXT, &[b'x'; 16]),
            ]);
            peer.receive_in_chunks(&bytes, chunk);
            assert_eq!(peer.error, None, "{role:?} chunk {chunk}");
            let mut whole = vec![1; 16];
            whole.extend_from_slice(&[2; 16]);
            whole.extend_from_slice(&[3; 8]);
            assert_eq!(
                peer.take_events(),
                [
                    Ev::Ping(b"between".to_vec()),
                    Ev::Binary(whole),
                    Ev::Text("x".repeat(16))
                ]
            );
            assert!(
                peer.max_buffered <= 40,
                "{role:?} chunk {chunk}: {}",
                peer.max_buffered
            );
            assert!(peer.max_buffered > 0, "fragments are assembled");
            assert_eq!(peer.conn.buffered(), 0);
        }
    }
}

#[test]
fn either_side_rejects_a_huge_frame_from_its_header_alone_with_1009() {
    // The default limits, a frame announcing 2^62 bytes: rejected as soon as the header is read,
    // nothing reserved for it.
    for role in ROLES {
        let mut peer = Peer::new(role, Config::default());
        let header = with_length(role, FIN | BINARY, &[0x7f, 0x40, 0, 0, 0, 0, 0, 0, 0], 0);
        for (i, b) in header.iter().enumerate() {
            assert_eq!(peer.error, None, "{role:?}: failed before byte {i}");
            peer.receive(&[*b]);
        }
        assert_eq!(
            peer.error,
            Some(Error::FrameTooLarge {
                len: 1 << 62,
                max: Config::default().max_frame_size
            })
        );
        assert_eq!(peer.error_at, Some(header.len()));
        assert_eq!(peer.max_buffered, 0);
    }
}

#[test]
fn either_side_counts_every_fragment_against_the_message_limit() {
    let config = Config {
        max_frame_size: 1000,
        max_message_size: 1000,
        ..Config::default()
    };
    for role in ROLES {
        for chunk in [1, 3, 64, usize::MAX] {
            let mut peer = Peer::new(role, config);
            for i in 0..3 {
                let op = if i == 0 { BINARY } else { CONT };
                peer.receive_in_chunks(&to(role, op, &[i; 333]), chunk);
            }
            assert_eq!(peer.error, None);
            assert_eq!(peer.conn.buffered(), 999);
            peer.receive_in_chunks(&to(role, CONT, &[9; 2]), chunk);
            assert_eq!(peer.error, Some(Error::MessageTooLarge { len: 1001, max: 1000 }));
            assert!(
                peer.max_buffered <= 1000,
                "{role:?} chunk {chunk}: {}",
                peer.max_buffered
            );
            assert_eq!(peer.conn.buffered(), 0);
        }
    }
}

// ---- UTF-8 fails fast, and code points may be split anywhere ----

#[test]
fn either_side_fails_fast_on_invalid_utf8_before_the_final_frame() {
    for role in ROLES {
        let first = to(role, TEXT, "héllo ".as_bytes());
        let second = to(role, CONT, b"w\xc3\x28rld");
        let last = to(role, FIN | CONT, b"!");
        let mut peer = Peer::new(role, Config::default());
        peer.receive(&first);
        assert_eq!(peer.error, None);
        assert!(peer.conn.buffered() > 0);
        peer.receive(&second);
        assert_eq!(
            peer.error,
            Some(Error::InvalidUtf8 { offset: 8 }),
            "{role:?}: the error comes with the bad byte, before the final frame"
        );
        peer.receive(&last);
        assert!(peer.events.is_empty());
        assert_eq!(peer.sent_frames()[0].close().0, 1007);
    }
}

#[test]
fn either_side_fails_on_the_read_carrying_the_bad_utf8_byte() {
    // One 200-byte text frame fed a byte at a time: the error comes with the byte that makes the
    // text invalid, long before the frame ends.
    let bad_cases: [(&[u8], usize, u64); 4] = [
        (b"\xff", 0, 0),
        (b"\xe2\x41", 1, 0),
        (b"\xf4\x90", 1, 0),
        (b"\xed\xa0", 1, 0),
    ];
    for role in ROLES {
        for (bad, trigger, rel_offset) in bad_cases {
            let mut payload = b"prefix ".to_vec();
            let start = payload.len();
            payload.extend_from_slice(bad);
            payload.resize(200, b'.');
            let frame = to(role, FIN | TEXT, &payload);
            let header_len = frame.len() - payload.len();
            let mut peer = Peer::new(role, Config::default());
            for b in &frame {
                peer.receive(&[*b]);
                if peer.error.is_some() {
                    break;
                }
            }
            assert_eq!(
                peer.error,
                Some(Error::InvalidUtf8 {
                    offset: start as u64 + rel_offset
                }),
                "{role:?} {bad:x?}"
            );
            assert_eq!(
                peer.error_at,
                Some(header_len + start + trigger + 1),
                "{role:?} {bad:x?}: the read carrying the deciding byte fails"
            );
        }
    }
}

#[test]
fn either_side_accepts_code_points_split_across_fragments_and_reads() {
    let message = "a€b𝄞c κόσμε";
    let bytes = message.as_bytes();
    for role in ROLES {
        // Every way to cut the message in two fragments, and in one fragment per byte.
        let mut splits: Vec<Vec<usize>> = (0..=bytes.len()).map(|c| vec![c]).collect();
        splits.push((1..bytes.len()).collect());
        for cuts in splits {
            let mut pieces = Vec::new();
            let mut last = 0;
            for &c in &cuts {
                pieces.push(&bytes[last..c]);
                last = c;
            }
            pieces.push(&bytes[last..]);
            let n = pieces.len();
            let wire: Vec<u8> = pieces
                .iter()
                .enumerate()
                .flat_map(|(i, p)| {
                    let op = if i == 0 { TEXT } else { CONT };
                    let fin = if i + 1 == n { FIN } else { 0 };
                    to(role, fin | op, p)
                })
                .collect();
            for chunk in CHUNKS {
                let mut peer = Peer::new(role, Config::default());
                peer.receive_in_chunks(&wire, chunk);
                assert_eq!(peer.error, None, "{role:?} cuts {cuts:?} chunk {chunk}");
                assert_eq!(peer.take_events(), [text(message)], "{role:?} cuts {cuts:?}");
            }
        }
        // One frame, split over reads at every byte.
        let wire = to(role, FIN | TEXT, bytes);
        for cut in 0..=wire.len() {
            let mut peer = Peer::new(role, Config::default());
            peer.receive(&wire[..cut]);
            peer.receive(&wire[cut..]);
            assert_eq!(peer.error, None);
            assert_eq!(peer.take_events(), [text(message)], "{role:?} cut {cut}");
        }
    }
}

// ---- RFC 6455 section 5.7 examples ----

const RFC_UNMASKED_HELLO: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const RFC_MASKED_HELLO: [u8; 11] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
const RFC_FRAGMENTED_HELLO: [u8; 9] = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
const RFC_UNMASKED_PING: [u8; 7] = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const RFC_MASKED_PONG: [u8; 11] = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];

fn rfc_binary(len: usize) -> Vec<u8> {
    let mut frame = if len == 256 {
        vec![0x82, 0x7e, 0x01, 0x00]
    } else {
        assert_eq!(len, 65536);
        vec![0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
    };
    frame.extend((0..len).map(|i| i as u8));
    frame
}

#[test]
fn client_reads_rfc_5_7_examples() {
    for chunk in CHUNKS {
        let mut peer = Peer::client();
        peer.receive_in_chunks(&RFC_UNMASKED_HELLO, chunk);
        peer.receive_in_chunks(&RFC_FRAGMENTED_HELLO, chunk);
        peer.receive_in_chunks(&RFC_UNMASKED_PING, chunk);
        peer.receive_in_chunks(&rfc_binary(256), chunk);
        peer.receive_in_chunks(&rfc_binary(65536), chunk);
        assert_eq!(peer.error, None);
        let bytes: Vec<u8> = (0..65536).map(|i| i as u8).collect();
        assert_eq!(
            peer.take_events(),
            [
                text("Hello"),
                text("Hello"),
                Ev::Ping(b"Hello".to_vec()),
                binary(&bytes[..256]),
                binary(&bytes),
            ],
            "chunk {chunk}"
        );
        // The ping was answered with a masked pong carrying the same payload.
        let sent = peer.sent_frames();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].opcode, OpCode::Pong);
        assert_eq!(sent[0].payload, b"Hello");
        assert_eq!(sent[0].mask, Some(key_number(1)));
    }
}

#[test]
fn server_reads_rfc_5_7_examples() {
    for chunk in CHUNKS {
        let mut peer = Peer::server();
        peer.receive_in_chunks(&RFC_MASKED_HELLO, chunk);
        peer.receive_in_chunks(&RFC_MASKED_PONG, chunk);
        assert_eq!(peer.error, None);
        assert_eq!(peer.take_events(), [text("Hello"), Ev::Pong(b"Hello".to_vec())]);
        assert!(peer.out.is_empty(), "a pong is not answered");
    }
}

#[test]
fn server_writes_rfc_5_7_examples() {
    let mut server = Connection::server(Config::default());
    let mut out = Vec::new();
    server.send(MessageKind::Text, b"Hello", &mut out).unwrap();
    assert_eq!(out, RFC_UNMASKED_HELLO);
    out.clear();
    server
        .send_fragment(Some(MessageKind::Text), b"Hel", false, &mut out)
        .unwrap();
    server.send_fragment(None, b"lo", true, &mut out).unwrap();
    assert_eq!(out, RFC_FRAGMENTED_HELLO);
    out.clear();
    server.ping(b"Hello", &mut out).unwrap();
    assert_eq!(out, RFC_UNMASKED_PING);
    for len in [256, 65536] {
        out.clear();
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        server.send(MessageKind::Binary, &payload, &mut out).unwrap();
        assert_eq!(out, rfc_binary(len));
    }
}

#[test]
fn client_writes_rfc_5_7_examples_with_their_key() {
    let mut client = Connection::client(Config::default(), Box::new(|| RFC_KEY));
    let mut out = Vec::new();
    client.send(MessageKind::Text, b"Hello", &mut out).unwrap();
    assert_eq!(out, RFC_MASKED_HELLO);
    out.clear();
    client.pong(b"Hello", &mut out).unwrap();
    assert_eq!(out, RFC_MASKED_PONG);
}

// ---- masking per side ----

#[test]
fn client_sends_masked_frames() {
    let mut client = Peer::client();
    let c = &mut client.conn;
    let out = &mut client.out;
    c.send(MessageKind::Text, b"text", out).unwrap();
    c.send(MessageKind::Binary, &[0xab; 300], out).unwrap();
    c.send_fragment(Some(MessageKind::Binary), b"frag", false, out)
        .unwrap();
    c.ping(b"ping", out).unwrap();
    c.send_fragment(None, b"ment", true, out).unwrap();
    c.pong(b"", out).unwrap();
    c.send(MessageKind::Text, b"", out).unwrap();
    c.close(CloseCode::Normal, "done", out).unwrap();
    let sent = client.sent_frames();
    let expected: [(OpCode, bool, Vec<u8>); 8] = [
        (OpCode::Text, true, b"text".to_vec()),
        (OpCode::Binary, true, vec![0xab; 300]),
        (OpCode::Binary, false, b"frag".to_vec()),
        (OpCode::Ping, true, b"ping".to_vec()),
        (OpCode::Continuation, true, b"ment".to_vec()),
        (OpCode::Pong, true, Vec::new()),
        (OpCode::Text, true, Vec::new()),
        (OpCode::Close, true, close_payload(1000, b"done")),
    ];
    assert_eq!(sent.len(), expected.len());
    for (i, (frame, (opcode, fin, payload))) in sent.iter().zip(expected).enumerate() {
        assert_eq!(
            frame.mask,
            Some(key_number(i as u8 + 1)),
            "a fresh key for frame {i}"
        );
        assert_eq!(
            (frame.opcode, frame.fin, &frame.payload),
            (opcode, fin, &payload),
            "frame {i}"
        );
        assert_eq!(frame.rsv, 0);
    }
}

#[test]
fn client_masks_the_payload_on_the_wire() {
    let mut client = Connection::client(Config::default(), Box::new(|| [0xff; 4]));
    let mut out = Vec::new();
    client.send(MessageKind::Binary, &[0x00; 40], &mut out).unwrap();
    assert_eq!(&out[..6], [0x82, 0xa8, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(&out[6..], [0xff; 40], "the payload travels masked");
}

#[test]
fn server_sends_unmasked_frames() {
    let mut server = Peer::server();
    let c = &mut server.conn;
    let out = &mut server.out;
    c.send(MessageKind::Text, b"text", out).unwrap();
    c.send(MessageKind::Binary, &[7; 70000], out).unwrap();
    c.ping(b"p", out).unwrap();
    c.pong(b"q", out).unwrap();
    c.close(CloseCode::GoingAway, "", out).unwrap();
    let sent = server.sent_frames();
    let opcodes: Vec<_> = sent.iter().map(|f| f.opcode).collect();
    assert_eq!(
        opcodes,
        [
            OpCode::Text,
            OpCode::Binary,
            OpCode::Ping,
            OpCode::Pong,
            OpCode::Close
        ]
    );
    assert!(sent.iter().all(|f| f.mask.is_none() && f.fin));
    assert_eq!(sent[1].payload.len(), 70000);
    assert_eq!(sent[4].close(), (1001, String::new()));
}

#[test]
fn server_frame_header_lets_the_payload_be_written_separately() {
    let mut server = Connection::server(Config::default());
    for len in [0usize, 5, 125, 126, 65535, 65536] {
        let (header, mask) = server.frame_header(MessageKind::Binary, len).unwrap();
        assert_eq!(mask, None);
        assert_eq!(
            header.as_bytes(),
            encode_header(true, 0, OpCode::Binary, len as u64, None).as_bytes()
        );
    }
    let (header, _) = server.frame_header(MessageKind::Text, 5).unwrap();
    let mut wire = header.as_bytes().to_vec();
    wire.extend_from_slice(b"Hello");
    assert_eq!(wire, RFC_UNMASKED_HELLO);

    let mut client = Connection::client(Config::default(), Box::new(|| RFC_KEY));
    let (header, mask) = client.frame_header(MessageKind::Text, 5).unwrap();
    assert_eq!(mask, Some(RFC_KEY));
    let mut wire = header.as_bytes().to_vec();
    let mut payload = *b"Hello";
    apply_mask_scalar(&mut payload, RFC_KEY, 0);
    wire.extend_from_slice(&payload);
    assert_eq!(wire, RFC_MASKED_HELLO);
}

// ---- the pair: messages both ways ----

#[test]
fn pair_exchanges_messages_both_ways_in_every_chunk_size() {
    let big: Vec<u8> = (0..70_000u32).map(|i| (i * 31) as u8).collect();
    for chunk in [1, 2, 3, 5, 13, 126, 4096, usize::MAX] {
        let mut pair = Pair::new(chunk);
        for role in ROLES {
            let peer = pair.end(role);
            let (c, out) = (&mut peer.conn, &mut peer.out);
            c.send(MessageKind::Text, "héllo wörld".as_bytes(), out).unwrap();
            c.send(MessageKind::Binary, &big, out).unwrap();
            c.send(MessageKind::Text, b"", out).unwrap();
            c.send_fragment(Some(MessageKind::Text), "€".as_bytes().split_at(1).0, false, out)
                .unwrap();
            c.ping(b"mid", out).unwrap();
            c.send_fragment(None, "€".as_bytes().split_at(1).1, false, out)
                .unwrap();
            c.send_fragment(None, b"", true, out).unwrap();
            pair.pump();
            let receiver = pair.other(role);
            assert_eq!(receiver.error, None, "{role:?} chunk {chunk}");
            assert_eq!(
                receiver.take_events(),
                [
                    text("héllo wörld"),
                    Ev::Binary(big.clone()),
                    text(""),
                    Ev::Ping(b"mid".to_vec()),
                    text("€"),
                ],
                "{role:?} -> other, chunk {chunk}"
            );
            assert_eq!(receiver.conn.buffered(), 0);
            assert_eq!(pair.end(role).take_events(), [Ev::Pong(b"mid".to_vec())]);
        }
        assert!(!pair.client.conn.is_closed() && !pair.server.conn.is_closed());
    }
}

// ---- closing handshake ----

#[test]
fn client_initiated_close_is_echoed_and_the_server_closes_tcp() {
    for chunk in [1, 4, usize::MAX] {
        let mut pair = Pair::new(chunk);
        pair.client
            .conn
            .close(CloseCode::Normal, "bye", &mut pair.client.out)
            .unwrap();
        assert!(pair.client.conn.close_sent());
        assert!(!pair.client.conn.is_closed());
        pair.pump();

        assert_eq!(pair.server.take_events(), [Ev::Close(1000, "bye".to_owned())]);
        assert_eq!(pair.client.take_events(), [Ev::Close(1000, String::new())]);
        // The server echoed the code.
        let echo = frames(&pair.server_wire);
        assert_eq!(echo.len(), 1);
        assert_eq!(echo[0].close(), (1000, String::new()));

        for peer in [&pair.client, &pair.server] {
            assert!(peer.conn.close_sent() && peer.conn.close_received() && peer.conn.is_closed());
            assert!(!peer.conn.failed());
        }
        assert!(pair.server.conn.should_close_tcp(), "the server closes TCP first");
        assert!(
            !pair.client.conn.should_close_tcp(),
            "the client waits for the server to close"
        );
    }
}

#[test]
fn server_initiated_close_is_echoed_and_only_then_closes_tcp() {
    let mut pair = Pair::new(3);
    pair.server
        .conn
        .close(CloseCode::GoingAway, "restart", &mut pair.server.out)
        .unwrap();
    assert!(!pair.server.conn.should_close_tcp(), "waits for the echo");
    assert!(!pair.server.conn.is_closed());
    pair.pump();
    assert_eq!(pair.client.take_events(), [Ev::Close(1001, "restart".to_owned())]);
    assert_eq!(pair.server.take_events(), [Ev::Close(1001, String::new())]);
    let echo = frames(&pair.client_wire);
    assert_eq!(echo.len(), 1);
    assert!(echo[0].mask.is_some());
    assert_eq!(echo[0].close(), (1001, String::new()));
    assert!(pair.server.conn.is_closed() && pair.server.conn.should_close_tcp());
    assert!(pair.client.conn.is_closed() && !pair.client.conn.should_close_tcp());
}

#[test]
fn either_side_echoes_a_close_without_status_empty() {
    for role in ROLES {
        let mut pair = Pair::new(1);
        let peer = pair.end(role);
        peer.conn.close(CloseCode::NoStatus, "", &mut peer.out).unwrap();
        pair.pump();
        assert_eq!(pair.other(role).take_events(), [Ev::Close(1005, String::new())]);
        assert_eq!(pair.end(role).take_events(), [Ev::Close(1005, String::new())]);
        for wire in [&pair.client_wire, &pair.server_wire] {
            let f = frames(wire);
            assert_eq!(f.len(), 1);
            assert_eq!((f[0].opcode, f[0].payload.len()), (OpCode::Close, 0));
        }
    }
}

/// Every data or close command after a Close frame was sent returns `InvalidSend::Closed` and writes
/// nothing. Pings and pongs are still allowed while the peer's Close is awaited (only data frames
/// are forbidden, RFC 6455 section 5.5.1): `control_allowed` says whether that is the case.
fn assert_no_sending(conn: &mut Connection, ctx: &str, control_allowed: bool) {
    let mut out = Vec::new();
    assert_eq!(
        conn.send(MessageKind::Text, b"x", &mut out),
        Err(InvalidSend::Closed),
        "{ctx}"
    );
    assert_eq!(
        conn.send(MessageKind::Binary, b"", &mut out),
        Err(InvalidSend::Closed),
        "{ctx}"
    );
    assert_eq!(
        conn.send_fragment(Some(MessageKind::Text), b"x", false, &mut out),
        Err(InvalidSend::Closed),
        "{ctx}"
    );
    assert_eq!(
        conn.send_fragment(None, b"x", true, &mut out),
        Err(InvalidSend::Closed),
        "{ctx}"
    );
    let control = if control_allowed {
        Ok(())
    } else {
        Err(InvalidSend::Closed)
    };
    let mut controls = Vec::new();
    assert_eq!(conn.ping(b"p", &mut controls), control, "{ctx}");
    assert_eq!(conn.pong(b"q", &mut controls), control, "{ctx}");
    assert_eq!(controls.is_empty(), !control_allowed, "{ctx}");
    assert_eq!(
        conn.close(CloseCode::Normal, "", &mut out),
        Err(InvalidSend::Closed),
        "{ctx}"
    );
    assert_eq!(
        conn.frame_header(MessageKind::Binary, 3).map(|_| ()),
        Err(InvalidSend::Closed),
        "{ctx}"
    );
    assert!(out.is_empty(), "{ctx}: nothing is written after a Close frame");
}

#[test]
fn either_side_sends_nothing_after_close() {
    for role in ROLES {
        // After this end's close.
        let mut pair = Pair::new(usize::MAX);
        let peer = pair.end(role);
        peer.conn.close(CloseCode::Normal, "", &mut peer.out).unwrap();
        assert_no_sending(&mut pair.end(role).conn, "after close()", true);
        pair.pump();
        assert_no_sending(&mut pair.end(role).conn, "after the closing handshake", false);
        assert_no_sending(&mut pair.other(role).conn, "after echoing", false);

        // After the peer's Close frame, which was echoed.
        let mut peer = Peer::new(role, Config::default());
        peer.receive(&to(role, FIN | CLOSE, &close_payload(1000, b"")));
        assert_no_sending(&mut peer.conn, "after receiving a close", false);

        // After closing in the middle of a fragmented message.
        let mut peer = Peer::new(role, Config::default());
        peer.conn
            .send_fragment(Some(MessageKind::Binary), b"a", false, &mut peer.out)
            .unwrap();
        peer.conn.close(CloseCode::Normal, "", &mut peer.out).unwrap();
        assert_no_sending(&mut peer.conn, "after closing mid-message", true);

        // After a failure.
        let mut peer = Peer::new(role, Config::default());
        peer.receive(&to(role, FIN | 0x3, b""));
        assert!(peer.error.is_some());
        assert_no_sending(&mut peer.conn, "after a failure", false);
    }
}

#[test]
fn either_side_refuses_unsendable_commands_and_stays_open() {
    for role in ROLES {
        let mut peer = Peer::new(role, Config::default());
        let mut out = Vec::new();
        let c = &mut peer.conn;
        for code in [1004u16, 1005, 1006, 1015, 0, 999, 2999, 5000] {
            let reason = if code == 1005 { "no reason allowed" } else { "" };
            assert_eq!(
                c.close(CloseCode::from(code), reason, &mut out),
                Err(InvalidSend::CodeNotSendable),
                "{role:?} code {code}"
            );
        }
        assert_eq!(
            c.close(CloseCode::Normal, &"r".repeat(124), &mut out),
            Err(InvalidSend::ReasonTooLong)
        );
        assert_eq!(c.ping(&[0; 126], &mut out), Err(InvalidSend::ControlTooLong));
        assert_eq!(c.pong(&[0; 126], &mut out), Err(InvalidSend::ControlTooLong));
        assert!(out.is_empty());
        assert!(!c.close_sent());
        c.ping(&[0; 125], &mut out).unwrap();
        c.close(CloseCode::Application(4999), &"r".repeat(123), &mut out)
            .unwrap();
        let sent = frames(&out);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].close(), (4999, "r".repeat(123)));
    }
}

#[test]
fn either_side_still_receives_messages_after_sending_close() {
    for role in ROLES {
        let mut peer = Peer::new(role, Config::default());
        peer.conn.close(CloseCode::Normal, "", &mut peer.out).unwrap();
        peer.take_out();
        peer.receive(&cat(&[
            to(role, FIN | TEXT, b"in flight"),
            to(role, FIN | PING, b"p"),
            to(role, FIN | CLOSE, &close_payload(1000, b"")),
        ]));
        assert_eq!(peer.error, None);
        assert_eq!(
            peer.take_events(),
            [
                text("in flight"),
                Ev::Ping(b"p".to_vec()),
                Ev::Close(1000, String::new())
            ]
        );
        // The close was ours first: no second Close frame. The ping still gets its pong: RFC 6455
        // section 5.5.2 excuses that only once a Close frame was received.
        let sent: Vec<_> = peer
            .sent_frames()
            .into_iter()
            .map(|f| (f.opcode, f.payload))
            .collect();
        assert_eq!(sent, [(OpCode::Pong, b"p".to_vec())], "{role:?}");
        assert!(peer.conn.is_closed());
        assert_eq!(peer.conn.should_close_tcp(), role == Role::Server);
    }
}

#[test]
fn either_side_ignores_input_after_the_peers_close() {
    for role in ROLES {
        let mut peer = Peer::new(role, Config::default());
        peer.receive(&cat(&[
            to(role, TEXT, b"half a message"),
            to(role, FIN | CLOSE, &close_payload(1001, b"")),
            to(role, FIN | TEXT, b"after close"),
            to(role, FIN | PING, b"after close"),
            vec![0xff, 0xff, 0xff],
        ]));
        assert_eq!(
            peer.error, None,
            "{role:?}: garbage after the close is not even looked at"
        );
        assert_eq!(peer.take_events(), [Ev::Close(1001, String::new())]);
        assert_eq!(peer.conn.buffered(), 0, "the half message is dropped");
        assert!(peer.pending.is_empty());
        let sent = peer.sent_frames();
        assert_eq!(sent.len(), 1, "only the echo, no pong: {sent:?}");
        assert_eq!(sent[0].close(), (1001, String::new()));
        assert!(!peer.conn.failed());
    }
}

// ---- ping and pong ----

#[test]
fn either_side_answers_ping_with_the_same_payload() {
    for role in ROLES {
        for payload in [&b""[..], b"x", &[0x5a; 125]] {
            let mut peer = Peer::new(role, Config::default());
            peer.receive(&to(role, FIN | PING, payload));
            assert_eq!(peer.take_events(), [Ev::Ping(payload.to_vec())]);
            let sent = peer.sent_frames();
            assert_eq!(sent.len(), 1);
            assert_eq!(
                (sent[0].opcode, &sent[0].payload),
                (OpCode::Pong, &payload.to_vec())
            );
        }
    }
}

#[test]
fn either_side_with_auto_pong_off_leaves_the_answer_to_the_application() {
    let config = Config {
        auto_pong: false,
        ..Config::default()
    };
    for role in ROLES {
        let mut peer = Peer::new(role, config);
        peer.receive(&to(role, FIN | PING, b"are you there"));
        assert_eq!(peer.take_events(), [Ev::Ping(b"are you there".to_vec())]);
        assert!(peer.out.is_empty(), "{role:?}: no automatic pong");
        peer.conn.pong(b"are you there", &mut peer.out).unwrap();
        let sent = peer.sent_frames();
        assert_eq!(
            (sent[0].opcode, sent[0].payload.as_slice()),
            (OpCode::Pong, &b"are you there"[..])
        );
    }
}

#[test]
fn either_side_delivers_pings_interleaved_inside_a_fragmented_message() {
    for role in ROLES {
        let wire = cat(&[
            to(role, TEXT, b"one "),
            to(role, FIN | PING, b"1"),
            to(role, CONT, b"two "),
            to(role, FIN | PONG, b"2"),
            to(role, FIN | PING, b"3"),
            to(role, FIN | CONT, b"three"),
        ]);
        for chunk in CHUNKS {
            let mut peer = Peer::new(role, Config::default());
            peer.receive_in_chunks(&wire, chunk);
            assert_eq!(
                peer.take_events(),
                [
                    Ev::Ping(b"1".to_vec()),
                    Ev::Pong(b"2".to_vec()),
                    Ev::Ping(b"3".to_vec()),
                    text("one two three"),
                ],
                "{role:?} chunk {chunk}"
            );
            let pongs: Vec<_> = peer
                .sent_frames()
                .into_iter()
                .map(|f| (f.opcode, f.payload))
                .collect();
            assert_eq!(
                pongs,
                [(OpCode::Pong, b"1".to_vec()), (OpCode::Pong, b"3".to_vec())]
            );
        }
    }
}

#[test]
fn either_side_answers_a_close_inside_a_fragmented_message_and_drops_it() {
    for role in ROLES {
        let mut peer = Peer::new(role, Config::default());
        peer.receive(&cat(&[
            to(role, BINARY, b"part"),
            to(role, FIN | CLOSE, &close_payload(1000, b"")),
        ]));
        assert_eq!(peer.take_events(), [Ev::Close(1000, String::new())]);
        assert_eq!(peer.conn.buffered(), 0);
        assert_eq!(peer.sent_frames()[0].close(), (1000, String::new()));
    }
}

// ---- zero copy and memory ----

#[test]
fn either_side_delivers_a_single_frame_message_borrowed() {
    for role in ROLES {
        let mut peer = Peer::new(role, Config::default());
        peer.receive(&cat(&[
            to(role, FIN | TEXT, b"one"),
            to(role, FIN | BINARY, &[1; 300]),
            to(role, FIN | TEXT, b""),
            to(role, FIN | BINARY, &[2; 70_000]),
        ]));
        assert_eq!(peer.events.len(), 4);
        assert_eq!(peer.borrowed, [true; 4], "{role:?}");
        assert_eq!(peer.max_buffered, 0, "{role:?}: nothing assembled");
    }
}

#[test]
fn either_side_delivers_a_fragmented_or_split_message_owned() {
    for role in ROLES {
        let mut peer = Peer::new(role, Config::default());
        peer.receive(&cat(&[to(role, TEXT, b"frag"), to(role, FIN | CONT, b"mented")]));
        let frame = to(role, FIN | BINARY, &[3; 100]);
        peer.receive(&frame[..50]);
        peer.receive(&frame[50..]);
        assert_eq!(peer.take_events(), [text("fragmented"), Ev::Binary(vec![3; 100])]);
        assert_eq!(peer.borrowed, [false, false], "{role:?}");
    }
}

#[test]
fn either_side_holds_no_buffer_between_messages() {
    for role in ROLES {
        let mut peer = Peer::new(role, Config::default());
        assert_eq!(peer.conn.buffered(), 0);
        peer.receive(&to(role, TEXT, b"abc"));
        assert_eq!(peer.conn.buffered(), 3, "a message being assembled is held");
        peer.receive(&to(role, CONT, b"def"));
        assert_eq!(peer.conn.buffered(), 6);
        peer.receive(&to(role, FIN | CONT, b"g"));
        assert_eq!(peer.take_events(), [text("abcdefg")]);
        assert_eq!(peer.conn.buffered(), 0, "{role:?}: idle after the message");

        let frame = to(role, FIN | BINARY, &[9; 1000]);
        peer.receive(&frame[..500]);
        assert!(peer.conn.buffered() > 0);
        peer.receive(&frame[500..]);
        assert_eq!(peer.events.len(), 1);
        assert_eq!(peer.conn.buffered(), 0, "{role:?}: idle after a split frame");
        assert!(peer.pending.is_empty());

        // Half a header is left to the caller, not held.
        let frame = to(role, FIN | BINARY, &[1; 200]);
        peer.receive(&frame[..3]);
        assert_eq!(peer.conn.buffered(), 0);
        assert_eq!(peer.pending.len(), 3);
        peer.receive(&frame[3..]);
        assert_eq!(peer.events.len(), 2);
        assert_eq!(peer.conn.buffered(), 0);
    }
}

#[test]
fn either_side_consumes_nothing_of_an_incomplete_control_frame() {
    for role in ROLES {
        let mut conn = match role {
            Role::Server => Connection::server(Config::default()),
            Role::Client => Connection::client(Config::default(), counting_keys()),
        };
        let mut frame = to(role, FIN | PING, &[4; 100]);
        let mut out = Vec::new();
        for cut in 0..frame.len() {
            let read = conn.read(&mut frame[..cut], &mut out).unwrap();
            assert_eq!(
                (read.consumed, read.event.is_none()),
                (0, true),
                "{role:?} cut {cut}"
            );
        }
        let len = frame.len();
        let read = conn.read(&mut frame, &mut out).unwrap();
        assert_eq!(read.consumed, len);
        assert_eq!(read.event, Some(Event::Ping(&[4; 100])));
    }
}

// ---- send_fragment sequencing ----

#[test]
fn either_side_send_fragment_refuses_out_of_sequence_fragments() {
    for role in ROLES {
        let mut peer = Peer::new(role, Config::default());
        let c = &mut peer.conn;
        let mut out = Vec::new();
        // A continuation with nothing open.
        assert_eq!(
            c.send_fragment(None, b"x", false, &mut out),
            Err(InvalidSend::Fragmentation)
        );
        assert_eq!(
            c.send_fragment(None, b"x", true, &mut out),
            Err(InvalidSend::Fragmentation)
        );
        assert!(out.is_empty());

        c.send_fragment(Some(MessageKind::Text), b"a", false, &mut out)
            .unwrap();
        let written = out.len();
        // A new message while one is open, by any command.
        assert_eq!(
            c.send_fragment(Some(MessageKind::Text), b"b", false, &mut out),
            Err(InvalidSend::Fragmentation)
        );
        assert_eq!(
            c.send_fragment(Some(MessageKind::Binary), b"b", true, &mut out),
            Err(InvalidSend::Fragmentation)
        );
        assert_eq!(
            c.send(MessageKind::Text, b"b", &mut out),
            Err(InvalidSend::Fragmentation)
        );
        assert_eq!(
            c.frame_header(MessageKind::Binary, 1).map(|_| ()),
            Err(InvalidSend::Fragmentation)
        );
        assert_eq!(out.len(), written, "refused commands write nothing");
        // Control frames may go between fragments.
        c.ping(b"p", &mut out).unwrap();
        c.send_fragment(None, b"b", false, &mut out).unwrap();
        c.send_fragment(None, b"c", true, &mut out).unwrap();
        // Closed again: a new message may start, a continuation may not.
        assert_eq!(
            c.send_fragment(None, b"d", true, &mut out),
            Err(InvalidSend::Fragmentation)
        );
        c.send(MessageKind::Binary, b"whole", &mut out).unwrap();
        c.send_fragment(Some(MessageKind::Binary), b"single", true, &mut out)
            .unwrap();

        let mut receiver = Peer::new(other_role(role), Config::default());
        receiver.receive(&out);
        assert_eq!(receiver.error, None);
        assert_eq!(
            receiver.take_events(),
            [
                Ev::Ping(b"p".to_vec()),
                text("abc"),
                binary(b"whole"),
                binary(b"single")
            ]
        );
    }
}
