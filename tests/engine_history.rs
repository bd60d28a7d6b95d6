//! Topics with offsets over sockets, across shards: publishers on two shards publish to one
//! topic at once, and every follower, on either shard, gets the same messages at the same
//! offsets, each once, with no gap; one that leaves and comes back resumes where it was.

mod common;
#[path = "common/follow.rs"]
mod follow;

use std::collections::HashMap;

use c10k::{HistoryConfig, Position, ServerConfig};
use common::{client, start, stop};
use follow::{Ws, read_stream, recv_text};
use tungstenite::Message;

const PUBLISHERS: usize = 4;
const EACH: usize = 200;

fn follow(ws: &mut Ws, since: &str) -> Position {
    ws.send(Message::text(format!("follow t {since}"))).unwrap();
    let answer = recv_text(ws);
    assert!(answer.starts_with("resumed t "), "{answer}");
    answer.split(' ').nth(2).unwrap().parse().unwrap()
}

#[test]
fn followers_on_every_shard_see_one_order_and_a_returning_one_resumes() {
    let mut config = ServerConfig::default();
    config.shards = 2;
    config.history = Some(HistoryConfig::default());
    let handle = start(config, |_| follow::Topics);
    let addr = handle.local_addr();
    // Enough followers that both shards have some.
    let mut followers: Vec<Ws> = (0..6).map(|_| client(addr)).collect();
    let starts: Vec<Position> = followers.iter_mut().map(|f| follow(f, "now")).collect();
    assert!(starts.iter().all(|p| *p == starts[0]));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            std::thread::spawn(move || {
                let mut ws = client(addr);
                for i in 0..EACH {
                    ws.send(Message::text(format!("pub t p{p}-{i}"))).unwrap();
                }
                ws.close(None).unwrap();
                while ws.read().is_ok() {}
            })
        })
        .collect();
    let total = PUBLISHERS * EACH;
    // One follower leaves half-way and comes back.
    let mut leaver = followers.pop().unwrap();
    let first_half = read_stream(&mut leaver, 0, total / 2);
    drop(leaver);
    let streams: Vec<_> = followers.iter_mut().map(|f| read_stream(f, 0, total)).collect();
    for p in publishers {
        p.join().unwrap();
    }
    for s in &streams[1..] {
        assert_eq!(s, &streams[0], "every follower sees one order");
    }
    // Each publisher's messages in its own order.
    let mut next: HashMap<String, usize> = HashMap::new();
    for (_, payload) in &streams[0] {
        let (p, i) = payload.split_once('-').unwrap();
        let n = next.entry(p.to_owned()).or_default();
        assert_eq!(i.parse::<usize>().unwrap(), *n, "{payload}");
        *n += 1;
    }
    let seen = first_half.last().unwrap().0;
    let mut back = client(addr);
    back.send(Message::text(format!("follow t {}:{seen}", starts[0].epoch)))
        .unwrap();
    let rest = read_stream(&mut back, seen, total - total / 2);
    let mut whole = first_half;
    whole.extend(rest);
    assert_eq!(
        whole, streams[0],
        "the returning follower has it all, once, in order"
    );
    let answer = recv_text(&mut back);
    assert_eq!(
        answer,
        format!("resumed t {}:{total} {}", starts[0].epoch, total - total / 2)
    );
    drop((back, followers));
    stop(&handle);
}
