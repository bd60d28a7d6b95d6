//! The PROXY protocol at the shard: which senders are trusted to say whom a connection is from
//! ([`ServerConfig::trusted_proxies`], networks of [`Cidr`](super::Cidr)), and the header they send before the client's bytes
//! (parsed by [`crate::proto::proxy`]). A connection from a trusted sender must start with one;
//! the client's address it gives is the connection's from then on (for [`Ctx::client_addr`],
//! [`Request::client_addr`] and the per-address limit). A header from any other sender is
//! refused (400): anyone can write one.
//!
//! [`ServerConfig::trusted_proxies`]: super::ServerConfig::trusted_proxies
//! [`Ctx::client_addr`]: super::Ctx::client_addr
//! [`Request::client_addr`]: crate::proto::Request::client_addr

use std::net::{IpAddr, SocketAddr};

use super::conn::Mark;
use super::decision::HttpResponse;
use super::shard::Shard;
use super::stats::RejectReason;
use crate::proto::proxy;

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
