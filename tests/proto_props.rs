//! Properties of the protocol core over random input.
//!
//! - Messages sent by one end arrive unchanged at the other, whatever the fragmentation, the pings
//!   between fragments and the sizes of the reads, in both directions.
//! - [`Utf8Validator`] agrees with `std::str::from_utf8` at every split point, including where it
//!   fails and that it fails as soon as the input cannot be UTF-8 any more.
//! - [`apply_mask`] agrees with [`apply_mask_scalar`] at every alignment and offset.
//! - Frame headers survive encode then decode.
//! - Arbitrary bytes never make a connection panic or hold more than its message limit.

use c10k::proto::frame::{FrameHeader, decode_header, encode_header};
use c10k::proto::mask::{apply_mask, apply_mask_scalar};
use c10k::proto::utf8::{Utf8Validator, validate};
use c10k::proto::{
    CloseCode, Config, Connection, Error, Event, MaskSource, Message, MessageKind, OpCode, Role,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ---- driving a connection ----

/// An [`Event`] copied out of the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Message(MessageKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
}

fn own(event: Event<'_>) -> Ev {
    match event {
        Event::Message(Message::Text(t)) => Ev::Message(MessageKind::Text, t.as_bytes().to_vec()),
        Event::Message(Message::Binary(b)) => Ev::Message(MessageKind::Binary, b.to_vec()),
        Event::Ping(p) => Ev::Ping(p.to_vec()),
        Event::Pong(p) => Ev::Pong(p.to_vec()),
        Event::Close(f) => Ev::Close(f.code.as_u16(), f.reason.to_owned()),
    }
}

/// Masking keys from a small xorshift generator: random enough to vary, reproducible from `seed`.
fn keys(seed: u32) -> MaskSource {
    let mut state = seed | 1;
    Box::new(move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state.to_le_bytes()
    })
}

fn connection(role: Role, config: Config, seed: u32) -> Connection {
    match role {
        Role::Server => Connection::server(config),
        Role::Client => Connection::client(config, keys(seed)),
    }
}

/// The receiving side: a connection, its unconsumed input, what it wrote and reported.
struct Receiver {
    conn: Connection,
    pending: Vec<u8>,
    out: Vec<u8>,
    events: Vec<Ev>,
    error: Option<Error>,
}

impl Receiver {
    fn new(conn: Connection) -> Self {
        Self {
            conn,
            pending: Vec::new(),
            out: Vec::new(),
            events: Vec::new(),
            error: None,
        }
    }

    /// Takes the next bytes and calls `read` until it consumes nothing and returns no event,
    /// checking the invariants of every call.
    fn receive(&mut self, bytes: &[u8]) -> Result<(), TestCaseError> {
        let max = self.conn.config().max_message_size;
        self.pending.extend_from_slice(bytes);
        let mut pos = 0;
        loop {
            let available = self.pending.len() - pos;
            let was_done = self.conn.failed() || self.conn.close_received();
            let out_before = self.out.len();
            match self.conn.read(&mut self.pending[pos..], &mut self.out) {
                Ok(read) => {
                    let consumed = read.consumed;
                    let event = read.event.map(own);
                    prop_assert!(consumed <= available);
                    prop_assert!(self.conn.buffered() <= max, "{} > {max}", self.conn.buffered());
                    if was_done {
                        prop_assert_eq!(consumed, available, "input after the end is consumed");
                        prop_assert!(event.is_none(), "and ignored");
                        prop_assert_eq!(self.out.len(), out_before);
                    }
                    pos += consumed;
                    match event {
                        Some(ev) => self.events.push(ev),
                        None if consumed == 0 => break,
                        None => {}
                    }
                }
                Err(e) => {
                    prop_assert!(!was_done, "no error after the end: {:?}", e);
                    prop_assert!(self.error.is_none());
                    prop_assert!(self.conn.failed() && self.conn.should_close_tcp());
                    prop_assert_eq!(self.conn.buffered(), 0);
                    let code = e.close_code();
                    prop_assert!(
                        matches!(
                            code,
                            CloseCode::ProtocolError | CloseCode::InvalidPayload | CloseCode::TooBig
                        ),
                        "{:?}",
                        code
                    );
                    self.error = Some(e);
                    self.pending.clear();
                    return Ok(());
                }
            }
        }
        self.pending.drain(..pos);
        prop_assert!(
            self.pending.len() <= 2 + 4 + 125,
            "rest of {}",
            self.pending.len()
        );
        Ok(())
    }

    /// Feeds `bytes` cut into pieces of the given sizes, cycling through them.
    fn receive_in_chunks(&mut self, bytes: &[u8], sizes: &[usize]) -> Result<(), TestCaseError> {
        let mut rest = bytes;
        let mut sizes = sizes.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).clamp(1, rest.len());
            let (piece, tail) = rest.split_at(n);
            self.receive(piece)?;
            rest = tail;
        }
        Ok(())
    }
}

// ---- round trips ----

/// One message to send: its kind and payload, where to cut it into fragments, and the pings to
/// send before each fragment.
#[derive(Debug, Clone)]
struct Msg {
    kind: MessageKind,
    payload: Vec<u8>,
    cuts: Vec<Index>,
    pings: Vec<Option<Vec<u8>>>,
}

impl Msg {
    fn fragments(&self) -> Vec<&[u8]> {
        let mut cuts: Vec<usize> = self
            .cuts
            .iter()
            .map(|i| i.index(self.payload.len() + 1))
            .collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut last = 0;
        for c in cuts {
            pieces.push(&self.payload[last..c]);
            last = c;
        }
        pieces.push(&self.payload[last..]);
        pieces
    }
}

fn text_payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<char>(),
            2 => prop::char::range('\u{80}', '\u{7ff}'),
            2 => prop::char::range('\u{800}', '\u{ffff}'),
            2 => prop::char::range('\u{10000}', '\u{10ffff}'),
        ],
        0..200,
    )
    .prop_map(|chars| String::from_iter(chars).into_bytes())
}

fn payload() -> impl Strategy<Value = (MessageKind, Vec<u8>)> {
    prop_oneof![
        4 => text_payload().prop_map(|p| (MessageKind::Text, p)),
        4 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|p| (MessageKind::Binary, p)),
        1 => (
            prop::sample::select(vec![125usize, 126, 127, 65535, 65536, 70_000]),
            any::<u8>(),
            any::<bool>()
        )
            .prop_map(|(len, seed, is_text)| {
                let kind = if is_text { MessageKind::Text } else { MessageKind::Binary };
                // Text of multi-byte characters, or bytes counting up.
                let payload = if is_text {
                    "aé€𝄞".repeat(len / 10 + 1).into_bytes()[..len].to_vec()
                } else {
                    (0..len).map(|i| (i as u8).wrapping_add(seed)).collect()
                };
                // The text cut may fall inside a character: keep only whole characters.
                match String::from_utf8(payload) {
                    Ok(s) => (kind, s.into_bytes()),
                    Err(e) if is_text => (kind, e.as_bytes()[..e.utf8_error().valid_up_to()].to_vec()),
                    Err(e) => (kind, e.into_bytes()),
                }
            }),
    ]
}

fn message() -> impl Strategy<Value = Msg> {
    (
        payload(),
        prop::collection::vec(any::<Index>(), 0..4),
        prop::collection::vec(
            prop::option::weighted(0.3, prop::collection::vec(any::<u8>(), 0..=125)),
            0..5,
        ),
    )
        .prop_map(|((kind, payload), cuts, pings)| Msg {
            kind,
            payload,
            cuts,
            pings,
        })
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![4 => 1usize..=16, 2 => 1usize..=300, 1 => 1usize..=100_000],
        1..6,
    )
}

/// Sends `msgs` from a `sender` end, feeds the bytes to the other end in `sizes` chunks, and checks
/// that it reports exactly what was sent and that the sender gets a pong for every ping.
fn round_trip(sender: Role, msgs: &[Msg], sizes: &[usize], seed: u32) -> Result<(), TestCaseError> {
    let receiver_role = match sender {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let mut tx = Receiver::new(connection(sender, Config::default(), seed));
    let mut rx = Receiver::new(connection(receiver_role, Config::default(), seed ^ 0x5555));
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut pongs = Vec::new();
    for msg in msgs {
        let fragments = msg.fragments();
        let n = fragments.len();
        for (i, fragment) in fragments.into_iter().enumerate() {
            if let Some(Some(ping)) = msg.pings.get(i) {
                tx.conn.ping(ping, &mut wire).unwrap();
                expected.push(Ev::Ping(ping.clone()));
                pongs.push(Ev::Pong(ping.clone()));
            }
            let fin = i + 1 == n;
            if n == 1 {
                tx.conn.send(msg.kind, fragment, &mut wire).unwrap();
            } else {
                let kind = (i == 0).then_some(msg.kind);
                tx.conn.send_fragment(kind, fragment, fin, &mut wire).unwrap();
            }
        }
        expected.push(Ev::Message(msg.kind, msg.payload.clone()));
    }
    // Every frame on the wire is masked if and only if a client sent it.
    let mut rest = wire.as_slice();
    while !rest.is_empty() {
        let (h, n) = decode_header(rest).unwrap().unwrap();
        prop_assert_eq!(h.mask.is_some(), sender == Role::Client);
        rest = &rest[n + h.len as usize..];
    }

    rx.receive_in_chunks(&wire, sizes)?;
    prop_assert_eq!(&rx.error, &None);
    prop_assert!(rx.pending.is_empty());
    prop_assert_eq!(rx.conn.buffered(), 0);
    prop_assert_eq!(&rx.events, &expected);

    let answers = std::mem::take(&mut rx.out);
    tx.receive_in_chunks(&answers, sizes)?;
    prop_assert_eq!(&tx.error, &None);
    prop_assert_eq!(&tx.events, &pongs);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn client_to_server_messages_arrive_unchanged(
        msgs in prop::collection::vec(message(), 1..6),
        sizes in chunk_sizes(),
        seed in any::<u32>(),
    ) {
        round_trip(Role::Client, &msgs, &sizes, seed)?;
    }

    #[test]
    fn server_to_client_messages_arrive_unchanged(
        msgs in prop::collection::vec(message(), 1..6),
        sizes in chunk_sizes(),
        seed in any::<u32>(),
    ) {
        round_trip(Role::Server, &msgs, &sizes, seed)?;
    }
}

// ---- UTF-8 ----

/// Bytes that are mostly UTF-8, with multi-byte characters, truncated characters, stray
/// continuation bytes and the classic invalid sequences mixed in.
fn near_utf8() -> impl Strategy<Value = Vec<u8>> {
    let bad: Vec<Vec<u8>> = [
        &[0xed, 0xa0, 0x80][..],
        &[0xed, 0xbf, 0xbf],
        &[0xc0, 0x80],
        &[0xc1, 0xbf],
        &[0xe0, 0x80, 0x80],
        &[0xe0, 0x9f, 0xbf],
        &[0xf0, 0x80, 0x80, 0x80],
        &[0xf0, 0x8f, 0xbf, 0xbf],
        &[0xf4, 0x90, 0x80, 0x80],
        &[0xf5, 0x80, 0x80, 0x80],
        &[0xf8, 0x88, 0x80, 0x80, 0x80],
        &[0xfe],
        &[0xff],
        &[0x80],
        &[0xbf],
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    let atom = prop_oneof![
        4 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
        3 => prop::char::range('\u{80}', '\u{10ffff}').prop_map(|c| c.to_string().into_bytes()),
        2 => prop::collection::vec(b' '..=b'~', 1..8),
        1 => (prop::char::range('\u{80}', '\u{10ffff}'), any::<Index>()).prop_map(|(c, i)| {
            // A multi-byte character cut short.
            let bytes = c.to_string().into_bytes();
            bytes[..1 + i.index(bytes.len() - 1)].to_vec()
        }),
        1 => prop::sample::select(bad),
        1 => any::<u8>().prop_map(|b| vec![b]),
        1 => (0x80u8..=0xff).prop_map(|b| vec![b]),
    ];
    prop::collection::vec(atom, 0..24).prop_map(|atoms| atoms.concat())
}

/// What `Utf8Validator::feed` must answer once it has seen `data[..end]`: an error at std's
/// position as soon as the bytes cannot be the start of UTF-8, success otherwise.
fn expected_feed(data: &[u8], end: usize) -> Result<(), u64> {
    match std::str::from_utf8(&data[..end]) {
        Err(e) if e.error_len().is_some() => Err(e.valid_up_to() as u64),
        _ => Ok(()),
    }
}

/// Feeds `data` cut at `cuts` and checks every answer against std.
fn check_pieces(data: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    let mut v = Utf8Validator::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([data.len()]) {
        let got = v.feed(&data[start..end]).map_err(|e| e.offset);
        let want = expected_feed(data, end);
        prop_assert_eq!(
            got,
            want,
            "piece {}..{} of {:x?}, cuts {:?}",
            start,
            end,
            data,
            cuts
        );
        if got.is_err() {
            return Ok(());
        }
        prop_assert_eq!(
            v.is_complete(),
            std::str::from_utf8(&data[..end]).is_ok(),
            "is_complete after {} bytes of {:x?}",
            end,
            data
        );
        start = end;
    }
    let got = v.finish().map_err(|e| e.offset);
    let want = std::str::from_utf8(data)
        .map(|_| ())
        .map_err(|e| e.valid_up_to() as u64);
    prop_assert_eq!(got, want, "finish of {:x?}, cuts {:?}", data, cuts);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn utf8_validate_agrees_with_std(data in near_utf8()) {
        // The same verdict, and on success the same text.
        let want = std::str::from_utf8(&data).map_err(|e| e.valid_up_to() as u64);
        prop_assert_eq!(validate(&data).map_err(|e| e.offset), want);
    }

    #[test]
    fn utf8_validator_agrees_with_std_at_every_split_point(data in near_utf8()) {
        check_pieces(&data, &[])?;
        for cut in 0..=data.len() {
            check_pieces(&data, &[cut])?;
        }
        let every: Vec<usize> = (0..=data.len()).collect();
        check_pieces(&data, &every)?;
    }

    #[test]
    fn utf8_validator_agrees_with_std_with_several_splits(
        data in near_utf8(),
        cuts in prop::collection::vec(any::<Index>(), 0..10),
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        cuts.sort_unstable();
        check_pieces(&data, &cuts)?;
    }

    #[test]
    fn utf8_validator_agrees_with_std_on_any_bytes(
        data in prop::collection::vec(any::<u8>(), 0..64),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        cuts.sort_unstable();
        check_pieces(&data, &cuts)?;
    }

    #[test]
    fn utf8_validator_is_reusable_after_reset(a in near_utf8(), b in near_utf8()) {
        let mut v = Utf8Validator::new();
        let _ = v.feed(&a);
        v.reset();
        let got = v.feed(&b).and_then(|()| v.finish()).map_err(|e| e.offset);
        let want = std::str::from_utf8(&b).map(|_| ()).map_err(|e| e.valid_up_to() as u64);
        prop_assert_eq!(got, want);
    }
}

// ---- masking ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn apply_mask_agrees_with_scalar_at_every_alignment_and_offset(
        data in prop::collection::vec(any::<u8>(), 64..64 + 400),
        len in any::<Index>(),
        key in any::<[u8; 4]>(),
    ) {
        let len = len.index(data.len() - 64 + 1);
        for start in 0..64 {
            for offset in (0..8).chain(usize::MAX - 3..=usize::MAX) {
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask(&mut fast[start..start + len], key, offset);
                apply_mask_scalar(&mut slow[start..start + len], key, offset);
                prop_assert_eq!(&fast, &slow, "start {} len {} offset {}", start, len, offset);
            }
        }
    }

    #[test]
    fn apply_mask_in_pieces_equals_whole(
        data in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
        key in any::<[u8; 4]>(),
    ) {
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = data.clone();
        let mut start = 0;
        for end in cuts.into_iter().chain([data.len()]) {
            apply_mask(&mut pieces[start..end], key, start);
            start = end;
        }
        prop_assert_eq!(&pieces, &whole);
        // Masking twice restores the input.
        apply_mask(&mut pieces, key, 0);
        prop_assert_eq!(pieces, data);
    }
}

// ---- frame headers ----

fn header() -> impl Strategy<Value = FrameHeader> {
    let len = prop_oneof![
        0u64..=125,
        126u64..=0xffff,
        0x1_0000u64..=u64::MAX >> 1,
        prop::sample::select(vec![0u64, 125, 126, 127, 0xffff, 0x1_0000, u64::MAX >> 1]),
    ];
    let data = (
        any::<bool>(),
        0u8..8,
        prop::sample::select(vec![OpCode::Continuation, OpCode::Text, OpCode::Binary]),
        len,
        any::<Option<[u8; 4]>>(),
    )
        .prop_map(|(fin, rsv, opcode, len, mask)| FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            len,
        });
    let control = (
        0u8..8,
        prop::sample::select(vec![OpCode::Close, OpCode::Ping, OpCode::Pong]),
        0u64..=125,
        any::<Option<[u8; 4]>>(),
    )
        .prop_map(|(rsv, opcode, len, mask)| FrameHeader {
            fin: true,
            rsv,
            opcode,
            mask,
            len,
        });
    prop_oneof![3 => data, 1 => control]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn decode_header_inverts_encode_header(
        h in header(),
        trailing in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let encoded = encode_header(h.fin, h.rsv, h.opcode, h.len, h.mask);
        let bytes = encoded.as_bytes();
        let ext = match h.len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        prop_assert_eq!(bytes.len(), 2 + ext + if h.mask.is_some() { 4 } else { 0 }, "minimal length");
        prop_assert_eq!(decode_header(bytes), Ok(Some((h, bytes.len()))));
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode_header(&bytes[..cut]), Ok(None), "prefix of {}", cut);
        }
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&trailing);
        prop_assert_eq!(decode_header(&longer), Ok(Some((h, bytes.len()))));
    }
}

// ---- arbitrary input ----

/// A frame around `payload` (cut or padded to `len` bytes unless `truncate` leaves it short), with
/// the minimal length encoding, masked with `mask` if given.
fn frame_bytes(b0: u8, len: usize, mask: Option<[u8; 4]>, mut payload: Vec<u8>, truncate: bool) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    payload.resize(if truncate { payload.len().min(len) } else { len }, b'x');
    let start = out.len();
    out.extend_from_slice(&payload);
    if let Some(key) = mask {
        apply_mask_scalar(&mut out[start..], key, 0);
    }
    out
}

/// Input for a `receiver` end that looks like frames often enough to get deep into the state
/// machine: mostly well-formed messages (masked as the role expects, fragmented, with control
/// frames between fragments), so assembly, limits and UTF-8 are all exercised, mixed with lone
/// control frames, frames whose first byte, mask bit and length are random, and raw noise.
fn frame_soup(receiver: Role) -> impl Strategy<Value = Vec<u8>> {
    let masked = receiver == Role::Server;
    let payload = || {
        (
            prop_oneof![
                3 => text_payload(),
                1 => prop::collection::vec(any::<u8>(), 0..300),
                2 => near_utf8(),
            ],
            prop_oneof![4 => 0usize..=50, 1 => 0usize..=400],
        )
            .prop_map(|(mut p, cap)| {
                p.truncate(cap);
                p
            })
    };
    let key = any::<[u8; 4]>();
    let close_code = || prop::sample::select(vec![1000u16, 1001, 1002, 1005, 1011, 3000, 4999, 999, 5000]);
    let control = move || {
        (
            prop::sample::select(vec![0x89u8, 0x89, 0x8a, 0x8a, 0x88]),
            prop::collection::vec(any::<u8>(), 0..=125),
            close_code(),
            near_utf8(),
            any::<[u8; 4]>(),
        )
            .prop_map(move |(b0, mut payload, code, reason, key)| {
                if b0 == 0x88 {
                    payload = code.to_be_bytes().to_vec();
                    payload.extend_from_slice(&reason);
                    payload.truncate(125);
                }
                frame_bytes(b0, payload.len(), masked.then_some(key), payload, false)
            })
    };
    let message = (
        prop::sample::select(vec![0x1u8, 0x2]),
        prop::collection::vec((payload(), key, prop::option::weighted(0.2, control())), 1..5),
        prop::option::weighted(0.1, prop::sample::select(vec![125usize, 126, 0xffff, 0x1_0000])),
    )
        .prop_map(move |(op, fragments, bad_len)| {
            let n = fragments.len();
            let mut out = Vec::new();
            for (i, (payload, key, between)) in fragments.into_iter().enumerate() {
                let b0 = if i + 1 == n { 0x80 } else { 0 } | if i == 0 { op } else { 0 };
                // Now and then a length that does not match the payload.
                let len = bad_len.filter(|_| i == 0).unwrap_or(payload.len());
                out.extend(frame_bytes(b0, len, masked.then_some(key), payload, false));
                if i + 1 < n {
                    out.extend(between.unwrap_or_default());
                }
            }
            out
        });
    let wild = (
        any::<u8>(),
        prop_oneof![6 => 0usize..=40, 2 => 41usize..=300, 1 => 0usize..=0x1_0001],
        prop::option::of(key),
        payload(),
        any::<bool>(),
    )
        .prop_map(|(b0, len, mask, payload, truncate)| frame_bytes(b0, len, mask, payload, truncate));
    let piece = prop_oneof![
        12 => message,
        3 => control(),
        1 => wild,
        1 => prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn fuzz_config(small: bool) -> Config {
    if small {
        Config {
            max_frame_size: 100,
            max_message_size: 150,
            ..Config::default()
        }
    } else {
        Config::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn server_never_panics_or_holds_more_than_its_limit(
        input in frame_soup(Role::Server),
        sizes in chunk_sizes(),
        small in any::<bool>(),
    ) {
        let config = fuzz_config(small);
        let mut whole = Receiver::new(Connection::server(config));
        whole.receive(&input)?;
        let mut pieces = Receiver::new(Connection::server(config));
        pieces.receive_in_chunks(&input, &sizes)?;
        // The same input whole or in pieces: the same verdict and the same events.
        prop_assert_eq!(&whole.error, &pieces.error);
        prop_assert_eq!(&whole.events, &pieces.events);
        prop_assert_eq!(&whole.out, &pieces.out);
    }

    #[test]
    fn client_never_panics_or_holds_more_than_its_limit(
        input in frame_soup(Role::Client),
        sizes in chunk_sizes(),
        small in any::<bool>(),
        seed in any::<u32>(),
    ) {
        let config = fuzz_config(small);
        let mut whole = Receiver::new(connection(Role::Client, config, seed));
        whole.receive(&input)?;
        let mut pieces = Receiver::new(connection(Role::Client, config, seed));
        pieces.receive_in_chunks(&input, &sizes)?;
        prop_assert_eq!(&whole.error, &pieces.error);
        prop_assert_eq!(&whole.events, &pieces.events);
        prop_assert_eq!(&whole.out, &pieces.out);
    }

    #[test]
    fn server_never_panics_on_raw_bytes(
        input in prop::collection::vec(any::<u8>(), 0..512),
        sizes in chunk_sizes(),
    ) {
        let mut r = Receiver::new(Connection::server(fuzz_config(true)));
        r.receive_in_chunks(&input, &sizes)?;
    }
}
