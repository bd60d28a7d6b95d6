//! The PROXY protocol, on `c10k::testing`: a trusted sender's header gives the connection its
//! client's address (on the request, on `Ctx`, for the per-address limit); a header from anyone
//! else, or a bad one, is refused with 400. (tests/engine_proxy.rs runs HAProxy in front.)

use std::net::SocketAddr;

use c10k::proto::{Message, Request, proxy::V2_SIGNATURE};
use c10k::testing::{Received, TestClient, TestServer};
use c10k::{ConnId, Ctx, Decision, Handler, RejectReason, ServerConfig};

/// Answers every message with the client's address as `Ctx` says it; keeps what the requests
/// said.
#[derive(Default)]
struct Who {
    requests: Vec<Option<SocketAddr>>,
}

impl Handler for Who {
    type State = ();

    fn on_handshake(&mut self, _ctx: &mut Ctx<'_>, _id: ConnId, req: &Request<'_>) -> Decision<()> {
        self.requests.push(req.client_addr());
        Decision::accept()
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &mut (), _msg: Message<'_>) {
        let who = ctx.client_addr(id).map(|a| a.to_string()).unwrap_or_default();
        let _ = ctx.send_text(id, &who);
    }
}

const BALANCER: &str = "127.0.0.1:40000";

fn server(per_address: Option<usize>) -> TestServer<Who> {
    let mut config = ServerConfig::default();
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
    config.max_connections_per_address = per_address;
    TestServer::new(config, Who::default())
}

/// A connection from `from` whose first bytes are `header`, then an upgrade request.
fn through(server: &mut TestServer<Who>, from: &str, header: &[u8]) -> TestClient {
    let mut c = server.open_from(from.parse().unwrap()).unwrap();
    c.write_raw(header);
    c.request("/", &[]);
    server.settle();
    c
}

fn v2_tcp4(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend([0x21, 0x11, 0, 12]);
    h.extend(src);
    h.extend([127, 0, 0, 1]);
    h.extend(sport.to_be_bytes());
    h.extend(9001u16.to_be_bytes());
    h
}

fn who(server: &mut TestServer<Who>, c: &mut TestClient) -> String {
    c.send_text("who");
    server.settle();
    match c.recv() {
        Some(Received::Text(t)) => t,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_trusted_senders_header_gives_the_clients_address_in_either_version() {
    let mut server = server(None);
    let mut v1 = through(
        &mut server,
        BALANCER,
        b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 9001\r\n",
    );
    assert_eq!(v1.response(), Some(Ok(())));
    assert_eq!(who(&mut server, &mut v1), "192.0.2.7:5555");
    let mut v2 = through(&mut server, "10.1.2.3:777", &v2_tcp4([198, 51, 100, 9], 6666));
    assert_eq!(v2.response(), Some(Ok(())));
    assert_eq!(who(&mut server, &mut v2), "198.51.100.9:6666");
    // The balancer's own check (LOCAL): the connection keeps the balancer's address.
    let mut local = V2_SIGNATURE.to_vec();
    local.extend([0x20, 0x00, 0, 0]);
    let mut check = through(&mut server, BALANCER, &local);
    assert_eq!(check.response(), Some(Ok(())));
    assert_eq!(who(&mut server, &mut check), BALANCER);
    assert_eq!(
        server.handler().requests,
        [
            Some("192.0.2.7:5555".parse().unwrap()),
            Some("198.51.100.9:6666".parse().unwrap()),
            Some(BALANCER.parse().unwrap())
        ]
    );
    // A direct client (no header, not trusted) keeps its own address.
    let mut direct = through(&mut server, "192.0.2.50:1234", b"");
    assert_eq!(direct.response(), Some(Ok(())));
    assert_eq!(who(&mut server, &mut direct), "192.0.2.50:1234");
}

#[test]
fn a_header_from_an_untrusted_sender_or_a_bad_one_is_refused_with_400() {
    let mut server = server(None);
    for (from, header) in [
        (
            "192.0.2.50:1234",
            b"PROXY TCP4 6.6.6.6 127.0.0.1 1 2\r\n".to_vec(),
        ),
        ("192.0.2.51:1234", v2_tcp4([6, 6, 6, 6], 1)),
        (BALANCER, b"PROXY TCP4 6.6.6.6 127.0.0.1 01 2\r\n".to_vec()),
        // A trusted sender must send a header: a request alone is not one.
        (BALANCER, Vec::new()),
    ] {
        let mut c = through(&mut server, from, &header);
        let answer = c.response().expect("answered").expect_err("refused");
        assert_eq!(
            answer.status,
            400,
            "{from} {:?}",
            String::from_utf8_lossy(&header)
        );
    }
    assert_eq!(server.stats().rejected.get(&RejectReason::Proxy), Some(&4));
    assert!(server.handler().requests.is_empty(), "no handler saw them");
}

#[test]
fn the_per_address_limit_counts_the_clients_address_not_the_balancers() {
    let mut server = server(Some(1));
    let header = |ip: &str| format!("PROXY TCP4 {ip} 127.0.0.1 5000 9001\r\n").into_bytes();
    // Two clients through one balancer: each has its own place.
    let mut a = through(&mut server, BALANCER, &header("192.0.2.1"));
    let mut b = through(&mut server, BALANCER, &header("192.0.2.2"));
    assert_eq!((a.response(), b.response()), (Some(Ok(())), Some(Ok(()))));
    // A second connection of the first client is one too many.
    let mut again = through(&mut server, BALANCER, &header("192.0.2.1"));
    assert_eq!(again.response().unwrap().unwrap_err().status, 503);
    assert_eq!(server.stats().rejected.get(&RejectReason::AddressLimit), Some(&1));
}
