//! How other threads reach a shard: a queue of [`Command`]s and the waker of its event loop.
//!
//! The wake-up protocol lives here whole: a producer queues a command and wakes the loop only if
//! no wake-up is pending ([`Inbox::post`]); the shard clears the pending flag before it takes
//! the queued commands ([`Inbox::drain`]), so that a command posted while it drains brings a new
//! wake-up instead of waiting for the next one.

use std::any::Any;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use mio::{Registry, Token};

use super::id::ConnId;
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
        frame: Arc<[u8]>,
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
}

/// The shard's own end of its inbox.
#[derive(Debug)]
pub(crate) struct Mailbox {
    rx: mpsc::Receiver<Command>,
}

impl Inbox {
    /// An inbox whose waker wakes the poll of `registry` with `token`.
    pub(crate) fn new(registry: &Registry, token: Token) -> io::Result<(Self, Mailbox)> {
        let (tx, rx) = mpsc::channel();
        let inbox = Self {
            tx,
            waker: mio::Waker::new(registry, token)?,
            woken: AtomicBool::new(false),
        };
        Ok((inbox, Mailbox { rx }))
    }

    /// Queues a command and wakes the shard unless a wake-up is already pending. False if the
    /// shard is gone.
    pub(crate) fn post(&self, cmd: Command) -> bool {
        let sent = self.tx.send(cmd).is_ok();
        if sent && !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        sent
    }

    /// On the shard's thread, after a wake-up: every command queued so far.
    pub(crate) fn drain<'a>(&self, mailbox: &'a Mailbox) -> impl Iterator<Item = Command> + 'a {
        self.woken.store(false, Ordering::Release);
        mailbox.rx.try_iter()
    }
}
