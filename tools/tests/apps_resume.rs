//! Resuming topics after a reconnection, through the pubsub and chat handlers on the virtual
//! clock of `c10k::testing`: a resume gets exactly the messages missed, in order, then live ones,
//! none twice at the seam; a position older than the history, or of another epoch, is answered
//! `lost`; plain subscriptions are unchanged; malformed positions and a server without history
//! are answered with errors. And `c10k serve`: history on in the pubsub mode unless
//! `--no-history`, bounded by `--history-messages`.

#[path = "common/procs.rs"]
mod procs;

use std::time::Duration;

use c10k::client::Client;
use c10k::testing::{Received, TestClient, TestServer};
use c10k::{HistoryConfig, Position, ServerConfig};
use c10k_tools::apps::{Chat, PubSub, parse_position};

fn config(history: Option<HistoryConfig>) -> ServerConfig {
    let mut config = ServerConfig::default();
    config.history = history;
    // Nothing but the test's own messages on the wire.
    config.ping_interval = None;
    config
}

fn with_history(max_messages: usize) -> ServerConfig {
    config(Some(HistoryConfig {
        max_messages,
        ..HistoryConfig::default()
    }))
}

/// Every text the client has received, in order.
fn texts(client: &mut TestClient) -> Vec<String> {
    client
        .recv_all()
        .into_iter()
        .map(|r| match r {
            Received::Text(t) => t,
            other => panic!("expected text, got {other:?}"),
        })
        .collect()
}

/// Sends commands, lets the shard run, and returns what the client got back.
fn say<H: c10k::Handler>(
    server: &mut TestServer<H>,
    client: &mut TestClient,
    commands: &[&str],
) -> Vec<String> {
    for c in commands {
        client.send_text(c);
    }
    server.settle();
    texts(client)
}

/// The position of an answer `resumed TOPIC E:O N` or `lost TOPIC E:O` (or the chat's
/// `!resumed E:O N`, `!lost E:O`).
fn position_of(answer: &str, verb: &str) -> Position {
    let words: Vec<&str> = answer.split(' ').collect();
    assert!(words[0] == verb || words[0] == format!("!{verb}"), "{answer:?}");
    let at = if words[0].starts_with('!') {
        words[1]
    } else {
        words[2]
    };
    parse_position(at).unwrap_or_else(|| panic!("no position in {answer:?}"))
}

fn publish(server: &mut TestServer<PubSub>, publisher: &mut TestClient, topic: &str, payloads: &[&str]) {
    let commands: Vec<String> = payloads.iter().map(|p| format!("pub {topic} {p}")).collect();
    let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
    assert_eq!(say(server, publisher, &commands), Vec::<String>::new());
}

#[test]
fn pubsub_resume_gets_exactly_the_missed_messages_in_order_then_live_ones() {
    let mut server = TestServer::new(with_history(100), PubSub);
    let mut publisher = server.connect("/").unwrap();
    let mut first = server.connect("/").unwrap();
    let answer = say(&mut server, &mut first, &["sub news @"]);
    assert_eq!(answer.len(), 1, "{answer:?}");
    let start = position_of(&answer[0], "resumed");
    assert!(answer[0].ends_with(" 0"), "{answer:?}");
    let (e, o) = (start.epoch, start.offset);
    publish(&mut server, &mut publisher, "news", &["one", "two"]);
    assert_eq!(
        texts(&mut first),
        [format!("{} news one", o + 1), format!("{} news two", o + 2)]
    );
    // The connection is lost; three messages are published meanwhile.
    first.reset();
    server.settle();
    publish(&mut server, &mut publisher, "news", &["three", "four", "five"]);
    let mut again = server.connect("/").unwrap();
    let got = say(&mut server, &mut again, &[&format!("sub news @{e}:{}", o + 2)]);
    assert_eq!(
        got,
        [
            format!("{} news three", o + 3),
            format!("{} news four", o + 4),
            format!("{} news five", o + 5),
            format!("resumed news {e}:{} 3", o + 5),
        ]
    );
    // Live ones follow, each once: nothing repeated or skipped at the seam.
    publish(&mut server, &mut publisher, "news", &["six"]);
    assert_eq!(texts(&mut again), [format!("{} news six", o + 6)]);
    // Resuming from the last offset recovers nothing, and says so.
    let mut third = server.connect("/").unwrap();
    let got = say(&mut server, &mut third, &[&format!("sub news @{e}:{}", o + 6)]);
    assert_eq!(got, [format!("resumed news {e}:{} 0", o + 6)]);
}

#[test]
fn pubsub_resume_older_than_the_history_is_answered_lost_then_live() {
    let mut server = TestServer::new(with_history(3), PubSub);
    let mut publisher = server.connect("/").unwrap();
    let mut watcher = server.connect("/").unwrap();
    let start = position_of(&say(&mut server, &mut watcher, &["sub t @"])[0], "resumed");
    publish(&mut server, &mut publisher, "t", &["1", "2", "3", "4", "5", "6"]);
    let (e, o) = (start.epoch, start.offset);
    // Six published, three kept: the first two after `o` are gone.
    let mut late = server.connect("/").unwrap();
    let got = say(&mut server, &mut late, &[&format!("sub t @{e}:{o}")]);
    assert_eq!(got, [format!("lost t {e}:{}", o + 6)]);
    publish(&mut server, &mut publisher, "t", &["7"]);
    assert_eq!(texts(&mut late), [format!("{} t 7", o + 7)]);
    // From a position still kept, it is recovered.
    let mut recent = server.connect("/").unwrap();
    let got = say(&mut server, &mut recent, &[&format!("sub t @{e}:{}", o + 5)]);
    assert_eq!(
        got,
        [
            format!("{} t 6", o + 6),
            format!("{} t 7", o + 7),
            format!("resumed t {e}:{} 2", o + 7)
        ]
    );
}

#[test]
fn pubsub_resume_from_another_epoch_is_answered_lost() {
    let mut server = TestServer::new(with_history(100), PubSub);
    let mut publisher = server.connect("/").unwrap();
    publish(&mut server, &mut publisher, "t", &["a"]);
    let mut c = server.connect("/").unwrap();
    let now = position_of(&say(&mut server, &mut c, &["sub t @"])[0], "resumed");
    let mut other = server.connect("/").unwrap();
    let got = say(&mut server, &mut other, &[&format!("sub t @{}:1", now.epoch + 1)]);
    assert_eq!(got, [format!("lost t {}:{}", now.epoch, now.offset)]);
}

#[test]
fn pubsub_plain_subscription_is_unchanged_beside_an_offset_one() {
    let mut server = TestServer::new(with_history(100), PubSub);
    let mut publisher = server.connect("/").unwrap();
    let mut plain = server.connect("/").unwrap();
    let mut follower = server.connect("/").unwrap();
    assert_eq!(say(&mut server, &mut plain, &["sub t"]), Vec::<String>::new());
    let start = position_of(&say(&mut server, &mut follower, &["sub t @"])[0], "resumed");
    publish(&mut server, &mut publisher, "t", &["hello world"]);
    assert_eq!(texts(&mut plain), ["t hello world"]);
    assert_eq!(
        texts(&mut follower),
        [format!("{} t hello world", start.offset + 1)]
    );
}

#[test]
fn pubsub_answers_a_bad_position_and_a_server_without_history_with_errors() {
    let mut server = TestServer::new(with_history(100), PubSub);
    let mut c = server.connect("/").unwrap();
    for bad in [
        "sub t @x",
        "sub t @1",
        "sub t @1:",
        "sub t @:1",
        "sub t 1:2",
        "sub t @1:2:3",
        "sub t @-1:2",
    ] {
        let got = say(&mut server, &mut c, &[bad]);
        assert!(
            got.len() == 1 && got[0].starts_with("error bad position"),
            "{bad}: {got:?}"
        );
    }
    let mut off = TestServer::new(config(None), PubSub);
    let mut c = off.connect("/").unwrap();
    for cmd in ["sub t @", "sub t @1:1"] {
        let got = say(&mut off, &mut c, &[cmd]);
        assert!(got.len() == 1 && got[0].starts_with("error "), "{cmd}: {got:?}");
    }
    // Plain topics still work there.
    let got = say(&mut off, &mut c, &["sub t", "pub t x"]);
    assert_eq!(got, ["t x"]);
}

#[test]
fn chat_with_since_resumes_the_room_and_notices_start_with_a_bang() {
    let mut server = TestServer::new(with_history(100), Chat);
    let mut alice = server.connect("/chat/r?since=now").unwrap();
    server.settle();
    let got = texts(&mut alice);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("!resumed ") && got[0].ends_with(" 0"),
        "{got:?}"
    );
    let start = position_of(&got[0], "resumed");
    let (e, o) = (start.epoch, start.offset);
    let mut bob = server.connect("/chat/r").unwrap();
    let got = say(&mut server, &mut alice, &["alice: hi"]);
    assert_eq!(got, [format!("{} alice: hi", o + 1)]);
    // A plain member sees messages unchanged.
    assert_eq!(texts(&mut bob), ["alice: hi"]);
    alice.reset();
    server.settle();
    say(&mut server, &mut bob, &["bob: where are you", "bob: hello?"]);
    let mut back = server.connect(&format!("/chat/r?since={e}:{}", o + 1)).unwrap();
    server.settle();
    assert_eq!(
        texts(&mut back),
        [
            format!("{} bob: where are you", o + 2),
            format!("{} bob: hello?", o + 3),
            format!("!resumed {e}:{} 2", o + 3),
        ]
    );
    say(&mut server, &mut bob, &["bob: there you are"]);
    assert_eq!(texts(&mut back), [format!("{} bob: there you are", o + 4)]);
    // Another epoch: lost, with the room's position.
    let mut stranger = server.connect(&format!("/chat/r?since={}:1", e + 1)).unwrap();
    server.settle();
    assert_eq!(texts(&mut stranger), [format!("!lost {e}:{}", o + 4)]);
}

#[test]
fn chat_refuses_a_malformed_since_with_400_and_says_when_there_is_no_history() {
    let mut server = TestServer::new(with_history(100), Chat);
    for bad in ["/chat/r?since=", "/chat/r?since=later", "/chat/r?since=1:x"] {
        let refused = server
            .connect(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad} was accepted"));
        assert_eq!(refused.status, 400, "{bad}");
    }
    let mut off = TestServer::new(config(None), Chat);
    let mut c = off.connect("/chat/r?since=now").unwrap();
    off.settle();
    let got = texts(&mut c);
    assert!(got.len() == 1 && got[0].starts_with("!error "), "{got:?}");
    // The room is joined anyway, without offsets.
    let got = say(&mut off, &mut c, &["still here"]);
    assert_eq!(got, ["still here"]);
}

/// A client of `c10k serve` that waits 30 s at most for anything.
fn client(url: &str) -> Client {
    let c = Client::connect(url).unwrap();
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    c
}

/// Sends each command to `c10k serve` and returns the answer to the last one (`sync` after it
/// when it has none of its own).
fn ask(client: &mut Client, command: &str) -> String {
    client.send_text(command).unwrap();
    client.send_text("sync done").unwrap();
    let mut answers = Vec::new();
    loop {
        match client.recv_message().unwrap() {
            Received::Text(t) if t == "sync done" => return answers.pop().unwrap_or_default(),
            Received::Text(t) => answers.push(t),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn serve_keeps_history_in_pubsub_mode_unless_told_not_to() {
    let on = procs::Serve::start(&[
        "-q",
        "--mode",
        "pubsub",
        "--shards",
        "1",
        "--history-messages",
        "2",
    ]);
    let mut c = client(&on.url);
    let start = position_of(&ask(&mut c, "sub t @"), "resumed");
    for i in 1..=3 {
        c.send_text(&format!("pub t {i}")).unwrap();
    }
    // Its own messages come back to it, with their offsets, once in the history.
    for i in 1..=3 {
        assert_eq!(
            c.recv_message().unwrap(),
            Received::Text(format!("{} t {i}", start.offset + i))
        );
    }
    let (e, o) = (start.epoch, start.offset);
    let mut late = client(&on.url);
    // Two kept: resuming after the first recovers two; from the start, one is gone.
    assert_eq!(
        ask(&mut late, &format!("sub t @{e}:{}", o + 1)),
        format!("resumed t {e}:{} 2", o + 3)
    );
    let mut fresh = client(&on.url);
    assert_eq!(
        ask(&mut fresh, &format!("sub t @{e}:{o}")),
        format!("lost t {e}:{}", o + 3)
    );

    let off = procs::Serve::start(&["-q", "--mode", "pubsub", "--shards", "1", "--no-history"]);
    let mut c = client(&off.url);
    assert!(ask(&mut c, "sub t @").starts_with("error "));
    assert_eq!(ask(&mut c, "sub t"), "");
    c.send_text("pub t x").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("t x".into()));
}
