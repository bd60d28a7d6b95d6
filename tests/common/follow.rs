//! A handler for tests of topics with offsets: `sub T`, `follow T now`, `follow T EPOCH:OFFSET`,
//! `pub T TEXT`.
#![allow(dead_code)]

use c10k::proto::{Message, MessageKind};
use c10k::{ConnId, Ctx, Handler, Resume, Since};

/// A small protocol: `sub T`, `follow T now`, `follow T EPOCH:OFFSET`, `pub T TEXT`; answers
/// `resumed T EPOCH:OFFSET N` and `lost T EPOCH:OFFSET`.
pub struct Topics;

pub fn answer(ctx: &mut Ctx<'_>, id: ConnId, topic: &str, r: Resume) {
    let text = match r {
        Resume::Recovered { at, count } => format!("resumed {topic} {at} {count}"),
        Resume::Lost { at } => format!("lost {topic} {at}"),
    };
    let _ = ctx.send_text(id, &text);
}

impl Handler for Topics {
    type State = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &mut (), msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        let words: Vec<&str> = text.splitn(3, ' ').collect();
        match words[..] {
            ["sub", t] => {
                ctx.subscribe(id, t).unwrap();
            }
            ["follow", t, since] => {
                let since = match since {
                    "now" => Since::Now,
                    p => Since::After(p.parse().unwrap()),
                };
                match ctx.subscribe_from(id, t, since) {
                    Ok(Some(r)) => answer(ctx, id, t, r),
                    Ok(None) => {}
                    Err(e) => {
                        let _ = ctx.send_text(id, &format!("error {e}"));
                    }
                }
            }
            ["pub", t, payload] => {
                ctx.publish(t, MessageKind::Text, payload.as_bytes());
            }
            _ => panic!("bad command {text}"),
        }
    }

    fn on_resume(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &mut (), topic: &str, r: Resume) {
        answer(ctx, id, topic, r);
    }
}

/// A tungstenite client over TCP.
pub type Ws = tungstenite::WebSocket<std::net::TcpStream>;

/// The next text message (a Close is a failure).
pub fn recv_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("a message within the read timeout") {
            tungstenite::Message::Text(t) => return t.to_string(),
            tungstenite::Message::Close(_) => panic!("closed"),
            _ => {}
        }
    }
}

/// Reads deliveries (`OFFSET payload`) until `n` were read; checks offsets count up by one.
pub fn read_stream(ws: &mut Ws, after: u64, n: usize) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    let mut last = after;
    while got.len() < n {
        let t = recv_text(ws);
        let (offset, payload) = t.split_once(' ').unwrap();
        let offset: u64 = offset.parse().unwrap_or_else(|_| panic!("not a delivery: {t}"));
        assert_eq!(offset, last + 1, "a gap or a duplicate before {t}");
        last = offset;
        got.push((offset, payload.to_owned()));
    }
    got
}
