//! Topics for clients: a small text protocol over WebSocket (`--mode pubsub`), and chat rooms
//! (`--mode chat`).
//!
//! # The pubsub protocol
//! Text messages from a client are commands:
//!
//! | command | effect |
//! |---|---|
//! | `sub TOPIC` | subscribe this connection to TOPIC |
//! | `unsub TOPIC` | unsubscribe |
//! | `pub TOPIC PAYLOAD` | publish: every subscriber of TOPIC (on every shard and node) gets the text `TOPIC PAYLOAD` |
//! | `sync TOKEN` | answered with `sync TOKEN` once every command before it took effect |
//!
//! Topic names are 1 to 128 bytes without spaces. A malformed command is answered with
//! `error WHAT`. Binary messages are refused with close code 1003.
//!
//! # Chat rooms
//! A client connects to `/chat/ROOM` (or `/ROOM`; `/` is the room `lobby`) and is in that room
//! until it leaves. Every message it sends, text or binary, reaches every member of the room on
//! every node, itself included, unchanged and in the order it sent them.

use c10k::ConnId;
use c10k::proto::handshake::Request;
use c10k::proto::{CloseCode, Message, MessageKind};
use c10k::{Ctx, Handler, HttpResponse};

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

impl Handler for PubSub {
    type State = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State, msg: Message<'_>) {
        let Message::Text(text) = msg else {
            let _ = ctx.close(id, CloseCode::Unsupported, "commands are text");
            return;
        };
        let (cmd, rest) = text.split_once(' ').unwrap_or((&text, ""));
        let reply = match cmd {
            "sub" if valid_topic(rest) => ctx.subscribe(id, rest).err().map(|e| format!("error {e}")),
            "unsub" if valid_topic(rest) => ctx.unsubscribe(id, rest).err().map(|e| format!("error {e}")),
            "pub" => match rest.split_once(' ') {
                Some((topic, _)) if valid_topic(topic) => {
                    ctx.publish(topic, MessageKind::Text, rest.as_bytes());
                    None
                }
                _ => Some("error usage: pub TOPIC PAYLOAD".to_owned()),
            },
            "sync" => Some(format!("sync {rest}")),
            "sub" | "unsub" => Some(format!(
                "error bad topic name (1 to {MAX_TOPIC} bytes, no spaces)"
            )),
            _ => Some(format!("error unknown command {cmd:?} (sub, unsub, pub, sync)")),
        };
        if let Some(r) = reply {
            let _ = ctx.send_text(id, &r);
        }
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

impl Handler for Chat {
    /// The connection's room topic (`room:NAME`): a connection is in exactly one room.
    type State = String;

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, room: &mut String, req: &Request<'_>) {
        *room = format!("room:{}", room_of(req.path()));
        let _ = ctx.subscribe(id, room);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, _id: ConnId, room: &mut String, msg: Message<'_>) {
        ctx.publish(room, msg.kind(), msg.as_bytes());
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
    fn topic_names_are_checked() {
        assert!(valid_topic("a"));
        assert!(!valid_topic(""));
        assert!(!valid_topic("a b"));
        assert!(!valid_topic(&"x".repeat(MAX_TOPIC + 1)));
    }
}
