//! permessage-deflate through the engine: our client with deflate against the echo server,
//! clients without it against the same server, and broadcasts compressed once per shard.

#![cfg(feature = "deflate")]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use c10k::client::{Client, ClientConfig, Received};
use c10k::proto::{DeflateConfig, MessageKind};
use c10k::proto::{Message, Request};
use c10k::{ConnId, Ctx, Handler, ServerConfig};
use common::*;

fn deflate_config() -> ServerConfig {
    let mut c = quick_config();
    c.deflate = Some(DeflateConfig::default());
    c
}

fn deflate_client(addr: std::net::SocketAddr, policy: DeflateConfig) -> Client {
    let config = ClientConfig {
        deflate: Some(policy),
        timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    Client::connect_with(&format!("ws://{addr}/"), &config).unwrap()
}

fn text(len: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!("{{\"n\":{i},\"name\":\"caf\u{e9} {}\"}} ", i % 13));
        i += 1;
    }
    while s.len() > len {
        s.pop();
    }
    s
}

#[test]
fn server_echoes_compressed_messages_to_a_deflate_client() {
    let h = start(deflate_config(), |_| Echo);
    for policy in [
        DeflateConfig::default(),
        DeflateConfig {
            compress_context_takeover: true,
            decompress_context_takeover: true,
            ..DeflateConfig::default()
        },
    ] {
        let mut c = deflate_client(h.local_addr(), policy);
        let agreed = *c.deflate().expect("deflate agreed");
        assert!(agreed.server_no_context_takeover && agreed.client_no_context_takeover);
        for len in [0, 1, 63, 64, 1000, 20_000, 70_000, 1 << 20] {
            let t = text(len);
            c.send_text(&t).unwrap();
            assert_eq!(c.recv_message().unwrap(), Received::Text(t.clone()));
            let b = t.as_bytes().to_vec();
            c.send_fragmented(MessageKind::Binary, &b, 1000).unwrap();
            assert_eq!(c.recv_message().unwrap(), Received::Binary(b));
        }
        c.close(c10k::proto::CloseCode::Normal, "").unwrap();
        assert!(matches!(c.recv(), Ok(Received::Close(..)) | Err(_)));
    }
    let stats = h.stats();
    assert!(stats.deflated >= 20, "{stats:?}");
    assert_eq!(stats.protocol_errors, 0);
    stop(&h);
}

#[test]
fn clients_without_deflate_still_work_against_a_deflate_server() {
    let h = start(deflate_config(), |_| Echo);
    // tungstenite does not offer permessage-deflate.
    let mut ws = client(h.local_addr());
    let big = text(10_000);
    ws.send(tungstenite::Message::text(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text(big));
    close_ws(ws);
    // Our client without an offer: no extension in the answer.
    let mut c = Client::connect(&format!("ws://{}/", h.local_addr())).unwrap();
    assert!(c.deflate().is_none());
    c.send_text(&text(5000)).unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text(text(5000)));
    // A raw upgrade shows the answer header only when offered.
    let mut s = raw(h.local_addr());
    s.write_all(UPGRADE).unwrap();
    let head = read_head(&mut s);
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket-extensions"),
        "{head}"
    );
    let offer = String::from_utf8(UPGRADE.to_vec()).unwrap().replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    );
    let mut s = raw(h.local_addr());
    s.write_all(offer.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(
        head.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        ),
        "{head}"
    );
    stop(&h);
}

#[test]
fn a_deflate_client_falls_back_against_a_server_without_deflate() {
    let h = start(quick_config(), |_| Echo);
    let mut c = deflate_client(h.local_addr(), DeflateConfig::default());
    assert!(c.deflate().is_none());
    let t = text(3000);
    c.send_text(&t).unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text(t));
    stop(&h);
}

#[test]
fn server_fails_invalid_compressed_data_with_1007_and_bombs_with_1009() {
    let mut config = deflate_config();
    config.protocol.max_message_size = 64 << 10;
    let h = start(config, |_| Echo);
    let offer = String::from_utf8(UPGRADE.to_vec()).unwrap().replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    );
    let open = || {
        let mut s = raw(h.local_addr());
        s.write_all(offer.as_bytes()).unwrap();
        let head = read_head(&mut s);
        assert!(head.contains("permessage-deflate"), "{head}");
        s
    };
    // A masked FIN binary frame with RSV1 ("compressed") set.
    let compressed = |payload: &[u8]| {
        let mut f = frame(true, 0x2, payload);
        f[0] |= 0x40;
        f
    };
    let mut s = open();
    s.write_all(&compressed(&[0xff, 0xff, 0xff])).unwrap();
    assert_eq!(read_close_code(&mut s), 1007);
    // 1 MiB of zeros, compressed by the client of this crate: over the 64 KiB limit.
    let mut zlib = c10k::proto::deflate::Compressor::new(15, 9);
    let mut bomb = Vec::new();
    zlib.compress_message(&vec![0u8; 1 << 20], &mut bomb);
    let mut s = open();
    s.write_all(&compressed(&bomb)).unwrap();
    assert_eq!(read_close_code(&mut s), 1009);
    // RSV1 on a continuation frame.
    let mut s = open();
    let mut first = compressed(&bomb[..10]);
    first[0] &= 0x7f;
    let mut cont = frame(true, 0x0, &bomb[10..20]);
    cont[0] |= 0x40;
    s.write_all(&first).unwrap();
    s.write_all(&cont).unwrap();
    assert_eq!(read_close_code(&mut s), 1002);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    stop(&h);
}

/// Subscribes every connection to "news" at open and publishes every message there.
struct News;

impl Handler for News {
    type State = ();

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State, _req: &Request<'_>) {
        let _ = ctx.subscribe(id, "news");
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, _id: ConnId, _state: &mut Self::State, msg: Message<'_>) {
        ctx.publish("news", msg.kind(), msg.as_bytes());
    }
}

#[test]
fn a_broadcast_is_compressed_once_per_shard_for_every_deflate_subscriber() {
    let mut config = quick_config();
    config.deflate = Some(DeflateConfig::default());
    let h = start(config, |_| News);
    let addr = h.local_addr();
    // Subscribed before the 101 is sent: on_open runs first.
    let mut subs: Vec<Client> = (0..10)
        .map(|_| deflate_client(addr, DeflateConfig::default()))
        .collect();
    // A subscriber without deflate gets the same message, uncompressed.
    let mut plain = Client::connect(&format!("ws://{addr}/")).unwrap();
    let before = h.stats().deflated;
    let payload = text(8000);
    subs[0].send_text(&payload).unwrap();
    let expected = Received::Text(payload);
    for s in &mut subs {
        assert_eq!(s.recv_message().unwrap(), expected);
    }
    assert_eq!(plain.recv_message().unwrap(), expected);
    assert_eq!(
        h.stats().deflated - before,
        1,
        "one compression for 10 subscribers"
    );
    stop(&h);
}
