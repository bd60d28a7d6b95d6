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
}

impl RejectReason {
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
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS connections that failed or ended badly, by cause.
    pub tls_failures: BTreeMap<TlsFailure, u64>,
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
        self.tls_handshakes += o.tls_handshakes;
        for (k, v) in &o.tls_failures {
            *self.tls_failures.entry(*k).or_default() += v;
        }
    }

    /// Total handshakes refused.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}
