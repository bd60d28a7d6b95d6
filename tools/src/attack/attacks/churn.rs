//! close-flood: `--scale` connections at a time, each opened, upgraded and closed at once, then
//! replaced, as fast as the server goes, in three ways in turn: a Close frame (the server answers
//! and closes), a Close frame followed by a data frame (which the server must ignore), and a FIN
//! with no Close frame. What it measures is what a server keeps of connections that are gone:
//! memory that does not come back, descriptors, CPU.

use c10k::proto::OpCode;

use super::{Ctx, Outcome, drive};
use crate::attack::fleet::News;
use crate::attack::frames;
use crate::attack::peer::Spec;

/// The ways a connection ends, in turn: its role in the answers.
const WAYS: [&str; 3] = ["close: ", "close+data: ", "fin: "];
/// The most connections one run opens.
pub const MAX_CYCLES: u64 = 1_000_000;

/// Runs close-flood.
pub(super) fn close_flood(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let mut cycles = ctx.scale as u64;
    let specs = (0..ctx.scale).map(|i| Spec::upgrade(WAYS[i % WAYS.len()]));
    let tally = drive(
        ctx,
        specs.collect::<Vec<_>>(),
        |fleet, news| match news {
            News::Open(k) => {
                let k = *k;
                let Some(role) = fleet.peer(k).map(|p| p.role) else {
                    return;
                };
                match role {
                    "fin: " => fleet.shutdown_write(k),
                    "close+data: " => {
                        fleet.close(k, 1000);
                        let mut out = Vec::new();
                        frames::push_frame(
                            &mut out,
                            &mut fleet.keys,
                            true,
                            0,
                            OpCode::Text,
                            b"after the close",
                        );
                        if let Some(p) = fleet.peer(k) {
                            // The Close frame is out; the data goes after it all the same.
                            p.close_sent = true;
                            p.out.extend_from_slice(&out);
                        }
                        fleet.flush(k);
                    }
                    _ => fleet.close(k, 1000),
                }
            }
            News::Gone(..) if cycles < MAX_CYCLES && std::time::Instant::now() < ctx.end => {
                fleet.add(Spec::upgrade(WAYS[(cycles % WAYS.len() as u64) as usize]));
                cycles += 1;
            }
            _ => {}
        },
        |_, _| {},
    )?;
    Ok(Outcome {
        tally,
        notes: vec![format!(
            "{cycles} connections opened and closed, {} at a time",
            ctx.scale
        )],
    })
}
