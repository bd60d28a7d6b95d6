//! How connections live and die, on the virtual clock of `c10k::testing`: keep-alive, handshake
//! and close deadlines, the closing handshake the server starts, graceful shutdown. The same
//! shard code as over TCP (engine_lifecycle.rs keeps the cases where the kernel is the point),
//! with the production timeouts: a minute of deadlines takes no time at all.

mod common;

use std::time::Duration;

use c10k::proto::{CloseCode, MessageKind};
use c10k::testing::{Fired, Received, TestClient, TestServer};
use c10k::{RejectReason, ServerConfig};
use common::*;

/// The timing wheel's resolution: a deadline fires in its 10 ms tick.
const TICK: Duration = Duration::from_millis(10);

fn keepalive() -> ServerConfig {
    let mut c = ServerConfig::default();
    c.ping_interval = Some(Duration::from_secs(30));
    c.pong_timeout = Duration::from_secs(30);
    c
}

fn probe_server(config: ServerConfig) -> (TestServer<Probe>, Events) {
    let events = Events::default();
    (TestServer::new(config, Probe::new(&events)), events)
}

fn open(server: &mut TestServer<Probe>) -> TestClient {
    server.connect("/").expect("upgraded")
}

fn when(fired: &[(Duration, Fired)], what: Fired) -> Duration {
    fired
        .iter()
        .find(|(_, f)| *f == what)
        .unwrap_or_else(|| panic!("{what:?} did not fire: {fired:?}"))
        .0
}

// ---- keep-alive ----

#[test]
fn a_client_that_never_answers_pings_is_dropped_with_1006_at_the_pong_deadline() {
    let (mut server, events) = probe_server(keepalive());
    let mut c = open(&mut server);
    c.set_auto_reply(false);
    server.advance(Duration::from_secs(90));
    let fired = server.fired();
    let ping = when(&fired, Fired::Ping(c.id()));
    let pong = when(&fired, Fired::Pong(c.id()));
    assert!(
        ping >= Duration::from_secs(15) && ping <= Duration::from_secs(30) + TICK,
        "{ping:?}"
    );
    assert!(pong - ping >= Duration::from_secs(30) && pong - ping <= Duration::from_secs(30) + TICK);
    assert_eq!(c.recv(), Some(Received::Ping(Vec::new())));
    assert_eq!(c.recv(), None, "no Close frame: the peer is gone");
    assert!(c.server_gone());
    let st = server.stats();
    assert_eq!((st.pong_timeouts, st.sockets, st.timers), (1, 0, 0));
    assert_eq!(st.closes.get(&1006), Some(&1));
    assert_eq!(events.closes(c.id()), [1006], "on_close exactly once");
}

#[test]
fn a_client_that_answers_pings_stays_for_many_intervals_and_still_echoes() {
    let (mut server, events) = probe_server(keepalive());
    let mut c = open(&mut server);
    let mut pings = 0;
    for _ in 0..20 {
        server.advance(Duration::from_secs(15));
        // Reading answers the pings (as a browser does).
        pings += c
            .recv_all()
            .iter()
            .filter(|m| matches!(m, Received::Ping(_)))
            .count();
    }
    // Five minutes: a ping every 30 s of silence.
    assert!((9..=10).contains(&pings), "{pings} pings in 300 s");
    assert!(events.closes(c.id()).is_empty());
    let st = server.stats();
    assert_eq!((st.pong_timeouts, st.connections_open), (0, 1));
    assert_eq!(st.pings_sent, pings as u64);
    c.send_text("still here");
    server.settle();
    assert_eq!(c.recv(), Some(Received::Text("still here".into())));
}

#[test]
fn first_pings_of_connections_opened_together_spread_over_the_second_half_interval() {
    let (mut server, _) = probe_server(keepalive());
    let clients: Vec<_> = (0..64).map(|_| open(&mut server)).collect();
    server.advance(Duration::from_secs(31));
    let mut at: Vec<Duration> = server
        .fired()
        .iter()
        .filter(|(_, f)| matches!(f, Fired::Ping(_)))
        .map(|(t, _)| *t)
        .collect();
    at.sort();
    assert_eq!(at.len(), 64, "one first ping each");
    // Never in the first half of the interval, and drawn over the second half, not together.
    assert!(at[0] >= Duration::from_secs(15), "{at:?}");
    assert!(at[63] <= Duration::from_secs(30) + TICK, "{at:?}");
    at.dedup();
    assert!(at.len() >= 32, "first pings bunched in {} ticks", at.len());
    for mut c in clients {
        assert_eq!(c.recv(), Some(Received::Ping(Vec::new())));
    }
}

#[test]
fn no_ping_and_no_timer_without_a_ping_interval() {
    let mut config = ServerConfig::default();
    config.ping_interval = None;
    let (mut server, _) = probe_server(config);
    let mut c = open(&mut server);
    assert_eq!(
        server.stats().timers,
        0,
        "an open connection without keep-alive arms no timer"
    );
    server.advance(Duration::from_secs(3600));
    assert_eq!(c.recv(), None);
    assert!(server.fired().is_empty());
    let st = server.stats();
    assert_eq!((st.pings_sent, st.connections_open), (0, 1));
}

// ---- handshake deadline ----

fn answer_408(c: &mut TestClient) {
    let answer = c.response().expect("an answer").expect_err("not upgraded");
    assert_eq!(answer.status, 408);
    assert_eq!(answer.body, b"handshake timeout\n");
}

#[test]
fn a_slowloris_gets_408_at_the_handshake_deadline_and_the_connection_closes() {
    let (mut server, _) = probe_server(ServerConfig::default());
    let mut c = server.open();
    c.write_raw(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n");
    server.advance(Duration::from_secs(60));
    // The deadline is the timeout plus up to an eighth of it, drawn per connection.
    let at = when(&server.fired(), Fired::Handshake(c.id()));
    assert!(
        at >= Duration::from_secs(10) && at <= Duration::from_millis(11_250) + TICK,
        "{at:?}"
    );
    answer_408(&mut c);
    assert!(c.server_closed());
    c.finish();
    server.settle();
    let st = server.stats();
    assert_eq!(st.rejected.get(&RejectReason::Timeout), Some(&1));
    assert_eq!((st.handshaking, st.handshakes, st.sockets), (0, 0, 0));
}

#[test]
fn trickled_bytes_do_not_extend_the_handshake_deadline() {
    let (mut server, _) = probe_server(ServerConfig::default());
    let mut c = server.open();
    // One byte every 100 ms would take 20 s to finish the request.
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    for b in request {
        c.write_raw(std::slice::from_ref(b));
        server.advance(Duration::from_millis(100));
        if c.unread() > 0 {
            break;
        }
    }
    assert!(
        server.now() <= Duration::from_millis(11_250) + TICK * 10,
        "{:?}",
        server.now()
    );
    answer_408(&mut c);
    assert_eq!(server.stats().rejected.get(&RejectReason::Timeout), Some(&1));
}

// ---- the closing handshake the server starts ----

#[test]
fn a_server_close_gets_the_clients_echo_and_reports_its_code() {
    let (mut server, events) = probe_server(ServerConfig::default());
    let mut c = open(&mut server);
    c.send_text("close:4001:bye");
    server.settle();
    // Reading the Close frame echoes it; the server then closes the connection.
    assert_eq!(
        c.recv(),
        Some(Received::Close(CloseCode::from(4001), "bye".into()))
    );
    server.settle();
    assert!(
        c.server_gone(),
        "the client closed after the server: nothing lingers"
    );
    assert_eq!(events.closes(c.id()), [4001], "on_close exactly once");
    let st = server.stats();
    assert_eq!((st.close_timeouts, st.sockets), (0, 0));
    assert_eq!(st.closes.get(&4000), Some(&1), "counted under its range");
    assert!(server.fired().is_empty(), "no deadline was needed");
}

#[test]
fn a_client_that_never_answers_the_close_is_dropped_at_the_close_timeout() {
    let (mut server, events) = probe_server(ServerConfig::default());
    let mut c = open(&mut server);
    c.set_auto_reply(false);
    c.send_text("close:4001:bye");
    server.settle();
    let sent = server.now();
    assert_eq!(
        c.recv(),
        Some(Received::Close(CloseCode::from(4001), "bye".into()))
    );
    server.advance(Duration::from_secs(60));
    let at = when(&server.fired(), Fired::Closing(c.id()));
    let close_timeout = ServerConfig::default().close_timeout;
    assert!(
        at - sent >= close_timeout && at - sent <= close_timeout + TICK,
        "{at:?}"
    );
    assert!(c.server_gone());
    assert_eq!(
        events.closes(c.id()),
        [1006],
        "no Close came back: abnormal closure"
    );
    assert_eq!(server.stats().close_timeouts, 1);
}

#[test]
fn data_after_the_servers_close_is_not_echoed() {
    let (mut server, events) = probe_server(ServerConfig::default());
    let mut c = open(&mut server);
    c.set_auto_reply(false);
    // The data right behind the command arrives in the same read as the command.
    c.send_text("close:4001:bye");
    c.send_text("after");
    server.settle();
    assert_eq!(
        c.recv_all(),
        [Received::Close(CloseCode::from(4001), "bye".into())],
        "the Close frame alone"
    );
    // Data sent after the server's Close frame arrived is not echoed either.
    c.write_raw(&frame(true, 0x1, b"later"));
    c.write_raw(&close_frame(4001, ""));
    server.settle();
    assert_eq!(c.recv_all(), []);
    assert!(c.server_closed());
    c.finish();
    server.settle();
    assert_eq!(events.closes(c.id()), [4001]);
}

// ---- graceful shutdown ----

fn going_away() -> Received {
    Received::Close(CloseCode::from(1001), "server shutting down".into())
}

fn shutdown_config() -> ServerConfig {
    let mut c = keepalive();
    c.drain_timeout = Duration::from_secs(30);
    c
}

#[test]
fn a_shutdown_sends_1001_to_every_client_and_leaves_no_sockets_or_timers() {
    let (mut server, events) = probe_server(shutdown_config());
    let mut clients: Vec<_> = (0..4).map(|_| open(&mut server)).collect();
    server.shutdown();
    // The lame-duck period first, then the drain.
    server.advance(Duration::from_secs(10));
    for c in &mut clients {
        assert_eq!(c.recv(), Some(going_away()));
    }
    server.settle();
    assert!(server.finished(), "every client answered: {:?}", server.stats());
    let st = server.stats();
    assert_eq!((st.sockets, st.timers, st.connections_open), (0, 0, 0), "{st:#?}");
    assert_eq!(st.closes.get(&1001), Some(&4));
    assert_eq!(
        events.all().iter().filter(|e| matches!(e, Ev::Close(..))).count(),
        4
    );
}

#[test]
fn a_shutdown_ends_at_the_drain_timeout_even_if_a_client_never_answers() {
    let mut config = shutdown_config();
    config.close_timeout = Duration::from_secs(60);
    let drain = Duration::from_secs(5);
    config.drain_timeout = drain;
    let (mut server, _) = probe_server(config);
    let mut answering: Vec<_> = (0..3).map(|_| open(&mut server)).collect();
    let mut silent = open(&mut server);
    silent.set_auto_reply(false);
    // And one still in its handshake.
    let mut half = server.open();
    half.write_raw(b"GET / HTTP/1.1\r\n");
    let began = server.now();
    server.shutdown();
    for c in &mut answering {
        assert_eq!(c.recv(), Some(going_away()));
    }
    server.advance(Duration::from_secs(120));
    assert!(server.finished());
    let fired = server.fired();
    // No lame-duck period by default: the drain starts at once.
    let ended = when(&fired, Fired::Drain);
    assert!(
        ended - began >= drain && ended - began <= drain + TICK,
        "{fired:?}"
    );
    assert_eq!(silent.recv(), Some(going_away()));
    assert!(silent.server_gone() && half.server_gone());
    let st = server.stats();
    assert_eq!((st.sockets, st.timers), (0, 0));
    assert_eq!(st.closes.get(&1001), Some(&3));
    assert_eq!(st.closes.get(&1006), Some(&1));
}

#[test]
fn a_drain_waits_for_a_close_answer_past_the_close_timeout_until_the_drain_timeout() {
    // A drain of many connections on a busy machine: answers come late. The close timeout must
    // not cut them off while the operator's drain budget lasts.
    let mut config = shutdown_config();
    config.close_timeout = Duration::from_millis(200);
    config.drain_timeout = Duration::from_secs(20);
    let (mut server, _) = probe_server(config);
    let mut late = open(&mut server);
    late.set_auto_reply(false);
    server.shutdown();
    server.advance(Duration::from_secs(6));
    assert_eq!(late.recv(), Some(going_away()));
    server.advance(Duration::from_secs(5));
    // Still open long past the close timeout: the answer is taken and the server closes.
    late.write_raw(&close_frame(1001, ""));
    server.settle();
    assert!(late.server_closed());
    late.finish();
    server.settle();
    assert!(server.finished());
    let st = server.stats();
    assert_eq!(st.closes.get(&1001), Some(&1), "{st:#?}");
    assert_eq!(
        st.closes.get(&1006),
        None,
        "dropped at the close timeout: {st:#?}"
    );
    assert_eq!(st.close_timeouts, 0);
}

// ---- timers of the handler ----

/// Sets three timers at its first message and cancels the second at once; when the third
/// fires, tries to cancel the first (which fired already) and sets one more from there.
#[derive(Default)]
struct Timers {
    fired: Vec<u64>,
    ids: Vec<c10k::TimerId>,
    cancels: Vec<(&'static str, bool)>,
}

impl c10k::Handler for Timers {
    type State = ();
    fn on_message(
        &mut self,
        ctx: &mut c10k::Ctx<'_>,
        _: c10k::ConnId,
        _: &mut (),
        _: c10k::proto::Message<'_>,
    ) {
        let a = ctx.set_timer(Duration::from_millis(300), 1);
        let b = ctx.set_timer(Duration::from_millis(600), 2);
        let c = ctx.set_timer(Duration::from_secs(900), 3);
        self.ids = vec![a, b, c];
        self.cancels.push(("cancel pending", ctx.cancel_timer(b)));
        self.cancels.push(("cancel twice", ctx.cancel_timer(b)));
    }
    fn on_timer(&mut self, ctx: &mut c10k::Ctx<'_>, token: u64) {
        self.fired.push(token);
        if token == 3 {
            self.cancels.push(("cancel fired", ctx.cancel_timer(self.ids[0])));
            // Timers may be set from a timer callback too.
            ctx.set_timer(Duration::ZERO, 4);
        }
    }
}

#[test]
fn handler_timers_fire_once_at_their_time_and_cancelled_ones_never() {
    let mut server = TestServer::new(ServerConfig::default(), Timers::default());
    let mut c = server.connect("/").unwrap();
    c.send(MessageKind::Text, b"go");
    server.settle();
    let set = server.now();
    server.advance(Duration::from_secs(3600));
    let fired: Vec<_> = server
        .fired()
        .into_iter()
        .filter_map(|(at, f)| match f {
            Fired::Timer(t) => Some((t, at - set)),
            _ => None,
        })
        .collect();
    assert_eq!(fired.len(), 3, "{fired:?}");
    assert_eq!(fired[0].0, 1);
    assert!(fired[0].1 >= Duration::from_millis(300) && fired[0].1 <= Duration::from_millis(300) + TICK);
    assert_eq!(fired[1].0, 3);
    assert!(fired[1].1 >= Duration::from_secs(900) && fired[1].1 <= Duration::from_secs(900) + TICK);
    assert_eq!(fired[2].0, 4);
    assert!(
        fired[2].1 <= Duration::from_secs(900) + TICK * 2,
        "a zero delay fires at the next tick"
    );
    assert_eq!(server.handler().fired, [1, 3, 4]);
    assert_eq!(
        server.handler().cancels,
        [
            ("cancel pending", true),
            ("cancel twice", false),
            ("cancel fired", false)
        ]
    );
    assert_eq!(server.stats().timers, 0);
}

#[test]
fn a_handshake_begun_before_a_shutdown_is_answered_and_then_told_to_go() {
    let (mut server, events) = probe_server(shutdown_config());
    let mut c = server.open();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    c.write_raw(&request[..20]);
    server.settle();
    server.shutdown();
    // Not refused: the rest of its request is read, it is upgraded, then sent 1001.
    c.write_raw(&request[20..]);
    server.settle();
    assert_eq!(c.response(), Some(Ok(())));
    assert_eq!(c.recv(), Some(going_away()));
    server.settle();
    assert!(server.finished());
    assert_eq!(events.closes(c.id()), [1001]);
}
