//! How other threads reach a shard: a queue of [`Command`]s and the waker of its event loop.
//!
//! The wake-up protocol lives here whole: a producer queues a command and wakes the loop only if
//! no wake-up is pending ([`Inbox::post`]); the shard clears the pending flag before it takes
//! the queued commands ([`Inbox::drain`]), so that a command posted while it drains brings a new
//! wake-up instead of waiting for the next one.
//!
//! The inbox is bounded in bytes ([`ServerConfig::max_inbox_bytes`]): a producer charges what a
//! command carries before queueing it, the shard releases it when it takes it, and a command
//! that would go past the bound is refused ([`Full`]) and counted, never queued. A shutdown and
//! a request for statistics are never refused (they carry nothing).
//!
//! [`ServerConfig::max_inbox_bytes`]: super::ServerConfig::max_inbox_bytes

use std::any::Any;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use mio::{Registry, Token};

use super::history::Event;
use super::id::ConnId;
use super::memory::{Gauge, SharedFrame};
use super::stats::Stats;
use crate::proto::{CloseCode, MessageKind};

/// What other threads ask of a shard.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        id: ConnId,
        kind: MessageKind,
        data: Vec<u8>,
    },
    Close {
        id: ConnId,
        code: CloseCode,
        reason: String,
    },
    /// A frame published on `topic` elsewhere (another shard, another thread, another node).
    Publish {
        topic: Arc<str>,
        frame: Arc<SharedFrame>,
    },
    /// A message or event of a topic with offsets, in the topic's order (see `history.rs`).
    Stream {
        topic: Arc<str>,
        event: Event,
    },
    /// The decision on a handshake that was left pending: a `Decision<H::State>`, boxed so that
    /// the inbox does not depend on the handler's type.
    Decide {
        id: ConnId,
        decision: Box<dyn Any + Send>,
        receipt: mpsc::SyncSender<DecisionOutcome>,
    },
    Shutdown,
    Stats(mpsc::Sender<Stats>),
}

/// What a command costs the inbox it waits in: what it carries, and a fixed part for itself.
const COMMAND_BYTES: usize = 64;

impl Command {
    fn cost(&self) -> usize {
        COMMAND_BYTES
            + match self {
                Self::Send { data, .. } => data.len(),
                Self::Close { reason, .. } => reason.len(),
                // The frame is shared; charged here too while it waits, so that a shard that
                // does not keep up cannot be sent frames without bound.
                Self::Publish { topic, frame } => topic.len() + frame.len(),
                Self::Stream { topic, event } => {
                    topic.len()
                        + match event {
                            Event::Message { frame, tagged, .. } => frame.len() + tagged.frame.len(),
                            Event::Loaded { .. } => 0,
                        }
                }
                // The state it carries is the handler's: counted as a small one.
                Self::Decide { .. } => 256,
                Self::Shutdown | Self::Stats(_) => 0,
            }
    }

    /// Commands that carry nothing and must not be lost.
    fn always(&self) -> bool {
        matches!(self, Self::Shutdown | Self::Stats(_))
    }
}

/// Why a command was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The shard is gone.
    Gone,
    /// The shard's inbox is full.
    Full,
}

/// What became of a decision sent with [`ServerHandle::decide`](crate::ServerHandle::decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecisionOutcome {
    /// The connection was waiting for it: it is answered (101, or the rejection).
    Applied,
    /// No such connection any more: the client left, or the handshake timed out (503), or the
    /// server stopped. Nothing was done.
    Gone,
    /// The connection is not waiting for a decision (it was decided already). Nothing was done.
    NotPending,
    /// The decision's state is not the handler's `State` type: the client was answered 500.
    WrongState,
    /// The shard's inbox was full: nothing was done (decide again, or the handshake times out
    /// with 503).
    Busy,
}

/// Where the outcome of a decision arrives; dropping it is fine.
#[derive(Debug)]
pub struct Receipt(mpsc::Receiver<DecisionOutcome>);

impl Receipt {
    pub(crate) fn new() -> (mpsc::SyncSender<DecisionOutcome>, Self) {
        let (tx, rx) = mpsc::sync_channel(1);
        (tx, Self(rx))
    }

    /// Waits up to `timeout` for the shard to apply the decision. `None` if it did not answer in
    /// time; [`DecisionOutcome::Gone`] if the shard is gone.
    pub fn wait(&self, timeout: Duration) -> Option<DecisionOutcome> {
        match self.0.recv_timeout(timeout) {
            Ok(o) => Some(o),
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(DecisionOutcome::Gone),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
        }
    }
}

/// The sending side of a shard's inbox, shared by every thread.
#[derive(Debug)]
pub(crate) struct Inbox {
    tx: mpsc::Sender<Command>,
    waker: mio::Waker,
    woken: AtomicBool,
    /// Bytes of the commands waiting, charged by producers, released by the shard.
    bytes: Arc<Gauge>,
    cap: usize,
    /// Commands refused because the inbox was full.
    refused: AtomicU64,
}

/// The shard's own end of its inbox.
#[derive(Debug)]
pub(crate) struct Mailbox {
    rx: mpsc::Receiver<Command>,
    bytes: Arc<Gauge>,
}

impl Inbox {
    /// An inbox of at most `cap` bytes whose waker wakes the poll of `registry` with `token`.
    pub(crate) fn new(registry: &Registry, token: Token, cap: usize) -> io::Result<(Self, Mailbox)> {
        let (tx, rx) = mpsc::channel();
        let bytes = Arc::new(Gauge::default());
        let inbox = Self {
            tx,
            waker: mio::Waker::new(registry, token)?,
            woken: AtomicBool::new(false),
            bytes: Arc::clone(&bytes),
            cap,
            refused: AtomicU64::new(0),
        };
        Ok((inbox, Mailbox { rx, bytes }))
    }

    /// The bytes waiting, as a gauge the shard's memory reads.
    pub(crate) fn gauge(&self) -> Arc<Gauge> {
        Arc::clone(&self.bytes)
    }

    /// Whether a command of `bytes` could be queued now, with room to spare: under half the
    /// bound once it is in (a producer that waits for room does not wake to a full inbox).
    pub(crate) fn has_room_for(&self, bytes: usize) -> bool {
        self.bytes.bytes() as usize + COMMAND_BYTES + bytes <= self.cap / 2
    }

    /// The largest message a command may carry: what could never wait here is refused outright.
    pub(crate) fn max_message(&self) -> usize {
        self.cap.saturating_sub(COMMAND_BYTES)
    }

    /// Commands refused so far because the inbox was full.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Queues a command and wakes the shard unless a wake-up is already pending.
    pub(crate) fn post(&self, cmd: Command) -> Result<(), Refused> {
        let cost = cmd.cost();
        if !cmd.always() && self.bytes.bytes() as usize + cost > self.cap {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::Full);
        }
        self.bytes.add(cost);
        if self.tx.send(cmd).is_err() {
            self.bytes.sub(cost);
            return Err(Refused::Gone);
        }
        if !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        Ok(())
    }

    /// Whether commands were queued since the last [`Inbox::drain`].
    #[cfg(feature = "testing")]
    pub(crate) fn has_mail(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }

    /// On the shard's thread, after a wake-up: every command queued so far.
    pub(crate) fn drain<'a>(&self, mailbox: &'a Mailbox) -> impl Iterator<Item = Command> + 'a {
        self.woken.store(false, Ordering::Release);
        mailbox.rx.try_iter().inspect(|cmd| mailbox.bytes.sub(cmd.cost()))
    }
}
