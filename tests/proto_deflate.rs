//! permessage-deflate (RFC 7692) through the public API: the handshake of a client offer and a
//! server answer, then an in-memory client/server pair exchanging compressed messages.
//!
//! - `client_and_server_agree_and_exchange_compressed_messages`: `write_request` with a deflate
//!   policy, `parse_request` + `negotiate` + `write_accept` on the server, `parse_response` on
//!   the client, both connections built from the agreement, messages both ways.
//! - Property: random messages (text and binary, compressible and not, under and over the
//!   threshold), sent whole or in fragments, read in random chunk sizes, with and without context
//!   takeover in each direction, arrive unchanged; without takeover no connection holds zlib
//!   state between messages.

#![cfg(feature = "deflate")]

use c10k::proto::deflate::{self, DeflateConfig};
use c10k::proto::handshake::{
    Accept, ClientRequest, HeadLimits, parse_request, parse_response, write_accept, write_request,
};
use c10k::proto::{Config, Connection, DeflatePool, Event, Message, MessageKind, Role};
use proptest::prelude::*;

/// One end: its connection, its pool, and the bytes it was sent but has not consumed.
struct End {
    conn: Connection,
    pool: DeflatePool,
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl End {
    fn new(conn: Connection) -> Self {
        Self {
            conn,
            pool: DeflatePool::new(),
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Receives `bytes` in chunks of the given sizes (cycled) and returns the messages.
    fn receive(&mut self, bytes: &[u8], chunks: &[usize]) -> Vec<(MessageKind, Vec<u8>)> {
        let mut got = Vec::new();
        let mut rest = bytes;
        let mut i = 0;
        while !rest.is_empty() {
            let n = chunks[i % chunks.len()].clamp(1, rest.len());
            i += 1;
            self.pending.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            let mut pos = 0;
            loop {
                let r = self
                    .conn
                    .read_with(&mut self.pending[pos..], &mut self.out, &mut self.pool)
                    .expect("no protocol error");
                pos += r.consumed;
                match r.event {
                    Some(Event::Message(Message::Text(t))) => {
                        got.push((MessageKind::Text, t.as_bytes().to_vec()))
                    }
                    Some(Event::Message(Message::Binary(b))) => got.push((MessageKind::Binary, b.to_vec())),
                    Some(other) => panic!("unexpected {other:?}"),
                    None if r.consumed == 0 => break,
                    None => {}
                }
            }
            self.pending.drain(..pos);
        }
        got
    }
}

fn keys() -> c10k::proto::MaskSource {
    let mut s = 0x2545_f491u32;
    Box::new(move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s.to_le_bytes()
    })
}

/// The whole opening handshake between a client with policy `client` and a server with policy
/// `server`; the two connections, if deflate was agreed.
fn handshake(client: DeflateConfig, server: DeflateConfig) -> (Connection, Connection, String) {
    let mut request = Vec::new();
    let req = ClientRequest {
        host: "example.com",
        target: "/",
        deflate: Some(client),
        ..ClientRequest::default()
    };
    let expected = write_request(&req, *b"0123456789abcdef", &mut request).unwrap();
    let parsed = parse_request(&request, &HeadLimits::default()).unwrap().unwrap();
    let params = deflate::negotiate(parsed.header_values("sec-websocket-extensions"), &server)
        .expect("our server accepts our client's offer");
    let answer = params.to_string();
    let mut response = Vec::new();
    write_accept(
        &parsed,
        &Accept {
            headers: &[("Sec-WebSocket-Extensions", &answer)],
            ..Accept::default()
        },
        &mut response,
    )
    .unwrap();
    let resp = parse_response(&response, &expected, &[], &HeadLimits::default())
        .unwrap()
        .unwrap();
    let agreed = resp.deflate().expect("the client accepts the answer");
    assert_eq!(agreed, params);
    let server_conn =
        Connection::server(Config::default()).with_deflate(params.negotiated(Role::Server, &server));
    let client_conn =
        Connection::client(Config::default(), keys()).with_deflate(agreed.negotiated(Role::Client, &client));
    (server_conn, client_conn, answer)
}

fn policy(compress: bool, decompress: bool) -> DeflateConfig {
    DeflateConfig {
        compress_context_takeover: compress,
        decompress_context_takeover: decompress,
        ..DeflateConfig::default()
    }
}

fn text(len: usize) -> Vec<u8> {
    let words = [
        "alpha ",
        "beta ",
        "gamma ",
        "delta ",
        "\u{e9}t\u{e9} ",
        "\u{1f600} ",
    ];
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(words[i % words.len()]);
        i += 1;
    }
    while s.len() > len {
        s.pop();
    }
    s.into_bytes()
}

#[test]
fn client_and_server_agree_and_exchange_compressed_messages() {
    let (server, client, answer) = handshake(DeflateConfig::default(), DeflateConfig::default());
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    let (mut server, mut client) = (End::new(server), End::new(client));
    for len in [0, 10, 64, 1000, 100_000] {
        let data = text(len);
        let mut wire = Vec::new();
        client
            .conn
            .send_with(MessageKind::Text, &data, &mut wire, &mut client.pool)
            .unwrap();
        if len >= 1000 {
            assert!(wire.len() < data.len() / 2, "{len} bytes sent as {}", wire.len());
        }
        assert_eq!(
            server.receive(&wire, &[usize::MAX]),
            vec![(MessageKind::Text, data.clone())]
        );
        let mut wire = Vec::new();
        server
            .conn
            .send_with(MessageKind::Binary, &data, &mut wire, &mut server.pool)
            .unwrap();
        assert_eq!(client.receive(&wire, &[3]), vec![(MessageKind::Binary, data)]);
        assert!(!server.conn.holds_deflate_state() && !client.conn.holds_deflate_state());
    }
}

#[test]
fn small_windows_are_agreed_and_honoured() {
    let client = DeflateConfig {
        compress_window_bits: 9,
        decompress_window_bits: 10,
        ..DeflateConfig::default()
    };
    let server = DeflateConfig {
        compress_window_bits: 8,
        ..DeflateConfig::default()
    };
    let (server, client, answer) = handshake(client, server);
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=8; client_max_window_bits=9"
    );
    let (mut server, mut client) = (End::new(server), End::new(client));
    let data = text(50_000);
    let mut wire = Vec::new();
    server
        .conn
        .send_with(MessageKind::Text, &data, &mut wire, &mut server.pool)
        .unwrap();
    assert_eq!(
        client.receive(&wire, &[1000]),
        vec![(MessageKind::Text, data.clone())]
    );
    let mut wire = Vec::new();
    client
        .conn
        .send_with(MessageKind::Text, &data, &mut wire, &mut client.pool)
        .unwrap();
    assert_eq!(server.receive(&wire, &[1000]), vec![(MessageKind::Text, data)]);
}

/// A message of the property test: kind, bytes (compressible or not), fragment size (0: whole).
fn message() -> impl Strategy<Value = (bool, Vec<u8>, usize)> {
    let compressible = (0usize..20_000).prop_map(text);
    let random = prop::collection::vec(any::<u8>(), 0..3000);
    (
        any::<bool>(),
        prop_oneof![compressible, random],
        prop_oneof![Just(0usize), 1usize..5000],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_messages_in_random_chunks_arrive_unchanged(
        takeover in (any::<bool>(), any::<bool>()),
        messages in prop::collection::vec(message(), 1..12),
        chunks in prop::collection::vec(1usize..4000, 1..8),
    ) {
        let (server, client, _) = handshake(policy(takeover.0, takeover.1), policy(takeover.1, takeover.0));
        let (mut server, mut client) = (End::new(server), End::new(client));
        for (to_server, data, fragment) in messages {
            // Text when the bytes are UTF-8, binary otherwise.
            let kind = if std::str::from_utf8(&data).is_ok() { MessageKind::Text } else { MessageKind::Binary };
            let (from, to) = if to_server { (&mut client, &mut server) } else { (&mut server, &mut client) };
            let mut wire = Vec::new();
            if fragment == 0 {
                from.conn.send_with(kind, &data, &mut wire, &mut from.pool).unwrap();
            } else {
                from.conn.send_fragmented(kind, &data, fragment, &mut wire, &mut from.pool).unwrap();
            }
            let got = to.receive(&wire, &chunks);
            prop_assert_eq!(got, vec![(kind, data)]);
            if !takeover.0 && !takeover.1 {
                prop_assert!(!server.conn.holds_deflate_state() && !client.conn.holds_deflate_state());
            }
        }
    }
}
