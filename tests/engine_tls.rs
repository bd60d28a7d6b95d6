//! wss: TLS inside the shard loop, over loopback, with a test CA made here: echo, the plain
//! listener beside the TLS one, SNI, the certificate swapped while connections stay open, and
//! every kind of bad input with its answer and its counter.

#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use c10k::TlsFailure;
use c10k::client::{Client, ClientConfig, ClientError, Received, WsUrl};
use c10k::tls::{CertSources, TlsConfig, Trust, client_config};
use common::pki::Pki;
use common::*;

/// A server with a plain listener and a TLS one beside it.
fn tls_server(tls: Arc<TlsConfig>, tweak: impl FnOnce(&mut c10k::ServerConfig)) -> c10k::ServerHandle {
    let mut config = quick_config();
    config.tls = Some(tls);
    config.tls_addr = Some("127.0.0.1:0".parse().unwrap());
    tweak(&mut config);
    start(config, |_| Echo)
}

fn wss_client(addr: SocketAddr, ca: &Path) -> Result<Client, ClientError> {
    let config = ClientConfig {
        tls: Some(client_config(Trust::CaFile(ca)).unwrap()),
        timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    Client::connect_with(&format!("wss://localhost:{}/", addr.port()), &config)
}

/// A rustls client stream to `addr` for `localhost`, trusting `pki`'s CA (for writing raw records).
fn rustls_stream(addr: SocketAddr, pki: &Pki) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let config = client_config(Trust::CaFile(pki.ca())).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    rustls::StreamOwned::new(conn, raw(addr))
}

fn failures(h: &c10k::ServerHandle, why: TlsFailure) -> u64 {
    h.stats().tls_failures.get(&why).copied().unwrap_or(0)
}

fn wait_failure(h: &c10k::ServerHandle, why: TlsFailure) {
    wait_stats(h, Duration::from_secs(10), |s| {
        s.tls_failures.get(&why).copied().unwrap_or(0) >= 1
    });
}

fn one_cert(tag: &str) -> (Pki, Arc<TlsConfig>) {
    let pki = Pki::new(tag);
    let leaf = pki.leaf("leaf", &["localhost", "127.0.0.1"]);
    let tls = TlsConfig::from_files(CertSources {
        default: leaf.files(),
        sni: Vec::new(),
    })
    .unwrap();
    (pki, Arc::new(tls))
}

#[test]
fn echo_over_wss_beside_the_plain_listener() {
    let (pki, tls) = one_cert("echo");
    let h = tls_server(tls, |_| {});
    let tls_addr = h.tls_addr().unwrap();
    let mut c = wss_client(tls_addr, pki.ca()).unwrap();
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
    for m in [b"hello".to_vec(), Vec::new(), vec![7u8; 100_000], big] {
        c.send_binary(&m).unwrap();
        assert_eq!(c.recv_message().unwrap(), Received::Binary(m));
    }
    c.send_text("κόσμε").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("κόσμε".into()));
    c.close(c10k::proto::CloseCode::Normal, "bye").unwrap();
    assert!(matches!(c.recv_message().unwrap(), Received::Close(..)));
    // The plain listener still speaks plain WebSocket.
    let mut ws = client(h.local_addr());
    ws.send(tungstenite::Message::text("plain")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("plain"));
    let s = h.stats();
    assert_eq!(s.tls_handshakes, 1);
    assert_eq!(s.tls_failures.get(&TlsFailure::NoCloseNotify), None, "{s:?}");
    stop(&h);
}

#[test]
fn sni_picks_the_certificate_and_a_reload_keeps_open_connections() {
    let pki = Pki::new("sni");
    let default = pki.leaf("default", &["localhost"]);
    let other = pki.leaf("other", &["other.test"]);
    let tls = Arc::new(
        TlsConfig::from_files(CertSources {
            default: default.files(),
            sni: vec![("other.test".into(), other.files())],
        })
        .unwrap(),
    );
    let h = tls_server(Arc::clone(&tls), |_| {});
    let addr = h.tls_addr().unwrap();
    let config = ClientConfig {
        tls: Some(client_config(Trust::CaFile(pki.ca())).unwrap()),
        ..ClientConfig::default()
    };
    let url = WsUrl::parse(&format!("wss://other.test:{}/", addr.port())).unwrap();
    let mut by_sni = Client::handshake(TcpStream::connect(addr).unwrap(), &url, &config).unwrap();
    by_sni.send_text("sni").unwrap();
    assert_eq!(by_sni.recv_message().unwrap(), Received::Text("sni".into()));

    // A new CA and certificate in the same files, then a reload: the open connection goes on,
    // new handshakes get the new certificate.
    let mut old = wss_client(addr, pki.ca()).unwrap();
    let pki2 = Pki::new("sni-new");
    let fresh = pki2.leaf("default", &["localhost"]);
    std::fs::copy(&fresh.cert, &default.cert).unwrap();
    std::fs::copy(&fresh.key, &default.key).unwrap();
    tls.reload().unwrap();
    old.send_text("still here").unwrap();
    assert_eq!(old.recv_message().unwrap(), Received::Text("still here".into()));
    assert!(
        wss_client(addr, pki.ca()).is_err(),
        "the old CA must not verify the new certificate"
    );
    let mut new = wss_client(addr, pki2.ca()).unwrap();
    new.send_text("new").unwrap();
    assert_eq!(new.recv_message().unwrap(), Received::Text("new".into()));
    stop(&h);
}

#[test]
fn plain_http_on_the_tls_port_is_told_to_use_tls() {
    let (_pki, tls) = one_cert("plain");
    let h = tls_server(tls, |_| {});
    let mut s = raw(h.tls_addr().unwrap());
    s.write_all(UPGRADE).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("TLS"), "{text}");
    wait_failure(&h, TlsFailure::PlainHttp);
    stop(&h);
}

#[test]
fn garbage_gets_an_alert() {
    let (_pki, tls) = one_cert("garbage");
    let h = tls_server(tls, |_| {});
    let mut s = raw(h.tls_addr().unwrap());
    // A handshake record whose content is no ClientHello.
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x08, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(got.first(), Some(&0x15), "an alert record: {got:?}");
    wait_failure(&h, TlsFailure::Handshake);
    stop(&h);
}

#[test]
fn a_bad_record_after_the_handshake_gets_an_alert() {
    let (pki, tls) = one_cert("badrec");
    let h = tls_server(tls, |_| {});
    let addr = h.tls_addr().unwrap();
    let mut s = rustls_stream(addr, &pki);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    // Application data that does not decrypt.
    let mut junk = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    junk.extend([0x5a; 64]);
    s.sock.write_all(&junk).unwrap();
    let mut got = Vec::new();
    let _ = s.sock.read_to_end(&mut got);
    wait_failure(&h, TlsFailure::BadRecord);
    assert!(!got.is_empty(), "the server sends an alert before closing");
    stop(&h);
}

#[test]
fn thousands_of_tiny_records_in_one_read_are_all_opened() {
    let (pki, tls) = one_cert("tiny");
    let h = tls_server(tls, |_| {});
    let addr = h.tls_addr().unwrap();
    let mut s = rustls_stream(addr, &pki);
    s.write_all(UPGRADE).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // A 10,000-byte message sealed 7 bytes a record (about 1,400 records), written at once: one
    // read of the server's holds far more records than its steps per handshake flight.
    let message: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut records = Vec::new();
    for piece in frame(true, 1, &message).chunks(7) {
        s.conn.writer().write_all(piece).unwrap();
        while s.conn.wants_write() {
            s.conn.write_tls(&mut records).unwrap();
        }
    }
    s.sock.write_all(&records).unwrap();
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(
        echo,
        [0x81, 126, (10_000u16 >> 8) as u8, (10_000u16 & 0xff) as u8]
    );
    let mut payload = vec![0u8; message.len()];
    s.read_exact(&mut payload).unwrap();
    assert!(payload == message, "the echo differs");
    assert!(h.stats().tls_failures.is_empty(), "{:?}", h.stats());
    stop(&h);
}

#[test]
fn a_stalled_handshake_is_cut_at_the_handshake_timeout() {
    let (_pki, tls) = one_cert("stall");
    let h = tls_server(tls, |c| c.handshake_timeout = Duration::from_millis(300));
    let mut s = raw(h.tls_addr().unwrap());
    // The start of a ClientHello, then nothing.
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "no HTTP answer inside TLS: {got:?}");
    wait_failure(&h, TlsFailure::HandshakeTimeout);
    assert_eq!(h.stats().connections_open, 0);
    stop(&h);
}

#[test]
fn a_client_that_leaves_without_close_notify_is_counted() {
    let (pki, tls) = one_cert("notify");
    let h = tls_server(tls, |_| {});
    let mut c = wss_client(h.tls_addr().unwrap(), pki.ca()).unwrap();
    c.send_text("x").unwrap();
    c.recv_message().unwrap();
    // The TCP connection ends under the TLS session.
    c.stream().shutdown(std::net::Shutdown::Both).unwrap();
    wait_failure(&h, TlsFailure::NoCloseNotify);
    wait_stats(&h, Duration::from_secs(10), |s| s.connections_open == 0);
    stop(&h);
}

#[test]
fn a_client_that_refuses_the_certificate_is_counted() {
    let (pki, tls) = one_cert("refused");
    let other = Pki::new("refused-other");
    let h = tls_server(tls, |_| {});
    assert!(wss_client(h.tls_addr().unwrap(), other.ca()).is_err());
    wait_failure(&h, TlsFailure::PeerAlert);
    assert_eq!(failures(&h, TlsFailure::BadRecord), 0);
    // The server goes on serving.
    let mut c = wss_client(h.tls_addr().unwrap(), pki.ca()).unwrap();
    c.send_text("after").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("after".into()));
    stop(&h);
}

#[test]
fn tls_alone_on_the_main_address() {
    let (pki, tls) = one_cert("alone");
    let mut config = quick_config();
    config.tls = Some(tls);
    let h = start(config, |_| Echo);
    assert_eq!(h.tls_addr(), None);
    let mut c = wss_client(h.local_addr(), pki.ca()).unwrap();
    c.send_text("only tls").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("only tls".into()));
    stop(&h);
}

/// Session tickets are stateless (the session travels inside the ticket): a ticket given out
/// before 300 other handshakes, which would have turned a 256-session cache over, and before a
/// certificate reload still resumes, and the server counts it.
#[test]
fn a_ticket_resumes_after_a_burst_and_a_reload() {
    let (pki, tls) = one_cert("resume");
    let h = tls_server(Arc::clone(&tls), |_| {});
    let addr = h.tls_addr().unwrap();
    // One client settings object: its session store keeps the tickets of its connections.
    let keeper = ClientConfig {
        tls: Some(client_config(Trust::CaFile(pki.ca())).unwrap()),
        timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    let url = format!("wss://localhost:{}/", addr.port());
    let mut first = Client::connect_with(&url, &keeper).unwrap();
    first.send_text("ticket").unwrap();
    assert_eq!(first.recv_message().unwrap(), Received::Text("ticket".into()));
    drop(first);
    for _ in 0..300 {
        // Fresh settings each time: full handshakes, each given tickets of its own.
        let mut c = wss_client(addr, pki.ca()).unwrap();
        c.send_text("x").unwrap();
        assert_eq!(c.recv_message().unwrap(), Received::Text("x".into()));
    }
    tls.reload().unwrap();
    let before = h.stats().tls_resumed;
    assert_eq!(before, 0, "no handshake so far offered a ticket");
    let mut again = Client::connect_with(&url, &keeper).unwrap();
    again.send_text("resumed").unwrap();
    assert_eq!(again.recv_message().unwrap(), Received::Text("resumed".into()));
    let s = wait_stats(&h, Duration::from_secs(10), |s| s.tls_handshakes >= 302);
    assert_eq!(
        s.tls_resumed, 1,
        "the old ticket resumed: {} handshakes",
        s.tls_handshakes
    );
    stop(&h);
}
