//! Offsets and a bounded history per topic, kept once per node and shared by its shards.
//!
//! With [`ServerConfig::history`](crate::ServerConfig::history) on, every message published to
//! a topic gets the next offset of that topic's stream (1, 2, 3, ...), and the stream has an
//! epoch: a random number that changes whenever the history is lost (the node restarted, the
//! topic's history was forgotten, a broker lost its data). The last messages of each topic are
//! kept, bounded by count, bytes and age, and a subscriber that comes back names the last
//! position it saw ([`Since::After`]): it gets every message after it, in order, then the live
//! stream, with no gap and no duplicate at the seam, or it is told that the gap cannot be filled
//! ([`Resume::Lost`]).
//!
//! # How the order holds
//! One lock guards the node's histories. A message gets its offset, goes into the history and is
//! posted to every shard's inbox (the publishing shard's included) under that lock, with a
//! sequence number that grows by one with every event the node posts, so every shard sees a
//! topic's messages in order. A resume reads the history under the same lock and remembers the
//! sequence number it read at: the seam. Whatever the shard later takes from its inbox for that
//! topic was either posted before the read (already sent from the history, or of an epoch the
//! resume did not ask for: skipped for that subscriber) or after it (sent). A subscriber keeps
//! only that one number.
//!
//! A shard also remembers the last epoch and offset it took for each topic: a message whose
//! offset jumps (its inbox was full and a publish was dropped for it) is filled from the history
//! first, and a change of epoch is told to every subscriber that was following before it.
//!
//! # Across nodes
//! A [`Bridge`](crate::Bridge) that [keeps history](crate::Bridge::keeps_history) gives the
//! offsets itself (from a broker's stream): the node then hands local publishes to the bridge
//! only, and delivers what the bridge hands back with
//! [`ServerHandle::publish_at`](crate::ServerHandle::publish_at), so every node sees one order.
//! A topic's history is loaded from the broker when the node starts wanting the topic
//! ([`ServerHandle::history_load`](crate::ServerHandle::history_load)); a resume asked before
//! that waits for it, and is answered through [`Handler::on_resume`](crate::Handler::on_resume).
//!
//! # Bounds
//! | what | bound (default) | past it |
//! |---|---|---|
//! | messages kept per topic | [`HistoryConfig::max_messages`] (1,000) | the oldest is forgotten |
//! | bytes kept per topic | [`HistoryConfig::max_bytes`] (1 MiB) | the oldest are forgotten |
//! | age of a kept message | [`HistoryConfig::max_age`] (5 min) | forgotten (checked every second) |
//! | bytes kept by the node | [`HistoryConfig::max_total_bytes`] (64 MiB) | the node's oldest messages, of any topic, are forgotten, down to 90% of the bound |
//! | topics with a history | one per topic published to in the last `max_age`, or wanted through a bridge | a topic with no message kept for `max_age` is forgotten whole (its next message starts a new epoch) |
//!
//! The kept frames count against the memory budget like any frame shared by several queues.
//! A resume that asks for what was forgotten gets [`Resume::Lost`]: never a silent gap.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::memory::{Gauge, SharedFrame};
use crate::proto::{self, MessageKind};

/// A place in a topic's stream: the stream's epoch and a message's offset in it (offsets start
/// at 1; offset 0 is "before the first message").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Position {
    /// Changes whenever the topic's history is lost: offsets of another epoch mean nothing.
    pub epoch: u64,
    /// The message's offset in the epoch.
    pub offset: u64,
}

impl std::fmt::Display for Position {
    /// `EPOCH:OFFSET`, both in decimal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.epoch, self.offset)
    }
}

impl std::str::FromStr for Position {
    type Err = &'static str;

    /// Reads `EPOCH:OFFSET` (what `Display` writes).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (e, o) = s.split_once(':').ok_or("a position is EPOCH:OFFSET")?;
        Ok(Self {
            epoch: e.parse().map_err(|_| "bad epoch")?,
            offset: o.parse().map_err(|_| "bad offset")?,
        })
    }
}

/// Where a subscription that follows offsets starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// With the next message published.
    Now,
    /// After this position: every later message still kept is sent first.
    After(Position),
}

/// How a subscription that follows offsets started, or what happened to it since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Every message after the position asked for (`count` of them; none for [`Since::Now`])
    /// was queued for the connection before this answer. Live messages follow `at`, the
    /// topic's last offset at that moment.
    Recovered {
        /// The last position sent or skipped: live messages follow it.
        at: Position,
        /// Messages sent from the history.
        count: u64,
    },
    /// The gap cannot be filled: the position is of another epoch, older than the history, or
    /// the history was lost since (a broker restarted without its data). Live messages follow
    /// `at`; what came between was not sent.
    Lost {
        /// The position live messages follow.
        at: Position,
    },
}

/// Default bound on the messages kept per topic.
pub const DEFAULT_HISTORY_MESSAGES: usize = 1000;
/// Default bound on the bytes kept per topic (payloads and frame headers).
pub const DEFAULT_HISTORY_BYTES: usize = 1 << 20;
/// Default age past which a kept message is forgotten.
pub const DEFAULT_HISTORY_AGE: Duration = Duration::from_secs(300);
/// Default bound on the bytes kept by the node for all topics.
pub const DEFAULT_HISTORY_TOTAL_BYTES: usize = 64 << 20;

/// Offsets and history per topic ([`ServerConfig::history`](crate::ServerConfig::history)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Messages kept per topic.
    pub max_messages: usize,
    /// Bytes kept per topic (each message's frame as subscribers that follow offsets get it).
    pub max_bytes: usize,
    /// Age past which a message is forgotten.
    pub max_age: Duration,
    /// Bytes kept by the node for all topics together.
    pub max_total_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_messages: DEFAULT_HISTORY_MESSAGES,
            max_bytes: DEFAULT_HISTORY_BYTES,
            max_age: DEFAULT_HISTORY_AGE,
            max_total_bytes: DEFAULT_HISTORY_TOTAL_BYTES,
        }
    }
}

/// A resume that waits for the history of its topic to be loaded by the bridge (a shard
/// keeps them; see `follow.rs`).
#[derive(Debug)]
pub(crate) struct Waiting {
    pub(crate) id: super::id::ConnId,
    pub(crate) topic: Arc<str>,
    pub(crate) since: Since,
}

/// A message as subscribers that follow offsets get it: its position and its frame, whose
/// payload starts with the offset in decimal and one space.
#[derive(Debug, Clone)]
pub(crate) struct Tagged {
    pub(crate) at: Position,
    pub(crate) frame: Arc<SharedFrame>,
}

/// A kept message as a shard gets it to fill a gap.
#[derive(Debug)]
pub(crate) struct Kept {
    /// The sequence number it was kept at (see the module docs).
    pub(crate) seq: u64,
    pub(crate) frame: Arc<SharedFrame>,
}

/// The frame of `payload` prefixed with its offset: `"42 " + payload`, same opcode.
pub(crate) fn tagged_frame(offset: u64, kind: MessageKind, payload: &[u8]) -> Box<[u8]> {
    let mut tagged = Vec::with_capacity(payload.len() + 21);
    tagged.extend_from_slice(offset.to_string().as_bytes());
    tagged.push(b' ');
    tagged.extend_from_slice(payload);
    proto::frame::message_frame(kind, &tagged).collect()
}

#[derive(Debug)]
struct Entry {
    offset: u64,
    seq: u64,
    at: Instant,
    frame: Arc<SharedFrame>,
}

/// One topic's stream on this node.
#[derive(Debug)]
struct Log {
    epoch: u64,
    /// The last offset given (0: none yet in this epoch).
    top: u64,
    /// The first offset still kept, or `top + 1` when none is.
    first: u64,
    entries: VecDeque<Entry>,
    bytes: usize,
    /// False while a bridge loads it: resumes wait.
    loaded: bool,
    /// When it last changed (a log with nothing kept is forgotten after `max_age`).
    touched: Instant,
}

impl Log {
    fn new(epoch: u64, loaded: bool, now: Instant) -> Self {
        Self {
            epoch,
            top: 0,
            first: 1,
            entries: VecDeque::new(),
            bytes: 0,
            loaded,
            touched: now,
        }
    }

    fn at(&self) -> Position {
        Position {
            epoch: self.epoch,
            offset: self.top,
        }
    }

    /// Forgets the oldest entry; returns its bytes.
    fn pop(&mut self) -> usize {
        let Some(e) = self.entries.pop_front() else {
            return 0;
        };
        self.bytes -= e.frame.len();
        self.first = self.entries.front().map_or(self.top + 1, |e| e.offset);
        e.frame.len()
    }

    /// Forgets everything: the history restarts after `top` in `epoch`.
    fn restart(&mut self, epoch: u64, top: u64) -> usize {
        let freed = self.bytes;
        self.entries.clear();
        self.bytes = 0;
        self.epoch = epoch;
        self.top = top;
        self.first = top + 1;
        freed
    }
}

/// What a resume read from the history, under its lock.
#[derive(Debug)]
pub(crate) enum Read {
    /// The answer, the frames to send before it, and the sequence number read at.
    Ready {
        resume: Resume,
        frames: Vec<Arc<SharedFrame>>,
        seq: u64,
    },
    /// The topic's history is being loaded by the bridge: ask again when it is.
    Loading,
}

/// What the shards are told, in the topic's order, beside its messages.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A message with its position (the plain frame, for subscribers that do not follow
    /// offsets, and the tagged one).
    Message {
        frame: Arc<SharedFrame>,
        tagged: Tagged,
        seq: u64,
    },
    /// The bridge loaded the topic's history, now at `at`: waiting resumes can be answered; a
    /// shard that followed another epoch tells its subscribers that they lost the gap.
    Loaded { at: Position, seq: u64 },
}

#[derive(Debug, Default)]
struct Logs {
    topics: HashMap<Arc<str>, Log>,
    bytes: usize,
    /// The sequence number of the last event posted.
    seq: u64,
}

/// Every topic's stream on a node.
#[derive(Debug)]
pub(crate) struct History {
    config: HistoryConfig,
    /// True when a bridge gives the offsets (the node does not).
    bridged: bool,
    logs: Mutex<Logs>,
    gauge: Arc<Gauge>,
}

/// A fresh epoch: random, never 0.
fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() >> 1 | 1
}

impl History {
    pub(crate) fn new(config: HistoryConfig, bridged: bool, gauge: Arc<Gauge>) -> Self {
        Self {
            config,
            bridged,
            logs: Mutex::new(Logs::default()),
            gauge,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Logs> {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a bridge gives the offsets.
    pub(crate) fn bridged(&self) -> bool {
        self.bridged
    }

    /// Bytes kept for all topics.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Topics with a history on this node.
    pub(crate) fn topics(&self) -> usize {
        self.lock().topics.len()
    }

    /// Gives a locally published message the next offset of `topic`, keeps it, and hands the
    /// event to `post` (which posts it to every shard) under the lock.
    pub(crate) fn append_local(
        &self,
        topic: &str,
        kind: MessageKind,
        payload: &[u8],
        frame: Arc<SharedFrame>,
        post: impl FnOnce(&Arc<str>, Event),
    ) {
        let now = Instant::now();
        let mut logs = self.lock();
        let name = self.log_name(&mut logs, topic, now);
        let log = logs.topics.get_mut(&name).expect("just made");
        let at = Position {
            epoch: log.epoch,
            offset: log.top + 1,
        };
        self.keep(&mut logs, &name, at, kind, payload, frame, now, post);
    }

    /// A message a bridge delivers at `at` (see `ServerHandle::publish_at`).
    pub(crate) fn append_at(
        &self,
        topic: &str,
        kind: MessageKind,
        payload: &[u8],
        frame: Arc<SharedFrame>,
        at: Position,
        post: impl FnOnce(&Arc<str>, Event),
    ) {
        let now = Instant::now();
        let mut logs = self.lock();
        let name = self.log_name(&mut logs, topic, now);
        let logs_ref = &mut *logs;
        let log = logs_ref.topics.get_mut(&name).expect("just made");
        if at.offset == 0 || (log.epoch == at.epoch && at.offset <= log.top && log.top != 0) {
            return; // a duplicate
        }
        if log.epoch != at.epoch || at.offset != log.top + 1 {
            // Another epoch, or a gap the bridge could not fill: the history restarts here, and
            // shards tell their followers (they see the epoch change, or the jump).
            let freed = log.restart(at.epoch, at.offset - 1);
            logs_ref.bytes -= freed;
            log.loaded = true;
        }
        self.keep(&mut logs, &name, at, kind, payload, frame, now, post);
    }

    /// The interned name of `topic`'s log, made if there is none.
    fn log_name(&self, logs: &mut Logs, topic: &str, now: Instant) -> Arc<str> {
        if let Some((name, _)) = logs.topics.get_key_value(topic) {
            return Arc::clone(name);
        }
        let name: Arc<str> = Arc::from(topic);
        logs.topics
            .insert(Arc::clone(&name), Log::new(new_epoch(), !self.bridged, now));
        name
    }

    #[allow(clippy::too_many_arguments)]
    fn keep(
        &self,
        logs: &mut Logs,
        name: &Arc<str>,
        at: Position,
        kind: MessageKind,
        payload: &[u8],
        frame: Arc<SharedFrame>,
        now: Instant,
        post: impl FnOnce(&Arc<str>, Event),
    ) {
        let tagged = SharedFrame::new(tagged_frame(at.offset, kind, payload), &self.gauge);
        let size = tagged.len();
        let c = &self.config;
        logs.seq += 1;
        let seq = logs.seq;
        if logs.bytes + size > c.max_total_bytes {
            Self::shrink(logs, c.max_total_bytes / 10 * 9);
        }
        let log = logs.topics.get_mut(name).expect("made by the caller");
        log.top = at.offset;
        log.touched = now;
        let mut freed = 0;
        while !log.entries.is_empty()
            && (log.entries.len() >= c.max_messages || log.bytes + size > c.max_bytes)
        {
            freed += log.pop();
        }
        logs.bytes -= freed;
        if c.max_messages > 0 && size <= c.max_bytes && logs.bytes + size <= c.max_total_bytes {
            if log.entries.is_empty() {
                log.first = at.offset;
            }
            log.entries.push_back(Entry {
                offset: at.offset,
                seq,
                at: now,
                frame: Arc::clone(&tagged),
            });
            log.bytes += size;
            logs.bytes += size;
        } else {
            // Not kept: the history restarts after it.
            log.first = at.offset + 1;
        }
        post(
            name,
            Event::Message {
                frame,
                tagged: Tagged { at, frame: tagged },
                seq,
            },
        );
    }

    /// Forgets the oldest messages of the node, whatever their topic, until it keeps at most
    /// `target` bytes: done in one go down to 90% of the node's bound, so that the scan of the
    /// topics it takes is paid once per many publishes.
    fn shrink(logs: &mut Logs, target: usize) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut oldest: BinaryHeap<Reverse<(Instant, Arc<str>)>> = logs
            .topics
            .iter()
            .filter_map(|(name, log)| Some(Reverse((log.entries.front()?.at, Arc::clone(name)))))
            .collect();
        while logs.bytes > target
            && let Some(Reverse((_, name))) = oldest.pop()
        {
            let Some(log) = logs.topics.get_mut(&name) else {
                continue;
            };
            logs.bytes -= log.pop();
            if let Some(e) = log.entries.front() {
                oldest.push(Reverse((e.at, name)));
            }
        }
    }

    /// Reads what a subscription starting at `since` gets. `None` when history is of no topic
    /// here (a bridge will load it: the caller waits for it).
    pub(crate) fn read(&self, topic: &str, since: Since) -> Read {
        let now = Instant::now();
        let mut logs = self.lock();
        self.expire(&mut logs, now);
        let name = self.log_name(&mut logs, topic, now);
        let seq = logs.seq;
        let log = &logs.topics[&name];
        if !log.loaded {
            return Read::Loading;
        }
        let at = log.at();
        let from = match since {
            Since::Now => {
                return Read::Ready {
                    resume: Resume::Recovered { at, count: 0 },
                    frames: Vec::new(),
                    seq,
                };
            }
            Since::After(p) => p,
        };
        if from.epoch != log.epoch || from.offset > log.top || from.offset + 1 < log.first {
            return Read::Ready {
                resume: Resume::Lost { at },
                frames: Vec::new(),
                seq,
            };
        }
        let frames: Vec<_> = log
            .entries
            .iter()
            .filter(|e| e.offset > from.offset)
            .map(|e| Arc::clone(&e.frame))
            .collect();
        Read::Ready {
            resume: Resume::Recovered {
                at,
                count: frames.len() as u64,
            },
            frames,
            seq,
        }
    }

    /// The kept frames of `topic` after `after` up to `to` (a shard fills a gap in what it
    /// took), or `None` when the history does not hold all of them (epoch changed, forgotten).
    pub(crate) fn between(&self, topic: &str, epoch: u64, after: u64, to: u64) -> Option<Vec<Kept>> {
        let logs = self.lock();
        let log = logs.topics.get(topic)?;
        if log.epoch != epoch || after + 1 < log.first || to > log.top {
            return None;
        }
        Some(
            log.entries
                .iter()
                .filter(|e| e.offset > after && e.offset <= to)
                .map(|e| Kept {
                    seq: e.seq,
                    frame: Arc::clone(&e.frame),
                })
                .collect(),
        )
    }

    /// A bridge loaded `topic`'s history (see `ServerHandle::history_load`).
    pub(crate) fn load(
        &self,
        topic: &str,
        epoch: u64,
        entries: Vec<(u64, MessageKind, Vec<u8>)>,
        post: impl FnOnce(&Arc<str>, Event),
    ) {
        let now = Instant::now();
        let mut logs = self.lock();
        let name = self.log_name(&mut logs, topic, now);
        let top = entries.last().map_or(0, |e| e.0);
        logs.seq += 1;
        let seq = logs.seq;
        let logs_ref = &mut *logs;
        let log = logs_ref.topics.get_mut(&name).expect("just made");
        let keep_top = log.loaded && log.epoch == epoch && log.top >= top;
        if !keep_top {
            let freed = log.restart(epoch, top);
            logs_ref.bytes -= freed;
            let c = &self.config;
            // Only the newest that fit the bounds are kept.
            let mut kept: Vec<Entry> = Vec::new();
            let mut bytes = 0;
            for (offset, kind, payload) in entries.iter().rev() {
                let frame = tagged_frame(*offset, *kind, payload);
                if kept.len() >= c.max_messages
                    || bytes + frame.len() > c.max_bytes
                    || logs_ref.bytes + bytes + frame.len() > c.max_total_bytes
                {
                    break;
                }
                bytes += frame.len();
                kept.push(Entry {
                    offset: *offset,
                    seq,
                    at: now,
                    frame: SharedFrame::new(frame, &self.gauge),
                });
            }
            kept.reverse();
            log.first = kept.first().map_or(top + 1, |e| e.offset);
            log.entries = kept.into();
            log.bytes = bytes;
            logs_ref.bytes += bytes;
        }
        log.loaded = true;
        log.touched = now;
        let at = log.at();
        post(&name, Event::Loaded { at, seq });
    }

    /// A bridge stopped following `topic`: its history is forgotten.
    pub(crate) fn forget(&self, topic: &str) {
        let mut logs = self.lock();
        if let Some(log) = logs.topics.remove(topic) {
            logs.bytes -= log.bytes;
        }
    }

    /// Forgets what is older than `max_age` (every second, from one shard).
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        let mut logs = self.lock();
        self.expire(&mut logs, now);
    }

    fn expire(&self, logs: &mut Logs, now: Instant) {
        let age = self.config.max_age;
        let bridged = self.bridged;
        let mut freed = 0;
        logs.topics.retain(|_, log| {
            while log
                .entries
                .front()
                .is_some_and(|e| now.saturating_duration_since(e.at) > age)
            {
                freed += log.pop();
            }
            // A bridge's logs live as long as it follows the topic.
            bridged || !log.entries.is_empty() || now.saturating_duration_since(log.touched) <= age
        });
        logs.bytes -= freed;
    }
}

#[cfg(test)]
mod tests;
