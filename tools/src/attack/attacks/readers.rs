//! slow-reader: large messages for connections that never read. In echo mode each attacking
//! connection sends [`LARGE_COUNT`] messages of [`LARGE_MESSAGE`] bytes and never reads their
//! echoes; in chat mode `--scale` subscribers join the URL's room with a 4 KiB receive buffer and
//! stop reading, and one publisher (who reads) sends the messages to the room; in pubsub mode the
//! subscribers subscribe to one topic and the publisher publishes on it. What the server does
//! with what it cannot deliver is the answer: a cap on each queue and a close (1008), a dropped
//! message, or memory that grows by a message per reader.

use std::time::{Duration, Instant};

use c10k::proto::OpCode;

use super::{Ctx, DRAIN_WAIT, Outcome};
use crate::attack::App;
use crate::attack::fleet::{Fleet, News};
use crate::attack::frames;
use crate::attack::peer::{Spec, Stage};

/// The size of each large message.
pub const LARGE_MESSAGE: u64 = 16_000_000;
/// Large messages each sender sends.
pub const LARGE_COUNT: u32 = 4;
/// The receive buffer of the connections that do not read.
pub const READER_RCVBUF: usize = 4 << 10;
/// A sender queues this much of its message at a time.
const PIECE: usize = 256 << 10;
/// The topic of pubsub mode.
const TOPIC: &str = "c10k-attack-slow-reader";
/// The longest wait for the subscribers to be in place before the publisher starts.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(10);
/// The longest poll.
const TURN: Duration = Duration::from_millis(5);

/// One connection sending large messages, a piece at a time.
#[derive(Debug)]
struct Sender {
    key: usize,
    left: u32,
    offset: u64,
    mask: [u8; 4],
    /// The first bytes of every message (`pub TOPIC ` in pubsub mode), then `x`s.
    prefix: Vec<u8>,
}

/// Runs slow-reader.
pub(super) fn slow_reader(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let mut fleet = Fleet::new(ctx.target, 0x510e).map_err(|e| e.to_string())?;
    let readers = ctx.scale;
    let echo = ctx.app == App::Echo;
    let reader = Spec {
        rcvbuf: Some(READER_RCVBUF),
        ..Spec::upgrade(if echo { "" } else { "subscriber: " })
    };
    for _ in 0..readers {
        fleet.add(reader.clone());
    }
    let prefix = match ctx.app {
        App::PubSub => format!("pub {TOPIC} ").into_bytes(),
        _ => Vec::new(),
    };
    let mut senders: Vec<Sender> = Vec::new();
    let mut in_place = 0usize;
    let mut publisher_added = false;
    let start = Instant::now();
    let mut piece = vec![b'x'; PIECE];
    let mut sent_messages = 0u64;
    while Instant::now() < ctx.end && fleet.len() > 0 {
        for news in fleet.turn(TURN) {
            match news {
                News::Open(k) if fleet.peer(k).is_some_and(|p| p.role == "publisher: ") => {
                    senders.push(Sender {
                        key: k,
                        left: LARGE_COUNT,
                        offset: 0,
                        mask: [0; 4],
                        prefix: prefix.clone(),
                    });
                }
                News::Open(k) if echo => {
                    fleet.set_reading(k, false);
                    senders.push(Sender {
                        key: k,
                        left: LARGE_COUNT,
                        offset: 0,
                        mask: [0; 4],
                        prefix: Vec::new(),
                    });
                }
                News::Open(k) if ctx.app == App::PubSub => {
                    if let Some(p) = fleet.peer(k) {
                        p.keep_messages = true;
                    }
                    let mut out = Vec::new();
                    let sub = format!("sub {TOPIC}");
                    frames::push_frame(&mut out, &mut fleet.keys, true, 0, OpCode::Text, sub.as_bytes());
                    frames::push_frame(&mut out, &mut fleet.keys, true, 0, OpCode::Text, b"sync in-place");
                    fleet.send(k, &out);
                }
                News::Open(k) => {
                    // chat: in the room once open.
                    fleet.set_reading(k, false);
                    in_place += 1;
                }
                News::Message(k, Some(bytes)) if bytes == b"sync in-place" => {
                    fleet.set_reading(k, false);
                    in_place += 1;
                }
                _ => {}
            }
        }
        if !echo && !publisher_added && (in_place == readers || start.elapsed() > SUBSCRIBE_WAIT) {
            publisher_added = true;
            fleet.add(Spec::upgrade("publisher: "));
        }
        for s in &mut senders {
            sent_messages += feed(&mut fleet, s, &mut piece);
        }
    }
    let mut notes = vec![if echo {
        format!(
            "{sent_messages} messages of {LARGE_MESSAGE} bytes sent in full, by connections that never read"
        )
    } else {
        format!(
            "{sent_messages} messages of {LARGE_MESSAGE} bytes sent in full, to {in_place} subscribers that never read"
        )
    }];
    if !echo && in_place < readers {
        notes.push(format!("only {in_place} of {readers} subscribers were in place"));
    }
    let tally = fleet.drain(DRAIN_WAIT);
    Ok(Outcome { tally, notes })
}

/// Queues the next piece of `s`'s current message when its connection has taken the last one;
/// returns 1 when a message was completed.
fn feed(fleet: &mut Fleet, s: &mut Sender, piece: &mut Vec<u8>) -> u64 {
    let Some(p) = fleet.peer(s.key) else { return 0 };
    if s.left == 0 || p.write_dead || p.stage != Stage::Open || p.out.len() >= PIECE {
        return 0;
    }
    let mut out = Vec::with_capacity(PIECE + 14);
    if s.offset == 0 {
        s.mask = frames::push_header(&mut out, &mut fleet.keys, true, OpCode::Text, LARGE_MESSAGE);
    }
    let n = (LARGE_MESSAGE - s.offset).min(PIECE as u64) as usize;
    piece.clear();
    if let Some(rest) = s.prefix.get(s.offset as usize..) {
        piece.extend_from_slice(&rest[..rest.len().min(n)]);
    }
    piece.resize(n, b'x');
    frames::mask_piece(&mut out, piece, s.mask, s.offset);
    s.offset += n as u64;
    fleet.send(s.key, &out);
    if s.offset == LARGE_MESSAGE {
        s.offset = 0;
        s.left -= 1;
        return 1;
    }
    0
}
