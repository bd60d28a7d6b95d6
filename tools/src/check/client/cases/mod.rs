//! The client cases, by group, in running order (the server suite's groups and order).

mod close;
mod deflate;
mod fragmentation;
mod framing;
mod handshake;
mod ping;
mod utf8;

use super::case::{ClientCase, Registry, Script, Want, stext};

/// Every client case.
pub(crate) fn all() -> Vec<ClientCase> {
    let mut r = Registry::new();
    framing::add(&mut r);
    ping::add(&mut r);
    ping::reserved(&mut r);
    fragmentation::add(&mut r);
    utf8::add(&mut r);
    framing::limits(&mut r);
    close::add(&mut r);
    handshake::add(&mut r);
    deflate::add(&mut r);
    r.cases
}

/// The text that follows a frame the client must reject: a client that ignored the bad frame
/// echoes it, and FAILS at once instead of at the end of the bound.
const PROBE: &[u8] = b"after";

/// Writes `bad` (one write), then [`PROBE`]; the client must fail the connection with `codes`.
fn rejects(bad: Vec<u8>, codes: &'static [u16]) -> Script {
    Script::new().write(bad).write(stext(PROBE)).fail(codes)
}

/// Writes `frames` (one write each); the client must echo `want`.
fn echoes(frames: Vec<Vec<u8>>, want: Want) -> Script {
    Script::new().frames(frames).expect(vec![want])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_case_ids_are_unique_and_every_group_has_cases() {
        let all = all();
        let mut ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        assert!((100..=250).contains(&all.len()), "{}", all.len());
        for group in crate::check::Group::ALL {
            assert!(all.iter().any(|c| c.group == group), "{group}");
        }
        assert!(all.iter().any(|c| c.id == "close.tcp.1"));
    }
}
