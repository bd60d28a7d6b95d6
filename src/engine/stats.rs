//! What a shard counts: [`Stats`], and why handshakes were refused.

use std::collections::BTreeMap;

use crate::proto;

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Head too large or too many header fields (431).
    TooLarge,
    /// Not HTTP (400).
    Malformed,
    /// Upgrade with a method other than GET (405).
    Method,
    /// Upgrade over HTTP/1.0 (505).
    HttpVersion,
    /// No Host (400).
    Host,
    /// Connection without upgrade (400).
    Connection,
    /// Sec-WebSocket-Version not 13 (426).
    Version,
    /// Bad Sec-WebSocket-Key (400).
    Key,
    /// Refused by the application's [`Handler::on_handshake`](crate::Handler::on_handshake).
    Application,
    /// Refused with 503 during the lame-duck period of a shutdown.
    Draining,
    /// No complete request within the handshake timeout.
    Timeout,
    /// A request left pending by the handler got no decision within the handshake timeout (503).
    Undecided,
    /// The shard already held its most connections in their handshake
    /// ([`ServerConfig::max_handshakes`](crate::ServerConfig::max_handshakes)): 503 at once.
    Busy,
    /// The client's address already held its most connections
    /// ([`ServerConfig::max_connections_per_address`](crate::ServerConfig::max_connections_per_address)): 503 at once.
    AddressLimit,
    /// Data arrived after a request left pending, more than a handshake may keep (400).
    EarlyData,
    /// A PROXY protocol header that was bad, or came from a sender that is not trusted (400).
    Proxy,
}

impl RejectReason {
    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::TooLarge => "toolarge",
            Self::Malformed => "malformed",
            Self::Method => "method",
            Self::HttpVersion => "httpversion",
            Self::Host => "host",
            Self::Connection => "connection",
            Self::Version => "version",
            Self::Key => "key",
            Self::Application => "application",
            Self::Draining => "draining",
            Self::Timeout => "timeout",
            Self::Undecided => "undecided",
            Self::Busy => "busy",
            Self::AddressLimit => "address_limit",
            Self::EarlyData => "early_data",
            Self::Proxy => "proxy",
        }
    }

    pub(crate) fn of(e: &proto::HandshakeError) -> Self {
        use proto::HandshakeError as E;
        match e {
            E::HeadersTooLarge { .. } | E::TooManyHeaders { .. } => Self::TooLarge,
            E::MethodNotGet => Self::Method,
            E::HttpVersion => Self::HttpVersion,
            E::MissingHost => Self::Host,
            E::MissingConnectionUpgrade => Self::Connection,
            E::UnsupportedVersion => Self::Version,
            E::InvalidKey => Self::Key,
            _ => Self::Malformed,
        }
    }
}

/// Why a TLS connection failed (or ended badly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// A plain HTTP request (or WebSocket upgrade) on the TLS port: answered 400 in plain text.
    PlainHttp,
    /// The handshake failed on our side (a malformed hello, nothing in common): a fatal alert.
    Handshake,
    /// The client sent a fatal alert, usually because it refused the certificate.
    PeerAlert,
    /// A record that is not TLS, does not decrypt or does not fit: a fatal alert.
    BadRecord,
    /// The TLS handshake was not over within the handshake timeout: closed.
    HandshakeTimeout,
    /// The client closed the TCP connection without close_notify.
    NoCloseNotify,
}

impl TlsFailure {
    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::PlainHttp => "plain_http",
            Self::Handshake => "handshake",
            Self::PeerAlert => "peer_alert",
            Self::BadRecord => "bad_record",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::NoCloseNotify => "no_close_notify",
        }
    }
}

/// Counters of one shard, or summed over all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Open WebSocket connections.
    pub connections_open: u64,
    /// Accepted sockets still in their handshake.
    pub handshaking: u64,
    /// Entries in the connection slab when the snapshot was taken (open, in handshake, or closing).
    pub sockets: u64,
    /// Armed connection and application timers when the snapshot was taken (the shard's own
    /// bookkeeping timers are not counted).
    pub timers: u64,
    /// Sockets accepted.
    pub accepted: u64,
    /// Handshakes completed (101 sent).
    pub handshakes: u64,
    /// Handshakes refused, by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Plain HTTP requests answered.
    pub http_requests: u64,
    /// Messages received.
    pub messages_in: u64,
    /// Message payload bytes received.
    pub bytes_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Message payload bytes sent.
    pub bytes_out: u64,
    /// Connections ended, by the code reported to [`Handler::on_close`](crate::Handler::on_close).
    /// The codes a peer chooses freely are counted by range, so that their number stays small:
    /// 3000-3999 under 3000, 4000-4999 under 4000 (see [`close_code_bucket`]).
    pub closes: BTreeMap<u16, u64>,
    /// Protocol errors that failed a connection.
    pub protocol_errors: u64,
    /// Connections closed by the back-pressure policy.
    pub backpressure_closes: u64,
    /// Messages dropped by the back-pressure policy.
    pub backpressure_drops: u64,
    /// Accept errors (of any kind).
    pub accept_errors: u64,
    /// Accept pauses after running out of file descriptors.
    pub accept_pauses: u64,
    /// Pings sent by the server's keep-alive.
    pub pings_sent: u64,
    /// Connections dropped for not answering a ping in time.
    pub pong_timeouts: u64,
    /// Connections dropped when the peer never answered a Close frame.
    pub close_timeouts: u64,
    /// Messages published on this shard (by its handler).
    pub published: u64,
    /// Broadcast frames queued for subscribers (one per subscriber per message).
    pub deliveries: u64,
    /// Topics with subscribers on this shard when the snapshot was taken.
    pub topics: u64,
    /// Messages compressed with permessage-deflate; a broadcast compressed once for many
    /// subscribers counts once.
    pub deflated: u64,
    /// Bytes the connections' write queues own (what the kernel did not take yet, frames
    /// shared by several queues aside: see [`MemoryStats::shared`]) when the snapshot was taken.
    pub queued_bytes: u64,
    /// The memory held for peers, by kind, when the snapshot was taken.
    pub memory: MemoryStats,
    /// Times the shard stopped accepting because it neared its share of the memory budget.
    pub overload_pauses: u64,
    /// Connections closed (1013) because the shard was over its share of the memory budget.
    pub overload_closes: u64,
    /// Connections closed (1008) for sending control frames faster than the limit.
    pub control_rate_closes: u64,
    /// Connections failed (1008) for a message not completed within the message timeout.
    pub message_timeouts: u64,
    /// Handler callbacks that panicked (see [`Handler`](crate::Handler) for what each panic
    /// does to its connection).
    pub handler_panics: u64,
    /// Subscriptions refused for the per-connection topic limit.
    pub topic_limit_refusals: u64,
    /// Commands from other threads refused or dropped because this shard's inbox was full.
    pub inbox_drops: u64,
    /// Round-trip times of the keep-alive pings: from a ping sent to its pong read.
    pub pong_rtt: RttHistogram,
    /// The shard's clock when the snapshot was taken, in milliseconds since the shard started
    /// (summed statistics: the latest). Two snapshots of one shard give the time between them,
    /// and so rates.
    pub snapshot_ms: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// Of those, the handshakes that resumed an earlier session (a session ticket).
    pub tls_resumed: u64,
    /// TLS connections that failed or ended badly, by cause.
    pub tls_failures: BTreeMap<TlsFailure, u64>,
}

/// The bytes a shard holds for its peers, by what they are for (see `docs/security.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Write queues: copies of messages, pongs, Close frames, TLS records.
    pub queued: u64,
    /// Messages being assembled (inflated bytes included) and zlib state.
    pub messages: u64,
    /// Unfinished input: partial frames, request heads, unfinished TLS records.
    pub input: u64,
    /// TLS sessions (an estimate per connection).
    pub tls: u64,
    /// Subscriptions and topics (an estimate per subscription and per topic).
    pub topics: u64,
    /// Commands queued for the shard by other threads.
    pub inbox: u64,
    /// The shard's part of the frames shared by several queues (broadcasts).
    pub shared: u64,
    /// The shard's part of what the bridge to other nodes holds (its queues).
    pub bridge: u64,
    /// The shard's part of the large blocks let go of and waiting to be given back to the system
    /// by the node's disposer thread (at most 64 MiB for the node; not part of [`total`]).
    ///
    /// [`total`]: MemoryStats::total
    pub disposing: u64,
    /// The shard's share of the memory budget.
    pub budget: u64,
}

impl MemoryStats {
    /// Everything held, shared frames included: what the budget is compared with.
    pub fn total(&self) -> u64 {
        self.queued
            + self.messages
            + self.input
            + self.tls
            + self.topics
            + self.inbox
            + self.shared
            + self.bridge
    }

    fn merge(&mut self, o: &MemoryStats) {
        self.queued += o.queued;
        self.messages += o.messages;
        self.input += o.input;
        self.tls += o.tls;
        self.topics += o.topics;
        self.inbox += o.inbox;
        self.shared += o.shared;
        self.bridge += o.bridge;
        self.disposing += o.disposing;
        self.budget += o.budget;
    }
}

/// The key under which a close code is counted in [`Stats::closes`]: the code itself, but 3000
/// for any code of 3000-3999 and 4000 for any of 4000-4999 (codes a peer may choose freely).
pub fn close_code_bucket(code: u16) -> u16 {
    match code {
        3000..=3999 => 3000,
        4000..=4999 => 4000,
        c => c,
    }
}

/// Buckets of [`RttHistogram`]: under 1 ms, then one per power of two up to 2^18 ms (about four
/// minutes, far past any pong timeout), then everything above.
const RTT_BUCKETS: usize = 20;

/// A small fixed histogram of round-trip times in milliseconds (the shard's clock, read once per
/// loop turn): bucket 0 counts times under 1 ms, bucket i counts [2^(i-1), 2^i) ms, the last
/// bucket everything longer. Recording allocates nothing and costs a few instructions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RttHistogram {
    buckets: [u64; RTT_BUCKETS],
    sum_ms: u64,
}

impl RttHistogram {
    /// Counts one round trip of `ms` milliseconds.
    pub fn record(&mut self, ms: u64) {
        let i = (u64::BITS - ms.leading_zeros()) as usize;
        self.buckets[i.min(RTT_BUCKETS - 1)] += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// The sum of the recorded times, in milliseconds.
    pub fn sum_ms(&self) -> u64 {
        self.sum_ms
    }

    /// Round trips recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The counts, bucket by bucket, with each bucket's upper bound in milliseconds (`None` for
    /// the last, unbounded one).
    pub fn buckets(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| ((i + 1 < RTT_BUCKETS).then(|| 1u64 << i), *n))
    }

    /// The upper bound, in milliseconds, of the bucket that holds quantile `q` (0.0 to 1.0);
    /// `None` when nothing was recorded or the quantile is past the last bounded bucket.
    pub fn quantile_upper_ms(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bound, n) in self.buckets() {
            seen += n;
            if seen >= rank {
                return bound;
            }
        }
        None
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, o: &RttHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
        self.sum_ms = self.sum_ms.saturating_add(o.sum_ms);
    }
}

impl Stats {
    /// Adds another shard's counters to these.
    pub fn merge(&mut self, o: &Stats) {
        self.connections_open += o.connections_open;
        self.handshaking += o.handshaking;
        self.sockets += o.sockets;
        self.timers += o.timers;
        self.accepted += o.accepted;
        self.handshakes += o.handshakes;
        for (k, v) in &o.rejected {
            *self.rejected.entry(*k).or_default() += v;
        }
        self.http_requests += o.http_requests;
        self.messages_in += o.messages_in;
        self.bytes_in += o.bytes_in;
        self.messages_out += o.messages_out;
        self.bytes_out += o.bytes_out;
        for (k, v) in &o.closes {
            *self.closes.entry(*k).or_default() += v;
        }
        self.protocol_errors += o.protocol_errors;
        self.backpressure_closes += o.backpressure_closes;
        self.backpressure_drops += o.backpressure_drops;
        self.accept_errors += o.accept_errors;
        self.accept_pauses += o.accept_pauses;
        self.pings_sent += o.pings_sent;
        self.pong_timeouts += o.pong_timeouts;
        self.close_timeouts += o.close_timeouts;
        self.published += o.published;
        self.deliveries += o.deliveries;
        self.topics += o.topics;
        self.deflated += o.deflated;
        self.queued_bytes += o.queued_bytes;
        self.memory.merge(&o.memory);
        self.overload_pauses += o.overload_pauses;
        self.overload_closes += o.overload_closes;
        self.control_rate_closes += o.control_rate_closes;
        self.message_timeouts += o.message_timeouts;
        self.handler_panics += o.handler_panics;
        self.topic_limit_refusals += o.topic_limit_refusals;
        self.inbox_drops += o.inbox_drops;
        self.pong_rtt.merge(&o.pong_rtt);
        self.snapshot_ms = self.snapshot_ms.max(o.snapshot_ms);
        self.tls_handshakes += o.tls_handshakes;
        self.tls_resumed += o.tls_resumed;
        for (k, v) in &o.tls_failures {
            *self.tls_failures.entry(*k).or_default() += v;
        }
    }

    /// Total handshakes refused.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_histogram_buckets_by_powers_of_two_and_answers_upper_bounds() {
        let mut h = RttHistogram::default();
        assert_eq!(h.quantile_upper_ms(0.5), None);
        for ms in [0, 0, 0, 1, 3, 3, 700, 1 << 40] {
            h.record(ms);
        }
        assert_eq!(h.count(), 8);
        // 0 ms: under 1; 1: [1, 2); 3: [2, 4); 700: [512, 1024).
        assert_eq!(h.quantile_upper_ms(0.25), Some(1));
        assert_eq!(h.quantile_upper_ms(0.5), Some(2));
        assert_eq!(h.quantile_upper_ms(0.75), Some(4));
        assert_eq!(h.quantile_upper_ms(0.8), Some(1024));
        assert_eq!(h.quantile_upper_ms(1.0), None, "past the last bounded bucket");
        let mut sum = Stats::default();
        let one = Stats {
            pong_rtt: h,
            queued_bytes: 5,
            snapshot_ms: 9,
            ..Stats::default()
        };
        sum.merge(&one);
        sum.merge(&one);
        assert_eq!(sum.pong_rtt.count(), 16);
        assert_eq!((sum.queued_bytes, sum.snapshot_ms), (10, 9));
    }
}
