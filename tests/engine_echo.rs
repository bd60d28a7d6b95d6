//! The echo server over loopback, with a well-formed client and with raw bytes.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use tungstenite::Message;

#[test]
fn server_echoes_text_binary_empty_and_large_messages() {
    let h = start(quick_config(), |_| Echo);
    let mut ws = client(h.local_addr());
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let cases = vec![
        Message::text("hello"),
        Message::binary(vec![1u8, 2, 3]),
        Message::text(""),
        Message::binary(Vec::<u8>::new()),
        Message::text("κόσμε".repeat(1000)),
        Message::binary(big),
    ];
    for m in cases {
        ws.send(m.clone()).unwrap();
        let got = ws.read().unwrap();
        assert_eq!(got, m);
    }
    ws.close(None).unwrap();
    stop(&h);
}

#[test]
fn server_echoes_fragmented_message_with_ping_inside() {
    let h = start(quick_config(), |_| Echo);
    let mut s = raw_open(h.local_addr());
    let mut bytes = frame(false, 0x1, "κό".as_bytes());
    bytes.extend(frame(true, 0x9, b"inside"));
    bytes.extend(frame(false, 0x0, "σμ".as_bytes()));
    bytes.extend(frame(true, 0x0, "ε".as_bytes()));
    s.write_all(&bytes).unwrap();
    assert_eq!(read_frame(&mut s), (true, 0xa, b"inside".to_vec()));
    assert_eq!(read_frame(&mut s), (true, 0x1, "κόσμε".as_bytes().to_vec()));
    stop(&h);
}

#[test]
fn server_handles_bytes_arriving_one_at_a_time() {
    let h = start(quick_config(), |_| Echo);
    let mut s = raw(h.local_addr());
    let mut all = UPGRADE.to_vec();
    all.extend(frame(true, 0x2, &[7u8; 300]));
    for b in &all {
        s.write_all(std::slice::from_ref(b)).unwrap();
    }
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(read_frame(&mut s), (true, 0x2, vec![7u8; 300]));
    stop(&h);
}

#[test]
fn server_handles_frames_pipelined_after_the_handshake() {
    let h = start(quick_config(), |_| Echo);
    let mut s = raw(h.local_addr());
    let mut all = UPGRADE.to_vec();
    for i in 0..100u8 {
        all.extend(frame(true, 0x2, &[i; 10]));
    }
    s.write_all(&all).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for i in 0..100u8 {
        assert_eq!(read_frame(&mut s), (true, 0x2, vec![i; 10]));
    }
    stop(&h);
}

#[test]
fn server_answers_pings_with_same_payload() {
    let h = start(quick_config(), |_| Echo);
    let mut s = raw_open(h.local_addr());
    for len in [0usize, 1, 125] {
        let p = vec![0xabu8; len];
        s.write_all(&frame(true, 0x9, &p)).unwrap();
        assert_eq!(read_frame(&mut s), (true, 0xa, p));
    }
    stop(&h);
}

#[test]
fn server_echoes_client_close_code_and_closes_tcp() {
    let h = start(quick_config(), |_| Echo);
    let mut s = raw_open(h.local_addr());
    s.write_all(&frame(true, 0x8, &[0x0f, 0xa0, b'b', b'y', b'e']))
        .unwrap();
    assert_eq!(read_close_code(&mut s), 4000);
    // The server closes the TCP connection first.
    assert!(read_to_end(&mut s).is_empty());
    assert!(wait_until(Duration::from_secs(5), || h.stats().closes.get(&4000) == Some(&1)));
    stop(&h);
}

#[test]
fn server_fails_unmasked_frame_with_1002() {
    let h = start(quick_config(), |_| Echo);
    let mut s = raw_open(h.local_addr());
    s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    assert_eq!(read_close_code(&mut s), 1002);
    assert!(read_to_end(&mut s).is_empty());
    stop(&h);
}

#[test]
fn server_fails_invalid_utf8_with_1007() {
    let h = start(quick_config(), |_| Echo);
    let mut s = raw_open(h.local_addr());
    s.write_all(&frame(true, 0x1, &[b'a', 0xff])).unwrap();
    assert_eq!(read_close_code(&mut s), 1007);
    stop(&h);
}

#[test]
fn server_fails_oversized_message_with_1009() {
    let mut config = quick_config();
    config.protocol.max_message_size = 1000;
    let h = start(config, |_| Echo);
    let mut s = raw_open(h.local_addr());
    s.write_all(&frame(false, 0x2, &[0u8; 600])).unwrap();
    s.write_all(&frame(true, 0x0, &[0u8; 600])).unwrap();
    assert_eq!(read_close_code(&mut s), 1009);
    stop(&h);
}

#[test]
fn server_rejects_bad_handshakes_with_their_status() {
    let h = start(quick_config(), |_| Echo);
    let addr = h.local_addr();
    let cases: &[(&str, &str)] = &[
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "HTTP/1.1 426",
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 405",
        ),
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200"),
        ("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404"),
        ("\x16\x03\x01garbage\r\n\r\n", "HTTP/1.1 400"),
    ];
    for (req, want) in cases {
        let mut s = raw(addr);
        s.write_all(req.as_bytes()).unwrap();
        let head = read_head(&mut s);
        assert!(head.starts_with(want), "{req:?} -> {head}");
    }
    let mut s = raw(addr);
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    big.extend(std::iter::repeat_n(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 300).flatten());
    let _ = s.write_all(&big);
    assert!(read_head(&mut s).starts_with("HTTP/1.1 431"));
    stop(&h);
}
