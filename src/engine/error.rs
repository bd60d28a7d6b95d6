//! Why a send did not happen.

use crate::proto;

/// Why a send did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// No such connection: it closed (the id is stale) or belongs to another shard.
    UnknownConnection,
    /// The connection is still in its handshake.
    NotOpen,
    /// The connection is closing: no more messages may be sent.
    Closing,
    /// The protocol forbids it (oversized control frame, bad close code, ...).
    Protocol(proto::InvalidSend),
    /// The back-pressure policy dropped the message (the queue is over its cap).
    Dropped,
    /// The connection subscribes to as many topics as it may
    /// ([`ServerConfig::max_topics`](crate::ServerConfig::max_topics)).
    TooManyTopics,
    /// From another thread ([`ServerHandle::send`](crate::ServerHandle::send)): the
    /// connection's write queue is past half its cap, or its shard's inbox is full. Nothing
    /// was queued; room can be waited for.
    QueueFull,
    /// From another thread: the message is larger than the shard's inbox could ever hold
    /// ([`ServerConfig::max_inbox_bytes`](crate::ServerConfig::max_inbox_bytes)).
    TooLarge,
    /// A subscription that follows offsets was asked for, but the server keeps no history
    /// ([`ServerConfig::history`](crate::ServerConfig::history) is `None`).
    NoHistory,
}

impl From<proto::InvalidSend> for SendError {
    fn from(e: proto::InvalidSend) -> Self {
        match e {
            proto::InvalidSend::Closed => Self::Closing,
            e => Self::Protocol(e),
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownConnection => f.write_str("no such connection"),
            Self::NotOpen => f.write_str("connection not open yet"),
            Self::Closing => f.write_str("connection is closing"),
            Self::Protocol(e) => write!(f, "{e}"),
            Self::Dropped => f.write_str("message dropped: write queue over its cap"),
            Self::TooManyTopics => f.write_str("too many topics for one connection"),
            Self::QueueFull => f.write_str("queue full: the connection or its shard does not keep up"),
            Self::TooLarge => f.write_str("message larger than a shard's inbox can hold"),
            Self::NoHistory => f.write_str("this server keeps no history: offsets are off"),
        }
    }
}

impl std::error::Error for SendError {}
