//! Topics for clients: a small text protocol over WebSocket (`--mode pubsub`), and chat rooms
//! (`--mode chat`).
//!
//! # The pubsub protocol
//! Text messages from a client are commands:
//!
//! | command | effect |
//! |---|---|
//! | `sub TOPIC` | subscribe this connection to TOPIC |
//! | `sub TOPIC @` | subscribe, following offsets from now: answered `resumed TOPIC EPOCH:OFFSET 0` |
//! | `sub TOPIC @EPOCH:OFFSET` | subscribe and resume after that message: the messages missed since are delivered first, then `resumed TOPIC EPOCH:OFFSET N` (N of them), or `lost TOPIC EPOCH:OFFSET` when the gap cannot be filled |
//! | `unsub TOPIC` | unsubscribe |
//! | `pub TOPIC PAYLOAD` | publish: every subscriber of TOPIC (on every shard and node) gets the text `TOPIC PAYLOAD` |
//! | `sync TOKEN` | answered with `sync TOKEN` once every command before it took effect |
//!
//! Topic names are 1 to 128 bytes without spaces. A malformed command is answered with
//! `error WHAT`, and so is a `@` subscription on a server without history (`--no-history`).
//! Binary messages are refused with close code 1003.
//!
//! On a subscription made with `@`, every delivery carries the message's offset first:
//! `OFFSET TOPIC PAYLOAD`. The `EPOCH:OFFSET` of `resumed` and `lost` is the topic's position
//! when the answer was made: live messages follow after it. A client keeps the epoch of the last
//! answer and the offset of the last delivery, and resumes from them after a reconnection (an
//! epoch is a 64-bit number: JavaScript keeps it as text, a `Number` would round it). A
//! `lost` can also come later, unasked, when the node lost the topic's history (a new epoch):
//! messages may be missing from that point.
//!
//! # Chat rooms
//! A client connects to `/chat/ROOM` (or `/ROOM`; `/` is the room `lobby`) and is in that room
//! until it leaves. Every message it sends, text or binary, reaches every member of the room on
//! every node, itself included, unchanged and in the order it sent them.
//!
//! With `?since=now` (follow offsets from now) or `?since=EPOCH:OFFSET` (resume after that
//! message) in the URL, each message arrives as `OFFSET MESSAGE`, and the room says where the
//! connection stands with notices that start with `!`, so that they never look like a message
//! (which starts with a digit): `!resumed EPOCH:OFFSET N` once the N messages missed since were
//! delivered (0 for `now`), `!lost EPOCH:OFFSET` when the gap cannot be filled, `!error WHAT`
//! when the server keeps no history (the room is then joined without offsets). A malformed
//! `since` is refused with 400.

use c10k::proto::handshake::Request;
use c10k::proto::{CloseCode, Message, MessageKind};
use c10k::{ConnId, Ctx, Decision, Handler, HttpResponse, Position, Resume, SendError, Since};

/// The page served on `GET /` in chat mode.
pub const CHAT_PAGE: &str = include_str!("chat.html");

/// The longest topic name.
pub const MAX_TOPIC: usize = 128;

/// The pubsub protocol handler.
#[derive(Debug, Default, Clone, Copy)]
pub struct PubSub;

fn valid_topic(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_TOPIC && !t.contains([' ', '\n', '\r', '\t'])
}

/// Parses `EPOCH:OFFSET` (two decimal numbers).
pub fn parse_position(s: &str) -> Option<Position> {
    let (epoch, offset) = s.split_once(':')?;
    let number = |n: &str| {
        (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| n.parse::<u64>().ok())
            .flatten()
    };
    Some(Position {
        epoch: number(epoch)?,
        offset: number(offset)?,
    })
}

/// Parses where a subscription starts: `now`, or `EPOCH:OFFSET` to resume after that message.
pub fn parse_since(s: &str) -> Option<Since> {
    if s == "now" {
        Some(Since::Now)
    } else {
        parse_position(s).map(Since::After)
    }
}

/// The words of an answer to a resume: `resumed EPOCH:OFFSET N` or `lost EPOCH:OFFSET`.
fn resume_words(resume: Resume) -> String {
    match resume {
        Resume::Recovered { at, count } => format!("resumed {}:{} {count}", at.epoch, at.offset),
        Resume::Lost { at } => format!("lost {}:{}", at.epoch, at.offset),
    }
}

/// The pubsub answer to a resume: `resumed TOPIC EPOCH:OFFSET N` or `lost TOPIC EPOCH:OFFSET`.
pub fn pubsub_notice(topic: &str, resume: Resume) -> String {
    let words = resume_words(resume);
    let (verb, rest) = words.split_once(' ').unwrap_or((&words, ""));
    format!("{verb} {topic} {rest}")
}

/// The chat notice of a resume: `!resumed EPOCH:OFFSET N` or `!lost EPOCH:OFFSET`.
pub fn chat_notice(resume: Resume) -> String {
    format!("!{}", resume_words(resume))
}

/// `sub TOPIC`, `sub TOPIC @` or `sub TOPIC @EPOCH:OFFSET`: the answer to send, if any.
fn sub(ctx: &mut Ctx<'_>, id: ConnId, rest: &str) -> Option<String> {
    let (topic, at) = match rest.split_once(' ') {
        Some((topic, at)) => (topic, Some(at)),
        None => (rest, None),
    };
    if !valid_topic(topic) {
        return Some(format!(
            "error bad topic name (1 to {MAX_TOPIC} bytes, no spaces)"
        ));
    }
    let Some(at) = at else {
        return ctx.subscribe(id, topic).err().map(|e| format!("error {e}"));
    };
    let since = match at.strip_prefix('@') {
        Some("") => Since::Now,
        Some(p) => match parse_position(p) {
            Some(p) => Since::After(p),
            None => return Some(format!("error bad position {at:?} (@ or @EPOCH:OFFSET)")),
        },
        None => return Some(format!("error bad position {at:?} (@ or @EPOCH:OFFSET)")),
    };
    match ctx.subscribe_from(id, topic, since) {
        // The messages recovered are queued already: the answer comes after them.
        Ok(Some(resume)) => Some(pubsub_notice(topic, resume)),
        // The topic's history is loading: `on_resume` answers.
        Ok(None) => None,
        Err(SendError::NoHistory) => {
            Some("error no history on this server: `sub TOPIC` without @".to_owned())
        }
        Err(e) => Some(format!("error {e}")),
    }
}

impl Handler for PubSub {
    type State = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State, msg: Message<'_>) {
        let Message::Text(text) = msg else {
            let _ = ctx.close(id, CloseCode::Unsupported, "commands are text");
            return;
        };
        let (cmd, rest) = text.split_once(' ').unwrap_or((&text, ""));
        let reply = match cmd {
            "sub" => sub(ctx, id, rest),
            "unsub" if valid_topic(rest) => ctx.unsubscribe(id, rest).err().map(|e| format!("error {e}")),
            "pub" => match rest.split_once(' ') {
                Some((topic, _)) if valid_topic(topic) => {
                    ctx.publish(topic, MessageKind::Text, rest.as_bytes());
                    None
                }
                _ => Some("error usage: pub TOPIC PAYLOAD".to_owned()),
            },
            "sync" => Some(format!("sync {rest}")),
            "unsub" => Some(format!(
                "error bad topic name (1 to {MAX_TOPIC} bytes, no spaces)"
            )),
            _ => Some(format!("error unknown command {cmd:?} (sub, unsub, pub, sync)")),
        };
        if let Some(r) = reply {
            let _ = ctx.send_text(id, &r);
        }
    }

    fn on_resume(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut (), topic: &str, resume: Resume) {
        let _ = ctx.send_text(id, &pubsub_notice(topic, resume));
    }
}

/// The chat-room handler.
#[derive(Debug, Default, Clone, Copy)]
pub struct Chat;

/// The room a request path names.
pub fn room_of(path: &str) -> &str {
    let room = path
        .strip_prefix("/chat/")
        .unwrap_or(path.trim_start_matches('/'));
    if valid_topic(room) { room } else { "lobby" }
}

/// The `since` of a chat URL's query: `Ok(None)` without one, `Err` for a malformed one.
pub fn since_of(query: Option<&str>) -> Result<Option<Since>, String> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("since="))
    else {
        return Ok(None);
    };
    parse_since(value)
        .map(Some)
        .ok_or_else(|| format!("bad since {value:?}: now or EPOCH:OFFSET\n"))
}

/// A chat connection: its room, and where its subscription starts.
#[derive(Debug, Default)]
pub struct ChatMember {
    /// The room's topic, `room:NAME`: a connection is in exactly one room.
    pub topic: String,
    /// Where the subscription starts, with offsets (`?since=`), or `None` for a plain one.
    pub since: Option<Since>,
}

impl Handler for Chat {
    type State = ChatMember;

    fn on_handshake(&mut self, _ctx: &mut Ctx<'_>, _id: ConnId, req: &Request<'_>) -> Decision<ChatMember> {
        match since_of(req.query()) {
            Ok(since) => Decision::accept_with(ChatMember {
                topic: format!("room:{}", room_of(req.path())),
                since,
            }),
            Err(e) => Decision::reject(400, &e),
        }
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, member: &mut ChatMember, _req: &Request<'_>) {
        let Some(since) = member.since else {
            let _ = ctx.subscribe(id, &member.topic);
            return;
        };
        let notice = match ctx.subscribe_from(id, &member.topic, since) {
            Ok(Some(resume)) => chat_notice(resume),
            Ok(None) => return,
            Err(e) => {
                // The room is still joined, without offsets.
                member.since = None;
                let _ = ctx.subscribe(id, &member.topic);
                format!("!error {e}")
            }
        };
        let _ = ctx.send_text(id, &notice);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, _id: ConnId, member: &mut ChatMember, msg: Message<'_>) {
        ctx.publish(&member.topic, msg.kind(), msg.as_bytes());
    }

    fn on_resume(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: ConnId,
        _member: &mut ChatMember,
        _topic: &str,
        resume: Resume,
    ) {
        let _ = ctx.send_text(id, &chat_notice(resume));
    }

    fn on_http(&mut self, _ctx: &mut Ctx<'_>, req: &Request<'_>) -> HttpResponse {
        match (req.method(), req.path()) {
            ("GET", "/") => HttpResponse::html(200, CHAT_PAGE),
            ("GET", _) => HttpResponse::not_found(),
            _ => HttpResponse::text(405, "method not allowed\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_come_from_the_path() {
        assert_eq!(room_of("/chat/rust"), "rust");
        assert_eq!(room_of("/games"), "games");
        assert_eq!(room_of("/"), "lobby");
        assert_eq!(room_of("/chat/"), "lobby");
    }

    #[test]
    fn positions_and_since_parse_and_refuse_anything_else() {
        assert_eq!(parse_position("3:42"), Some(Position { epoch: 3, offset: 42 }));
        assert_eq!(parse_since("now"), Some(Since::Now));
        assert_eq!(
            parse_since("0:0"),
            Some(Since::After(Position { epoch: 0, offset: 0 }))
        );
        for bad in [
            "",
            ":",
            "3:",
            ":4",
            "3",
            "3:4:5",
            "-1:2",
            "+1:2",
            "a:1",
            "1:99999999999999999999",
            "now ",
        ] {
            assert_eq!(parse_since(bad), None, "{bad:?}");
        }
        assert_eq!(since_of(None), Ok(None));
        assert_eq!(since_of(Some("x=1")), Ok(None));
        assert_eq!(since_of(Some("x=1&since=now")), Ok(Some(Since::Now)));
        assert!(since_of(Some("since=later")).is_err());
    }

    #[test]
    fn notices_name_the_position_and_the_count() {
        let at = Position { epoch: 7, offset: 12 };
        assert_eq!(
            pubsub_notice("t", Resume::Recovered { at, count: 3 }),
            "resumed t 7:12 3"
        );
        assert_eq!(pubsub_notice("t", Resume::Lost { at }), "lost t 7:12");
        assert_eq!(chat_notice(Resume::Recovered { at, count: 0 }), "!resumed 7:12 0");
        assert_eq!(chat_notice(Resume::Lost { at }), "!lost 7:12");
    }

    #[test]
    fn topic_names_are_checked() {
        assert!(valid_topic("a"));
        assert!(!valid_topic(""));
        assert!(!valid_topic("a b"));
        assert!(!valid_topic(&"x".repeat(MAX_TOPIC + 1)));
    }
}
