//! subscribe-flood (pubsub mode): one connection subscribes to as many distinct topics as it can,
//! [`BATCH`] `sub` commands at a time, each batch followed by a `sync` whose answer says that the
//! batch took effect. It stops at the first batch the server refused part of (an `error ...`
//! reply), at `--scale` topics, or at the end.

use std::time::Duration;

use c10k::proto::OpCode;

use super::{Ctx, DRAIN_WAIT, Outcome};
use crate::attack::fleet::{Fleet, News};
use crate::attack::frames;
use crate::attack::peer::Spec;

/// `sub` commands sent before each `sync`.
pub const BATCH: usize = 500;
/// The longest poll.
const TURN: Duration = Duration::from_millis(10);

/// Runs subscribe-flood.
pub(super) fn subscribe_flood(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let mut fleet = Fleet::new(ctx.target, 0x50b).map_err(|e| e.to_string())?;
    fleet.add(Spec::upgrade(""));
    let mut subs = 0usize;
    let mut batch = 0u64;
    let mut refused = 0u64;
    let mut first_refusal: Option<String> = None;
    let mut done = false;
    while std::time::Instant::now() < ctx.end && fleet.len() > 0 && !done {
        for news in fleet.turn(TURN) {
            match news {
                News::Open(k) => {
                    if let Some(p) = fleet.peer(k) {
                        p.keep_messages = true;
                    }
                    send_batch(&mut fleet, k, &mut subs, &mut batch, ctx.scale);
                }
                News::Message(k, bytes) => {
                    let text = bytes
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    if text.starts_with("error") {
                        refused += 1;
                        first_refusal.get_or_insert(text);
                    } else if text == format!("sync {batch}") {
                        if refused > 0 || subs >= ctx.scale {
                            done = true;
                            fleet.close(k, 1000);
                        } else {
                            send_batch(&mut fleet, k, &mut subs, &mut batch, ctx.scale);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut tally = fleet.drain(DRAIN_WAIT);
    let accepted = (subs as u64).saturating_sub(refused);
    let mut notes = vec![format!("{subs} subscriptions asked for, {accepted} accepted")];
    match first_refusal {
        Some(reply) => {
            tally.add(&format!("reply {reply:?}"), refused);
            notes.push(format!("{refused} refused, the first with {reply:?}"));
        }
        None if subs >= ctx.scale => notes.push("no subscription was refused".to_owned()),
        None => notes.push("no subscription was refused before the end".to_owned()),
    }
    Ok(Outcome { tally, notes })
}

/// Sends the next batch of `sub` commands and its `sync`.
fn send_batch(fleet: &mut Fleet, key: usize, subs: &mut usize, batch: &mut u64, scale: usize) {
    let mut out = Vec::new();
    let n = BATCH.min(scale.saturating_sub(*subs)).max(1);
    for _ in 0..n {
        let cmd = format!("sub c10k-attack-{subs}");
        frames::push_frame(&mut out, &mut fleet.keys, true, 0, OpCode::Text, cmd.as_bytes());
        *subs += 1;
    }
    *batch += 1;
    let sync = format!("sync {batch}");
    frames::push_frame(&mut out, &mut fleet.keys, true, 0, OpCode::Text, sync.as_bytes());
    fleet.send(key, &out);
}
