//! A shard's topics: which of its connections subscribe to what.
//!
//! Topics are interned per shard: a name maps to a small id; a topic holds the slab keys of its
//! subscribers in a vector (the fan-out loop walks it), and each connection keeps its
//! `(topic, position)` pairs so that leaving is O(1) per topic (swap-remove, then fix the position
//! of the one subscriber that moved). A topic with no subscribers left is forgotten.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

use super::thin::ThinVec;

#[derive(Debug)]
struct Topic {
    name: Arc<str>,
    subscribers: Vec<u32>,
}

/// A connection's side: the topics it is in, with its position in each.
pub(crate) type Memberships = ThinVec<(u32, u32)>;

#[derive(Debug, Default)]
pub(crate) struct Topics {
    ids: HashMap<Arc<str>, u32>,
    topics: Slab<Topic>,
}

/// What a change did to the topic as a whole (for a node-wide registry such as a broker bridge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing visible outside the shard.
    None,
    /// The topic got its first subscriber on this shard.
    First,
    /// The topic lost its last subscriber on this shard.
    Last,
}

impl Topics {
    /// The id of a topic that has subscribers here.
    pub(crate) fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The subscribers of topic `id`.
    pub(crate) fn subscribers(&self, id: u32) -> &[u32] {
        self.topics.get(id as usize).map_or(&[], |t| &t.subscribers)
    }

    /// The name of topic `id`.
    pub(crate) fn name(&self, id: u32) -> Option<&Arc<str>> {
        self.topics.get(id as usize).map(|t| &t.name)
    }

    /// Number of topics with subscribers here.
    pub(crate) fn len(&self) -> usize {
        self.topics.len()
    }

    /// Adds connection `key` (whose memberships are `mine`) to `name`. Returns `None` if it was
    /// already subscribed.
    pub(crate) fn subscribe(&mut self, key: u32, mine: &mut Memberships, name: &str) -> Option<Change> {
        let (id, change) = match self.ids.get(name) {
            Some(&id) => (id, Change::None),
            None => {
                let name: Arc<str> = Arc::from(name);
                let id = self.topics.insert(Topic {
                    name: Arc::clone(&name),
                    subscribers: Vec::new(),
                }) as u32;
                self.ids.insert(name, id);
                (id, Change::First)
            }
        };
        if mine.iter().any(|&(t, _)| t == id) {
            return None;
        }
        let subs = &mut self.topics[id as usize].subscribers;
        mine.push((id, subs.len() as u32));
        subs.push(key);
        Some(change)
    }

    /// Removes connection `key` from topic `id`. Returns `None` if it was not subscribed;
    /// otherwise what happened to the topic, and the subscriber that took the freed place with
    /// its new position, which the caller records with [`moved`].
    pub(crate) fn unsubscribe(
        &mut self,
        key: u32,
        mine: &mut Memberships,
        id: u32,
    ) -> Option<(Change, Option<(u32, u32)>)> {
        let at = mine.iter().position(|&(t, _)| t == id)?;
        let (_, pos) = mine.swap_remove(at);
        let topic = &mut self.topics[id as usize];
        debug_assert_eq!(topic.subscribers.get(pos as usize), Some(&key));
        topic.subscribers.swap_remove(pos as usize);
        let moved = topic.subscribers.get(pos as usize).map(|&k| (k, pos));
        if topic.subscribers.is_empty() {
            let topic = self.topics.remove(id as usize);
            self.ids.remove(&topic.name);
            return Some((Change::Last, None));
        }
        Some((Change::None, moved))
    }
}

/// Records that a subscriber moved to position `pos` in topic `id`.
pub(crate) fn moved(theirs: &mut Memberships, id: u32, pos: u32) {
    if let Some(entry) = theirs.iter_mut().find(|(t, _)| *t == id) {
        entry.1 = pos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_and_leave_keep_positions_right() {
        let mut t = Topics::default();
        let mut members: Vec<Memberships> = vec![Memberships::new(); 5];
        for key in 0..5u32 {
            let change = t.subscribe(key, &mut members[key as usize], "room").unwrap();
            assert_eq!(change, if key == 0 { Change::First } else { Change::None });
        }
        assert!(t.subscribe(2, &mut members[2], "room").is_none());
        let id = t.id("room").unwrap();
        // Remove 1: 4 moves into its place and must know it.
        let mut mine = std::mem::take(&mut members[1]);
        let (change, m) = t.unsubscribe(1, &mut mine, id).unwrap();
        assert_eq!(change, Change::None);
        let (k, pos) = m.unwrap();
        moved(&mut members[k as usize], id, pos);
        assert_eq!(t.subscribers(id), &[0, 4, 2, 3]);
        assert_eq!(&members[4][..], &[(id, 1)]);
        for key in [4u32, 0, 3, 2] {
            let mut mine = std::mem::take(&mut members[key as usize]);
            let (change, m) = t.unsubscribe(key, &mut mine, id).unwrap();
            if let Some((k, pos)) = m {
                moved(&mut members[k as usize], id, pos);
            }
            for (k, m) in members.iter().enumerate() {
                for &(tid, pos) in m.iter() {
                    assert_eq!(t.subscribers(tid)[pos as usize], k as u32);
                }
            }
            if key == 2 {
                assert_eq!(change, Change::Last);
            }
        }
        assert_eq!(t.len(), 0);
        assert!(t.id("room").is_none());
    }
}
