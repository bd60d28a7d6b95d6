//! The PROXY protocol at the shard: which senders are trusted to say whom a connection is from
//! ([`ServerConfig::trusted_proxies`]), and the header they send before the client's bytes
//! (parsed by [`crate::proto::proxy`]). A connection from a trusted sender must start with one;
//! the client's address it gives is the connection's from then on (for [`Ctx::client_addr`],
//! [`Request::client_addr`] and the per-address limit). A header from any other sender is
//! refused (400): anyone can write one.
//!
//! [`ServerConfig::trusted_proxies`]: super::ServerConfig::trusted_proxies
//! [`Ctx::client_addr`]: super::Ctx::client_addr
//! [`Request::client_addr`]: crate::proto::Request::client_addr

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::conn::Mark;
use super::decision::HttpResponse;
use super::shard::Shard;
use super::stats::RejectReason;
use crate::proto::proxy;

/// A network: an address and how many of its leading bits count (`10.0.0.0/8`, `::1/128`, or
/// an address alone for itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// The network of `addr`'s first `bits` bits; `None` if `bits` is longer than the address.
    pub fn new(addr: IpAddr, bits: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (bits <= max).then_some(Self { addr, bits })
    }

    /// Whether `ip` is in the network (an IPv4 address written as IPv6, `::ffff:a.b.c.d`, is
    /// taken as the IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u8, width: u8| -> u128 {
            if bits == 0 {
                0
            } else {
                (u128::MAX << (width - bits)) & (u128::MAX >> (128 - width))
            }
        };
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask(self.bits, 32);
                u128::from(u32::from(net)) & m == u128::from(u32::from(ip)) & m
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask(self.bits, 128);
                u128::from(net) & m == u128::from(ip) & m
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{s:?}: not an IP address"))?;
        let bits = match bits {
            Some(b) => b.parse().map_err(|_| format!("{s:?}: bad prefix length"))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Self::new(addr, bits).ok_or_else(|| format!("{s:?}: prefix longer than the address"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

/// How reading a PROXY header went.
pub(super) enum ProxyStep {
    /// Not all of it yet: keep the bytes.
    Incomplete,
    /// Read: the connection's own bytes start after this many.
    Read(usize),
    /// Refused (answered and closing).
    Refused,
}

impl Shard {
    /// Whether a connection from `ip` must start with a PROXY header (its sender is trusted).
    pub(super) fn expects_proxy_header(&self, ip: IpAddr) -> bool {
        self.config.trusted_proxies.iter().any(|n| n.contains(ip))
    }

    /// Whether `input`, the first bytes of connection `key`, is a PROXY header that its sender
    /// may not send: refused (400) if so.
    pub(super) fn refuse_untrusted_proxy_header(&mut self, key: usize, input: &[u8]) -> bool {
        if self.config.trusted_proxies.is_empty() || !proxy::is_header_start(input) {
            return false;
        }
        *self.stats.rejected.entry(RejectReason::Proxy).or_default() += 1;
        self.answer_and_close(
            key,
            &HttpResponse::text(400, "PROXY header from a sender that is not trusted\n"),
        );
        true
    }

    /// Reads the PROXY header that connection `key` (from a trusted sender) starts with: the
    /// client's address becomes the connection's, and counts against the per-address limit.
    pub(super) fn read_proxy_header(&mut self, key: usize, input: &[u8]) -> ProxyStep {
        let header = match proxy::parse(input) {
            Ok(None) => return ProxyStep::Incomplete,
            Ok(Some(h)) => h,
            Err(e) => {
                *self.stats.rejected.entry(RejectReason::Proxy).or_default() += 1;
                log::debug!("shard {}: connection {key}: {e}", self.index);
                self.answer_and_close(key, &HttpResponse::text(400, &format!("{e}\n")));
                return ProxyStep::Refused;
            }
        };
        if let Some(conn) = self.conns.get_mut(key) {
            conn.mark(Mark::Proxied, false);
        }
        // A header without a client (LOCAL, UNKNOWN) is the sender's own connection: its
        // address stays the connection's.
        if let Some(client) = header.source {
            if self.node.limits_addresses() {
                if !self.node.admit(client.ip()) {
                    *self.stats.rejected.entry(RejectReason::AddressLimit).or_default() += 1;
                    let mut resp = HttpResponse::text(503, "too many connections from your address\n");
                    resp.headers.push(("Retry-After".to_owned(), "1".to_owned()));
                    self.answer_and_close(key, &resp);
                    return ProxyStep::Refused;
                }
                self.addresses.insert(key, client.ip());
            }
            self.client_addrs.insert(key, client);
        }
        ProxyStep::Read(header.len)
    }

    /// The address of the client of connection `key`: what its PROXY header said, or its
    /// socket's peer.
    pub(crate) fn client_addr_of(&self, key: usize) -> Option<SocketAddr> {
        if let Some(a) = self.client_addrs.get(&key) {
            return Some(*a);
        }
        self.conns.get(key)?.socket.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_and_no_others() {
        let n: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(
            n.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4 written as IPv6"
        );
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()), "another family");
        let six: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(six.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!six.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(six.to_string(), "2001:db8::/32");
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "x", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
