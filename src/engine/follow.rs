//! A shard's side of topics with offsets (see `history.rs`): subscriptions that follow offsets
//! and resume, a topic's events as they come out of the inbox, gaps filled from the history,
//! and what the handler is told ([`Handler::on_resume`](super::Handler::on_resume)).

use std::sync::Arc;

use super::error::SendError;
use super::handler::{Ctx, Handler};
use super::history::{Event, Position, Read, Resume, Since, Tagged, Waiting};
use super::id::ConnId;
use super::memory::SharedFrame;
use super::shard::Shard;
use super::state::App;
use super::topics::{PLAIN, Taken, WAITING};
use crate::proto::{self, MessageKind, OpCode};

/// Waiting resumes past which the stale ones (their connection left, or subscribed again) are
/// swept out before another is added.
const WAITING_SWEEP: usize = 64;

impl Shard {
    /// Subscribes `id` to `topic` following offsets from `since` (see `Ctx::subscribe_from`).
    pub(crate) fn subscribe_from(
        &mut self,
        id: ConnId,
        topic: &str,
        since: Since,
    ) -> Result<Option<Resume>, SendError> {
        let node = Arc::clone(self.node());
        let history = node.history().ok_or(SendError::NoHistory)?;
        self.subscribe(id, topic)?;
        let tid = self.topics.id(topic).ok_or(SendError::UnknownConnection)?;
        match history.read(topic, since) {
            Read::Loading => {
                self.topics.set_seam(tid, id.key, WAITING);
                if self.waiting.len() >= WAITING_SWEEP && self.waiting.len().is_power_of_two() {
                    let waiting = std::mem::take(&mut self.waiting);
                    self.waiting = waiting.into_iter().filter(|w| self.still_waits(w)).collect();
                }
                let topic = self.topics.name(tid).cloned().unwrap_or_else(|| Arc::from(topic));
                self.waiting.retain(|w| !(w.id == id && w.topic == topic));
                self.waiting.push(Waiting { id, topic, since });
                Ok(None)
            }
            Read::Ready { resume, frames, seq } => {
                self.follow(id, tid, resume, &frames, seq);
                Ok(Some(resume))
            }
        }
    }

    fn still_waits(&self, w: &Waiting) -> bool {
        self.entry(w.id).is_some()
            && self
                .topics
                .id(&w.topic)
                .and_then(|tid| self.topics.seam(tid, w.id.key))
                == Some(WAITING)
    }

    /// Starts a subscription following offsets: the frames read from the history go out first,
    /// then what was posted after `seq`.
    fn follow(&mut self, id: ConnId, tid: u32, resume: Resume, frames: &[Arc<SharedFrame>], seq: u64) {
        self.topics.set_seam(tid, id.key, seq);
        let at = match resume {
            Resume::Recovered { at, .. } | Resume::Lost { at } => at,
        };
        if let Some(taken) = self.topics.taken(tid)
            && taken.epoch == 0
        {
            // The topic is new here: what the inbox still holds of it is at or before `at`.
            *taken = Taken {
                epoch: at.epoch,
                offset: at.offset,
            };
        }
        for frame in frames {
            if let Some((opcode, payload)) = proto::frame::split_frame(frame) {
                let kind = if opcode == OpCode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                // The connection's own send path: its cork, its cap and its back-pressure policy.
                if self.send(id, kind, payload).is_err() {
                    break;
                }
            }
        }
    }

    /// An event of a topic with offsets, out of the inbox. A follower told that it lost part of
    /// the topic hears it before the next message.
    pub(super) fn take_event<H: Handler>(&mut self, app: &mut App<H>, topic: &Arc<str>, event: Event) {
        match event {
            Event::Message { frame, tagged, seq } => self.take_message(app, topic, &frame, &tagged, seq),
            Event::Loaded { at, seq } => self.take_loaded(topic, at, seq),
        }
    }

    fn take_message<H: Handler>(
        &mut self,
        app: &mut App<H>,
        topic: &Arc<str>,
        frame: &Arc<SharedFrame>,
        tagged: &Tagged,
        seq: u64,
    ) {
        let Some(tid) = self.topics.id(topic) else {
            return;
        };
        let at = tagged.at;
        let taken = self.topics.taken(tid).map(|t| *t).unwrap_or_default();
        if taken.epoch == at.epoch && at.offset <= taken.offset {
            return; // taken already (a resume here read it from the history)
        }
        self.catch_up(tid, topic, taken, at, seq);
        if !self.resumed.is_empty() {
            self.notify_resumed(app);
        }
        let Some(tid) = self.topics.id(topic) else {
            return; // the handler unsubscribed the last one
        };
        if let Some(t) = self.topics.taken(tid) {
            *t = Taken {
                epoch: at.epoch,
                offset: at.offset,
            };
        }
        self.deliver(topic, Some(frame), Some((&tagged.frame, seq)));
    }

    /// Before the message at `next` (posted at `seq`): a change of epoch is told to the
    /// subscribers that followed before it; a gap in offsets (this shard's inbox was full) is
    /// filled from the history, or told as lost.
    fn catch_up(&mut self, tid: u32, topic: &Arc<str>, taken: Taken, next: Position, seq: u64) {
        let before = Position {
            epoch: next.epoch,
            offset: next.offset.saturating_sub(1),
        };
        if taken.epoch == 0 {
            return;
        }
        if taken.epoch != next.epoch {
            return self.lost(tid, topic, before, seq);
        }
        if next.offset <= taken.offset + 1 {
            return;
        }
        let node = Arc::clone(self.node());
        let missing = next.offset - 1 - taken.offset;
        match node
            .history()
            .and_then(|h| h.between(topic, next.epoch, taken.offset, before.offset))
        {
            Some(kept) if kept.len() as u64 == missing => {
                for k in kept {
                    self.deliver(topic, None, Some((&k.frame, k.seq)));
                }
            }
            _ => self.lost(tid, topic, before, seq),
        }
    }

    /// Tells the subscribers of `tid` that followed offsets before `seq` that they lost what
    /// came before `at`.
    fn lost(&mut self, tid: u32, topic: &Arc<str>, at: Position, seq: u64) {
        let subscribers = self.topics.subscribers(tid);
        let seams = self.topics.seams(tid);
        for (&key, &seam) in subscribers.iter().zip(seams) {
            if seam == PLAIN || seam == WAITING || seam >= seq {
                continue;
            }
            if let Some(id) = self.id_of(key as usize) {
                self.resumed.push((id, Arc::clone(topic), Resume::Lost { at }));
            }
        }
    }

    /// The bridge loaded the topic's history: followers of another epoch lost the gap, a gap
    /// in this shard's offsets is filled, and the resumes that waited are answered.
    fn take_loaded(&mut self, topic: &Arc<str>, at: Position, seq: u64) {
        let Some(tid) = self.topics.id(topic) else {
            return;
        };
        let taken = self.topics.taken(tid).map(|t| *t).unwrap_or_default();
        let next = Position {
            epoch: at.epoch,
            offset: at.offset + 1,
        };
        if !(taken.epoch == at.epoch && at.offset <= taken.offset) {
            self.catch_up(tid, topic, taken, next, seq);
            if let Some(t) = self.topics.taken(tid) {
                *t = Taken {
                    epoch: at.epoch,
                    offset: at.offset,
                };
            }
        }
        let node = Arc::clone(self.node());
        let Some(history) = node.history() else {
            return;
        };
        let (ready, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.topic == *topic);
        self.waiting = others;
        for w in ready {
            if !self.still_waits(&w) {
                continue;
            }
            match history.read(topic, w.since) {
                Read::Loading => self.waiting.push(w),
                Read::Ready { resume, frames, seq } => {
                    self.follow(w.id, tid, resume, &frames, seq);
                    self.resumed.push((w.id, w.topic, resume));
                }
            }
        }
    }

    /// Forgets what is older than the history's age limit (every second, from shard 0).
    pub(super) fn sweep_history(&self) {
        if self.index() == 0
            && let Some(h) = self.node().history()
        {
            h.sweep();
        }
    }

    /// Tells the handler how resumes went, and who lost part of a topic.
    pub(super) fn notify_resumed<H: Handler>(&mut self, app: &mut App<H>) {
        for (id, topic, resume) in std::mem::take(&mut self.resumed) {
            if self.entry(id).is_none() {
                continue;
            }
            let key = id.key as usize;
            let (handler, state) = (&mut app.handler, app.states.get(key));
            self.guarded(super::guard::Callback::Resume, Some(key), Some(id), |shard| {
                handler.on_resume(&mut Ctx { shard }, id, state, &topic, resume);
            });
        }
    }
}
