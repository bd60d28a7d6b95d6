//! Whether a WebSocket upgrade comes from a page of the server's own origin.
//!
//! A browser lets any page open a WebSocket to any server, cross-origin, and sends the page's
//! origin in the `Origin` header field; it is up to the server to refuse the ones it does not
//! serve (RFC 6455, 10.2). [`same_origin`] accepts:
//!
//! - no `Origin` at all: not a browser (a script, `c10k bench`, a monitoring probe), which could
//!   send any `Origin` it likes anyway;
//! - an `Origin` whose host and port are the request's `Host` (the page was loaded from this
//!   server, under the name and port the browser used for the socket too). A missing port is the
//!   default of the Origin's scheme (80 for `http`, 443 for `https`) on both sides, so that a page
//!   served as `https://example.com` through a proxy that ends TLS and passes `Host: example.com`
//!   on is still at home. Host names compare without regard to case.
//!
//! and refuses the rest as [`Refusal`]s, each with its own body for the 403: another origin
//! (including the opaque `null`, and schemes other than `http` and `https`), a malformed
//! `Origin` (not `scheme://host[:port]` in ASCII, or more than one), or a `Host` that is not
//! `host[:port]`.

use c10k::proto::handshake::Request;

/// Why [`same_origin`] refused an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A well-formed Origin that is not this server's.
    OtherOrigin,
    /// An Origin that is not one `scheme://host[:port]`.
    MalformedOrigin,
    /// A `Host` that is not `host[:port]`, which no Origin can be compared with.
    MalformedHost,
}

impl Refusal {
    /// The HTTP status to answer with.
    pub const STATUS: u16 = 403;

    /// The body of the 403: what was refused and what would be accepted.
    pub fn body(self) -> &'static str {
        match self {
            Self::OtherOrigin => {
                "cross-origin WebSocket refused: only pages of this server's origin (the Origin's \
                 host:port equal to the Host) may open it\n"
            }
            Self::MalformedOrigin => "malformed Origin header: expected one scheme://host[:port]\n",
            Self::MalformedHost => "malformed Host header: expected host[:port]\n",
        }
    }
}

/// Checks `req`'s `Origin` against its `Host`: Ok when there is no Origin or it is the same
/// origin (see the module docs).
pub fn same_origin(req: &Request<'_>) -> Result<(), Refusal> {
    let origins: Vec<&[u8]> = req.header_values("origin").collect();
    check(&origins, req.header("host"))
}

/// [`same_origin`] over the raw values: every `Origin` field, and the `Host` field.
pub fn check(origins: &[&[u8]], host: Option<&[u8]>) -> Result<(), Refusal> {
    let origin = match origins {
        [] => return Ok(()),
        [one] => *one,
        _ => return Err(Refusal::MalformedOrigin),
    };
    let origin = std::str::from_utf8(origin)
        .map_err(|_| Refusal::MalformedOrigin)?
        .trim_matches([' ', '\t']);
    if origin == "null" {
        // An opaque origin (a sandboxed frame, a file): never this server's.
        return Err(Refusal::OtherOrigin);
    }
    let (scheme, authority) = origin.split_once("://").ok_or(Refusal::MalformedOrigin)?;
    if !is_scheme(scheme) {
        return Err(Refusal::MalformedOrigin);
    }
    let (origin_host, origin_port) = authority_parts(authority).ok_or(Refusal::MalformedOrigin)?;
    let host = host
        .and_then(|h| std::str::from_utf8(h).ok())
        .map(|h| h.trim_matches([' ', '\t']))
        .ok_or(Refusal::MalformedHost)?;
    let (host_host, host_port) = authority_parts(host).ok_or(Refusal::MalformedHost)?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(Refusal::OtherOrigin),
    };
    let same = origin_host.eq_ignore_ascii_case(host_host)
        && origin_port.unwrap_or(default_port) == host_port.unwrap_or(default_port);
    if same { Ok(()) } else { Err(Refusal::OtherOrigin) }
}

/// Whether `s` is a URI scheme: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `host[:port]` or `[v6]:port` split into the host and the port, if it is one: no user
/// information, path, query or fragment, a port of digits up to 65535.
fn authority_parts(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if v6.is_empty()
            || !v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
        {
            return None;
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (&s[..v6.len() + 2], port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%')));
    if !host_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check1(origin: &str, host: &str) -> Result<(), Refusal> {
        check(&[origin.as_bytes()], Some(host.as_bytes()))
    }

    #[test]
    fn no_origin_is_not_a_browser_and_is_accepted() {
        assert_eq!(check(&[], Some(b"127.0.0.1:9001")), Ok(()));
        assert_eq!(check(&[], None), Ok(()));
    }

    #[test]
    fn the_same_host_and_port_is_accepted() {
        for (origin, host) in [
            ("http://127.0.0.1:9001", "127.0.0.1:9001"),
            ("https://127.0.0.1:9001", "127.0.0.1:9001"),
            ("http://Example.COM:8080", "example.com:8080"),
            ("http://example.com", "example.com"),
            ("http://example.com:80", "example.com"),
            ("http://example.com", "example.com:80"),
            ("https://example.com", "example.com"),
            ("https://example.com", "example.com:443"),
            ("http://[::1]:9001", "[::1]:9001"),
            ("http://[::1]", "[::1]:80"),
            (" http://localhost:9001 ", "localhost:9001"),
        ] {
            assert_eq!(check1(origin, host), Ok(()), "{origin} {host}");
        }
    }

    #[test]
    fn another_origin_is_refused() {
        for (origin, host) in [
            ("http://evil.example", "127.0.0.1:9001"),
            ("http://127.0.0.1:9002", "127.0.0.1:9001"),
            ("http://127.0.0.1", "127.0.0.1:9001"),
            ("http://example.com", "example.com:443"),
            ("https://example.com", "example.com:80"),
            ("http://example.com.evil.example", "example.com"),
            ("http://[::2]:9001", "[::1]:9001"),
            ("null", "127.0.0.1:9001"),
            ("chrome-extension://abcdef", "abcdef"),
            ("file://localhost", "localhost"),
        ] {
            assert_eq!(check1(origin, host), Err(Refusal::OtherOrigin), "{origin} {host}");
        }
    }

    #[test]
    fn a_malformed_origin_is_refused() {
        for origin in [
            "",
            "127.0.0.1:9001",
            "http://",
            "http:/127.0.0.1:9001",
            "://127.0.0.1:9001",
            "1http://127.0.0.1:9001",
            "http://127.0.0.1:9001/",
            "http://127.0.0.1:9001/dashboard",
            "http://127.0.0.1:9001?x",
            "http://127.0.0.1:9001#x",
            "http://user@127.0.0.1:9001",
            "http://127.0.0.1:",
            "http://127.0.0.1:http",
            "http://127.0.0.1:65536",
            "http://127.0.0.1:000009001",
            "http://[::1",
            "http://[]:9001",
            "http://[::1]x",
            "http://exa mple.com",
            "http://ex\u{e4}mple.com",
        ] {
            assert_eq!(
                check1(origin, "127.0.0.1:9001"),
                Err(Refusal::MalformedOrigin),
                "{origin:?}"
            );
        }
        let host = Some(&b"127.0.0.1:9001"[..]);
        assert_eq!(
            check(&[b"http://127.0.0.1:9001\xff"], host),
            Err(Refusal::MalformedOrigin)
        );
        // One page has one origin: two fields are not a browser's.
        let same = &b"http://127.0.0.1:9001"[..];
        assert_eq!(check(&[same, same], host), Err(Refusal::MalformedOrigin));
    }

    #[test]
    fn a_host_that_no_origin_can_match_is_refused() {
        for host in ["", "127.0.0.1:", "a b", "127.0.0.1:9001/x", "[::1"] {
            assert_eq!(
                check1("http://127.0.0.1:9001", host),
                Err(Refusal::MalformedHost),
                "{host:?}"
            );
        }
        assert_eq!(
            check(&[b"http://127.0.0.1:9001"], None),
            Err(Refusal::MalformedHost)
        );
    }

    #[test]
    fn every_refusal_says_why_in_its_own_words() {
        let bodies = [
            Refusal::OtherOrigin,
            Refusal::MalformedOrigin,
            Refusal::MalformedHost,
        ]
        .map(Refusal::body);
        assert!(bodies[0].contains("cross-origin"));
        assert!(bodies[1].contains("malformed Origin"));
        assert!(bodies[2].contains("malformed Host"));
    }
}
