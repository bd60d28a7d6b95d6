//! Attacks with frames on an open connection: a flood of pings read by nobody, messages whose
//! end never comes (a first fragment alone, one byte at a time, UTF-8 that turns invalid), and a
//! frame that announces more than any memory holds.

use std::time::{Duration, Instant};

use c10k::proto::OpCode;

use super::{Ctx, Outcome, drive, many};
use crate::attack::fleet::{Fleet, News};
use crate::attack::frames;
use crate::attack::peer::{Spec, Stage};

/// ping-flood: the attacker's receive buffer, set before the connect.
pub const PING_FLOOD_RCVBUF: usize = 4 << 10;
/// ping-flood: the payload of each ping, the most a control frame carries.
const PING_PAYLOAD: [u8; 125] = [b'p'; 125];
/// ping-flood: pings queued at once when the socket takes them.
const PING_BATCH: usize = 64;
/// ping-flood: batches queued on a connection in one turn of the loop, at most.
const PING_BATCHES_PER_TURN: usize = 16;
/// ping-flood: the most pings one connection sends.
pub const MAX_PINGS: u64 = 50_000_000;
/// unfinished-message: the payload of the first (and only) fragment.
pub const FIRST_FRAGMENT: usize = 16 << 10;
/// fragment-dribble: the time between two 1-byte continuation frames.
pub const DRIBBLE_EVERY: Duration = Duration::from_millis(5);
/// huge-frame: payload bytes sent at once after the header, and then on each tick.
const HUGE_PIECE: usize = 4 << 10;
/// huge-frame: the time between two pieces of payload.
const HUGE_EVERY: Duration = Duration::from_millis(10);
/// utf8-dribble: the bytes of the message after its first frame, one per frame: valid text, the
/// start of a 4-byte character, and a byte that cannot continue it.
const UTF8_TAIL: &[u8] = b"\xc3\xa9 ok \xf0\x90\x80A";
/// utf8-dribble: the time between two bytes.
const UTF8_EVERY: Duration = Duration::from_millis(10);

/// One connection (or `--scale`) with a 4 KiB receive buffer sends 125-byte pings as fast as
/// the socket takes them and never reads: each ping owes it a pong that the server must queue.
pub(super) fn ping_flood(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let spec = Spec {
        rcvbuf: Some(PING_FLOOD_RCVBUF),
        ..Spec::upgrade("")
    };
    let mut pings = 0u64;
    let mut batch = Vec::with_capacity(PING_BATCH * 131);
    let tally = drive(
        ctx,
        many(spec, ctx.scale),
        |fleet, news| {
            if let News::Open(k) = *news {
                fleet.set_reading(k, false);
            }
        },
        |fleet, _| {
            for key in fleet.keys_in(Stage::Open) {
                // Pings go while the socket takes them, a batch at a time, a few batches a turn.
                for _ in 0..PING_BATCHES_PER_TURN {
                    if fleet.backlog(key) > 0
                        || !fleet
                            .peer(key)
                            .is_some_and(|p| !p.write_dead && p.step < MAX_PINGS)
                    {
                        break;
                    }
                    batch.clear();
                    for _ in 0..PING_BATCH {
                        frames::push_frame(&mut batch, &mut fleet.keys, true, 0, OpCode::Ping, &PING_PAYLOAD);
                    }
                    fleet.send(key, &batch);
                    if let Some(p) = fleet.peer(key) {
                        p.step += PING_BATCH as u64;
                    }
                    pings += PING_BATCH as u64;
                }
            }
        },
    )?;
    Ok(Outcome {
        tally,
        notes: vec![format!("{pings} pings queued")],
    })
}

/// Connections that each send the first fragment of a text message ([`FIRST_FRAGMENT`] bytes)
/// and nothing more, answering pings.
pub(super) fn unfinished(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let fragment = vec![b'a'; FIRST_FRAGMENT];
    let tally = drive(
        ctx,
        many(Spec::upgrade(""), ctx.scale),
        |fleet, news| {
            if let News::Open(k) = *news {
                let mut out = Vec::new();
                frames::push_frame(&mut out, &mut fleet.keys, false, 0, OpCode::Text, &fragment);
                fleet.send(k, &out);
            }
        },
        |_, _| {},
    )?;
    Ok(Outcome {
        tally,
        notes: vec![format!(
            "each connection sent a first fragment of {FIRST_FRAGMENT} bytes"
        )],
    })
}

/// One connection (or `--scale`) starts a text message and adds a 1-byte continuation frame
/// every [`DRIBBLE_EVERY`]: never idle, never done.
pub(super) fn fragment_dribble(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let mut next = Instant::now();
    let mut frames_sent = 0u64;
    let tally = drive(
        ctx,
        many(Spec::upgrade(""), ctx.scale),
        |fleet, news| {
            if let News::Open(k) = *news {
                let mut out = Vec::new();
                frames::push_frame(&mut out, &mut fleet.keys, false, 0, OpCode::Text, b"a");
                fleet.send(k, &out);
            }
        },
        |fleet, now| {
            if now < next {
                return;
            }
            next = now + DRIBBLE_EVERY;
            frames_sent += each_open(fleet, |_, _| Some(b"a".to_vec()), OpCode::Continuation);
        },
    )?;
    Ok(Outcome {
        tally,
        notes: vec![format!(
            "{frames_sent} continuation frames of 1 byte, one every {} ms",
            DRIBBLE_EVERY.as_millis()
        )],
    })
}

/// Connections whose frame header announces 2^63 - 1 bytes (the largest length a frame may
/// have), and, every other one, 2^63 (which no frame may announce); the payload then follows
/// [`HUGE_PIECE`] bytes at a time.
pub(super) fn huge_frame(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    const LARGEST: &str = "2^63-1: ";
    const INVALID: &str = "2^63: ";
    let specs = (0..ctx.scale).map(|i| Spec::upgrade(if i % 2 == 0 { LARGEST } else { INVALID }));
    let piece = vec![b'z'; HUGE_PIECE];
    // Both closures use the keys of the frames being sent.
    let masks = std::cell::RefCell::new(std::collections::HashMap::new());
    let mut next = Instant::now();
    let tally = drive(
        ctx,
        specs,
        |fleet, news| {
            if let News::Open(k) = *news {
                let Some(role) = fleet.peer(k).map(|p| p.role) else {
                    return;
                };
                let len = if role == LARGEST { (1 << 63) - 1 } else { 1 << 63 };
                let mut out = Vec::new();
                let mask = frames::push_header(&mut out, &mut fleet.keys, true, OpCode::Binary, len);
                frames::mask_piece(&mut out, &piece, mask, 0);
                masks.borrow_mut().insert(k, mask);
                fleet.send(k, &out);
                if let Some(p) = fleet.peer(k) {
                    p.step = HUGE_PIECE as u64;
                }
            }
        },
        |fleet, now| {
            if now < next {
                return;
            }
            next = now + HUGE_EVERY;
            for key in fleet.keys_in(Stage::Open) {
                let (Some(&mask), Some(p)) = (masks.borrow().get(&key), fleet.peer(key)) else {
                    continue;
                };
                if p.write_dead || p.out.len() >= HUGE_PIECE {
                    continue;
                }
                let offset = p.step;
                p.step += HUGE_PIECE as u64;
                let mut out = Vec::with_capacity(HUGE_PIECE);
                frames::mask_piece(&mut out, &piece, mask, offset);
                fleet.send(key, &out);
            }
        },
    )?;
    Ok(Outcome {
        tally,
        notes: vec![format!(
            "frame headers announcing 2^63-1 and 2^63 bytes, then {HUGE_PIECE} bytes every {} ms",
            HUGE_EVERY.as_millis()
        )],
    })
}

/// Connections that start a text message with `caf` and send the rest one byte per frame every
/// [`UTF8_EVERY`]: `é ok `, then F0 90 80 (the start of a 4-byte character) and `A`, which cannot
/// continue it. A server that validates as bytes arrive fails the message at the `A`.
pub(super) fn utf8_dribble(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let mut next = Instant::now();
    let tally = drive(
        ctx,
        many(Spec::upgrade(""), ctx.scale),
        |fleet, news| {
            if let News::Open(k) = *news {
                let mut out = Vec::new();
                frames::push_frame(&mut out, &mut fleet.keys, false, 0, OpCode::Text, b"caf");
                fleet.send(k, &out);
            }
        },
        |fleet, now| {
            if now < next {
                return;
            }
            next = now + UTF8_EVERY;
            each_open(
                fleet,
                |step, _| Some(vec![UTF8_TAIL.get(step as usize).copied().unwrap_or(b'A')]),
                OpCode::Continuation,
            );
        },
    )?;
    Ok(Outcome {
        tally,
        notes: vec!["invalid UTF-8 (F0 90 80 41) dribbled one byte per frame".to_owned()],
    })
}

/// Sends one non-final frame of `opcode` to every open connection that can write, carrying
/// what `payload(step, key)` gives; returns how many went.
fn each_open(
    fleet: &mut Fleet,
    mut payload: impl FnMut(u64, usize) -> Option<Vec<u8>>,
    opcode: OpCode,
) -> u64 {
    let mut sent = 0;
    for key in fleet.keys_in(Stage::Open) {
        let Some(p) = fleet.peer(key) else { continue };
        if p.write_dead || p.close_sent || !p.out.is_empty() {
            continue;
        }
        let step = p.step;
        p.step += 1;
        let Some(bytes) = payload(step, key) else { continue };
        let mut out = Vec::new();
        frames::push_frame(&mut out, &mut fleet.keys, false, 0, opcode, &bytes);
        fleet.send(key, &out);
        sent += 1;
    }
    sent
}
