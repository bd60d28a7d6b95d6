//! Topics with offsets and resume, on the virtual clock of `c10k::testing`: a subscriber that
//! comes back gets exactly what it missed, in order, then the live stream, with no gap and no
//! duplicate at the seam, or is told plainly that it cannot; plain subscribers see no change.
//! A bridge that keeps history (as one on a broker's stream does) is played by the test through
//! `ServerHandle::publish_at` and `history_load`.

#[path = "common/follow.rs"]
mod follow;

use std::sync::Arc;

use c10k::proto::MessageKind;
use c10k::testing::{Received, TestClient, TestServer};
use c10k::{Bridge, HistoryConfig, Position, SendError, ServerConfig};
use follow::Topics;

fn with_history(history: HistoryConfig) -> TestServer<Topics> {
    let mut c = ServerConfig::default();
    c.history = Some(history);
    TestServer::new(c, Topics)
}

fn texts(c: &mut TestClient) -> Vec<String> {
    c.recv_all()
        .into_iter()
        .filter_map(|r| match r {
            Received::Text(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn say(server: &mut TestServer<Topics>, c: &mut TestClient, text: &str) {
    c.send_text(text);
    server.settle();
}

/// Where `resumed`/`lost` said live messages follow.
fn position(line: &str) -> Position {
    line.split(' ').nth(2).unwrap().parse().unwrap()
}

#[test]
fn a_subscriber_that_comes_back_gets_what_it_missed_once_in_order_then_live() {
    let mut server = with_history(HistoryConfig::default());
    let mut publisher = server.connect("/").unwrap();
    let mut reader = server.connect("/").unwrap();
    say(&mut server, &mut reader, "follow news now");
    let start = texts(&mut reader);
    assert_eq!(start.len(), 1);
    assert!(
        start[0].starts_with("resumed news ") && start[0].ends_with(":0 0"),
        "{start:?}"
    );
    for i in 1..=3 {
        say(&mut server, &mut publisher, &format!("pub news m{i}"));
    }
    assert_eq!(texts(&mut reader), ["1 m1", "2 m2", "3 m3"]);
    let seen = Position {
        offset: 2,
        ..position(&start[0])
    };
    // It drops after 2 (say 3 never reached it), misses 4 and 5.
    reader.reset();
    server.settle();
    for i in 4..=5 {
        say(&mut server, &mut publisher, &format!("pub news m{i}"));
    }
    let mut back = server.connect("/").unwrap();
    say(&mut server, &mut back, &format!("follow news {seen}"));
    let epoch = seen.epoch;
    assert_eq!(
        texts(&mut back),
        ["3 m3", "4 m4", "5 m5", &format!("resumed news {epoch}:5 3")]
    );
    say(&mut server, &mut publisher, "pub news m6");
    assert_eq!(texts(&mut back), ["6 m6"], "live after the seam, nothing twice");
}

#[test]
fn a_publish_queued_before_the_resume_is_not_sent_twice() {
    let mut server = with_history(HistoryConfig::default());
    let mut publisher = server.connect("/").unwrap();
    let mut reader = server.connect("/").unwrap();
    say(&mut server, &mut reader, "follow t now");
    let at = position(&texts(&mut reader)[0]);
    // Both in one turn: the publish waits in the inbox while the resume reads the history
    // that holds it already.
    publisher.send_text("pub t one");
    reader.send_text(&format!("follow t {at}"));
    server.settle();
    let got = texts(&mut reader);
    let ones = got.iter().filter(|t| t.as_str() == "1 one").count();
    assert_eq!(ones, 1, "{got:?}");
}

#[test]
fn a_position_of_another_epoch_or_older_than_the_history_is_told_lost() {
    let mut server = with_history(HistoryConfig {
        max_messages: 2,
        ..HistoryConfig::default()
    });
    let mut publisher = server.connect("/").unwrap();
    let mut reader = server.connect("/").unwrap();
    say(&mut server, &mut reader, "follow t now");
    let at = position(&texts(&mut reader)[0]);
    for i in 1..=5 {
        say(&mut server, &mut publisher, &format!("pub t m{i}"));
    }
    let mut late = server.connect("/").unwrap();
    say(&mut server, &mut late, &format!("follow t {}:1", at.epoch));
    assert_eq!(
        texts(&mut late),
        [format!("lost t {}:5", at.epoch)],
        "2 was forgotten"
    );
    let mut other = server.connect("/").unwrap();
    say(&mut server, &mut other, &format!("follow t {}:4", at.epoch + 1));
    assert_eq!(texts(&mut other), [format!("lost t {}:5", at.epoch)]);
    // Told lost, they follow live from there.
    say(&mut server, &mut publisher, "pub t m6");
    assert_eq!(texts(&mut late), ["6 m6"]);
    assert_eq!(texts(&mut other), ["6 m6"]);
}

#[test]
fn plain_subscribers_get_payloads_unchanged_beside_followers() {
    let mut server = with_history(HistoryConfig::default());
    let mut plain = server.connect("/").unwrap();
    let mut follower = server.connect("/").unwrap();
    say(&mut server, &mut plain, "sub t");
    say(&mut server, &mut follower, "follow t now");
    texts(&mut follower);
    say(&mut server, &mut plain, "pub t hello");
    assert_eq!(texts(&mut plain), ["hello"]);
    assert_eq!(texts(&mut follower), ["1 hello"]);
}

#[test]
fn without_history_a_resume_is_refused_and_nothing_changes() {
    let mut server = TestServer::new(ServerConfig::default(), Topics);
    let mut c = server.connect("/").unwrap();
    say(&mut server, &mut c, "follow t now");
    assert_eq!(texts(&mut c), [format!("error {}", SendError::NoHistory)]);
    say(&mut server, &mut c, "sub u");
    say(&mut server, &mut c, "pub u x");
    assert_eq!(texts(&mut c), ["x"]);
}

/// A bridge that orders messages itself: the test hands them back with `publish_at`.
#[derive(Debug, Default)]
struct Ordered {
    published: std::sync::Mutex<Vec<String>>,
}

impl Bridge for Ordered {
    fn subscribe(&self, _: &str) {}
    fn unsubscribe(&self, _: &str) {}
    fn publish(&self, _: &str, _: MessageKind, payload: &[u8]) {
        self.published
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(payload).into_owned());
    }
    fn keeps_history(&self) -> bool {
        true
    }
}

fn bridged() -> (TestServer<Topics>, Arc<Ordered>) {
    let bridge = Arc::new(Ordered::default());
    let mut c = ServerConfig::default();
    c.history = Some(HistoryConfig::default());
    c.bridge = Some(bridge.clone());
    (TestServer::new(c, Topics), bridge)
}

fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, MessageKind, Vec<u8>)> {
    range
        .map(|o| (o, MessageKind::Text, format!("m{o}").into_bytes()))
        .collect()
}

#[test]
fn through_a_bridge_a_resume_waits_for_the_history_and_publishes_come_back_in_its_order() {
    let (mut server, bridge) = bridged();
    let handle = server.handle();
    let mut reader = server.connect("/").unwrap();
    say(&mut server, &mut reader, "follow t 9:2");
    assert!(texts(&mut reader).is_empty(), "waits for the history");
    // A live message before the load is not sent (the load holds it).
    handle.publish_at("t", MessageKind::Text, b"m3", Position { epoch: 9, offset: 3 });
    handle.history_load("t", 9, entries(1..=4));
    server.settle();
    assert_eq!(texts(&mut reader), ["3 m3", "4 m4", "resumed t 9:4 2"]);
    // A local publish goes to the bridge only; it comes back with its offset.
    say(&mut server, &mut reader, "pub t m5");
    assert!(texts(&mut reader).is_empty());
    assert_eq!(*bridge.published.lock().unwrap(), ["m5"]);
    handle.publish_at("t", MessageKind::Text, b"m5", Position { epoch: 9, offset: 5 });
    handle.publish_at("t", MessageKind::Text, b"m5", Position { epoch: 9, offset: 5 });
    server.settle();
    assert_eq!(texts(&mut reader), ["5 m5"], "the duplicate is dropped");
}

#[test]
fn through_a_bridge_a_lost_epoch_is_told_to_every_follower() {
    let (mut server, _bridge) = bridged();
    let handle = server.handle();
    handle.history_load("t", 9, entries(1..=2));
    let mut a = server.connect("/").unwrap();
    let mut plain = server.connect("/").unwrap();
    say(&mut server, &mut a, "follow t now");
    say(&mut server, &mut plain, "sub t");
    assert_eq!(texts(&mut a), ["resumed t 9:2 0"]);
    // The broker restarted without its data: epoch 10, offsets from 1 again.
    handle.history_load("t", 10, Vec::new());
    server.settle();
    assert_eq!(texts(&mut a), ["lost t 10:0"]);
    handle.publish_at("t", MessageKind::Text, b"n1", Position { epoch: 10, offset: 1 });
    server.settle();
    assert_eq!(texts(&mut a), ["1 n1"]);
    assert_eq!(texts(&mut plain), ["n1"]);
    // A gap the bridge could not fill is told too, then live goes on.
    handle.publish_at("t", MessageKind::Text, b"n4", Position { epoch: 10, offset: 4 });
    server.settle();
    assert_eq!(texts(&mut a), ["lost t 10:3", "4 n4"]);
}
