//! The bridge's bounds and timeouts, with their defaults (the module docs of the bridge say what
//! happens past each).

use std::time::Duration;

use crate::engine::ServerConfig;

/// Default prefix of the Redis channels.
pub const DEFAULT_PREFIX: &str = "c10k:";
/// Default bound on the messages in the publish queue.
pub const DEFAULT_MAX_QUEUED_MESSAGES: usize = 8192;
/// Default bound on the bytes in the publish queue (encoded commands).
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 32 << 20;
/// Default time allowed to open a TCP connection to Redis.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default time allowed for a write to Redis, or for its reply.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Default silence on the subscription after which the subscriber pings Redis.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(2);
/// Default first wait before connecting again.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Default longest wait before connecting again.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Default number of messages kept per topic in Redis in streams mode (`XADD MAXLEN ~`), and
/// read at most when a node loads a topic's history.
pub const DEFAULT_HISTORY_LEN: usize = 1000;
/// Default bound on the payload bytes of one read of a topic's history in streams mode.
pub const DEFAULT_MAX_HISTORY_BYTES: usize = 16 << 20;

/// The bridge's bounds and timeouts (the module docs say what happens past each).
///
/// Start from [`RedisLimits::for_server`] (or [`Default`]) and set what you need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisLimits {
    /// The largest payload sent or delivered; larger ones are dropped and counted. Give it the
    /// server's `protocol.max_message_size`.
    pub max_message_size: usize,
    /// The most local publishes queued for Redis or being sent.
    pub max_queued_messages: usize,
    /// The most bytes (encoded `PUBLISH` commands) queued for Redis or being sent.
    pub max_queued_bytes: usize,
    /// Time allowed to open a connection (per address of the host).
    pub connect_timeout: Duration,
    /// Time allowed for a write to finish, and for Redis to answer (for a batch of publishes:
    /// all its replies; for a subscription: any byte while a reply is due).
    pub io_timeout: Duration,
    /// Silence on the subscription after which the subscriber sends a `PING`.
    pub keepalive: Duration,
    /// The first wait before connecting again after a failure.
    pub backoff_min: Duration,
    /// The longest wait before connecting again.
    pub backoff_max: Duration,
    /// Streams mode: messages kept per topic in Redis (`XADD ... MAXLEN ~`, so a few more may
    /// stay), and read at most when a node loads a topic's history or catches up.
    pub history_len: usize,
    /// Streams mode: payload bytes one read of a topic's history brings at most (never less
    /// than one message of `max_message_size`); older entries past it are not loaded.
    pub max_history_bytes: usize,
}

impl Default for RedisLimits {
    fn default() -> Self {
        Self {
            max_message_size: crate::proto::Config::default().max_message_size,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            keepalive: DEFAULT_KEEPALIVE,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            history_len: DEFAULT_HISTORY_LEN,
            max_history_bytes: DEFAULT_MAX_HISTORY_BYTES,
        }
    }
}

impl RedisLimits {
    /// The defaults, with the message size limit of the server `config`.
    pub fn for_server(config: &ServerConfig) -> Self {
        Self {
            max_message_size: config.protocol.max_message_size,
            ..Self::default()
        }
    }

    /// The payload bytes one read of a history brings at most.
    pub(crate) fn history_bytes(&self) -> usize {
        self.max_history_bytes.max(self.max_message_size)
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.history_len == 0 {
            return Err("Redis bridge: history_len must be at least 1".to_owned());
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("io_timeout", self.io_timeout),
            ("keepalive", self.keepalive),
            ("backoff_min", self.backoff_min),
        ] {
            if d.is_zero() {
                return Err(format!("Redis bridge: {name} must be longer than zero"));
            }
        }
        Ok(())
    }
}
