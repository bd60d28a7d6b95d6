//! The registry: every case, written from RFC 6455 (and RFC 7692 for permessage-deflate),
//! grouped by section.
//!
//! Each file adds one [`Group`](super::Group)'s cases to a [`Registry`], which numbers them
//! `group.sub.n`. A case is a description plus a plan that builds its scripts when it runs.

mod close;
mod deflate;
mod fragmentation;
mod framing;
mod handshake;
mod limits;
mod ping;
mod reserved;
mod utf8;

use super::Options;
use super::case::{Case, Group, Registry, Script, Want, wire};

/// Every case for a server described by `options`, and notes about cases left out.
pub(crate) fn all(options: &Options) -> (Vec<Case>, Vec<String>) {
    let mut reg = Registry::new();
    let mut notes = Vec::new();
    for group in Group::ALL {
        reg.group(group);
        match group {
            Group::Framing => framing::add(&mut reg, options),
            Group::Ping => ping::add(&mut reg),
            Group::Reserved => reserved::add(&mut reg),
            Group::Fragmentation => fragmentation::add(&mut reg, options),
            Group::Utf8 => utf8::add(&mut reg),
            Group::Limits => limits::add(&mut reg, options, &mut notes),
            Group::Close => close::add(&mut reg),
            Group::Handshake => handshake::add(&mut reg),
            Group::Deflate => deflate::add(&mut reg, options, &mut notes),
            Group::Regression | Group::Fuzz => {}
        }
    }
    (reg.cases, notes)
}

/// How a message of some size must be answered, given what is known of the server's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Echoed. With `too_big_ok`, the limit is unknown and the message big enough that a 1009
    /// close is only NON-STRICT.
    Echo { too_big_ok: bool },
    /// Above the server's known limit: 1009.
    TooBig,
}

/// Messages above this size may meet a server limit that was not given: 1009 is then NON-STRICT.
const SMALL_MESSAGE: usize = 64 << 10;

fn fit(max_message: Option<usize>, len: usize) -> Fit {
    match max_message {
        Some(max) if len > max => Fit::TooBig,
        Some(_) => Fit::Echo { too_big_ok: false },
        None => Fit::Echo {
            too_big_ok: len > SMALL_MESSAGE,
        },
    }
}

/// After the message's bytes were written: expect the echo (or 1009 when above the limit) and
/// close.
fn echo_or_limit(script: Script, want: Want, fit: Fit) -> Script {
    match fit {
        Fit::Echo { too_big_ok } => script.expect_big(vec![want], too_big_ok).close(),
        Fit::TooBig => script.fail(1009),
    }
}

/// A description suffix for a message above the known limit.
fn limit_note(fit: Fit) -> &'static str {
    match fit {
        Fit::TooBig => " (above --max-message: expects 1009)",
        Fit::Echo { .. } => "",
    }
}

/// "text" / "binary".
fn kind_name(opcode: u8) -> &'static str {
    if opcode == wire::TEXT { "text" } else { "binary" }
}

/// A payload of `n` bytes of the kind, and its expected echo.
fn payload(opcode: u8, n: usize) -> (Vec<u8>, Want) {
    if opcode == wire::TEXT {
        let p = wire::text_payload(n);
        (p.clone(), Want::Text(p))
    } else {
        let p = wire::binary_payload(n);
        (p.clone(), Want::Binary(p))
    }
}

fn want(opcode: u8, p: &[u8]) -> Want {
    if opcode == wire::TEXT {
        Want::Text(p.to_vec())
    } else {
        Want::Binary(p.to_vec())
    }
}

/// A good message and its echo, to put a conversation in progress.
fn hello() -> (Vec<u8>, Want) {
    (wire::text(b"Hello"), Want::Text(b"Hello".to_vec()))
}
