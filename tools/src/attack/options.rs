//! What a suite run is asked to do: the attacks (their names, what each sends, its default and
//! full-size scale), the server's application, and the limits that make a run fail.

use std::net::IpAddr;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

/// One attack of the suite. The names are those of `c10k attack --attack NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attack {
    /// One connection with a 4 KiB receive buffer sends 125-byte pings and never reads.
    PingFlood,
    /// Connections that agree permessage-deflate each send one first frame (FIN clear, RSV1 set)
    /// of about 15.5 KB that inflates to 16,000,000 bytes, then stay silent.
    DeflateHeld,
    /// Large messages (16,000,000 bytes) to connections that never read: the echo of one
    /// connection, or a room's (chat) or a topic's (pubsub) subscribers.
    SlowReader,
    /// Connections that send the first fragment of a text message and nothing more.
    UnfinishedMessage,
    /// One continuation frame of 1 byte every few milliseconds, for ever.
    FragmentDribble,
    /// Sockets that send a complete upgrade request and wait, and sockets that send nothing.
    PendingHandshakes,
    /// Sockets that send the request head one byte at a time, slowly.
    Slowloris,
    /// pubsub: one connection subscribes to as many distinct topics as it can.
    SubscribeFlood,
    /// Connections opened and closed as fast as possible: with a Close frame, with a Close frame
    /// followed by data, and with a FIN and no Close frame.
    CloseFlood,
    /// wss: many ClientHellos, never a finished TLS handshake.
    TlsHelloFlood,
    /// As many connections as possible from one source address.
    AddressFlood,
    /// Frame headers that announce 2^63 - 1 bytes (and 2^63, which no frame may announce).
    HugeFrame,
    /// A text message whose bytes arrive one at a time and turn into invalid UTF-8.
    Utf8Dribble,
    /// Upgrade requests with thousands of header fields.
    HeaderFlood,
}

impl Attack {
    /// Every attack, in the order a run without `--attack` runs them.
    pub const ALL: [Attack; 14] = [
        Self::PingFlood,
        Self::DeflateHeld,
        Self::SlowReader,
        Self::UnfinishedMessage,
        Self::FragmentDribble,
        Self::PendingHandshakes,
        Self::Slowloris,
        Self::SubscribeFlood,
        Self::CloseFlood,
        Self::TlsHelloFlood,
        Self::AddressFlood,
        Self::HugeFrame,
        Self::Utf8Dribble,
        Self::HeaderFlood,
    ];

    /// The attack's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::PingFlood => "ping-flood",
            Self::DeflateHeld => "deflate-held",
            Self::SlowReader => "slow-reader",
            Self::UnfinishedMessage => "unfinished-message",
            Self::FragmentDribble => "fragment-dribble",
            Self::PendingHandshakes => "pending-handshakes",
            Self::Slowloris => "slowloris",
            Self::SubscribeFlood => "subscribe-flood",
            Self::CloseFlood => "close-flood",
            Self::TlsHelloFlood => "tls-hello-flood",
            Self::AddressFlood => "address-flood",
            Self::HugeFrame => "huge-frame",
            Self::Utf8Dribble => "utf8-dribble",
            Self::HeaderFlood => "header-flood",
        }
    }

    /// The attack of a name, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// What `--scale` counts for this attack.
    pub fn scale_unit(self) -> &'static str {
        match self {
            Self::SlowReader => "subscribers (chat, pubsub; 8 by default) or connections (echo; 1)",
            Self::SubscribeFlood => "topics",
            Self::CloseFlood => "connections cycling at once",
            Self::PendingHandshakes | Self::Slowloris | Self::TlsHelloFlood => "sockets",
            _ => "connections",
        }
    }

    /// The size a run uses without `--scale`: enough to show the effect, small enough for a
    /// laptop's server.
    pub fn default_scale(self) -> usize {
        match self {
            Self::PingFlood | Self::FragmentDribble => 1,
            Self::DeflateHeld => 16,
            Self::SlowReader => 8,
            Self::UnfinishedMessage => 64,
            Self::PendingHandshakes => 256,
            Self::Slowloris => 64,
            Self::SubscribeFlood => 100_000,
            Self::CloseFlood => 8,
            Self::TlsHelloFlood => 256,
            Self::AddressFlood => 1000,
            Self::HugeFrame | Self::Utf8Dribble => 4,
            Self::HeaderFlood => 16,
        }
    }

    /// The size at which an unprotected server is known to suffer (for the security review's
    /// figures): `--scale` to reproduce it.
    pub fn full_scale(self) -> usize {
        match self {
            Self::DeflateHeld => 1500,
            Self::SlowReader => 64,
            Self::UnfinishedMessage => 10_000,
            Self::PendingHandshakes => 10_000,
            Self::Slowloris => 5000,
            Self::SubscribeFlood => 1_000_000,
            Self::CloseFlood => 256,
            Self::TlsHelloFlood => 10_000,
            Self::AddressFlood => 15_000,
            Self::HeaderFlood => 1000,
            other => other.default_scale().max(1),
        }
    }
}

/// The application behind the URL, which decides how bystanders talk and what slow-reader and
/// subscribe-flood do (`c10k serve --mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// Every message comes back as it was sent.
    Echo,
    /// Topics: `sub T`, `pub T PAYLOAD`, `sync X` (see [`crate::apps`]).
    PubSub,
    /// Rooms: a message to `/chat/ROOM` reaches every member of the room, the sender included.
    Chat,
}

impl App {
    /// The application a URL's path suggests: `/chat/...` is a chat room; anything else echoes.
    pub fn guess(path: &str) -> Self {
        if path.starts_with("/chat/") {
            Self::Chat
        } else {
            Self::Echo
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::PubSub => "pubsub",
            Self::Chat => "chat",
        }
    }
}

/// What a suite run is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's URL: `ws://` or `wss://`.
    pub url: String,
    /// The attacks to run, in order (empty: all).
    pub attacks: Vec<Attack>,
    /// How long each attack lasts.
    pub duration: Duration,
    /// How long the bystanders measure before each attack.
    pub baseline: Duration,
    /// The longest wait after an attack for the server's memory to come back.
    pub settle: Duration,
    /// The server's process id (a supervisor's: its workers are counted with it).
    pub server_pid: Option<u32>,
    /// Echoing connections measured before and during each attack.
    pub bystanders: usize,
    /// Where the bystanders connect when not to the server under attack: a second server, so
    /// that a run measures what the attack costs them through the machine alone (the
    /// attacker's own work, the kernel's), a control for the runs where they share the server.
    pub bystander_url: Option<String>,
    /// Each attack's size (connections, sockets, topics); `None`: its default.
    pub scale: Option<usize>,
    /// The application behind the URL.
    pub app: App,
    /// The address the attack's sockets are bound to (the bystanders' are not).
    pub source: Option<IpAddr>,
    /// The limits past which an attack fails.
    pub limits: Limits,
    /// wss: the TLS settings (whom to trust).
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Options {
    /// The attacks this run makes, in order.
    pub fn attacks(&self) -> Vec<Attack> {
        if self.attacks.is_empty() {
            Attack::ALL.to_vec()
        } else {
            self.attacks.clone()
        }
    }

    /// The scale of `attack` in this run.
    pub fn scale_of(&self, attack: Attack) -> usize {
        let default = match (attack, self.app) {
            // In echo mode the readers are the senders: one is the attack.
            (Attack::SlowReader, App::Echo) => 1,
            _ => attack.default_scale(),
        };
        self.scale.unwrap_or(default).max(1)
    }
}

/// The limits past which an attack fails, besides bystander errors and a crash, which always do.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// The most the server's memory may grow during an attack (peak minus before), in bytes.
    pub max_growth: Option<u64>,
    /// The most the bystanders' p99 latency may grow: attack p99 over baseline p99 (the baseline
    /// counting as at least [`RATIO_FLOOR_US`](super::report::RATIO_FLOOR_US)).
    pub max_latency_ratio: Option<f64>,
}

/// Parses a byte count: `1048576`, `512KiB`, `64MiB`, `2GiB` (also `KB`, `MB`, `GB` as powers of
/// 1000, and `K`, `M`, `G` as powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a byte count: {s:?} (try 1048576, 64MiB, 2GiB)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?} in {s:?} (B, KiB, MiB, GiB)")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("byte count out of range: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attack_has_a_name_that_finds_it_again() {
        for a in Attack::ALL {
            assert_eq!(Attack::from_name(a.name()), Some(a));
            assert!(a.default_scale() >= 1 && a.full_scale() >= a.default_scale());
        }
        assert_eq!(Attack::from_name("nothing"), None);
    }

    #[test]
    fn byte_counts_take_binary_and_decimal_units() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("16MB"), Ok(16_000_000));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 furlongs").is_err());
        assert!(parse_bytes("99999999999999GiB").is_err());
    }

    #[test]
    fn the_application_is_guessed_from_the_path() {
        assert_eq!(App::guess("/chat/lobby"), App::Chat);
        assert_eq!(App::guess("/"), App::Echo);
    }
}
