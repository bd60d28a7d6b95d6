//! One attacker's connection as the [`Fleet`](super::fleet::Fleet) drives it: how it opens,
//! where it stands, what it sent, and what the server answered it; and the [`Tally`] of the
//! answers of every connection of an attack.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use c10k::proto::deflate::Negotiated;
use c10k::proto::handshake::Expected;
use mio::net::TcpStream;

use super::skim::Skim;

/// How a connection starts once its TCP connection is up.
#[derive(Debug, Clone)]
pub(crate) enum Opening {
    /// The upgrade request (to `path`, or the URL's), offering permessage-deflate if asked.
    Upgrade { deflate: bool, path: Option<String> },
    /// These bytes as they are (inside TLS on `wss://`), then a wait for the HTTP answer.
    Raw(Vec<u8>),
    /// Nothing at all, not even a TLS ClientHello: a wait for whatever the server does.
    Silent,
    /// The attack writes (inside TLS on `wss://`), and the server's HTTP answer is awaited.
    Manual,
    /// wss: a ClientHello, and nothing of the TLS handshake after it; what comes back is read
    /// as raw bytes.
    HelloOnly,
}

/// A connection to open: how it starts, its receive buffer, and the role its answers are counted
/// under (`""`, or e.g. `"publisher: "`).
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) opening: Opening,
    pub(crate) rcvbuf: Option<usize>,
    pub(crate) role: &'static str,
    /// Bind to the run's source address (`--source`); the bystanders do not.
    pub(crate) from_source: bool,
}

impl Spec {
    /// An upgrade to the URL, from the run's source address.
    pub(crate) fn upgrade(role: &'static str) -> Self {
        Self {
            opening: Opening::Upgrade {
                deflate: false,
                path: None,
            },
            rcvbuf: None,
            role,
            from_source: true,
        }
    }

    /// A connection that opens as `opening`, from the run's source address.
    pub(crate) fn with(opening: Opening, role: &'static str) -> Self {
        Self {
            opening,
            rcvbuf: None,
            role,
            from_source: true,
        }
    }
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The TCP connection is not up yet.
    Connecting,
    /// Waiting for an HTTP answer (a 101, or a refusal).
    Http,
    /// Upgraded: frames both ways.
    Open,
    /// A Close frame or a refusal came: read until the server closes.
    Closing,
    /// wss ClientHello only: whatever comes back is counted, not read.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Raw,
}

/// What the server did to a connection, in the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A Close frame with this code (1005: none) and reason.
    Close(u16, String),
    /// An HTTP status other than 101.
    Status(u16),
    /// The server closed the TCP connection without either.
    Eof,
    /// The connection was reset (or a write found it gone).
    Reset,
    /// The TCP connect failed.
    ConnectFailed(String),
    /// Something else went wrong (a TLS error, a frame that does not decode).
    Failed(String),
    /// Upgraded, and still open at the end of the attack.
    Open,
    /// Connected, and no answer by the end of the attack.
    NoAnswer,
}

impl Answer {
    /// The label counted in reports: `close 1008`, `HTTP 503`, `EOF`, `reset`, `open`, ...
    pub fn label(&self) -> String {
        match self {
            Self::Close(code, _) => format!("close {code}"),
            Self::Status(s) => format!("HTTP {s}"),
            Self::Eof => "EOF".to_owned(),
            Self::Reset => "reset".to_owned(),
            Self::ConnectFailed(_) => "connect failed".to_owned(),
            Self::Failed(_) => "failed".to_owned(),
            Self::Open => "open".to_owned(),
            Self::NoAnswer => "no answer".to_owned(),
        }
    }

    /// The detail behind the label (a close reason, an error), if any.
    pub fn detail(&self) -> &str {
        match self {
            Self::Close(_, r) | Self::ConnectFailed(r) | Self::Failed(r) => r,
            _ => "",
        }
    }

    /// Whether the server did something (as opposed to a connection left open or unanswered).
    pub fn is_action(&self) -> bool {
        matches!(self, Self::Close(..) | Self::Status(_) | Self::Eof | Self::Reset)
    }
}

/// One attacker connection.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) socket: TcpStream,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Box<rustls::ClientConnection>>,
    pub(crate) stage: Stage,
    pub(crate) opening: Opening,
    pub(crate) expected: Option<Expected>,
    /// permessage-deflate as agreed, from this end's side.
    pub(crate) deflate: Option<Negotiated>,
    /// Plaintext waiting to go out.
    pub(crate) out: Vec<u8>,
    /// The HTTP answer read so far.
    pub(crate) head: Vec<u8>,
    pub(crate) skim: Skim,
    /// The connection is read (when false, the server's bytes wait in the kernel).
    pub(crate) reading: bool,
    /// Pings are answered.
    pub(crate) answer_pings: bool,
    /// Small data messages are handed to the attack as news.
    pub(crate) keep_messages: bool,
    /// Bytes handed to the socket (plaintext, over TLS).
    pub(crate) sent: u64,
    /// Bytes read from the socket.
    pub(crate) received: u64,
    /// When the connect started.
    pub(crate) started: Instant,
    pub(crate) answer: Option<Answer>,
    /// The first sign of the server's answer: when, and the bytes sent by then.
    pub(crate) sign: Option<(Instant, u64)>,
    /// A write failed: nothing more is written.
    pub(crate) write_dead: bool,
    pub(crate) close_sent: bool,
    pub(crate) role: &'static str,
    /// The attack's own counter for this connection (bytes trickled, the variant of a cycle).
    pub(crate) step: u64,
}

impl Peer {
    /// Records `answer` unless one came before, with the first sign of it.
    pub(crate) fn answered(&mut self, answer: Answer) {
        if self.answer.is_none() {
            self.answer = Some(answer);
        }
        self.noticed();
    }

    /// The server did something visible now (unless it did before).
    pub(crate) fn noticed(&mut self) {
        if self.sign.is_none() {
            self.sign = Some((Instant::now(), self.sent));
        }
    }
}

/// The first answer of an attack: what it was, after how many bytes and how long.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstAnswer {
    /// Its label (with its role).
    pub label: String,
    /// The close reason or error, if any.
    pub detail: String,
    /// Bytes the connection had sent when the server answered.
    pub sent: u64,
    /// Time from the connection's connect to the answer.
    pub after: Duration,
    at: Instant,
}

/// The answers of every connection of an attack, counted by label.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Connections by answer label (role first: `subscriber: close 1008`).
    pub counts: BTreeMap<String, u64>,
    /// The first answer in time.
    pub first: Option<FirstAnswer>,
    /// Bytes sent by all the connections.
    pub sent: u64,
    /// A few errors of the attacker's own, to say why (`connect failed`, `failed`).
    pub samples: Vec<String>,
}

/// Most error samples a tally keeps.
const MAX_SAMPLES: usize = 5;

impl Tally {
    /// Counts the end of a connection.
    pub(crate) fn count(
        &mut self,
        role: &str,
        answer: &Answer,
        sent: u64,
        started: Instant,
        sign: Option<(Instant, u64)>,
    ) {
        let label = format!("{role}{}", answer.label());
        *self.counts.entry(label.clone()).or_insert(0) += 1;
        self.sent += sent;
        if matches!(answer, Answer::ConnectFailed(_) | Answer::Failed(_)) && self.samples.len() < MAX_SAMPLES
        {
            self.samples.push(format!("{label}: {}", answer.detail()));
        }
        if let (true, Some((at, sent))) = (answer.is_action(), sign)
            && self.first.as_ref().is_none_or(|f| at < f.at)
        {
            self.first = Some(FirstAnswer {
                label,
                detail: answer.detail().to_owned(),
                sent,
                after: at.saturating_duration_since(started),
                at,
            });
        }
    }

    /// A count under a label of the attack's own (replies, refusals it saw itself).
    pub(crate) fn add(&mut self, label: &str, n: u64) {
        *self.counts.entry(label.to_owned()).or_insert(0) += n;
    }

    /// How many connections ended with `label` (role included).
    pub fn get(&self, label: &str) -> u64 {
        self.counts.get(label).copied().unwrap_or(0)
    }

    /// The labels, most frequent first.
    pub fn by_count(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.counts.iter().map(|(k, &n)| (k.as_str(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_answer_is_the_earliest_action_not_the_first_counted() {
        let t0 = Instant::now();
        let mut t = Tally::default();
        t.count("", &Answer::Open, 10, t0, None);
        t.count(
            "",
            &Answer::Close(1008, "late".into()),
            20,
            t0,
            Some((t0 + Duration::from_secs(2), 15)),
        );
        t.count(
            "",
            &Answer::Status(503),
            30,
            t0,
            Some((t0 + Duration::from_secs(1), 0)),
        );
        t.count("x: ", &Answer::ConnectFailed("refused".into()), 0, t0, None);
        let first = t.first.clone().unwrap();
        assert_eq!((first.label.as_str(), first.sent), ("HTTP 503", 0));
        assert_eq!(first.after, Duration::from_secs(1));
        assert_eq!(t.sent, 60);
        assert_eq!(t.get("x: connect failed"), 1);
        assert_eq!(t.samples, vec!["x: connect failed: refused".to_owned()]);
        assert_eq!(t.by_count().len(), 4);
    }
}
