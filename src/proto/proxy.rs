//! The PROXY protocol (versions 1 and 2, as HAProxy specifies it): the header a load balancer
//! sends before the client's bytes to say whom the connection is from. Sans-I/O: [`parse`]
//! reads a header from the start of a buffer, or says it needs more, or why it is not one.
//!
//! Only a server that trusts the sender should believe one (see `ServerConfig::trusted_proxies`):
//! anyone can write these bytes.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::fmt;

/// The signature that starts a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, its CRLF included.
pub const V1_MAX: usize = 107;
/// The most address and TLV bytes a version 2 header may announce here (HAProxy sends far
/// fewer; cloud balancers add a few TLVs of tens of bytes): past it, the header is refused.
pub const V2_MAX_PAYLOAD: usize = 1024;

/// A PROXY header read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client's address, as the sender saw it; `None` for a connection the sender made
    /// itself (a health check: v2 `LOCAL`, v1 `UNKNOWN`) or of another family.
    pub source: Option<SocketAddr>,
    /// The address the client connected to.
    pub destination: Option<SocketAddr>,
    /// Bytes of the header: the connection's own bytes start after them.
    pub len: usize,
}

/// Why the start of a connection is not a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError(&'static str);

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad PROXY header: {}", self.0)
    }
}

impl std::error::Error for ProxyError {}

/// Whether `input` starts with what only a PROXY header starts with (`PROXY ` or the version 2
/// signature, whole), so that one can be refused from a sender that is not trusted. No HTTP
/// request starts so.
pub fn is_header_start(input: &[u8]) -> bool {
    input.starts_with(b"PROXY ") || input.starts_with(&V2_SIGNATURE)
}

/// Reads a PROXY header (either version) from the start of `input`: `Ok(None)` while it is
/// incomplete (a version 1 header is complete at its CRLF, within [`V1_MAX`] bytes).
pub fn parse(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    if input.is_empty() {
        return Ok(None);
    }
    if input[0] == b'P' {
        return parse_v1(input);
    }
    if input[0] == b'\r' {
        return parse_v2(input);
    }
    Err(ProxyError("no PROXY header"))
}

fn parse_v1(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    let window = &input[..input.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if !b"PROXY ".starts_with(&window[..window.len().min(6)]) {
            return Err(ProxyError("no PROXY header"));
        }
        return if input.len() >= V1_MAX {
            Err(ProxyError("version 1 header longer than 107 bytes"))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&window[..end]).map_err(|_| ProxyError("not ASCII"))?;
    let mut parts = line.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(ProxyError("no PROXY header"));
    }
    let len = end + 2;
    let family = parts.next().ok_or(ProxyError("no protocol"))?;
    if family == "UNKNOWN" {
        return Ok(Some(ProxyHeader {
            source: None,
            destination: None,
            len,
        }));
    }
    let fields: Vec<&str> = parts.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError("not four address fields"));
    };
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        match family {
            "TCP4" => s.parse::<Ipv4Addr>().map(IpAddr::V4),
            "TCP6" => s.parse::<Ipv6Addr>().map(IpAddr::V6),
            _ => return Err(ProxyError("protocol is not TCP4, TCP6 or UNKNOWN")),
        }
        .map_err(|_| ProxyError("bad address"))
    };
    let port = |s: &str| -> Result<u16, ProxyError> {
        // Decimal without a leading zero or a sign, as the specification writes ports.
        if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProxyError("bad port"));
        }
        s.parse().map_err(|_| ProxyError("bad port"))
    };
    Ok(Some(ProxyHeader {
        source: Some(SocketAddr::new(ip(src)?, port(sport)?)),
        destination: Some(SocketAddr::new(ip(dst)?, port(dport)?)),
        len,
    }))
}

fn parse_v2(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyError> {
    let n = input.len().min(V2_SIGNATURE.len());
    if input[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError("no PROXY header"));
    }
    if input.len() < 16 {
        return Ok(None);
    }
    let (version, command) = (input[12] >> 4, input[12] & 0x0f);
    if version != 2 {
        return Err(ProxyError("version is not 2"));
    }
    let payload = usize::from(u16::from_be_bytes([input[14], input[15]]));
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyError("version 2 header longer than its bound"));
    }
    let len = 16 + payload;
    if input.len() < len {
        return Ok(None);
    }
    let body = &input[16..len];
    let (source, destination) = match command {
        // LOCAL: the sender's own connection (a health check); the addresses are to be ignored.
        0 => (None, None),
        1 => match input[13] {
            // TCP over IPv4, and over IPv6 (UDP and Unix sockets say nothing useful here).
            0x11 if body.len() >= 12 => {
                let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(body[o], body[o + 1], body[o + 2], body[o + 3]));
                let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
                (
                    Some(SocketAddr::new(ip(0), port(8))),
                    Some(SocketAddr::new(ip(4), port(10))),
                )
            }
            0x21 if body.len() >= 36 => {
                let ip = |o: usize| {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&body[o..o + 16]);
                    IpAddr::V6(Ipv6Addr::from(b))
                };
                let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
                (
                    Some(SocketAddr::new(ip(0), port(32))),
                    Some(SocketAddr::new(ip(16), port(34))),
                )
            }
            0x11 | 0x21 => return Err(ProxyError("addresses shorter than their family")),
            _ => (None, None),
        },
        _ => return Err(ProxyError("command is neither LOCAL nor PROXY")),
    };
    Ok(Some(ProxyHeader {
        source,
        destination,
        len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend((body.len() as u16).to_be_bytes());
        h.extend(body);
        h
    }

    #[test]
    fn version_1_gives_the_clients_address_and_needs_its_crlf() {
        let h = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET /";
        let p = parse(h).unwrap().unwrap();
        assert_eq!(p.source, Some("192.0.2.7:56324".parse().unwrap()));
        assert_eq!(p.destination, Some("198.51.100.1:443".parse().unwrap()));
        assert_eq!(&h[p.len..], b"GET /");
        for cut in 0..p.len - 1 {
            assert_eq!(parse(&h[..cut]).unwrap(), None, "{cut} bytes");
        }
        let six = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(six.source, Some("[2001:db8::1]:1".parse().unwrap()));
        let unknown = parse(b"PROXY UNKNOWN whatever\r\n").unwrap().unwrap();
        assert_eq!((unknown.source, unknown.len), (None, 24));
    }

    #[test]
    fn version_1_refuses_what_is_not_a_header() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n"[..],
            b"PROXY TCP4 192.0.2.300 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 01 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 +1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 2\r\n",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",
            b"PROXZ TCP4\r\n",
            b"GET / HTTP/1.1\r\n",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert!(parse(&long).is_err(), "no CRLF within 107 bytes");
    }

    #[test]
    fn version_2_gives_the_clients_address_and_skips_its_tlvs() {
        let mut body = vec![192, 0, 2, 7, 198, 51, 100, 1];
        body.extend(56324u16.to_be_bytes());
        body.extend(443u16.to_be_bytes());
        body.extend([0x04, 0x00, 0x02, 0xab, 0xcd]); // a TLV
        let mut h = v2(1, 0x11, &body);
        h.extend(b"GET /");
        let p = parse(&h).unwrap().unwrap();
        assert_eq!(p.source, Some("192.0.2.7:56324".parse().unwrap()));
        assert_eq!(&h[p.len..], b"GET /");
        for cut in 0..p.len {
            assert_eq!(parse(&h[..cut]).unwrap(), None, "{cut} bytes");
        }
        let mut six = vec![0u8; 36];
        six[15] = 1;
        six[33] = 80;
        let p = parse(&v2(1, 0x21, &six)).unwrap().unwrap();
        assert_eq!(p.source, Some("[::1]:80".parse().unwrap()));
        let local = parse(&v2(0, 0x00, &[])).unwrap().unwrap();
        assert_eq!((local.source, local.len), (None, 16));
    }

    #[test]
    fn version_2_refuses_bad_versions_commands_lengths_and_short_addresses() {
        let mut bad_version = v2(1, 0x11, &[0; 12]);
        bad_version[12] = 0x11;
        assert!(parse(&bad_version).is_err());
        assert!(parse(&v2(2, 0x11, &[0; 12])).is_err(), "command 2");
        assert!(parse(&v2(1, 0x11, &[0; 8])).is_err(), "short IPv4 addresses");
        assert!(
            parse(&v2(1, 0x11, &vec![0; V2_MAX_PAYLOAD + 1])).is_err(),
            "too long"
        );
        let mut sig = V2_SIGNATURE.to_vec();
        sig[5] = b'x';
        assert!(parse(&sig).is_err());
    }

    #[test]
    fn what_starts_a_header() {
        assert!(is_header_start(b"PROXY TCP4"));
        assert!(is_header_start(&V2_SIGNATURE));
        assert!(!is_header_start(b"PRO"), "a request trickled in may start so");
        assert!(!is_header_start(&V2_SIGNATURE[..5]));
        assert!(!is_header_start(b"GET / HTTP/1.1"));
        assert!(!is_header_start(b""));
    }
}
